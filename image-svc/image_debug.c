/*
 * berth-image — debug CLI that speaks to one berth-imaged's own socket,
 * bypassing the gateway (root only: the internal sockets are 0700), with the
 * verbs of `berth images`.  Verbs that read the content store themselves
 * (check, inspect, export, import) need the gateway: through this socket
 * they get UNIMPLEMENTED for the content service.
 */
#include "cli.h"

int main(int argc, char **argv)
{
	static const cli_debug d = {
		.prog = "berth-image",
		.daemon = "berth-imaged",
		.service = "images",
		.group = cli_images,
	};
	return cli_debug_main(&d, argc, argv);
}
