/*
 * shim_rpc — berth-shim's methods: one table {name, request type,
 * handler}; each handler checks its input and either replies at once or
 * starts a runtime job whose completion (shim_rpc_job_done) replies.
 * Replies to Wait and to a Delete of a process still exiting come from
 * shim_proc's exit announcement.
 */
#define _GNU_SOURCE
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bt_ident.h"
#include "bt_seqrpc.h"
#include "bt_shimstate.h"
#include "bt_util.h"

typedef int (*shim_handler)(shim *s, uint64_t conn, uint64_t rid, const ProtobufCMessage *req, bt_err *e);

#define REPLY(s, conn, rid, msg) shim_reply((s), (conn), (rid), NULL, &(msg).base)

static const char *proc_name(const shim_proc *p)
{
	return p->exec_id ? p->exec_id : "init";
}

/* The process a request names, or NOT_FOUND. */
static shim_proc *need_proc(shim *s, const char *exec_id, bt_err *e)
{
	shim_proc *p = shim_proc_find(s, exec_id);
	if (p == NULL) {
		if (exec_id && *exec_id)
			bt_err_set(e, BT_NOT_FOUND, "exec %s: not found", exec_id);
		else
			bt_err_set(e, BT_NOT_FOUND, "task %s: not created", s->id);
	}
	return p;
}

static int busy(const shim_proc *p, bt_err *e)
{
	return bt_err_set(e, BT_FAILED_PRECONDITION, "%s: another runtime operation on it is in progress", proc_name(p));
}

static int start_job(shim *s, int kind, shim_proc *p, uint64_t conn, uint64_t rid, const char *const *args,
		     const int *stdio, int extra, bt_err *e)
{
	shim_job *j = shim_rt_start(s, kind, p, args, stdio, extra, e);
	if (j == NULL)
		return -1;
	j->conn_id = conn;
	j->request_id = rid;
	if (p && kind != JOB_KILL)
		p->busy = true;
	return 0;
}

/* The job's failure as an error: the runtime's own message first. */
static void job_error(shim *s, shim_job *j, const char *cmd, int wstatus, bt_err *e)
{
	_cleanup_free_ char *msg = shim_rt_error(j);
	_cleanup_free_ char *rt = bt_xstrdup(s->runtime);
	if (msg && *msg)
		bt_err_set(e, BT_UNKNOWN, "%s %s: %s", basename(rt), cmd, msg);
	else
		bt_err_set(e, BT_UNKNOWN, "%s %s: exit status %d", basename(rt), cmd, shim_status_code(wstatus));
}

static void fill_delete(const shim_proc *p, Berth__Shim__V1__DeleteResponse *r)
{
	r->pid = (uint32_t)p->pid;
	r->exit_status = (uint32_t)p->exit_status;
	r->exited_at_ns = p->exited_at_ns;
}

/* Forgets an exec: its files and its record. */
static void exec_remove(shim *s, shim_proc *p)
{
	static const char *const suffixes[] = { "json", "pid", "exit" };
	for (size_t i = 0; i < BT_ARRAY_LEN(suffixes); i++) {
		_cleanup_free_ char *f = shim_proc_file(s, p, suffixes[i]);
		unlink(f);
	}
	shim_proc_free(s, p);
}

/* ---- methods -------------------------------------------------------------------- */

static int h_info(shim *s, uint64_t conn, uint64_t rid, const ProtobufCMessage *req, bt_err *e)
{
	(void)req;
	(void)e;
	Berth__Shim__V1__InfoResponse r = BERTH__SHIM__V1__INFO_RESPONSE__INIT;
	r.shim_pid = (uint32_t)getpid();
	r.namespace_ = s->ns;
	r.id = s->id;
	r.state_dir = s->dir;
	r.runtime = s->runtime;
	r.runtime_root = s->runtime_root ? s->runtime_root : "";
	size_t n = 0;
	for (shim_proc *p = s->procs; p; p = p->next)
		n++;
	Berth__Shim__V1__ProcessState *st = bt_xcalloc(n ? n : 1, sizeof(*st));
	Berth__Shim__V1__ProcessState **v = bt_xcalloc(n ? n : 1, sizeof(*v));
	for (shim_proc *p = s->procs; p; p = p->next) {
		if (p->status == PS_DELETED)
			continue;
		berth__shim__v1__process_state__init(&st[r.n_processes]);
		shim_proc_fill_state(p, &st[r.n_processes]);
		v[r.n_processes] = &st[r.n_processes];
		r.n_processes++;
	}
	r.processes = v;
	REPLY(s, conn, rid, r);
	free(st);
	free(v);
	return 0;
}

