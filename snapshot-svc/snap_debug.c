/*
 * berth-snapshot — debug CLI that speaks to one berth-snapshotd's own
 * socket, bypassing the gateway (root only: the internal sockets are 0700).
 * It takes the verbs of `berth snapshots`.
 *
 *   berth-snapshot [-a ENDPOINT] [-n NS] [--snapshotter NAME] prepare|view|mounts|commit|rm|ls|info|usage|tree|label|cleanup ...
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "bt_config.h"
#include "bt_util.h"
#include "cli.h"

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "address", required_argument, NULL, 'a' },
		{ "namespace", required_argument, NULL, 'n' },
		{ "snapshotter", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	cli_ctx ctx = { .prog = "berth-snapshot", .daemon = "berth-snapshotd" };
	_cleanup_free_ char *addr = NULL;
	bt_config *cfg = NULL;
	const char *snapshotter = NULL;
	bt_err e;
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+a:n:s:h", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			ctx.address = optarg;
			break;
		case 'n':
			ctx.ns = optarg;
			break;
		case 's':
			snapshotter = optarg;
			break;
		case 'h': {
			printf("berth-snapshot talks to one berth-snapshotd directly (default: the configured\n"
			       "snapshots socket); -a ENDPOINT names another, -n NAMESPACE the namespace.\n");
			char *help[] = { (char *)"berth-snapshot", (char *)"--help", NULL };
			return cli_snapshots(&ctx, 2, help);
		}
		default:
			fprintf(stderr, "berth-snapshot: unknown option %s\n", argv[optind - 1]);
			return CLI_EXIT_USAGE;
		}
	}
	if (!ctx.address) {
		if (bt_config_load(&cfg, &e) < 0) {
			fprintf(stderr, "berth-snapshot: %s\n", e.msg);
			return CLI_EXIT_FAIL;
		}
		addr = bt_config_service_address(cfg, "snapshots");
		ctx.address = addr;
		bt_config_free(&cfg);
	}
	/* the group's own parser takes --snapshotter and the verb */
	int n = 0;
	char **args = bt_xcalloc((size_t)(argc - optind) + 4, sizeof(char *));
	args[n++] = (char *)"snapshots";
	if (snapshotter) {
		args[n++] = (char *)"--snapshotter";
		args[n++] = (char *)snapshotter;
	}
	for (int i = optind; i < argc; i++)
		args[n++] = argv[i];
	rc = cli_snapshots(&ctx, n, args);
	free(args);
	cli_close(&ctx);
	return rc;
}
