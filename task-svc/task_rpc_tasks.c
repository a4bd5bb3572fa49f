/*
 * task_rpc_tasks — the "tasks" service.  Create and Delete go through
 * task_run.c; the other calls are passed to the task's shim with a
 * deadline; List and Get of a task answer from what berth-taskd knows,
 * never waiting on a shim; Wait ends when the process exits or the caller
 * goes away.
 */
#define _GNU_SOURCE
#include <string.h>

#include <jansson.h>

#include "berth/shim/v1/shim.pb-c.h"
#include "berth/tasks/v1/tasks.pb-c.h"
#include "bt_events.h"
#include "bt_filter.h"
#include "bt_ident.h"
#include "bt_util.h"
#include "task_metrics.h"
#include "task_rpc.h"

/* Looks the task up or answers NOT_FOUND. */
#define GET_TASK(t, rpc, call, id)                                                 \
	bt_err e;                                                                  \
	task *t = task_get((rpc)->env, bt_call_namespace(call), (id), &e);         \
	if (!t) {                                                                  \
		bt_call_error((call), &e);                                         \
		return;                                                            \
	}

static int64_t left(bt_call *call)
{
	return bt_call_remaining_ms(call);
}

static void h_create(bt_call *call, void *ctx)
{
	task_rpc *rpc = ctx;
	const Berth__Tasks__V1__CreateTaskRequest *r = bt_call_req(call);
	Berth__Tasks__V1__CreateTaskResponse resp = BERTH__TASKS__V1__CREATE_TASK_RESPONSE__INIT;
	task_stdio io = { 0 };
	bt_err e;
	if (r->stdio) {
		io.in = r->stdio->stdin;
		io.out = r->stdio->stdout;
		io.err = r->stdio->stderr;
		io.terminal = r->stdio->terminal;
	}
	if (task_create(rpc->env, bt_call_namespace(call), r->container_id, &io, left(call), &resp.pid, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	resp.container_id = r->container_id;
	char pid[16];
	snprintf(pid, sizeof(pid), "%u", resp.pid);
	bt_event(bt_call_namespace(call), "/tasks/create", "container_id", r->container_id, "pid", pid, NULL);
	bt_call_reply(call, &resp.base);
}

static void h_start(bt_call *call, void *ctx)
{
	task_rpc *rpc = ctx;
	const Berth__Tasks__V1__StartRequest *r = bt_call_req(call);
	Berth__Tasks__V1__StartResponse resp = BERTH__TASKS__V1__START_RESPONSE__INIT;
	GET_TASK(t, rpc, call, r->container_id);
	Berth__Shim__V1__StartRequest sr = BERTH__SHIM__V1__START_REQUEST__INIT;
	Berth__Shim__V1__StartResponse *out = NULL;
	sr.exec_id = r->exec_id;
	if (task_shim_call(rpc->env, t, "Start", &sr.base, &berth__shim__v1__start_response__descriptor, left(call),
			   (ProtobufCMessage **)&out, &e) < 0) {
		task_put(rpc->env, &t);
		bt_call_error(call, &e);
		return;
	}
	resp.pid = out->pid;
	if (!r->exec_id || !*r->exec_id)
		task_set_status(rpc->env, t, BERTH__TASKS__V1__STATUS__RUNNING, out->pid);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	task_put(rpc->env, &t);
	char pid[16];
	snprintf(pid, sizeof(pid), "%u", resp.pid);
	if (r->exec_id && *r->exec_id)
		bt_event(bt_call_namespace(call), "/tasks/exec-started", "container_id", r->container_id, "exec_id",
			 r->exec_id, "pid", pid, NULL);
	else
		bt_event(bt_call_namespace(call), "/tasks/start", "container_id", r->container_id, "pid", pid, NULL);
	bt_call_reply(call, &resp.base);
}

static void delete_event(bt_call *call, const char *id, const char *exec_id, uint32_t pid, uint32_t status)
{
	char p[16], st[16];
	snprintf(p, sizeof(p), "%u", pid);
	snprintf(st, sizeof(st), "%u", status);
	bt_event(bt_call_namespace(call), "/tasks/delete", "container_id", id, "exec_id", exec_id, "pid", p,
		 "exit_status", st, NULL);
}

static void h_delete(bt_call *call, void *ctx)
{
	task_rpc *rpc = ctx;
	const Berth__Tasks__V1__DeleteRequest *r = bt_call_req(call);
	Berth__Tasks__V1__DeleteResponse resp = BERTH__TASKS__V1__DELETE_RESPONSE__INIT;
	bt_err e;
	resp.container_id = r->container_id;
	if (!r->exec_id || !*r->exec_id) {
		if (task_delete(rpc->env, bt_call_namespace(call), r->container_id, left(call), &resp.pid,
				&resp.exit_status, &resp.exited_at, &e) < 0) {
			bt_call_error(call, &e);
			return;
		}
		delete_event(call, r->container_id, "", resp.pid, resp.exit_status);
		bt_call_reply(call, &resp.base);
		return;
	}
	task *t = task_get(rpc->env, bt_call_namespace(call), r->container_id, &e);
	if (!t) {
		bt_call_error(call, &e);
		return;
	}
	Berth__Shim__V1__DeleteRequest dr = BERTH__SHIM__V1__DELETE_REQUEST__INIT;
	Berth__Shim__V1__DeleteResponse *out = NULL;
	dr.exec_id = r->exec_id;
	int rc = task_shim_call(rpc->env, t, "Delete", &dr.base, &berth__shim__v1__delete_response__descriptor,
				left(call), (ProtobufCMessage **)&out, &e);
	task_put(rpc->env, &t);
	if (rc < 0) {
		bt_call_error(call, &e);
		return;
	}
	resp.pid = out->pid;
	resp.exit_status = out->exit_status;
	resp.exited_at = out->exited_at_ns;
	protobuf_c_message_free_unpacked(&out->base, NULL);
	delete_event(call, r->container_id, r->exec_id, resp.pid, resp.exit_status);
	bt_call_reply(call, &resp.base);
}

typedef struct proc_pb {
	Berth__Tasks__V1__Process p;
	Berth__Tasks__V1__Stdio io;
} proc_pb;

static void view_to_pb(const task_view *v, proc_pb *o)
{
	berth__tasks__v1__process__init(&o->p);
	berth__tasks__v1__stdio__init(&o->io);
	o->p.container_id = v->id;
	o->p.exec_id = (char *)"";
	o->p.status = (Berth__Tasks__V1__Status)v->status;
	o->p.pid = v->pid;
	o->p.exit_status = v->exit_status;
	o->p.exited_at = v->exited_at;
	o->p.terminal = v->terminal;
	o->io.stdin = v->in;
	o->io.stdout = v->out;
	o->io.stderr = v->err;
	o->io.terminal = v->terminal;
	o->p.stdio = &o->io;
	o->p.reason = v->reason;
}

static void h_get(bt_call *call, void *ctx)
{
	task_rpc *rpc = ctx;
	const Berth__Tasks__V1__GetRequest *r = bt_call_req(call);
	Berth__Tasks__V1__GetResponse resp = BERTH__TASKS__V1__GET_RESPONSE__INIT;
	GET_TASK(t, rpc, call, r->container_id);
	if (!r->exec_id || !*r->exec_id) {
		task_view v;
		proc_pb pb;
		task_view_of(rpc->env, t, &v);
		task_put(rpc->env, &t);
		view_to_pb(&v, &pb);
		resp.process = &pb.p;
		bt_call_reply(call, &resp.base);
		task_view_clear(&v);
		return;
	}
	Berth__Shim__V1__StateRequest sr = BERTH__SHIM__V1__STATE_REQUEST__INIT;
	Berth__Shim__V1__StateResponse *out = NULL;
	sr.exec_id = r->exec_id;
	int rc = task_shim_call(rpc->env, t, "State", &sr.base, &berth__shim__v1__state_response__descriptor,
				left(call), (ProtobufCMessage **)&out, &e);
	if (rc < 0 || !out->process) {
		if (rc == 0)
			bt_err_set(&e, BT_INTERNAL, "task %s: shim State without a process", r->container_id);
		if (out)
			protobuf_c_message_free_unpacked(&out->base, NULL);
		task_put(rpc->env, &t);
		bt_call_error(call, &e);
		return;
	}
	const Berth__Shim__V1__ProcessState *p = out->process;
	task_view v = { .id = (char *)task_id(t), .status = (int)p->status, .pid = p->pid,
			.exit_status = p->exit_status, .exited_at = p->exited_at_ns, .terminal = p->terminal,
			.in = p->stdin, .out = p->stdout, .err = p->stderr, .reason = (char *)"" };
	proc_pb pb;
	view_to_pb(&v, &pb);
	pb.p.exec_id = r->exec_id;
	resp.process = &pb.p;
	bt_call_reply(call, &resp.base);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	task_put(rpc->env, &t);
}

static const char *status_name(int s)
{
	switch (s) {
	case BERTH__TASKS__V1__STATUS__CREATED: return "created";
	case BERTH__TASKS__V1__STATUS__RUNNING: return "running";
	case BERTH__TASKS__V1__STATUS__PAUSED: return "paused";
	case BERTH__TASKS__V1__STATUS__STOPPED: return "stopped";
	default: return "unknown";
	}
}

typedef struct fview {
	const task_view *v;
	char pid[16];
} fview;

static const char *view_field(void *obj, const char *const *path, size_t n)
{
	fview *f = obj;
	if (n != 1)
		return NULL;
	if (strcmp(path[0], "container_id") == 0 || strcmp(path[0], "id") == 0)
		return f->v->id;
	if (strcmp(path[0], "status") == 0)
		return status_name(f->v->status);
	if (strcmp(path[0], "pid") == 0) {
		snprintf(f->pid, sizeof(f->pid), "%u", f->v->pid);
		return f->pid;
	}
	return NULL;
}

static void h_list(bt_call *call, void *ctx)
{
	task_rpc *rpc = ctx;
	const Berth__Tasks__V1__ListTasksRequest *r = bt_call_req(call);
	Berth__Tasks__V1__ListTasksResponse resp = BERTH__TASKS__V1__LIST_TASKS_RESPONSE__INIT;
	bt_filter *f = NULL;
	bt_err e;
	if (bt_filter_parse((const char *const *)r->filters, r->n_filters, &f, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	task_view *v = NULL;
	size_t n = 0;
	task_list(rpc->env, bt_call_namespace(call), &v, &n);
	proc_pb *pb = bt_xcalloc(n + 1, sizeof(*pb));
	Berth__Tasks__V1__Process **ptrs = bt_xcalloc(n + 1, sizeof(*ptrs));
	for (size_t i = 0; i < n; i++) {
		fview fv = { .v = &v[i] };
		if (!bt_filter_match(f, view_field, &fv))
			continue;
		view_to_pb(&v[i], &pb[resp.n_tasks]);
		ptrs[resp.n_tasks] = &pb[resp.n_tasks].p;
		resp.n_tasks++;
	}
	resp.tasks = ptrs;
	bt_call_reply(call, &resp.base);
	for (size_t i = 0; i < n; i++)
		task_view_clear(&v[i]);
	free(v);
	free(pb);
	free(ptrs);
	bt_filter_free(&f);
}

static void h_kill(bt_call *call, void *ctx)
{
	task_rpc *rpc = ctx;
	const Berth__Tasks__V1__KillRequest *r = bt_call_req(call);
	Berth__Tasks__V1__KillResponse resp = BERTH__TASKS__V1__KILL_RESPONSE__INIT;
	GET_TASK(t, rpc, call, r->container_id);
	Berth__Shim__V1__KillRequest kr = BERTH__SHIM__V1__KILL_REQUEST__INIT;
	kr.exec_id = r->exec_id;
	kr.signal = r->signal;
	kr.all = r->all;
	int rc = task_shim_call(rpc->env, t, "Kill", &kr.base, NULL, left(call), NULL, &e);
	task_put(rpc->env, &t);
	if (rc < 0)
		bt_call_error(call, &e);
	else
		bt_call_reply(call, &resp.base);
}

static void h_exec(bt_call *call, void *ctx)
{
	task_rpc *rpc = ctx;
	const Berth__Tasks__V1__ExecRequest *r = bt_call_req(call);
	Berth__Tasks__V1__ExecResponse resp = BERTH__TASKS__V1__EXEC_RESPONSE__INIT;
	Berth__Shim__V1__ExecRequest xr = BERTH__SHIM__V1__EXEC_REQUEST__INIT;
	Berth__Shim__V1__Stdio st = BERTH__SHIM__V1__STDIO__INIT;
	task_stdio io = { 0 };
	GET_TASK(t, rpc, call, r->container_id);
	if (r->stdio) {
		io.in = st.stdin = r->stdio->stdin;
		io.out = st.stdout = r->stdio->stdout;
		io.err = st.stderr = r->stdio->stderr;
		st.terminal = r->stdio->terminal;
		io.terminal = r->stdio->terminal != 0;
	}
	json_error_t je;
	json_t *j = NULL;
	if (bt_ident_validate("exec id", r->exec_id ? r->exec_id : "", &e) < 0 || task_stdio_check(&io, &e) < 0)
		goto fail;
	j = json_loads(r->spec ? r->spec : "", 0, &je);
	if (!json_is_object(j)) {
		bt_err_set(&e, BT_INVALID_ARGUMENT, "exec %s: spec is not a JSON object (an OCI process)", r->exec_id);
		goto fail;
	}
	json_decref(j);
	j = NULL; /* fail: below would let it go a second time */
	xr.exec_id = r->exec_id;
	xr.spec.data = (uint8_t *)r->spec;
	xr.spec.len = strlen(r->spec);
	xr.stdio = &st;
	if (task_shim_call(rpc->env, t, "Exec", &xr.base, NULL, left(call), NULL, &e) < 0)
		goto fail;
	task_put(rpc->env, &t);
	bt_event(bt_call_namespace(call), "/tasks/exec-added", "container_id", r->container_id, "exec_id", r->exec_id,
		 NULL);
	bt_call_reply(call, &resp.base);
	return;
fail:
	if (j)
		json_decref(j);
	task_put(rpc->env, &t);
	bt_call_error(call, &e);
}

/* A call whose shim request has the same shape and an empty reply. */
static void pass(bt_call *call, task_rpc *rpc, const char *id, const char *method, const ProtobufCMessage *req,
		 const ProtobufCMessage *resp, int new_status, const char *topic)
{
	GET_TASK(t, rpc, call, id);
	int rc = task_shim_call(rpc->env, t, method, req, NULL, left(call), NULL, &e);
	if (rc == 0 && new_status)
		task_set_status(rpc->env, t, new_status, 0);
	task_put(rpc->env, &t);
	if (rc < 0) {
		bt_call_error(call, &e);
		return;
	}
	if (topic)
		bt_event(bt_call_namespace(call), topic, "container_id", id, NULL);
	bt_call_reply(call, resp);
}

static void h_resize(bt_call *call, void *ctx)
{
	const Berth__Tasks__V1__ResizePtyRequest *r = bt_call_req(call);
	Berth__Tasks__V1__ResizePtyResponse resp = BERTH__TASKS__V1__RESIZE_PTY_RESPONSE__INIT;
	Berth__Shim__V1__ResizePtyRequest q = BERTH__SHIM__V1__RESIZE_PTY_REQUEST__INIT;
	q.exec_id = r->exec_id;
	q.width = r->width;
	q.height = r->height;
	pass(call, ctx, r->container_id, "ResizePty", &q.base, &resp.base, 0, NULL);
}

static void h_closeio(bt_call *call, void *ctx)
{
	const Berth__Tasks__V1__CloseIORequest *r = bt_call_req(call);
	Berth__Tasks__V1__CloseIOResponse resp = BERTH__TASKS__V1__CLOSE_IORESPONSE__INIT;
	Berth__Shim__V1__CloseIORequest q = BERTH__SHIM__V1__CLOSE_IOREQUEST__INIT;
	q.exec_id = r->exec_id;
	q.stdin = r->stdin;
	pass(call, ctx, r->container_id, "CloseIO", &q.base, &resp.base, 0, NULL);
}

static void h_pause(bt_call *call, void *ctx)
{
	const Berth__Tasks__V1__PauseRequest *r = bt_call_req(call);
	Berth__Tasks__V1__PauseResponse resp = BERTH__TASKS__V1__PAUSE_RESPONSE__INIT;
	Berth__Shim__V1__PauseRequest q = BERTH__SHIM__V1__PAUSE_REQUEST__INIT;
	pass(call, ctx, r->container_id, "Pause", &q.base, &resp.base, BERTH__TASKS__V1__STATUS__PAUSED,
	     "/tasks/paused");
}

static void h_resume(bt_call *call, void *ctx)
{
	const Berth__Tasks__V1__ResumeRequest *r = bt_call_req(call);
	Berth__Tasks__V1__ResumeResponse resp = BERTH__TASKS__V1__RESUME_RESPONSE__INIT;
	Berth__Shim__V1__ResumeRequest q = BERTH__SHIM__V1__RESUME_REQUEST__INIT;
	pass(call, ctx, r->container_id, "Resume", &q.base, &resp.base, BERTH__TASKS__V1__STATUS__RUNNING,
	     "/tasks/resumed");
}

static void h_update(bt_call *call, void *ctx)
{
	const Berth__Tasks__V1__UpdateTaskRequest *r = bt_call_req(call);
	Berth__Tasks__V1__UpdateTaskResponse resp = BERTH__TASKS__V1__UPDATE_TASK_RESPONSE__INIT;
	Berth__Shim__V1__UpdateRequest q = BERTH__SHIM__V1__UPDATE_REQUEST__INIT;
	json_error_t je;
	json_t *j = json_loads(r->resources ? r->resources : "", 0, &je);
	bool ok = json_is_object(j);
	json_decref(j);
	if (!ok) {
		bt_call_errorf(call, BT_INVALID_ARGUMENT, "update %s: resources is not a JSON object (OCI LinuxResources)",
			       r->container_id);
		return;
	}
	q.resources.data = (uint8_t *)r->resources;
	q.resources.len = strlen(r->resources);
	pass(call, ctx, r->container_id, "Update", &q.base, &resp.base, 0, NULL);
}

static void h_pids(bt_call *call, void *ctx)
{
	task_rpc *rpc = ctx;
	const Berth__Tasks__V1__ListPidsRequest *r = bt_call_req(call);
	Berth__Tasks__V1__ListPidsResponse resp = BERTH__TASKS__V1__LIST_PIDS_RESPONSE__INIT;
	Berth__Shim__V1__PidsRequest q = BERTH__SHIM__V1__PIDS_REQUEST__INIT;
	Berth__Shim__V1__PidsResponse *out = NULL;
	GET_TASK(t, rpc, call, r->container_id);
	int rc = task_shim_call(rpc->env, t, "Pids", &q.base, &berth__shim__v1__pids_response__descriptor, left(call),
				(ProtobufCMessage **)&out, &e);
	task_put(rpc->env, &t);
	if (rc < 0) {
		bt_call_error(call, &e);
		return;
	}
	Berth__Tasks__V1__ProcessInfo *pi = bt_xcalloc(out->n_processes + 1, sizeof(*pi));
	Berth__Tasks__V1__ProcessInfo **pp = bt_xcalloc(out->n_processes + 1, sizeof(*pp));
	for (size_t i = 0; i < out->n_processes; i++) {
		berth__tasks__v1__process_info__init(&pi[i]);
		pi[i].pid = out->processes[i]->pid;
		pi[i].exec_id = out->processes[i]->exec_id;
		pp[i] = &pi[i];
	}
	resp.n_processes = out->n_processes;
	resp.processes = pp;
	bt_call_reply(call, &resp.base);
	free(pi);
	free(pp);
	protobuf_c_message_free_unpacked(&out->base, NULL);
}

static void h_metrics(bt_call *call, void *ctx)
{
	task_rpc *rpc = ctx;
	const Berth__Tasks__V1__MetricsRequest *r = bt_call_req(call);
	Berth__Tasks__V1__MetricsResponse resp = BERTH__TASKS__V1__METRICS_RESPONSE__INIT;
	Berth__Tasks__V1__Metrics m = BERTH__TASKS__V1__METRICS__INIT;
	GET_TASK(t, rpc, call, r->container_id);
	uint32_t pid = task_pid(rpc->env, t);
	task_put(rpc->env, &t);
	task_metrics tm;
	if (pid == 0) {
		bt_call_errorf(call, BT_FAILED_PRECONDITION, "task %s: not running: no cgroup to read", r->container_id);
		return;
	}
	if (task_metrics_read(NULL, (pid_t)pid, &tm, &e) < 0) {
		if (e.code == BT_NOT_FOUND)
			e.code = BT_FAILED_PRECONDITION;
		bt_err_wrap(&e, "task %s: metrics", r->container_id);
		bt_call_error(call, &e);
		return;
	}
	m.container_id = r->container_id;
	m.cgroup_version = (uint32_t)tm.cgroup_version;
	m.cpu_usage_ns = tm.cpu_usage_ns;
	m.cpu_user_ns = tm.cpu_user_ns;
	m.cpu_system_ns = tm.cpu_system_ns;
	m.memory_usage_bytes = tm.memory_usage;
	m.memory_limit_bytes = tm.memory_limit;
	m.pids_current = tm.pids_current;
	m.pids_limit = tm.pids_limit;
	m.freezer_state = tm.freezer;
	m.cgroup = tm.cgroup;
	resp.metrics = &m;
	bt_call_reply(call, &resp.base);
}

static bool call_done(void *arg)
{
	return bt_call_done(arg);
}

static void h_wait(bt_call *call, void *ctx)
{
	task_rpc *rpc = ctx;
	const Berth__Tasks__V1__WaitRequest *r = bt_call_req(call);
	Berth__Tasks__V1__WaitResponse resp = BERTH__TASKS__V1__WAIT_RESPONSE__INIT;
	GET_TASK(t, rpc, call, r->container_id);
	int rc;
	if (!r->exec_id || !*r->exec_id)
		rc = task_wait_init(rpc->env, t, call_done, call, &resp.exit_status, &resp.exited_at, &e);
	else
		rc = task_wait_exec(rpc->env, t, r->exec_id, call_done, call, &resp.exit_status, &resp.exited_at, &e);
	task_put(rpc->env, &t);
	if (rc < 0) {
		if (bt_call_done(call))
			bt_call_done_err(call, &e);
		bt_call_error(call, &e);
		return;
	}
	bt_call_reply(call, &resp.base);
}

static const bt_method methods[] = {
	{ "Create", h_create, 0 },   { "Start", h_start, 0 },	   { "Delete", h_delete, 0 },
	{ "Get", h_get, 0 },	     { "List", h_list, BT_M_INLINE }, { "Kill", h_kill, 0 },
	{ "Exec", h_exec, 0 },	     { "ResizePty", h_resize, 0 },   { "CloseIO", h_closeio, 0 },
	{ "Pause", h_pause, 0 },     { "Resume", h_resume, 0 },	   { "ListPids", h_pids, 0 },
	{ "Update", h_update, 0 },   { "Metrics", h_metrics, 0 },    { "Wait", h_wait, 0 },
};

void task_rpc_tasks(task_rpc *rpc, bt_service *svc)
{
	svc->name = "tasks";
	svc->desc = &berth__tasks__v1__tasks__descriptor;
	svc->methods = methods;
	svc->n_methods = BT_ARRAY_LEN(methods);
	svc->ctx = rpc;
}