static int h_create(shim *s, uint64_t conn, uint64_t rid, const ProtobufCMessage *req, bt_err *e)
{
	const Berth__Shim__V1__CreateRequest *q = (const void *)req;
	/* declared before the first goto: fail: must never see them uninitialised */
	_cleanup_free_ char *pidfile = NULL, *exitfile = NULL, *console = NULL;
	if (shim_proc_find(s, NULL) || s->init_deleted)
		return bt_err_set(e, BT_ALREADY_EXISTS, "task %s: already created", s->id);
	_cleanup_free_ char *config = bt_xasprintf("%s/config.json", s->dir);
	if (access(config, R_OK) < 0)
		return bt_err_errno(e, errno, "bundle %s: config.json", s->dir);
	shim_proc *p = shim_proc_new(s, NULL);
	if (shim_proc_stdio(p, q->stdio, e) < 0)
		goto fail;
	pidfile = shim_proc_file(s, p, "pid");
	exitfile = shim_proc_file(s, p, "exit");
	unlink(pidfile);
	unlink(exitfile);
	int lfd = -1;
	if (p->terminal && (lfd = shim_console_listen(s, &console, e)) < 0)
		goto fail;
	const char *args[] = { "create", "--bundle", s->dir, "--pid-file", pidfile, s->id, NULL, NULL, NULL };
	if (console) {
		args[5] = "--console-socket";
		args[6] = console;
		args[7] = s->id;
	}
	if (start_job(s, JOB_CREATE, p, conn, rid, args, p->child_fd, -1, e) < 0) {
		if (lfd >= 0) {
			close(lfd);
			unlink(console);
		}
		goto fail;
	}
	s->jobs->console = lfd;
	s->jobs->console_path = BT_STEAL(console);
	shim_proc_close_child_fds(p);
	p->status = PS_CREATING;
	return 0;
fail:
	shim_proc_free(s, p);
	return bt_err_wrap(e, "create");
}

static int h_start(shim *s, uint64_t conn, uint64_t rid, const ProtobufCMessage *req, bt_err *e)
{
	const Berth__Shim__V1__StartRequest *q = (const void *)req;
	shim_proc *p = need_proc(s, q->exec_id, e);
	if (p == NULL)
		return -1;
	if (p->busy)
		return busy(p, e);
	if (p->status != PS_CREATED && p->status != PS_NEW)
		return bt_err_set(e, BT_FAILED_PRECONDITION, "%s: already started", proc_name(p));
	if (p->exec_id == NULL) {
		const char *args[] = { "start", s->id, NULL };
		return start_job(s, JOB_START, p, conn, rid, args, NULL, -1, e);
	}
	shim_proc *init = shim_proc_find(s, NULL);
	if (init == NULL || (init->status != PS_RUNNING && init->status != PS_PAUSED))
		return bt_err_set(e, BT_FAILED_PRECONDITION, "exec %s: task %s is not running", p->exec_id, s->id);
	_cleanup_free_ char *pidfile = shim_proc_file(s, p, "pid");
	_cleanup_free_ char *spec = shim_proc_file(s, p, "json");
	_cleanup_free_ char *console = NULL;
	int lfd = -1;
	if (p->terminal && (lfd = shim_console_listen(s, &console, e)) < 0)
		return -1;
	const char *args[] = { "exec", "--detach", "--pid-file", pidfile, "--process", spec, s->id, NULL, NULL, NULL };
	if (console) {
		args[6] = "--console-socket";
		args[7] = console;
		args[8] = s->id;
	}
	if (start_job(s, JOB_EXEC, p, conn, rid, args, p->child_fd, -1, e) < 0) {
		if (lfd >= 0) {
			close(lfd);
			unlink(console);
		}
		return -1;
	}
	s->jobs->console = lfd;
	s->jobs->console_path = BT_STEAL(console);
	shim_proc_close_child_fds(p);
	p->status = PS_CREATING;
	return 0;
}

