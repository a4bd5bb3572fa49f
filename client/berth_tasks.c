/*
 * berth_tasks — the containers and tasks API of libberth.
 */
#define _GNU_SOURCE
#include <string.h>

#include "berth/tasks/v1/tasks.pb-c.h"
#include "berth_internal.h"
#include "bt_pbmap.h"
#include "bt_rpc.h"
#include "bt_util.h"

static char *s_or_empty(const char *s)
{
	return (char *)(s ? s : "");
}

/* --- containers --- */

void berth_container_clear(berth_container *c)
{
	free(c->id);
	free(c->image);
	free(c->spec);
	free(c->snapshotter);
	free(c->snapshot_key);
	free(c->runtime);
	free(c->runtime_binary);
	free(c->runtime_root);
	berth_labels_free(c->labels, c->n_labels);
	memset(c, 0, sizeof(*c));
}

void berth_containers_free(berth_container *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		berth_container_clear(&v[i]);
	free(v);
}

static void ctr_from_pb(const Berth__Tasks__V1__Container *p, berth_container *out)
{
	memset(out, 0, sizeof(*out));
	out->id = bt_xstrdup(p->id);
	out->image = bt_xstrdup(p->image);
	out->spec = bt_xstrdup(p->spec);
	out->snapshotter = bt_xstrdup(p->snapshotter);
	out->snapshot_key = bt_xstrdup(p->snapshot_key);
	out->runtime = bt_xstrdup(p->runtime ? p->runtime->name : "");
	out->runtime_binary = bt_xstrdup(p->runtime ? p->runtime->binary : "");
	out->runtime_root = bt_xstrdup(p->runtime ? p->runtime->root : "");
	out->n_labels = p->n_labels;
	out->labels = berth_labels_to_public((void *const *)p->labels, p->n_labels);
	out->created_at = p->created_at;
	out->updated_at = p->updated_at;
}

typedef struct pb_ctr {
	Berth__Tasks__V1__Container c;
	Berth__Tasks__V1__Runtime rt;
	bt_labels labels;
} pb_ctr;

static void ctr_to_pb(const berth_container *in, pb_ctr *p)
{
	memset(p, 0, sizeof(*p));
	berth__tasks__v1__container__init(&p->c);
	berth__tasks__v1__runtime__init(&p->rt);
	berth_labels_from_public(in->labels, in->n_labels, &p->labels);
	p->c.id = s_or_empty(in->id);
	p->c.image = s_or_empty(in->image);
	p->c.spec = s_or_empty(in->spec);
	p->c.snapshotter = s_or_empty(in->snapshotter);
	p->c.snapshot_key = s_or_empty(in->snapshot_key);
	p->rt.name = s_or_empty(in->runtime);
	p->rt.binary = s_or_empty(in->runtime_binary);
	p->rt.root = s_or_empty(in->runtime_root);
	p->c.runtime = &p->rt;
	p->c.labels = (Berth__Tasks__V1__Container__LabelsEntry **)bt_pbmap_from_labels(
		&p->labels, &berth__tasks__v1__container__labels_entry__descriptor, &p->c.n_labels);
}

static void ctr_pb_release(pb_ctr *p)
{
	bt_pbmap_free((void **)p->c.labels, p->c.n_labels);
	bt_labels_clear(&p->labels);
}

/* Get, Create and Update replies hold one field: the container. */
typedef struct {
	ProtobufCMessage base;
	Berth__Tasks__V1__Container *container;
} ctr_reply;

static int ctr_call(berth_client *c, const char *ns, const char *method, const ProtobufCMessage *req,
		    const ProtobufCMessageDescriptor *rd, berth_container *out, berth_error *err)
{
	bt_callspec cs = berth_spec(c, "containers", method, ns);
	ctr_reply *resp = NULL;
	bt_err e;
	if (bt_conn_call(c->conn, &cs, req, rd, (void **)&resp, &e) < 0)
		return berth_fail(err, &e);
	if (!resp->container) {
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		bt_err_set(&e, BT_INTERNAL, "containers.%s: reply without a container", method);
		return berth_fail(err, &e);
	}
	if (out)
		ctr_from_pb(resp->container, out);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}

