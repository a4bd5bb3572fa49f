/*
 * berth-snapshot — debug CLI that speaks to one berth-snapshotd's own
 * socket, bypassing the gateway (root only: the internal sockets are 0700),
 * with the verbs of `berth snapshots` (including --snapshotter NAME).
 */
#include "cli.h"

int main(int argc, char **argv)
{
	static const cli_debug d = {
		.prog = "berth-snapshot",
		.daemon = "berth-snapshotd",
		.service = "snapshots",
		.group = cli_snapshots,
	};
	return cli_debug_main(&d, argc, argv);
}