static int h_state(shim *s, uint64_t conn, uint64_t rid, const ProtobufCMessage *req, bt_err *e)
{
	const Berth__Shim__V1__StateRequest *q = (const void *)req;
	shim_proc *p = need_proc(s, q->exec_id, e);
	if (p == NULL)
		return -1;
	Berth__Shim__V1__ProcessState st = BERTH__SHIM__V1__PROCESS_STATE__INIT;
	shim_proc_fill_state(p, &st);
	Berth__Shim__V1__StateResponse r = BERTH__SHIM__V1__STATE_RESPONSE__INIT;
	r.process = &st;
	REPLY(s, conn, rid, r);
	return 0;
}

static int h_wait(shim *s, uint64_t conn, uint64_t rid, const ProtobufCMessage *req, bt_err *e)
{
	const Berth__Shim__V1__WaitRequest *q = (const void *)req;
	shim_proc *p = need_proc(s, q->exec_id, e);
	if (p == NULL)
		return -1;
	if (p->announced) {
		Berth__Shim__V1__WaitResponse r = BERTH__SHIM__V1__WAIT_RESPONSE__INIT;
		r.exit_status = (uint32_t)p->exit_status;
		r.exited_at_ns = p->exited_at_ns;
		REPLY(s, conn, rid, r);
		return 0;
	}
	shim_waiter *w = bt_xzalloc(sizeof(*w));
	w->conn_id = conn;
	w->request_id = rid;
	w->next = p->waiters;
	p->waiters = w;
	return 0;
}

static int h_kill(shim *s, uint64_t conn, uint64_t rid, const ProtobufCMessage *req, bt_err *e)
{
	const Berth__Shim__V1__KillRequest *q = (const void *)req;
	shim_proc *p = need_proc(s, q->exec_id, e);
	if (p == NULL)
		return -1;
	int sig = q->signal ? (int)q->signal : SIGTERM;
	if (sig >= NSIG)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "signal %d: out of range", sig);
	if (p->exited)
		return bt_err_set(e, BT_FAILED_PRECONDITION, "%s: process already exited (status %d)", proc_name(p),
				  p->exit_status);
	if (p->pid <= 0)
		return bt_err_set(e, BT_FAILED_PRECONDITION, "%s: not started", proc_name(p));
	if (p->exec_id) {
		if (kill(p->pid, sig) < 0)
			return bt_err_errno(e, errno, "kill exec %s (pid %d)", p->exec_id, (int)p->pid);
		Berth__Shim__V1__KillResponse r = BERTH__SHIM__V1__KILL_RESPONSE__INIT;
		REPLY(s, conn, rid, r);
		return 0;
	}
	char num[16];
	snprintf(num, sizeof(num), "%d", sig);
	const char *args_all[] = { "kill", "--all", s->id, num, NULL };
	const char *args_one[] = { "kill", s->id, num, NULL };
	return start_job(s, JOB_KILL, p, conn, rid, q->all ? args_all : args_one, NULL, -1, e);
}

static int h_exec(shim *s, uint64_t conn, uint64_t rid, const ProtobufCMessage *req, bt_err *e)
{
	const Berth__Shim__V1__ExecRequest *q = (const void *)req;
	if (bt_ident_validate("exec id", q->exec_id, e) < 0)
		return -1;
	if (shim_proc_find(s, q->exec_id))
		return bt_err_set(e, BT_ALREADY_EXISTS, "exec %s: already exists", q->exec_id);
	shim_proc *init = shim_proc_find(s, NULL);
	if (init == NULL || (init->status != PS_RUNNING && init->status != PS_PAUSED))
		return bt_err_set(e, BT_FAILED_PRECONDITION, "exec %s: task %s is not running", q->exec_id, s->id);
	if (shim_json_check_object((const char *)q->spec.data, q->spec.len, "exec process spec", e) < 0)
		return -1;
	shim_proc *p = shim_proc_new(s, q->exec_id);
	p->status = PS_NEW;
	_cleanup_free_ char *spec = shim_proc_file(s, p, "json");
	if (shim_proc_stdio(p, q->stdio, e) < 0 ||
	    bt_write_file_atomic(spec, q->spec.data, q->spec.len, 0600, e) < 0) {
		exec_remove(s, p);
		return bt_err_wrap(e, "exec %s", q->exec_id);
	}
	Berth__Shim__V1__ExecResponse r = BERTH__SHIM__V1__EXEC_RESPONSE__INIT;
	REPLY(s, conn, rid, r);
	return 0;
}