int berth_container_get(berth_client *c, const char *ns, const char *id, berth_container *out, berth_error *err)
{
	Berth__Tasks__V1__GetContainerRequest req = BERTH__TASKS__V1__GET_CONTAINER_REQUEST__INIT;
	req.id = s_or_empty(id);
	return ctr_call(c, ns, "Get", &req.base, &berth__tasks__v1__get_container_response__descriptor, out, err);
}

typedef struct ctr_acc {
	berth_container *v;
	size_t n;
} ctr_acc;

static void ctr_batch(const void *msg, void *arg)
{
	const Berth__Tasks__V1__ListContainersResponse *b = msg;
	ctr_acc *a = arg;
	a->v = bt_xrealloc(a->v, (a->n + b->n_containers + 1) * sizeof(*a->v));
	for (size_t i = 0; i < b->n_containers; i++)
		ctr_from_pb(b->containers[i], &a->v[a->n++]);
}

int berth_container_list(berth_client *c, const char *ns, const char *const *filters, size_t n_filters,
			 berth_container **out, size_t *n_out, berth_error *err)
{
	Berth__Tasks__V1__ListContainersRequest req = BERTH__TASKS__V1__LIST_CONTAINERS_REQUEST__INIT;
	bt_callspec cs = berth_spec(c, "containers", "List", ns);
	ctr_acc a = { 0 };
	bt_err e;
	req.n_filters = n_filters;
	req.filters = (char **)filters;
	if (berth_stream_each(c, &cs, &req.base, &berth__tasks__v1__list_containers_response__descriptor, ctr_batch,
			      &a, &e) < 0) {
		berth_containers_free(a.v, a.n);
		return berth_fail(err, &e);
	}
	*out = a.v;
	*n_out = a.n;
	return 0;
}

int berth_container_create(berth_client *c, const char *ns, const berth_container *in, berth_container *out,
			   berth_error *err)
{
	Berth__Tasks__V1__CreateContainerRequest req = BERTH__TASKS__V1__CREATE_CONTAINER_REQUEST__INIT;
	pb_ctr p;
	ctr_to_pb(in, &p);
	req.container = &p.c;
	int rc = ctr_call(c, ns, "Create", &req.base, &berth__tasks__v1__create_container_response__descriptor, out,
			  err);
	ctr_pb_release(&p);
	return rc;
}

int berth_container_update(berth_client *c, const char *ns, const berth_container *in, const char *const *mask,
			   size_t n_mask, berth_container *out, berth_error *err)
{
	Berth__Tasks__V1__UpdateContainerRequest req = BERTH__TASKS__V1__UPDATE_CONTAINER_REQUEST__INIT;
	pb_ctr p;
	ctr_to_pb(in, &p);
	req.container = &p.c;
	req.n_update_mask = n_mask;
	req.update_mask = (char **)mask;
	int rc = ctr_call(c, ns, "Update", &req.base, &berth__tasks__v1__update_container_response__descriptor, out,
			  err);
	ctr_pb_release(&p);
	return rc;
}

