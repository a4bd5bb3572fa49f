/*
 * berth-content — debug CLI that speaks to berth-contentd's own socket,
 * bypassing the gateway (root only: the internal sockets are 0700), with the
 * verbs of `berth content`.
 */
#include "cli.h"

int main(int argc, char **argv)
{
	static const cli_debug d = {
		.prog = "berth-content",
		.daemon = "berth-contentd",
		.service = "content",
		.group = cli_content,
	};
	return cli_debug_main(&d, argc, argv);
}