static int h_resize(shim *s, uint64_t conn, uint64_t rid, const ProtobufCMessage *req, bt_err *e)
{
	const Berth__Shim__V1__ResizePtyRequest *q = (const void *)req;
	shim_proc *p = need_proc(s, q->exec_id, e);
	if (p == NULL)
		return -1;
	if (p->master < 0)
		return bt_err_set(e, BT_FAILED_PRECONDITION, "%s: has no terminal", proc_name(p));
	if (q->width > 65535 || q->height > 65535)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "terminal size %ux%u: out of range", q->width, q->height);
	struct winsize ws = { .ws_col = (unsigned short)q->width, .ws_row = (unsigned short)q->height };
	if (ioctl(p->master, TIOCSWINSZ, &ws) < 0)
		return bt_err_errno(e, errno, "%s: resize terminal", proc_name(p));
	Berth__Shim__V1__ResizePtyResponse r = BERTH__SHIM__V1__RESIZE_PTY_RESPONSE__INIT;
	REPLY(s, conn, rid, r);
	return 0;
}

static int h_closeio(shim *s, uint64_t conn, uint64_t rid, const ProtobufCMessage *req, bt_err *e)
{
	const Berth__Shim__V1__CloseIORequest *q = (const void *)req;
	shim_proc *p = need_proc(s, q->exec_id, e);
	if (p == NULL)
		return -1;
	if (q->stdin) {
		p->in.closing = true;
		if (p->in.src >= 0 && p->in.dst >= 0)
			shim_pump_run(&p->in, false);
		else if (p->in.dst >= 0 || !p->terminal)
			shim_pump_close(&p->in);
	}
	Berth__Shim__V1__CloseIOResponse r = BERTH__SHIM__V1__CLOSE_IORESPONSE__INIT;
	REPLY(s, conn, rid, r);
	return 0;
}

static int pause_resume(shim *s, uint64_t conn, uint64_t rid, bool pause, bt_err *e)
{
	shim_proc *p = need_proc(s, NULL, e);
	if (p == NULL)
		return -1;
	if (p->busy)
		return busy(p, e);
	if (pause && p->status != PS_RUNNING)
		return bt_err_set(e, BT_FAILED_PRECONDITION, "task %s: not running", s->id);
	if (!pause && p->status != PS_PAUSED)
		return bt_err_set(e, BT_FAILED_PRECONDITION, "task %s: not paused", s->id);
	const char *args[] = { pause ? "pause" : "resume", s->id, NULL };
	return start_job(s, pause ? JOB_PAUSE : JOB_RESUME, p, conn, rid, args, NULL, -1, e);
}

static int h_pause(shim *s, uint64_t conn, uint64_t rid, const ProtobufCMessage *req, bt_err *e)
{
	(void)req;
	return pause_resume(s, conn, rid, true, e);
}

static int h_resume(shim *s, uint64_t conn, uint64_t rid, const ProtobufCMessage *req, bt_err *e)
{
	(void)req;
	return pause_resume(s, conn, rid, false, e);
}

static int h_pids(shim *s, uint64_t conn, uint64_t rid, const ProtobufCMessage *req, bt_err *e)
{
	(void)req;
	shim_proc *p = need_proc(s, NULL, e);
	if (p == NULL)
		return -1;
	if (p->exited || p->status == PS_CREATING)
		return bt_err_set(e, BT_FAILED_PRECONDITION, "task %s: not running", s->id);
	const char *args[] = { "ps", "--format", "json", s->id, NULL };
	return start_job(s, JOB_PS, NULL, conn, rid, args, NULL, -1, e);
}

static int h_update(shim *s, uint64_t conn, uint64_t rid, const ProtobufCMessage *req, bt_err *e)
{
	const Berth__Shim__V1__UpdateRequest *q = (const void *)req;
	shim_proc *p = need_proc(s, NULL, e);
	if (p == NULL)
		return -1;
	if (p->exited || p->status == PS_CREATING)
		return bt_err_set(e, BT_FAILED_PRECONDITION, "task %s: not running", s->id);
	if (shim_json_check_object((const char *)q->resources.data, q->resources.len, "resources", e) < 0)
		return -1;
	_cleanup_close_ int fd = memfd_create("resources", MFD_CLOEXEC);
	if (fd < 0)
		return bt_err_errno(e, errno, "memfd_create");
	if (bt_write_all(fd, q->resources.data, q->resources.len) < 0)
		return bt_err_errno(e, errno, "write resources");
	const char *args[] = { "update", "--resources", "/proc/self/fd/4", s->id, NULL };
	return start_job(s, JOB_UPDATE, NULL, conn, rid, args, NULL, fd, e);
}