int berth_container_delete(berth_client *c, const char *ns, const char *id, berth_error *err)
{
	Berth__Tasks__V1__DeleteContainerRequest req = BERTH__TASKS__V1__DELETE_CONTAINER_REQUEST__INIT;
	bt_callspec cs = berth_spec(c, "containers", "Delete", ns);
	void *resp = NULL;
	bt_err e;
	req.id = s_or_empty(id);
	if (bt_conn_call(c->conn, &cs, &req.base, &berth__tasks__v1__delete_container_response__descriptor, &resp,
			 &e) < 0)
		return berth_fail(err, &e);
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

/* --- tasks --- */

const char *berth_task_status_name(int status)
{
	switch (status) {
	case BERTH_TASK_CREATED: return "created";
	case BERTH_TASK_RUNNING: return "running";
	case BERTH_TASK_PAUSED: return "paused";
	case BERTH_TASK_STOPPED: return "stopped";
	default: return "unknown";
	}
}

void berth_process_clear(berth_process *p)
{
	free(p->container_id);
	free(p->exec_id);
	free(p->in);
	free(p->out);
	free(p->err);
	free(p->reason);
	memset(p, 0, sizeof(*p));
}

void berth_processes_free(berth_process *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		berth_process_clear(&v[i]);
	free(v);
}

static void proc_from_pb(const Berth__Tasks__V1__Process *p, berth_process *o)
{
	memset(o, 0, sizeof(*o));
	o->container_id = bt_xstrdup(p->container_id);
	o->exec_id = bt_xstrdup(p->exec_id);
	o->status = (int)p->status;
	o->pid = p->pid;
	o->exit_status = p->exit_status;
	o->exited_at = p->exited_at;
	o->terminal = p->terminal;
	o->in = bt_xstrdup(p->stdio ? p->stdio->stdin : "");
	o->out = bt_xstrdup(p->stdio ? p->stdio->stdout : "");
	o->err = bt_xstrdup(p->stdio ? p->stdio->stderr : "");
	o->reason = bt_xstrdup(p->reason);
}

/* A unary tasks call; resp may be NULL when the reply is not wanted. */
static int task_call(berth_client *c, const char *ns, const char *method, int64_t timeout_ms,
		     const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd, void **resp, berth_error *err)
{
	bt_callspec cs = berth_spec(c, "tasks", method, ns);
	void *r = NULL;
	bt_err e;
	if (timeout_ms)
		cs.timeout_ms = timeout_ms;
	if (bt_conn_call(c->conn, &cs, req, rd, &r, &e) < 0)
		return berth_fail(err, &e);
	if (resp)
		*resp = r;
	else
		protobuf_c_message_free_unpacked(r, NULL);
	return 0;
}

static void stdio_to_pb(const berth_stdio *io, Berth__Tasks__V1__Stdio *p)
{
	berth__tasks__v1__stdio__init(p);
	if (!io)
		return;
	p->stdin = s_or_empty(io->in);
	p->stdout = s_or_empty(io->out);
	p->stderr = s_or_empty(io->err);
	p->terminal = io->terminal;
}

int berth_task_create(berth_client *c, const char *ns, const char *id, const berth_stdio *io, uint32_t *pid,
		      berth_error *err)
{
	Berth__Tasks__V1__CreateTaskRequest req = BERTH__TASKS__V1__CREATE_TASK_REQUEST__INIT;
	Berth__Tasks__V1__Stdio st;
	Berth__Tasks__V1__CreateTaskResponse *r = NULL;
	stdio_to_pb(io, &st);
	req.container_id = s_or_empty(id);
	req.stdio = &st;
	if (task_call(c, ns, "Create", 0, &req.base, &berth__tasks__v1__create_task_response__descriptor, (void **)&r,
		      err) < 0)
		return -1;
	if (pid)
		*pid = r->pid;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return 0;
}

int berth_task_start(berth_client *c, const char *ns, const char *id, const char *exec_id, uint32_t *pid,
		     berth_error *err)
{
	Berth__Tasks__V1__StartRequest req = BERTH__TASKS__V1__START_REQUEST__INIT;
	Berth__Tasks__V1__StartResponse *r = NULL;
	req.container_id = s_or_empty(id);
	req.exec_id = s_or_empty(exec_id);
	if (task_call(c, ns, "Start", 0, &req.base, &berth__tasks__v1__start_response__descriptor, (void **)&r, err) < 0)
		return -1;
	if (pid)
		*pid = r->pid;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return 0;
}

int berth_task_delete(berth_client *c, const char *ns, const char *id, const char *exec_id, uint32_t *exit_status,
		      int64_t *exited_at, berth_error *err)
{
	Berth__Tasks__V1__DeleteRequest req = BERTH__TASKS__V1__DELETE_REQUEST__INIT;
	Berth__Tasks__V1__DeleteResponse *r = NULL;
	req.container_id = s_or_empty(id);
	req.exec_id = s_or_empty(exec_id);
	if (task_call(c, ns, "Delete", 0, &req.base, &berth__tasks__v1__delete_response__descriptor, (void **)&r, err) <
	    0)
		return -1;
	if (exit_status)
		*exit_status = r->exit_status;
	if (exited_at)
		*exited_at = r->exited_at;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return 0;
}

int berth_task_get(berth_client *c, const char *ns, const char *id, const char *exec_id, berth_process *out,
		   berth_error *err)
{
	Berth__Tasks__V1__GetRequest req = BERTH__TASKS__V1__GET_REQUEST__INIT;
	Berth__Tasks__V1__GetResponse *r = NULL;
	bt_err e;
	req.container_id = s_or_empty(id);
	req.exec_id = s_or_empty(exec_id);
	if (task_call(c, ns, "Get", 0, &req.base, &berth__tasks__v1__get_response__descriptor, (void **)&r, err) < 0)
		return -1;
	if (!r->process) {
		protobuf_c_message_free_unpacked(&r->base, NULL);
		bt_err_set(&e, BT_INTERNAL, "tasks.Get: reply without a process");
		return berth_fail(err, &e);
	}
	proc_from_pb(r->process, out);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return 0;
}

int berth_task_list(berth_client *c, const char *ns, const char *const *filters, size_t n_filters,
		    berth_process **out, size_t *n_out, berth_error *err)
{
	Berth__Tasks__V1__ListTasksRequest req = BERTH__TASKS__V1__LIST_TASKS_REQUEST__INIT;
	Berth__Tasks__V1__ListTasksResponse *r = NULL;
	req.n_filters = n_filters;
	req.filters = (char **)filters;
	if (task_call(c, ns, "List", 0, &req.base, &berth__tasks__v1__list_tasks_response__descriptor, (void **)&r,
		      err) < 0)
		return -1;
	berth_process *v = bt_xcalloc(r->n_tasks + 1, sizeof(*v));
	for (size_t i = 0; i < r->n_tasks; i++)
		proc_from_pb(r->tasks[i], &v[i]);
	*out = v;
	*n_out = r->n_tasks;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return 0;
}

int berth_task_kill(berth_client *c, const char *ns, const char *id, const char *exec_id, int signal, bool all,
		    berth_error *err)
{
	Berth__Tasks__V1__KillRequest req = BERTH__TASKS__V1__KILL_REQUEST__INIT;
	req.container_id = s_or_empty(id);
	req.exec_id = s_or_empty(exec_id);
	req.signal = signal > 0 ? (uint32_t)signal : 0;
	req.all = all;
	return task_call(c, ns, "Kill", 0, &req.base, &berth__tasks__v1__kill_response__descriptor, NULL, err);
}

int berth_task_exec(berth_client *c, const char *ns, const char *id, const char *exec_id, const char *process_json,
		    const berth_stdio *io, berth_error *err)
{
	Berth__Tasks__V1__ExecRequest req = BERTH__TASKS__V1__EXEC_REQUEST__INIT;
	Berth__Tasks__V1__Stdio st;
	stdio_to_pb(io, &st);
	req.container_id = s_or_empty(id);
	req.exec_id = s_or_empty(exec_id);
	req.spec = s_or_empty(process_json);
	req.stdio = &st;
	return task_call(c, ns, "Exec", 0, &req.base, &berth__tasks__v1__exec_response__descriptor, NULL, err);
}

int berth_task_resize(berth_client *c, const char *ns, const char *id, const char *exec_id, uint32_t width,
		      uint32_t height, berth_error *err)
{
	Berth__Tasks__V1__ResizePtyRequest req = BERTH__TASKS__V1__RESIZE_PTY_REQUEST__INIT;
	req.container_id = s_or_empty(id);
	req.exec_id = s_or_empty(exec_id);
	req.width = width;
	req.height = height;
	return task_call(c, ns, "ResizePty", 0, &req.base, &berth__tasks__v1__resize_pty_response__descriptor, NULL,
			 err);
}

int berth_task_close_stdin(berth_client *c, const char *ns, const char *id, const char *exec_id, berth_error *err)
{
	Berth__Tasks__V1__CloseIORequest req = BERTH__TASKS__V1__CLOSE_IOREQUEST__INIT;
	req.container_id = s_or_empty(id);
	req.exec_id = s_or_empty(exec_id);
	req.stdin = true;
	return task_call(c, ns, "CloseIO", 0, &req.base, &berth__tasks__v1__close_ioresponse__descriptor, NULL, err);
}

int berth_task_pause(berth_client *c, const char *ns, const char *id, berth_error *err)
{
	Berth__Tasks__V1__PauseRequest req = BERTH__TASKS__V1__PAUSE_REQUEST__INIT;
	req.container_id = s_or_empty(id);
	return task_call(c, ns, "Pause", 0, &req.base, &berth__tasks__v1__pause_response__descriptor, NULL, err);
}

int berth_task_resume(berth_client *c, const char *ns, const char *id, berth_error *err)
{
	Berth__Tasks__V1__ResumeRequest req = BERTH__TASKS__V1__RESUME_REQUEST__INIT;
	req.container_id = s_or_empty(id);
	return task_call(c, ns, "Resume", 0, &req.base, &berth__tasks__v1__resume_response__descriptor, NULL, err);
}

void berth_pid_infos_free(berth_pid_info *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].exec_id);
	free(v);
}

