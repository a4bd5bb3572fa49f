/*
 * berth-snapshotd — one snapshotter: overlayfs (default) or native, chosen
 * by snapshots.driver and served under snapshots.name.
 *
 * Wires: configuration, the driver, the store in $ROOT/snapshots/<name>/
 * (removing what a crash left), the server on $run/svc/snapshots.sock (or
 * --address), then serves until told to stop.  It mounts nothing itself:
 * callers mount what Mounts returns, so it needs no mount namespace of its
 * own and works in the host's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bt_config.h"
#include "bt_daemon.h"
#include "bt_ident.h"
#include "bt_log.h"
#include "bt_util.h"
#include "snap_driver.h"
#include "snap_rpc.h"
#include "snap_store.h"

/* Test seam: BERTH_TEST_SNAP_PAUSE_MS=N pauses N ms at each step of a
 * creation, commit or removal (see snap_store.h), so that tests which kill
 * the daemon at random instants often land between two steps. */
static void pause_at(const char *point, void *arg)
{
	int64_t ms = *(int64_t *)arg;
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	(void)point;
	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	bt_daemon_args args;
	bt_config *cfg = NULL;
	snap_store *store = NULL;
	bt_server *srv = NULL;
	bt_service svc;
	snap_rpc rpc = { 0 };
	const snap_driver *drv;
	_cleanup_free_ char *base = NULL;
	_cleanup_free_ char *dir = NULL;
	_cleanup_free_ char *addr = NULL;
	_cleanup_free_ char *status = NULL;
	bt_err e = { 0 };
	int rc;

	rc = bt_daemon_init("berth-snapshotd", "Keeps filesystem snapshots (one snapshotter per instance).", argc,
			    argv, &args, &cfg, &e);
	if (rc != 0)
		goto out;
	drv = snap_driver_find(bt_config_str(cfg, "snapshots.driver"));
	if (!drv) {
		rc = bt_err_set(&e, BT_INVALID_ARGUMENT, "config: snapshots.driver \"%s\": expected overlayfs or native",
				bt_config_str(cfg, "snapshots.driver"));
		goto out;
	}
	rpc.name = bt_config_local_snapshotter(cfg);
	/* the name is also a directory's: an identifier, never a path */
	if ((rc = bt_ident_validate("config: snapshots.name", rpc.name, &e)) < 0)
		goto out;
	base = bt_config_state_dir(cfg, "snapshots");
	dir = bt_xasprintf("%s/%s", base, rpc.name);
	if ((rc = snap_store_open(dir, drv, &store, &e)) < 0)
		goto out;
	rpc.store = store;
	int64_t pause_ms = 0;
	const char *pause = getenv("BERTH_TEST_SNAP_PAUSE_MS");
	if (pause && *pause && bt_parse_u64(pause, (uint64_t *)&pause_ms) == 0 && pause_ms > 0) {
		bt_log_warn("pausing %lld ms at each step of a change (BERTH_TEST_SNAP_PAUSE_MS: tests only)",
			    (long long)pause_ms);
		snap_store_set_hook(store, pause_at, &pause_ms);
	}
	addr = args.address ? bt_xstrdup(args.address) : bt_config_service_address(cfg, "snapshots");
	bt_server_opts so = { .daemon = "berth-snapshotd", .endpoint = addr };
	srv = bt_server_new(&so, &e);
	if (!srv) {
		rc = -1;
		goto out;
	}
	snap_rpc_service(&rpc, &svc);
	if ((rc = bt_server_add(srv, &svc, &e)) < 0)
		goto out;
	bt_server_set_ns_usage(srv, snap_store_ns_usage, store);
	bt_log_info("snapshotter %s (driver %s) in %s", rpc.name, drv->name, dir);
	status = bt_xasprintf("serving snapshotter %s", rpc.name);
	rc = bt_daemon_serve(srv, status, &e);
out:
	if (rc < 0)
		bt_log_err("%s", e.msg);
	bt_server_free(&srv);
	snap_store_free(&store);
	bt_config_free(&cfg);
	return rc < 0 ? 1 : 0;
}
