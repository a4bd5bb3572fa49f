/*
 * task_run — berth-taskd's tasks: the table of tasks it knows (one per
 * container that has one), what it does to create and delete them (root
 * filesystem mounts, the bundle, the shim), the calls it makes to each
 * shim (every one with a deadline), the monitor thread that learns of
 * exits and of shims that die, and the rebuilding of the table from the
 * shims' state directories at start.
 */
#ifndef TASK_RUN_H
#define TASK_RUN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <protobuf-c/protobuf-c.h>

#include "bt_config.h"
#include "bt_err.h"
#include "task_store.h"

typedef struct task task;
typedef struct task_env task_env;

/* What berth-taskd knows of a task, copied out of the table. */
typedef struct task_view {
	char *id;
	int status; /* BERTH__TASKS__V1__STATUS__* */
	uint32_t pid;
	uint32_t exit_status;
	int64_t exited_at;
	bool terminal;
	char *in, *out, *err;
	char *reason;
} task_view;
void task_view_clear(task_view *v);

typedef struct task_stdio {
	const char *in, *out, *err;
	bool terminal;
} task_stdio;

/* Creates the environment: config (borrowed), store (borrowed). */
task_env *task_env_new(bt_config *cfg, task_store *store, bt_err *e);
/* Rebuilds the table from $run/tasks/<ns>/<id>/ and starts the monitor. */
int task_env_start(task_env *env, bt_err *e);
void task_env_free(task_env **env);

/* true when ns has a task for container id (Containers.Delete refuses). */
bool task_exists(task_env *env, const char *ns, const char *id);

/* Looks the task up; NOT_FOUND when there is none.  Caller drops it with task_put. */
task *task_get(task_env *env, const char *ns, const char *id, bt_err *e);
void task_put(task_env *env, task **t);

int task_create(task_env *env, const char *ns, const char *id, const task_stdio *io, int64_t timeout_ms,
		uint32_t *pid, bt_err *e);
int task_delete(task_env *env, const char *ns, const char *id, int64_t timeout_ms, uint32_t *pid,
		uint32_t *exit_status, int64_t *exited_at, bt_err *e);
void task_view_of(task_env *env, task *t, task_view *v);
/* Copies of every task of ns (never waits on a shim). */
int task_list(task_env *env, const char *ns, task_view **out, size_t *n);
/* Blocks until the init process exited, or done(arg) says the caller is
 * gone (checked at least every 500 ms): then -1 with e from done_err. */
int task_wait_init(task_env *env, task *t, bool (*done)(void *arg), void *arg, uint32_t *exit_status,
		   int64_t *exited_at, bt_err *e);
/* An exec's exit, waited on at the shim, the same way. */
int task_wait_exec(task_env *env, task *t, const char *exec_id, bool (*done)(void *arg), void *arg,
		   uint32_t *exit_status, int64_t *exited_at, bt_err *e);

/* A unary call to t's shim with a deadline (min of timeout_ms and the
 * method's default).  resp (when resp_desc) is freed by the caller with
 * protobuf_c_message_free_unpacked. */
int task_shim_call(task_env *env, task *t, const char *method, const ProtobufCMessage *req,
		   const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms, ProtobufCMessage **resp,
		   bt_err *e);
/* After a successful Start/Pause/Resume of init: the status it now has. */
void task_set_status(task_env *env, task *t, int status, uint32_t pid);
/* FAILED_PRECONDITION unless t's shim is there to ask. */
int task_check_live(task_env *env, task *t, bt_err *e);
/* The init pid (0 when unknown). */
uint32_t task_pid(task_env *env, task *t);
const char *task_id(const task *t);

/* Checks client stdio paths: each empty or an existing FIFO, regular file or character device. */
int task_stdio_check(const task_stdio *io, bt_err *e);

#endif