int berth_task_pids(berth_client *c, const char *ns, const char *id, berth_pid_info **out, size_t *n_out,
		    berth_error *err)
{
	Berth__Tasks__V1__ListPidsRequest req = BERTH__TASKS__V1__LIST_PIDS_REQUEST__INIT;
	Berth__Tasks__V1__ListPidsResponse *r = NULL;
	req.container_id = s_or_empty(id);
	if (task_call(c, ns, "ListPids", 0, &req.base, &berth__tasks__v1__list_pids_response__descriptor, (void **)&r,
		      err) < 0)
		return -1;
	berth_pid_info *v = bt_xcalloc(r->n_processes + 1, sizeof(*v));
	for (size_t i = 0; i < r->n_processes; i++) {
		v[i].pid = r->processes[i]->pid;
		v[i].exec_id = bt_xstrdup(r->processes[i]->exec_id);
	}
	*out = v;
	*n_out = r->n_processes;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return 0;
}

int berth_task_update(berth_client *c, const char *ns, const char *id, const char *resources_json,
		      berth_error *err)
{
	Berth__Tasks__V1__UpdateTaskRequest req = BERTH__TASKS__V1__UPDATE_TASK_REQUEST__INIT;
	req.container_id = s_or_empty(id);
	req.resources = s_or_empty(resources_json);
	return task_call(c, ns, "Update", 0, &req.base, &berth__tasks__v1__update_task_response__descriptor, NULL, err);
}

