/*
 * berth — the command-line client of the berth suite.
 *
 * Global options come first, then a command group and its verb, as with ctr:
 *   berth [--address A] [--namespace NS] [--timeout D] COMMAND ...
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "bt_util.h"
#include "cli.h"

extern const cli_cmd cli_oci_cmds[]; /* cli_oci.c */

extern const cli_cmd cli_containers_cmds[]; /* cli_containers.c */
extern const cli_cmd cli_tasks_cmds[];      /* cli_tasks.c */

static const cli_cmd top[] = {
	{ "content", NULL, NULL, "Manage blobs (ls, info, get, ingest, rm, active, label, abort)", cli_content_cmds,
	  { 0 } },
	{ "snapshots", cli_snapshots, "[--snapshotter NAME] COMMAND ...",
	  "Manage snapshots (prepare, view, mounts, commit, rm, ls, info, usage, tree, label)", NULL, { "snapshot" } },
	{ "images", NULL, NULL, "Manage images (pull, push, ls, check, rm, tag, label, export, import, unpack)",
	  cli_images_cmds, { "image", "i" } },
	{ "namespaces", NULL, NULL, "Manage namespaces (create, ls, rm, label)", cli_namespaces_cmds,
	  { "namespace", "ns" } },
	{ "oci", NULL, NULL, "OCI runtime specs (spec)", cli_oci_cmds, { 0 } },
	{ "run", cli_run, "[OPTIONS] IMAGE ID [CMD [ARG...]]", "Run a container of a stored image (as ctr run)", NULL,
	  { 0 } },
	{ "containers", NULL, NULL, "Manage containers (create, ls, info, rm, label)", cli_containers_cmds,
	  { "container", "c" } },
	{ "tasks", NULL, NULL, "Run and manage tasks (start, ls, kill, exec, ps, pause, resume, metrics, rm, attach, wait)",
	  cli_tasks_cmds, { "task", "t" } },
	{ "leases", NULL, NULL, "Manage leases, which hold objects against gc (create, ls, rm, add, del, resources)", cli_leases_cmds,
	  { "lease" } },
	{ "gc", cli_gc, "[--dry-run] [--format json]", "Remove content and snapshots nothing uses", NULL, { 0 } },
	{ "events", cli_events, "[--topic T]... [--all-namespaces]", "Print events as they happen", NULL, { 0 } },
	{ "keys", NULL, NULL, "CURVE keys for remote access (generate)", cli_keys_cmds, { 0 } },
	{ "config", NULL, NULL, "Show the configuration's keys and defaults, check a file", cli_config_cmds, { 0 } },
	{ "version", cli_version, NULL, "Print versions and the health of each service", NULL, { 0 } },
	{ "health", cli_health, NULL, "Ask the daemon at --address whether it is up", NULL, { 0 } },
	{ NULL, NULL, NULL, NULL, NULL, { 0 } },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: berth [GLOBAL OPTIONS] COMMAND [ARGS...]\n"
		   "berth talks to the berth suite through its gateway.\n\n"
		   "Global options:\n"
		   "  -a, --address ADDR     gateway endpoint (env BERTH_ADDRESS; default %s)\n"
		   "  -n, --namespace NS     namespace (env BERTH_NAMESPACE; default %s)\n"
		   "      --timeout DUR      deadline of each call (default 30s)\n"
		   "      --server-key FILE  for a tcp:// address: the gateway's public key (env BERTH_SERVER_KEY)\n"
		   "      --key FILE         … and your secret key, from `berth keys generate` (env BERTH_KEY)\n"
		   "  -h, --help             this help\n\n",
		BERTH_DEFAULT_ADDRESS, BERTH_DEFAULT_NAMESPACE);
	cli_group_help(f, "berth", "", top);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "address", required_argument, NULL, 'a' },
		{ "namespace", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "server-key", required_argument, NULL, 'S' },
		{ "key", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	cli_ctx ctx = { .prog = "berth", .daemon = "berth-gatewayd" };
	int c, rc;
	int64_t ms;

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
		case 't':
			if (bt_parse_duration_ms(optarg, &ms) < 0 || ms <= 0) {
				fprintf(stderr, "berth: --timeout %s: expected a duration like 30s or 500ms\n", optarg);
				return CLI_EXIT_USAGE;
			}
			ctx.timeout_ms = ms;
			break;
		case 'S':
			ctx.server_key_file = optarg;
			break;
		case 'K':
			ctx.key_file = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "berth: unknown or incomplete option %s\nSee 'berth --help'.\n", argv[optind - 1]);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	rc = cli_dispatch(&ctx, top, "", argc - optind, argv + optind);
	cli_close(&ctx);
	return rc;
}
