/*
 * cli_config — `berth config default` prints every configuration key with
 * its default and meaning; `berth config check [FILE]` loads a file as the
 * daemons would and reports the first problem.  Neither needs a server.
 */
#include <string.h>

#include "bt_config.h"
#include "cli.h"

static int config_default(cli_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("Usage: berth config default\nPrint every configuration key, its default and meaning.\n");
		return 0;
	}
	bt_config_print_defaults(stdout);
	return 0;
}

static int config_check(cli_ctx *ctx, int argc, char **argv)
{
	bt_config *cfg = NULL;
	bt_err e;
	const char *path = argc > 1 ? argv[1] : NULL;

	if (path && (strcmp(path, "--help") == 0 || strcmp(path, "-h") == 0)) {
		printf("Usage: berth config check [FILE]\nLoad FILE (default: $BERTH_CONFIG or %s) as the daemons "
		       "would and report problems.\n",
		       BT_CONFIG_DEFAULT_PATH);
		return 0;
	}
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
