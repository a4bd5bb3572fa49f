/*
 * cli_version — `berth version`: the client's version, the gateway's, and
 * the health of every backend service.
 */
#include <string.h>

#include "bt_rpc.h"
#include "cli.h"

int cli_version(cli_ctx *ctx, int argc, char **argv)
{
	berth_version *v = NULL;
	berth_error err;
	int rc = 0;

	int first = cli_parse(ctx, "version", "", "Print the client's and the server's versions and each service's health.",
			      NULL, argc, argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (first < argc)
		return cli_usage_error(ctx, "version", "unexpected argument \"%s\"", argv[first]);
	printf("Client:\n  Version:  %s\n  Protocol: %u\n\n", BERTH_VERSION, BT_PROTOCOL_VERSION);
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_version_get(c, &v, &err) < 0)
		return cli_fail(ctx, &err);
	printf("Server:\n  Version:  %s\n  Protocol: %u\n  Address:  %s\n\n", v->gateway.version, v->gateway.protocol,
	       berth_client_address(c));
	static const char *const hdr[] = { "SERVICE", "STATUS", "DAEMON", "VERSION", "PID", "LATENCY", "ADDRESS" };
	cli_table *t = cli_table_new(7, hdr);
	for (size_t i = 0; i < v->n_backends; i++) {
		const berth_backend *b = &v->backends[i];
		char pid[16] = "-", lat[32] = "-";
		if (b->healthy) {
			snprintf(pid, sizeof(pid), "%d", b->daemon.pid);
			snprintf(lat, sizeof(lat), "%lldus", (long long)b->latency_us);
		} else {
			rc = CLI_EXIT_FAIL;
		}
		const char *row[] = { b->service, b->healthy ? "ok" : "DOWN", b->healthy ? b->daemon.daemon : "-",
				      b->healthy ? b->daemon.version : "-", pid, lat, b->address };
		cli_table_row(t, row);
	}
	cli_table_print(t, stdout, false);
	cli_table_free(&t);
	for (size_t i = 0; i < v->n_backends; i++)
		if (!v->backends[i].healthy)
			fprintf(stderr, "%s: %s: %s\n", ctx->prog, v->backends[i].service, v->backends[i].error);
	berth_version_free(&v);
	return rc;
}

int cli_health(cli_ctx *ctx, int argc, char **argv)
{
	berth_daemon_info d;
	berth_error err;

	int first = cli_parse(ctx, "health", "", "Ask the daemon at --address whether it is up (any berth daemon answers).",
			      NULL, argc, argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (first < argc)
		return cli_usage_error(ctx, "health", "unexpected argument \"%s\"", argv[first]);
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_health(c, &d, &err) < 0)
		return cli_fail(ctx, &err);
	printf("%s %s protocol %u pid %d up %llds\n", d.daemon, d.version, d.protocol, d.pid,
	       (long long)d.uptime_seconds);
	berth_daemon_info_clear(&d);
	return 0;
}
