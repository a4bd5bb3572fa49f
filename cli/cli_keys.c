/*
 * cli_keys — `berth keys generate PREFIX`: a CURVE keypair for a remote
 * client (or a gateway), PREFIX.key (secret, 0600) and PREFIX.pub.
 */
#include <stdio.h>

#include "bt_keys.h"
#include "cli.h"

static int keys_generate(cli_ctx *ctx, int argc, char **argv)
{
	char pub[BT_KEY_LEN + 1];
	bt_err e;
	int first = cli_parse(ctx, "keys generate", "PREFIX",
			      "Write a CURVE keypair: PREFIX.key (secret, mode 0600) and PREFIX.pub. Give the gateway's "
			      "operator the public key for its authorized keys file.",
			      NULL, argc, argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first != 1)
		return cli_usage_error(ctx, "keys generate", "expected one PREFIX");
	if (bt_keypair_write(argv[first], pub, &e) < 0)
		return cli_errorf(ctx, "%s", e.msg);
	printf("%s\n", pub);
	return 0;
}

const cli_cmd cli_keys_cmds[] = {
	{ "generate", keys_generate, NULL, "Make a keypair", NULL, { 0 } },
	{ NULL, NULL, NULL, NULL, NULL, { 0 } },
};
