/*
 * berth-taskd — the task service: container records ("containers") and
 * their tasks ("tasks"), each task supervised by a detached berth-shim.
 *
 * Wires: configuration, the records in $ROOT/tasks/meta.db, the table of
 * tasks rebuilt from the shims' state directories under $run/tasks (live
 * shims reconnected, dead ones settled), the server on $run/svc/tasks.sock
 * (or --address), then serves until told to stop.  Stopping leaves every
 * shim and container running.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bt_config.h"
#include "bt_daemon.h"
#include "bt_log.h"
#include "bt_util.h"
#include "task_rpc.h"
#include "task_run.h"
#include "task_store.h"

int main(int argc, char **argv)
{
	bt_daemon_args args;
	bt_config *cfg = NULL;
	task_store *store = NULL;
	task_env *env = NULL;
	bt_server *srv = NULL;
	bt_service csvc, tsvc;
	task_rpc rpc = { 0 };
	_cleanup_free_ char *dir = NULL;
	_cleanup_free_ char *addr = NULL;
	bt_err e = { 0 };
	int rc;

	rc = bt_daemon_init("berth-taskd", "Keeps container records and runs their tasks through berth-shim.", argc,
			    argv, &args, &cfg, &e);
	if (rc != 0)
		goto out;
	dir = bt_config_state_dir(cfg, "tasks");
	if ((rc = task_store_open(dir, &store, &e)) < 0)
		goto out;
	env = task_env_new(cfg, store, &e);
	if (!env) {
		rc = -1;
		goto out;
	}
	if ((rc = task_env_start(env, &e)) < 0)
		goto out;
	addr = args.address ? bt_xstrdup(args.address) : bt_config_service_address(cfg, "tasks");
	/* every Wait holds a worker until its process exits: allow many */
	bt_server_opts so = { .daemon = "berth-taskd", .endpoint = addr, .max_workers = 2048 };
	srv = bt_server_new(&so, &e);
	if (!srv) {
		rc = -1;
		goto out;
	}
	rpc.store = store;
	rpc.env = env;
	task_rpc_containers(&rpc, &csvc);
	task_rpc_tasks(&rpc, &tsvc);
	if ((rc = bt_server_add(srv, &csvc, &e)) < 0 || (rc = bt_server_add(srv, &tsvc, &e)) < 0)
		goto out;
	bt_server_set_ns_usage(srv, task_store_ns_usage, store);
	rc = bt_daemon_serve(srv, "serving containers and tasks", &e);
out:
	if (rc < 0)
		bt_log_err("%s", e.msg);
	bt_server_free(&srv);
	task_env_free(&env);
	task_store_free(&store);
	bt_config_free(&cfg);
	return rc < 0 ? 1 : 0;
}
