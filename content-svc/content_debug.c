/*
 * berth-content — debug CLI that speaks to berth-contentd's own socket,
 * bypassing the gateway (root only: the internal sockets are 0700).
 *
 *   berth-content [-a ENDPOINT] [-n NS] ls|info|get|ingest|rm|active|label|abort ...
 */
#include <getopt.h>
#include <stdlib.h>

#include "bt_config.h"
#include "bt_util.h"
#include "cli.h"

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "address", required_argument, NULL, 'a' },
		{ "namespace", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	cli_ctx ctx = { .prog = "berth-content", .daemon = "berth-contentd" };
	_cleanup_free_ char *addr = NULL;
	bt_config *cfg = NULL;
	bt_err e;
	int c, rc;

	bt_tune_malloc();
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+a:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			ctx.address = optarg;
			break;
		case 'n':
			ctx.ns = optarg;
			break;
		case 'h':
			printf("Usage: berth-content [-a ENDPOINT] [-n NAMESPACE] COMMAND ...\n"
			       "Talks to berth-contentd directly (default: the configured content socket).\n\n");
			cli_group_help(stdout, "berth-content", "", cli_content_cmds);
			return 0;
		default:
			fprintf(stderr, "berth-content: unknown option %s\n", argv[optind - 1]);
			return CLI_EXIT_USAGE;
		}
	}
	if (!ctx.address) {
		if (bt_config_load(&cfg, &e) < 0) {
			fprintf(stderr, "berth-content: %s\n", e.msg);
			return CLI_EXIT_FAIL;
		}
		addr = bt_config_service_address(cfg, "content");
		ctx.address = addr;
		bt_config_free(&cfg);
	}
	rc = cli_dispatch(&ctx, cli_content_cmds, "", argc - optind, argv + optind);
	cli_close(&ctx);
	return rc;
}