static int h_delete(shim *s, uint64_t conn, uint64_t rid, const ProtobufCMessage *req, bt_err *e)
{
	const Berth__Shim__V1__DeleteRequest *q = (const void *)req;
	shim_proc *p = need_proc(s, q->exec_id, e);
	if (p == NULL)
		return -1;
	if (p->busy || p->delete_pending)
		return busy(p, e);
	if (p->status == PS_RUNNING || p->status == PS_PAUSED || p->status == PS_CREATING)
		return bt_err_set(e, BT_FAILED_PRECONDITION, "%s: process is running; kill it first", proc_name(p));
	if (p->exec_id) {
		if (!p->announced && p->exited) {
			p->delete_pending = true;
			p->del_conn = conn;
			p->del_req = rid;
			return 0;
		}
		Berth__Shim__V1__DeleteResponse r = BERTH__SHIM__V1__DELETE_RESPONSE__INIT;
		fill_delete(p, &r);
		exec_remove(s, p);
		REPLY(s, conn, rid, r);
		return 0;
	}
	const char *args[] = { "delete", "--force", s->id, NULL };
	return start_job(s, JOB_DELETE, p, conn, rid, args, NULL, -1, e);
}

static int h_shutdown(shim *s, uint64_t conn, uint64_t rid, const ProtobufCMessage *req, bt_err *e)
{
	(void)req;
	if (!shim_can_exit(s))
		return bt_err_set(e, BT_FAILED_PRECONDITION, "task %s: not deleted; Delete it before Shutdown", s->id);
	Berth__Shim__V1__ShutdownResponse r = BERTH__SHIM__V1__SHUTDOWN_RESPONSE__INIT;
	REPLY(s, conn, rid, r);
	s->shutting_down = true;
	return 0;
}

static const struct {
	const char *name;
	const ProtobufCMessageDescriptor *desc;
	shim_handler fn;
} methods[] = {
	{ "Info", &berth__shim__v1__info_request__descriptor, h_info },
	{ "Create", &berth__shim__v1__create_request__descriptor, h_create },
	{ "Start", &berth__shim__v1__start_request__descriptor, h_start },
	{ "State", &berth__shim__v1__state_request__descriptor, h_state },
	{ "Wait", &berth__shim__v1__wait_request__descriptor, h_wait },
	{ "Kill", &berth__shim__v1__kill_request__descriptor, h_kill },
	{ "Exec", &berth__shim__v1__exec_request__descriptor, h_exec },
	{ "ResizePty", &berth__shim__v1__resize_pty_request__descriptor, h_resize },
	{ "CloseIO", &berth__shim__v1__close_iorequest__descriptor, h_closeio },
	{ "Pause", &berth__shim__v1__pause_request__descriptor, h_pause },
	{ "Resume", &berth__shim__v1__resume_request__descriptor, h_resume },
	{ "Pids", &berth__shim__v1__pids_request__descriptor, h_pids },
	{ "Update", &berth__shim__v1__update_request__descriptor, h_update },
	{ "Delete", &berth__shim__v1__delete_request__descriptor, h_delete },
	{ "Shutdown", &berth__shim__v1__shutdown_request__descriptor, h_shutdown },
};

bool shim_can_exit(const shim *s)
{
	if (s->jobs)
		return false;
	for (const shim_proc *p = s->procs; p; p = p->next)
		if (p->exec_id == NULL && p->status != PS_DELETED)
			return false;
	return true;
}

