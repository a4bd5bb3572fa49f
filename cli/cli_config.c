/*
 * cli_config — `berth config default` prints every configuration key with
 * its default and meaning; `berth config check [FILE]` loads a file as the
 * daemons would and reports the first problem.  Neither needs a server.
 */
#include <string.h>

#include "bt_config.h"
#include "bt_util.h"
#include "cli.h"

static int config_default(cli_ctx *ctx, int argc, char **argv)
{
	int first = cli_parse(ctx, "config default", "", "Print every configuration key, its default and meaning.",
			      NULL, argc, argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (first < argc)
		return cli_usage_error(ctx, "config default", "unexpected argument \"%s\"", argv[first]);
	bt_config_print_defaults(stdout);
	return 0;
}

static int config_check(cli_ctx *ctx, int argc, char **argv)
{
	bt_config *cfg = NULL;
	bt_err e;
	_cleanup_free_ char *summary = bt_xasprintf(
		"Load FILE (default: $BERTH_CONFIG or %s) as the daemons would and report problems.",
		BT_CONFIG_DEFAULT_PATH);
	int first = cli_parse(ctx, "config check", "[FILE]", summary, NULL, argc, argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first > 1)
		return cli_usage_error(ctx, "config check", "expected at most one FILE");
	const char *path = first < argc ? argv[first] : NULL;
	if ((path ? bt_config_load_file(path, &cfg, &e) : bt_config_load(&cfg, &e)) < 0)
		return cli_errorf(ctx, "%s", e.msg);
	printf("%s: ok (root %s, run %s)\n", cfg->path ? cfg->path : "(no file: defaults)", cfg->root, cfg->run);
	bt_config_free(&cfg);
	return 0;
}

const cli_cmd cli_config_cmds[] = {
	{ "default", config_default, NULL, "Print every key with its default", NULL, { 0 } },
	{ "check", config_check, NULL, "Check a configuration file", NULL, { 0 } },
	{ NULL, NULL, NULL, NULL, NULL, { 0 } },
};