int berth_task_metrics_get(berth_client *c, const char *ns, const char *id, berth_task_metrics *out,
			   berth_error *err)
{
	Berth__Tasks__V1__MetricsRequest req = BERTH__TASKS__V1__METRICS_REQUEST__INIT;
	Berth__Tasks__V1__MetricsResponse *r = NULL;
	bt_err e;
	req.container_id = s_or_empty(id);
	if (task_call(c, ns, "Metrics", 0, &req.base, &berth__tasks__v1__metrics_response__descriptor, (void **)&r,
		      err) < 0)
		return -1;
	if (!r->metrics) {
		protobuf_c_message_free_unpacked(&r->base, NULL);
		bt_err_set(&e, BT_INTERNAL, "tasks.Metrics: reply without metrics");
		return berth_fail(err, &e);
	}
	const Berth__Tasks__V1__Metrics *m = r->metrics;
	memset(out, 0, sizeof(*out));
	out->cgroup_version = (int)m->cgroup_version;
	out->cpu_usage_ns = m->cpu_usage_ns;
	out->cpu_user_ns = m->cpu_user_ns;
	out->cpu_system_ns = m->cpu_system_ns;
	out->memory_usage = m->memory_usage_bytes;
	out->memory_limit = m->memory_limit_bytes;
	out->pids_current = m->pids_current;
	out->pids_limit = m->pids_limit;
	snprintf(out->freezer_state, sizeof(out->freezer_state), "%s", m->freezer_state ? m->freezer_state : "");
	snprintf(out->cgroup, sizeof(out->cgroup), "%s", m->cgroup ? m->cgroup : "");
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return 0;
}

int berth_task_wait(berth_client *c, const char *ns, const char *id, const char *exec_id, uint32_t *exit_status,
		    int64_t *exited_at, berth_error *err)
{
	Berth__Tasks__V1__WaitRequest req = BERTH__TASKS__V1__WAIT_REQUEST__INIT;
	Berth__Tasks__V1__WaitResponse *r = NULL;
	req.container_id = s_or_empty(id);
	req.exec_id = s_or_empty(exec_id);
	if (task_call(c, ns, "Wait", -1, &req.base, &berth__tasks__v1__wait_response__descriptor, (void **)&r, err) < 0)
		return -1;
	if (exit_status)
		*exit_status = r->exit_status;
	if (exited_at)
		*exited_at = r->exited_at;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return 0;
}