void shim_rpc_dispatch(shim *s, shim_conn *c, const uint8_t *buf, size_t len)
{
	bt_err e = { 0 };
	const uint8_t *hb, *bb;
	size_t hl, bl;
	if (bt_seqrpc_split(buf, len, &hb, &hl, &bb, &bl, &e) < 0) {
		shim_reply(s, c->id, 0, &e, NULL);
		return;
	}
	Berth__Rpc__V1__RequestHeader *h = berth__rpc__v1__request_header__unpack(NULL, hl, hb);
	if (h == NULL) {
		bt_err_set(&e, BT_INVALID_ARGUMENT, "malformed request header");
		shim_reply(s, c->id, 0, &e, NULL);
		return;
	}
	uint64_t rid = h->request_id;
	ProtobufCMessage *req = NULL;
	size_t i;
	for (i = 0; i < BT_ARRAY_LEN(methods); i++)
		if (strcmp(methods[i].name, h->method) == 0)
			break;
	if (h->version != BERTH__RPC__V1__VERSION__PROTOCOL_VERSION)
		bt_err_set(&e, BT_FAILED_PRECONDITION, "protocol version %u: this shim speaks %d", h->version,
			   BERTH__RPC__V1__VERSION__PROTOCOL_VERSION);
	else if (strcmp(h->service, "shim") != 0)
		bt_err_set(&e, BT_UNIMPLEMENTED, "service \"%s\": this is a shim", h->service);
	else if (*h->namespace_ && strcmp(h->namespace_, s->ns) != 0)
		bt_err_set(&e, BT_FAILED_PRECONDITION, "namespace %s: this shim serves %s", h->namespace_, s->ns);
	else if (i == BT_ARRAY_LEN(methods))
		bt_err_set(&e, BT_UNIMPLEMENTED, "shim method \"%s\": unknown", h->method);
	else if ((req = protobuf_c_message_unpack(methods[i].desc, NULL, bl, bb)) == NULL)
		bt_err_set(&e, BT_INVALID_ARGUMENT, "%s: malformed request body", h->method);
	else if (methods[i].fn(s, c->id, rid, req, &e) < 0 && e.code == BT_OK)
		bt_err_set(&e, BT_INTERNAL, "%s failed", h->method);
	if (e.code != BT_OK)
		shim_reply(s, c->id, rid, &e, NULL);
	if (req)
		protobuf_c_message_free_unpacked(req, NULL);
	berth__rpc__v1__request_header__free_unpacked(h, NULL);
}

/* ---- job completions ----------------------------------------------------------------- */

/* After create or exec: the pid, the terminal, and an exit already reaped. */
static int job_started(shim *s, shim_job *j, bt_err *e)
{
	shim_proc *p = j->proc;
	_cleanup_free_ char *pidfile = shim_proc_file(s, p, "pid");
	if (bt_shim_pid_read(pidfile, &p->pid, e) < 0)
		return -1;
	if (j->console >= 0) {
		int m = shim_console_recv(j->console, e);
		if (m < 0)
			return -1;
		shim_proc_set_master(p, m);
	}
	return 0;
}

static void orphan_check(shim *s, shim_proc *p)
{
	int ws;
	int64_t at;
	if (p->pid > 0 && shim_rt_orphan_take(s, p->pid, &ws, &at) == 0)
		shim_proc_exited(s, p, ws, at);
}

void shim_rpc_finish_delete(shim *s, shim_proc *p)
{
	Berth__Shim__V1__DeleteResponse r = BERTH__SHIM__V1__DELETE_RESPONSE__INIT;
	fill_delete(p, &r);
	p->delete_pending = false;
	uint64_t conn = p->del_conn, rid = p->del_req;
	if (p->exec_id) {
		exec_remove(s, p);
	} else {
		p->status = PS_DELETED;
		s->init_deleted = true;
		_cleanup_free_ char *pidfile = shim_proc_file(s, p, "pid");
		unlink(pidfile);
	}
	shim_reply(s, conn, rid, NULL, &r.base);
}

