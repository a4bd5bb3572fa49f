/*
 * berth-contentd — the content store daemon.
 *
 * Wires: configuration, the store (recovering what a crash interrupted),
 * the server on $run/svc/content.sock, then serves until told to stop.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bt_config.h"
#include "bt_daemon.h"
#include "bt_log.h"
#include "bt_util.h"
#include "content_rpc.h"
#include "content_store.h"

int main(int argc, char **argv)
{
	bt_daemon_args args;
	bt_config *cfg = NULL;
	content_store *store = NULL;
	bt_server *srv = NULL;
	bt_service svc;
	_cleanup_free_ char *dir = NULL;
	_cleanup_free_ char *addr = NULL;
	bt_err e = { 0 };
	int rc;

	rc = bt_daemon_init("berth-contentd", "Stores blobs by digest for every namespace.", argc, argv, &args, &cfg,
			    &e);
	if (rc != 0)
		goto out;
	dir = bt_config_state_dir(cfg, "content");
	content_opts o = {
		.lock_timeout_ms = bt_config_duration_ms(cfg, "content.lock_timeout"),
		.max_ingests = bt_config_int(cfg, "content.max_ingests"),
	};
	if ((rc = content_store_open(dir, &o, &store, &e)) < 0)
		goto out;
	addr = args.address ? bt_xstrdup(args.address) : bt_config_service_address(cfg, "content");
	bt_server_opts so = { .daemon = "berth-contentd", .endpoint = addr };
	srv = bt_server_new(&so, &e);
	if (!srv) {
		rc = -1;
		goto out;
	}
	content_rpc_service(store, &svc);
	if ((rc = bt_server_add(srv, &svc, &e)) < 0)
		goto out;
	bt_server_set_ns_usage(srv, content_store_ns_usage, store);
	rc = bt_daemon_serve(srv, "serving content", &e);
out:
	if (rc < 0)
		bt_log_err("%s", e.msg);
	bt_server_free(&srv);
	content_store_free(&store);
	bt_config_free(&cfg);
	return rc < 0 ? 1 : 0;
}
