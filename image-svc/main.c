/*
 * berth-imaged — the image service: image records, and the transfers that
 * fill them (pull, push, unpack).
 *
 * Wires: configuration, the records in $ROOT/images/meta.db, the transfer
 * machinery (registry client, journal of temporary snapshots, removing what
 * a crash left), the server on $run/svc/images.sock (or --address), then
 * serves until told to stop.  Blobs go to berth-contentd and layers to the
 * snapshotters, through their sockets only.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bt_config.h"
#include "bt_daemon.h"
#include "bt_log.h"
#include "bt_util.h"
#include "image_rpc.h"
#include "image_store.h"
#include "image_xfer.h"

int main(int argc, char **argv)
{
	bt_daemon_args args;
	bt_config *cfg = NULL;
	image_store *store = NULL;
	image_xfer *xfer = NULL;
	bt_server *srv = NULL;
	bt_service svc;
	image_rpc rpc = { 0 };
	_cleanup_free_ char *dir = NULL;
	_cleanup_free_ char *addr = NULL;
	bt_err e = { 0 };
	int rc;

	rc = bt_daemon_init("berth-imaged", "Keeps image records; pulls, pushes and unpacks images.", argc, argv, &args,
			    &cfg, &e);
	if (rc != 0)
		goto out;
	dir = bt_config_state_dir(cfg, "images");
	if ((rc = image_store_open(dir, &store, &e)) < 0)
		goto out;
	image_xfer_opts xo = {
		.cfg = cfg,
		.store = store,
		.state_dir = dir,
		.max_parallel_layers = (int)bt_config_int(cfg, "images.max_parallel_layers"),
	};
	xfer = image_xfer_new(&xo, &e);
	if (!xfer) {
		rc = -1;
		goto out;
	}
	/* what a crash left (temporary snapshots, mounts) goes before new work comes */
	if (image_xfer_recover(xfer, &e) < 0) {
		bt_log_warn("recovery: %s (continuing)", e.msg);
		e = (bt_err){ 0 };
	}
	addr = args.address ? bt_xstrdup(args.address) : bt_config_service_address(cfg, "images");
	bt_server_opts so = { .daemon = "berth-imaged", .endpoint = addr };
	srv = bt_server_new(&so, &e);
	if (!srv) {
		rc = -1;
		goto out;
	}
	rpc.store = store;
	rpc.xfer = xfer;
	image_rpc_service(&rpc, &svc);
	if ((rc = bt_server_add(srv, &svc, &e)) < 0)
		goto out;
	bt_server_set_ns_usage(srv, image_xfer_ns_usage, xfer);
	rc = bt_daemon_serve(srv, "serving images", &e);
out:
	if (rc < 0)
		bt_log_err("%s", e.msg);
	/* the server first: no handler may run once the jobs' state is gone */
	bt_server_free(&srv);
	image_xfer_free(&xfer);
	image_store_free(&store);
	bt_config_free(&cfg);
	return rc < 0 ? 1 : 0;
}