void shim_rpc_job_done(shim *s, shim_job *j, int wstatus)
{
	static const char *const cmds[] = { [JOB_CREATE] = "create", [JOB_START] = "start", [JOB_EXEC] = "exec",
					    [JOB_KILL] = "kill",     [JOB_PAUSE] = "pause", [JOB_RESUME] = "resume",
					    [JOB_PS] = "ps",         [JOB_UPDATE] = "update", [JOB_DELETE] = "delete",
					    [JOB_CLEANUP] = "delete" };
	bt_err e = { 0 };
	shim_proc *p = j->proc;
	bool ok = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
	if (p && j->kind != JOB_KILL)
		p->busy = false;
	if (!ok && j->kind != JOB_CLEANUP)
		job_error(s, j, cmds[j->kind], wstatus, &e);

	switch (j->kind) {
	case JOB_CREATE:
	case JOB_EXEC:
		if (ok && job_started(s, j, &e) == 0) {
			if (!p->exited)
				p->status = j->kind == JOB_CREATE ? PS_CREATED : PS_RUNNING;
			/* the reply first: an exit already reaped is announced after it */
			if (j->kind == JOB_CREATE) {
				Berth__Shim__V1__CreateResponse r = BERTH__SHIM__V1__CREATE_RESPONSE__INIT;
				r.pid = (uint32_t)p->pid;
				REPLY(s, j->conn_id, j->request_id, r);
			} else {
				Berth__Shim__V1__StartResponse r = BERTH__SHIM__V1__START_RESPONSE__INIT;
				r.pid = (uint32_t)p->pid;
				REPLY(s, j->conn_id, j->request_id, r);
			}
			orphan_check(s, p);
			return;
		}
		shim_reply(s, j->conn_id, j->request_id, &e, NULL);
		if (j->kind == JOB_CREATE) {
			/* leave nothing behind: the runtime's record too */
			_cleanup_free_ char *pidfile = shim_proc_file(s, p, "pid");
			unlink(pidfile);
			shim_proc_free(s, p);
			const char *args[] = { "delete", "--force", s->id, NULL };
			bt_err e2 = { 0 };
			shim_rt_start(s, JOB_CLEANUP, NULL, args, NULL, -1, &e2);
		} else {
			exec_remove(s, p);
		}
		return;
	case JOB_START:
		if (ok) {
			if (!p->exited)
				p->status = PS_RUNNING;
			Berth__Shim__V1__StartResponse r = BERTH__SHIM__V1__START_RESPONSE__INIT;
			r.pid = (uint32_t)p->pid;
			REPLY(s, j->conn_id, j->request_id, r);
			return;
		}
		break;
	case JOB_KILL:
		if (ok || p->exited) {
			Berth__Shim__V1__KillResponse r = BERTH__SHIM__V1__KILL_RESPONSE__INIT;
			REPLY(s, j->conn_id, j->request_id, r);
			return;
		}
		break;
	case JOB_PAUSE:
	case JOB_RESUME:
		if (ok) {
			if (!p->exited)
				p->status = j->kind == JOB_PAUSE ? PS_PAUSED : PS_RUNNING;
			Berth__Shim__V1__PauseResponse r = BERTH__SHIM__V1__PAUSE_RESPONSE__INIT;
			REPLY(s, j->conn_id, j->request_id, r);
			return;
		}
		break;
	case JOB_UPDATE:
		if (ok) {
			Berth__Shim__V1__UpdateResponse r = BERTH__SHIM__V1__UPDATE_RESPONSE__INIT;
			REPLY(s, j->conn_id, j->request_id, r);
			return;
		}
		break;
	case JOB_PS:
		if (ok) {
			_cleanup_free_ char *out = NULL;
			struct stat st;
			if (fstat(j->outfd, &st) == 0 && st.st_size < (1 << 20)) {
				out = bt_xmalloc((size_t)st.st_size + 1);
				ssize_t n = bt_pread_all(j->outfd, out, (size_t)st.st_size, 0);
				out[n < 0 ? 0 : n] = '\0';
			}
			_cleanup_free_ int *pids = NULL;
			int n = out ? shim_json_pids(out, &pids) : -1;
			if (n < 0) {
				bt_err_set(&e, BT_INTERNAL, "ps: unreadable output from the runtime");
				break;
			}
			Berth__Shim__V1__ProcessInfo *pi = bt_xcalloc((size_t)n + 1, sizeof(*pi));
			Berth__Shim__V1__ProcessInfo **pv = bt_xcalloc((size_t)n + 1, sizeof(*pv));
			for (int i = 0; i < n; i++) {
				berth__shim__v1__process_info__init(&pi[i]);
				pi[i].pid = (uint32_t)pids[i];
				pi[i].exec_id = "";
				for (shim_proc *q = s->procs; q; q = q->next)
					if (q->exec_id && q->pid == pids[i] && !q->exited)
						pi[i].exec_id = q->exec_id;
				pv[i] = &pi[i];
			}
			Berth__Shim__V1__PidsResponse r = BERTH__SHIM__V1__PIDS_RESPONSE__INIT;
			r.n_processes = (size_t)n;
			r.processes = pv;
			REPLY(s, j->conn_id, j->request_id, r);
			free(pi);
			free(pv);
			return;
		}
		break;
	case JOB_DELETE:
		if (ok) {
			p->del_conn = j->conn_id;
			p->del_req = j->request_id;
			p->delete_pending = true;
			if (p->announced)
				shim_rpc_finish_delete(s, p);
			/* else a created process was killed: finish when its exit is announced */
			return;
		}
		break;
	case JOB_CLEANUP:
		return;
	}
	shim_reply(s, j->conn_id, j->request_id, &e, NULL);
}
