/*
 * task_rpc — handlers of the "containers" and "tasks" services.
 */
#ifndef TASK_RPC_H
#define TASK_RPC_H

#include "bt_server.h"
#include "task_run.h"
#include "task_store.h"

typedef struct task_rpc {
	task_store *store;
	task_env *env;
} task_rpc;

void task_rpc_containers(task_rpc *rpc, bt_service *svc);
void task_rpc_tasks(task_rpc *rpc, bt_service *svc);

#endif
