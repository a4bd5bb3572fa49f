/*
 * task_run — the table of tasks, their creation and deletion, calls to
 * their shims, the monitor thread, and rebuilding at start.
 *
 * Locking: env->mu guards the table and every task's mutable fields; no
 * shim is ever called with it held.  A task is reference counted: the
 * table holds one reference, each caller of task_get one more, the monitor
 * one per task it polls.  Only the monitor thread touches a task's monitor
 * connection (mon_fd).
 */
#define _GNU_SOURCE
#include "task_run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "berth/berth.h"
#include "berth/shim/v1/shim.pb-c.h"
#include "berth/tasks/v1/tasks.pb-c.h"
#include "bt_events.h"
#include "bt_ident.h"
#include "bt_log.h"
#include "bt_mount.h"
#include "bt_seqrpc.h"
#include "bt_shimstate.h"
#include "bt_util.h"
#include "task_metrics.h"

extern char **environ;

#define TASK_META "task.json"
#define SHIM_QUICK_MS 5000    /* calls that do not run the runtime */
#define SHIM_RUNTIME_MS 30000 /* calls that do, when the client set no deadline */
#define MON_WAIT_ID 1
#define MON_INFO_ID 2

enum { ST_UNKNOWN = 0, ST_CREATED = 1, ST_RUNNING = 2, ST_PAUSED = 3, ST_STOPPED = 4 };

struct task {
	task *next;
	int refs;
	char *ns, *id, *dir, *rootfs, *sock;
	char *runtime, *runtime_root; /* binary (name or path) and --root */
	pid_t shim_pid;
	int status;
	uint32_t pid;
	bool exited;
	uint32_t exit_status;
	int64_t exited_at;
	char *reason;
	bool terminal;
	char *in, *out, *err;
	bool lost;     /* the shim is gone; resources cleaned (or being) */
	bool deleting; /* a Delete runs */
	bool removed;  /* out of the table */
	/* monitor */
	bool mon_want; /* watch this shim */
	bool mon_info; /* ask Info too (the shim did not answer at start) */
	int mon_fd;
	/* the monitor thread's: where the container's OOM kills are counted, and how many were seen */
	char *oom_file;
	uint64_t ooms;
};

struct task_env {
	bt_config *cfg;
	task_store *store;
	char *tasks_dir;
	char *shim_bin;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	task *tasks;
	task *graveyard; /* removed tasks whose monitor connection the monitor must close */
	pthread_t mon;
	bool mon_running;
	bool stopping;
	int wake[2];
};

void task_view_clear(task_view *v)
{
	free(v->id);
	free(v->in);
	free(v->out);
	free(v->err);
	free(v->reason);
	memset(v, 0, sizeof(*v));
}

const char *task_id(const task *t)
{
	return t->id;
}

static void task_free(task *t)
{
	if (t->mon_fd >= 0)
		close(t->mon_fd);
	free(t->ns);
	free(t->id);
	free(t->dir);
	free(t->rootfs);
	free(t->sock);
	free(t->runtime);
	free(t->runtime_root);
	free(t->reason);
	free(t->oom_file);
	free(t->in);
	free(t->out);
	free(t->err);
	free(t);
}

static task *task_new(task_env *env, const char *ns, const char *id)
{
	task *t = bt_xzalloc(sizeof(*t));
	t->refs = 1;
	t->ns = bt_xstrdup(ns);
	t->id = bt_xstrdup(id);
	t->dir = bt_xasprintf("%s/%s/%s", env->tasks_dir, ns, id);
	t->rootfs = bt_xasprintf("%s/rootfs", t->dir);
	t->sock = bt_xasprintf("%s/" BT_SHIM_SOCKET, t->dir);
	t->mon_fd = -1;
	t->in = bt_xstrdup("");
	t->out = bt_xstrdup("");
	t->err = bt_xstrdup("");
	return t;
}

static void wake_monitor(task_env *env)
{
	char c = 1;
	if (write(env->wake[1], &c, 1) < 0 && errno != EAGAIN)
		bt_log_warn("wake monitor: %s", strerror(errno));
}

/* Caller holds mu. */
static task *find_locked(task_env *env, const char *ns, const char *id)
{
	for (task *t = env->tasks; t; t = t->next)
		if (strcmp(t->ns, ns) == 0 && strcmp(t->id, id) == 0)
			return t;
	return NULL;
}

/* Caller holds mu: takes t out of the table (its reference goes with the
 * graveyard when the monitor has a connection to close). */
static void remove_locked(task_env *env, task *t)
{
	for (task **p = &env->tasks; *p; p = &(*p)->next) {
		if (*p == t) {
			*p = t->next;
			break;
		}
	}
	t->removed = true;
	t->next = env->graveyard;
	env->graveyard = t;
	pthread_cond_broadcast(&env->cond);
	wake_monitor(env);
}

bool task_exists(task_env *env, const char *ns, const char *id)
{
	pthread_mutex_lock(&env->mu);
	bool r = find_locked(env, ns, id) != NULL;
	pthread_mutex_unlock(&env->mu);
	return r;
}

task *task_get(task_env *env, const char *ns, const char *id, bt_err *e)
{
	if (bt_ident_validate("container id", id ? id : "", e) < 0)
		return NULL;
	pthread_mutex_lock(&env->mu);
	task *t = find_locked(env, ns, id);
	if (t)
		t->refs++;
	pthread_mutex_unlock(&env->mu);
	if (!t)
		bt_err_set(e, BT_NOT_FOUND, "task \"%s\": not found (no task was created for that container)", id);
	return t;
}

void task_put(task_env *env, task **tp)
{
	task *t = *tp;
	if (!t)
		return;
	*tp = NULL;
	pthread_mutex_lock(&env->mu);
	bool last = --t->refs == 0;
	pthread_mutex_unlock(&env->mu);
	if (last)
		task_free(t);
}

static void view_locked(const task *t, task_view *v)
{
	memset(v, 0, sizeof(*v));
	v->id = bt_xstrdup(t->id);
	v->status = t->status;
	v->pid = t->pid;
	v->exit_status = t->exit_status;
	v->exited_at = t->exited_at;
	v->terminal = t->terminal;
	v->in = bt_xstrdup(t->in);
	v->out = bt_xstrdup(t->out);
	v->err = bt_xstrdup(t->err);
	v->reason = bt_xstrdup(t->reason ? t->reason : "");
}

void task_view_of(task_env *env, task *t, task_view *v)
{
	pthread_mutex_lock(&env->mu);
	view_locked(t, v);
	pthread_mutex_unlock(&env->mu);
}

int task_list(task_env *env, const char *ns, task_view **out, size_t *n)
{
	pthread_mutex_lock(&env->mu);
	size_t k = 0;
	for (task *t = env->tasks; t; t = t->next)
		k += strcmp(t->ns, ns) == 0;
	task_view *v = bt_xcalloc(k + 1, sizeof(*v));
	k = 0;
	for (task *t = env->tasks; t; t = t->next)
		if (strcmp(t->ns, ns) == 0)
			view_locked(t, &v[k++]);
	pthread_mutex_unlock(&env->mu);
	*out = v;
	*n = k;
	return 0;
}

void task_set_status(task_env *env, task *t, int status, uint32_t pid)
{
	pthread_mutex_lock(&env->mu);
	if (!t->exited) {
		t->status = status;
		if (pid)
			t->pid = pid;
	}
	pthread_mutex_unlock(&env->mu);
}

uint32_t task_pid(task_env *env, task *t)
{
	pthread_mutex_lock(&env->mu);
	uint32_t pid = t->exited ? 0 : t->pid;
	pthread_mutex_unlock(&env->mu);
	return pid;
}

int task_check_live(task_env *env, task *t, bt_err *e)
{
	pthread_mutex_lock(&env->mu);
	int rc = 0;
	if (t->lost)
		rc = bt_err_set(e, BT_FAILED_PRECONDITION, "task %s: stopped: %s", t->id,
				t->reason ? t->reason : "its shim is gone");
	else if (t->deleting || t->removed)
		rc = bt_err_set(e, BT_FAILED_PRECONDITION, "task %s: being deleted", t->id);
	pthread_mutex_unlock(&env->mu);
	return rc;
}

/* --- shim calls -------------------------------------------------------------- */

static bool runs_runtime(const char *method)
{
	static const char *const quick[] = { "Info", "State", "Wait", "ResizePty", "CloseIO", "Shutdown" };
	for (size_t i = 0; i < BT_ARRAY_LEN(quick); i++)
		if (strcmp(method, quick[i]) == 0)
			return false;
	return true;
}

static int shim_call_path(const char *sock, const char *ns, const char *id, const char *method,
			  const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms,
			  ProtobufCMessage **resp, bt_err *e)
{
	/* a call that runs the runtime may take as long as its client allows (a
	 * queue of execs on a busy host); one that does not is bounded, so that
	 * a stopped shim is found out soon.  Either way only this task waits. */
	bool slow = runs_runtime(method);
	int64_t dflt = slow ? SHIM_RUNTIME_MS : SHIM_QUICK_MS;
	int64_t ms = timeout_ms <= 0 ? dflt : slow || timeout_ms < dflt ? timeout_ms : dflt;
	ProtobufCMessage *r = NULL;
	bt_seqcli *c = bt_seqcli_open(sock, "shim", ns, e);
	if (!c)
		return bt_err_wrap(e, "task %s: shim", id);
	int rc = bt_seqcli_call(c, method, req, resp_desc, (int)ms, &r, e);
	bt_seqcli_free(&c);
	if (rc < 0) {
		if (e->transport && e->code == BT_DEADLINE_EXCEEDED)
			return bt_err_set(e, BT_DEADLINE_EXCEEDED, "task %s: shim did not answer %s within %lld ms", id,
					  method, (long long)ms);
		return bt_err_wrap(e, "task %s", id);
	}
	if (resp)
		*resp = r;
	else if (r)
		protobuf_c_message_free_unpacked(r, NULL);
	return 0;
}

int task_shim_call(task_env *env, task *t, const char *method, const ProtobufCMessage *req,
		   const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms, ProtobufCMessage **resp,
		   bt_err *e)
{
	if (task_check_live(env, t, e) < 0)
		return -1;
	return shim_call_path(t->sock, t->ns, t->id, method, req, resp_desc, timeout_ms, resp, e);
}

/* --- subprocesses -------------------------------------------------------------- */

/* Runs argv, its stdout and stderr collected into *out (may be NULL);
 * returns its wait status or -1. */
static int run_cmd(char *const *argv, char **out, bt_err *e)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return bt_err_errno(e, errno, "pipe");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (rc != 0) {
		close(p[0]);
		return bt_err_errno(e, rc, "run %s", argv[0]);
	}
	bt_buf b = { 0 };
	char chunk[4096];
	for (;;) {
		ssize_t n = read(p[0], chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (b.len < 65536)
			bt_buf_append(&b, chunk, (size_t)n);
	}
	close(p[0]);
	int ws;
	while (waitpid(pid, &ws, 0) < 0) {
		if (errno != EINTR) {
			bt_buf_free(&b);
			return bt_err_errno(e, errno, "wait for %s", argv[0]);
		}
	}
	bt_buf_append(&b, "", 1);
	if (out)
		*out = bt_buf_steal(&b);
	else
		bt_buf_free(&b);
	return ws;
}

static void chomp(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

/* `runtime --root R delete -f id`: kills and forgets the container (errors
 * ignored: it may be gone already). */
static void runtime_delete(const task *t)
{
	_cleanup_free_ char *bin = NULL;
	if (strchr(t->runtime, '/')) {
		bin = bt_xstrdup(t->runtime);
	} else {
		static const char *const dirs[] = { "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin",
						    "/bin" };
		for (size_t i = 0; i < BT_ARRAY_LEN(dirs) && !bin; i++) {
			char *p = bt_xasprintf("%s/%s", dirs[i], t->runtime);
			if (access(p, X_OK) == 0)
				bin = p;
			else
				free(p);
		}
	}
	if (!bin)
		return;
	char *argv[] = { bin, (char *)"--root", t->runtime_root, (char *)"delete", (char *)"-f", t->id, NULL };
	bt_err e;
	_cleanup_free_ char *out = NULL;
	if (run_cmd(argv, &out, &e) < 0)
		bt_log_warn("task %s/%s: runtime delete: %s", t->ns, t->id, e.msg);
}

/* Unmounts the rootfs and removes the bundle directory. */
static int remove_bundle(const task *t, bt_err *e)
{
	if (bt_unmount_all(t->rootfs, e) < 0 && e->code != BT_NOT_FOUND)
		return bt_err_wrap(e, "task %s: unmount rootfs", t->id);
	if (bt_rm_rf(t->dir, e) < 0)
		return bt_err_wrap(e, "task %s: remove bundle", t->id);
	return 0;
}

/* --- the monitor ------------------------------------------------------------- */

static int mon_send(int fd, const task *t, const char *method, uint64_t id, const ProtobufCMessage *body, bt_err *e)
{
	Berth__Rpc__V1__RequestHeader h = BERTH__RPC__V1__REQUEST_HEADER__INIT;
	h.version = BERTH__RPC__V1__VERSION__PROTOCOL_VERSION;
	h.service = (char *)"shim";
	h.method = (char *)method;
	h.namespace_ = t->ns;
	h.request_id = id;
	return bt_seqrpc_send(fd, &h.base, body, MSG_DONTWAIT, e);
}

/* Connects the monitor to t's shim and asks for the init's exit (and Info). */
static void mon_attach(task_env *env, task *t)
{
	bt_err e;
	int fd = bt_seqrpc_connect(t->sock, &e);
	Berth__Shim__V1__WaitRequest w = BERTH__SHIM__V1__WAIT_REQUEST__INIT;
	Berth__Shim__V1__InfoRequest in = BERTH__SHIM__V1__INFO_REQUEST__INIT;
	pthread_mutex_lock(&env->mu);
	bool info = t->mon_info;
	pthread_mutex_unlock(&env->mu);
	if (fd >= 0 && (mon_send(fd, t, "Wait", MON_WAIT_ID, &w.base, &e) < 0 ||
			(info && mon_send(fd, t, "Info", MON_INFO_ID, &in.base, &e) < 0))) {
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		/* no shim listening: handled as a lost shim by the caller's next turn */
		bt_log_warn("task %s/%s: monitor: %s", t->ns, t->id, e.msg);
		fd = open("/dev/null", O_RDONLY | O_CLOEXEC); /* reads EOF at once */
	}
	t->mon_fd = fd;
}

static void *lost_cleanup(void *arg);

typedef struct lost_arg {
	task_env *env;
	task *t;
} lost_arg;

/* The shim went away without Delete: clean up on a thread of its own. */
static void shim_lost(task_env *env, task *t)
{
	pthread_mutex_lock(&env->mu);
	bool act = !t->deleting && !t->removed && !t->lost && !t->exited;
	bool gone_after_exit = !t->deleting && !t->removed && !t->lost && t->exited;
	if (act || gone_after_exit) {
		t->lost = true;
		t->refs++;
	}
	pthread_mutex_unlock(&env->mu);
	if (!act && !gone_after_exit)
		return;
	lost_arg *a = bt_xzalloc(sizeof(*a));
	a->env = env;
	a->t = t;
	pthread_t th;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, lost_cleanup, a) != 0)
		lost_cleanup(a);
	pthread_attr_destroy(&attr);
}

/* /tasks/exit, once per task, after its exit is known (values copied under env->mu). */
static void exit_event(const char *ns, const char *id, uint32_t pid, uint32_t status, int64_t at)
{
	char p[16], st[16], when[24];
	snprintf(p, sizeof(p), "%u", pid);
	snprintf(st, sizeof(st), "%u", status);
	snprintf(when, sizeof(when), "%lld", (long long)at);
	bt_event(ns, "/tasks/exit", "container_id", id, "id", id, "pid", p, "exit_status", st, "exited_at", when, NULL);
}

/* Settles a task whose shim is gone: its exit from disk (or an unknown
 * one), the container killed and forgotten by the runtime, the rootfs
 * unmounted.  The bundle stays until Delete reports the exit. */
static void settle_lost(task_env *env, task *t)
{
	_cleanup_free_ char *xp = bt_xasprintf("%s/" BT_SHIM_INIT_EXIT, t->dir);
	bt_shim_exit x;
	bt_err e;
	bool have = bt_shim_exit_read(xp, &x, &e) == 0;
	runtime_delete(t);
	if (bt_unmount_all(t->rootfs, &e) < 0 && e.code != BT_NOT_FOUND)
		bt_log_warn("task %s/%s: unmount rootfs: %s", t->ns, t->id, e.msg);
	pthread_mutex_lock(&env->mu);
	bool first = !t->exited;
	if (!t->exited) {
		t->exited = true;
		t->status = ST_STOPPED;
		if (have) {
			t->exit_status = (uint32_t)x.exit_status;
			t->exited_at = x.exited_at_ns;
			free(t->reason);
			t->reason = bt_xstrdup("shim gone after the exit was recorded");
		} else {
			t->exit_status = 255;
			t->exited_at = bt_now_ns();
			free(t->reason);
			t->reason = bt_xasprintf("shim (pid %d) died before the task exited: exit status unknown; "
						 "the container was killed",
						 (int)t->shim_pid);
		}
	}
	t->lost = true;
	uint32_t pid = t->pid, status = t->exit_status;
	int64_t at = t->exited_at;
	pthread_cond_broadcast(&env->cond);
	pthread_mutex_unlock(&env->mu);
	if (first)
		exit_event(t->ns, t->id, pid, status, at);
	bt_log_warn("task %s/%s: %s", t->ns, t->id, t->reason ? t->reason : "shim gone");
}

static void *lost_cleanup(void *arg)
{
	lost_arg *a = arg;
	settle_lost(a->env, a->t);
	task_put(a->env, &a->t);
	free(a);
	return NULL;
}

/* A reply on a monitor connection. Returns -1 when the connection is done. */
static int mon_reply(task_env *env, task *t, const uint8_t *buf, size_t len)
{
	const uint8_t *hb, *bb;
	size_t hl, bl;
	bt_err e;
	if (bt_seqrpc_split(buf, len, &hb, &hl, &bb, &bl, &e) < 0)
		return 0;
	Berth__Rpc__V1__ResponseHeader *rh = berth__rpc__v1__response_header__unpack(NULL, hl, hb);
	if (!rh)
		return 0;
	int ret = 0;
	if (rh->request_id == MON_WAIT_ID && rh->code == BERTH__RPC__V1__CODE__OK) {
		Berth__Shim__V1__WaitResponse *w = berth__shim__v1__wait_response__unpack(NULL, bl, bb);
		if (w) {
			pthread_mutex_lock(&env->mu);
			bool first = !t->exited;
			if (!t->exited) {
				t->exited = true;
				t->status = ST_STOPPED;
				t->exit_status = w->exit_status;
				t->exited_at = w->exited_at_ns;
			}
			uint32_t pid = t->pid;
			pthread_cond_broadcast(&env->cond);
			pthread_mutex_unlock(&env->mu);
			if (first)
				exit_event(t->ns, t->id, pid, w->exit_status, w->exited_at_ns);
			berth__shim__v1__wait_response__free_unpacked(w, NULL);
			ret = -1; /* nothing more to learn from this shim */
		}
	} else if (rh->request_id == MON_INFO_ID && rh->code == BERTH__RPC__V1__CODE__OK) {
		Berth__Shim__V1__InfoResponse *in = berth__shim__v1__info_response__unpack(NULL, bl, bb);
		pthread_mutex_lock(&env->mu);
		t->mon_info = false;
		if (in && in->n_processes > 0 && !t->exited && (!in->processes[0]->exec_id || !*in->processes[0]->exec_id)) {
			t->status = (int)in->processes[0]->status;
			t->pid = in->processes[0]->pid;
			free(t->reason);
			t->reason = NULL;
		}
		pthread_mutex_unlock(&env->mu);
		if (in)
			berth__shim__v1__info_response__free_unpacked(in, NULL);
	} else if (rh->request_id == MON_WAIT_ID) {
		bt_log_warn("task %s/%s: shim Wait: %s", t->ns, t->id, rh->message ? rh->message : "");
		ret = -1;
	}
	berth__rpc__v1__response_header__free_unpacked(rh, NULL);
	return ret;
}

/* Publishes /tasks/oom when the container's memory cgroup counts a new OOM
 * kill (the monitor calls it about once a second per live task, and once
 * more when the task exits, before the runtime's delete removes the cgroup). */
static void watch_oom(task *t)
{
	if (!t->oom_file && t->pid > 0)
		t->oom_file = task_oom_file(NULL, (pid_t)t->pid);
	if (!t->oom_file)
		return;
	uint64_t n = task_oom_count(t->oom_file);
	if (n > t->ooms) {
		char count[24];
		snprintf(count, sizeof(count), "%llu", (unsigned long long)n);
		bt_event(t->ns, "/tasks/oom", "container_id", t->id, "oom_kills", count, NULL);
	}
	if (n > t->ooms)
		t->ooms = n;
}

static void *monitor_main(void *arg)
{
	task_env *env = arg;
	struct pollfd *pfd = NULL;
	task **who = NULL;
	size_t cap = 0;
	int64_t last_oom = 0;

	for (;;) {
		/* the turn's set: attach new tasks, close connections of removed ones */
		pthread_mutex_lock(&env->mu);
		if (env->stopping) {
			pthread_mutex_unlock(&env->mu);
			break;
		}
		task *dead = env->graveyard;
		env->graveyard = NULL;
		size_t n = 1;
		for (task *t = env->tasks; t; t = t->next)
			n++;
		if (n > cap) {
			cap = n * 2;
			pfd = bt_xrealloc(pfd, cap * sizeof(*pfd));
			who = bt_xrealloc(who, cap * sizeof(*who));
		}
		size_t k = 1;
		task *attach = NULL;
		for (task *t = env->tasks; t; t = t->next) {
			if (t->mon_want && t->mon_fd < 0 && !t->lost && !t->deleting && !attach) {
				attach = t;
				t->refs++;
			}
		}
		pthread_mutex_unlock(&env->mu);
		while (dead) {
			task *next = dead->next;
			if (dead->mon_fd >= 0) {
				close(dead->mon_fd);
				dead->mon_fd = -1;
			}
			task_put(env, &dead);
			dead = next;
		}
		if (attach) {
			mon_attach(env, attach);
			task_put(env, &attach);
			continue; /* one connect per turn keeps the set fresh */
		}
		pthread_mutex_lock(&env->mu);
		for (task *t = env->tasks; t; t = t->next) {
			if (t->mon_fd < 0)
				continue;
			pfd[k] = (struct pollfd){ .fd = t->mon_fd, .events = POLLIN };
			who[k++] = t;
			t->refs++;
		}
		pthread_mutex_unlock(&env->mu);
		pfd[0] = (struct pollfd){ .fd = env->wake[0], .events = POLLIN };
		int r = poll(pfd, k, 1000);
		if (r > 0 && (pfd[0].revents & POLLIN)) {
			char drain[64];
			while (read(env->wake[0], drain, sizeof(drain)) > 0)
				;
		}
		bool sweep = bt_mono_ms() - last_oom >= 1000;
		if (sweep)
			last_oom = bt_mono_ms();
		for (size_t i = 1; i < k; i++) {
			task *t = who[i];
			bool done = false, lost = false;
			if (r > 0 && pfd[i].revents) {
				uint8_t *buf = NULL;
				size_t len;
				bt_err e;
				int got = bt_seqrpc_recv(t->mon_fd, MSG_DONTWAIT, &buf, &len, &e);
				if (got > 0)
					done = mon_reply(env, t, buf, len) < 0;
				else if (got == 0 || errno != EAGAIN)
					done = lost = true;
				free(buf);
			}
			if (done) {
				pthread_mutex_lock(&env->mu);
				close(t->mon_fd);
				t->mon_fd = -1;
				t->mon_want = false;
				pthread_mutex_unlock(&env->mu);
			}
			if (sweep || done)
				watch_oom(t);
			if (lost)
				shim_lost(env, t);
			task_put(env, &who[i]);
		}
	}
	free(pfd);
	free(who);
	return NULL;
}

/* --- stdio --------------------------------------------------------------------- */

int task_stdio_check(const task_stdio *io, bt_err *e)
{
	const char *paths[3] = { io->in, io->out, io->err };
	static const char *const what[3] = { "stdin", "stdout", "stderr" };
	for (int i = 0; i < 3; i++) {
		struct stat st;
		if (!paths[i] || !*paths[i])
			continue;
		if (paths[i][0] != '/')
			return bt_err_set(e, BT_INVALID_ARGUMENT, "%s %s: must be an absolute path", what[i], paths[i]);
		if (stat(paths[i], &st) < 0)
			return bt_err_errno(e, errno, "%s %s", what[i], paths[i]);
		if (!S_ISFIFO(st.st_mode) && !S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
			return bt_err_set(e, BT_INVALID_ARGUMENT, "%s %s: not a FIFO, regular file or character device",
					  what[i], paths[i]);
	}
	if (io->terminal && io->err && *io->err)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "a terminal has no separate stderr: leave it empty");
	return 0;
}

/* --- create -------------------------------------------------------------------- */

/* config.json: the container's spec with root.path = the rootfs. */
static int write_config(const task *t, const char *spec, bt_err *e)
{
	json_error_t je;
	json_t *j = json_loads(spec, 0, &je);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return bt_err_set(e, BT_INVALID_ARGUMENT, "container %s: spec is not a JSON object", t->id);
	}
	json_t *root = json_object_get(j, "root");
	if (!json_is_object(root)) {
		root = json_object();
		json_object_set_new(j, "root", root);
	}
	json_object_set_new(root, "path", json_string(t->rootfs));
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	_cleanup_free_ char *path = bt_xasprintf("%s/config.json", t->dir);
	int rc = bt_write_file_atomic(path, s, strlen(s), 0600, e);
	free(s);
	return rc;
}

static int write_meta(const task *t, const ctr_rec *c, bt_err *e)
{
	json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "runtime", t->runtime, "runtime_root", t->runtime_root,
			      "snapshotter", c->snapshotter, "snapshot_key", c->snapshot_key);
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	_cleanup_free_ char *path = bt_xasprintf("%s/" TASK_META, t->dir);
	int rc = bt_write_file_atomic(path, s, strlen(s), 0600, e);
	free(s);
	return rc;
}

static int read_meta(task *t, bt_err *e)
{
	_cleanup_free_ char *path = bt_xasprintf("%s/" TASK_META, t->dir);
	_cleanup_free_ char *data = NULL;
	size_t len;
	if (bt_read_file(path, 65536, &data, &len, e) < 0)
		return -1;
	json_error_t je;
	json_t *j = json_loadb(data, len, 0, &je);
	const char *rt = json_string_value(json_object_get(j, "runtime"));
	const char *root = json_string_value(json_object_get(j, "runtime_root"));
	if (!rt || !root) {
		json_decref(j);
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: malformed", path);
	}
	t->runtime = bt_xstrdup(rt);
	t->runtime_root = bt_xstrdup(root);
	json_decref(j);
	return 0;
}

/* Mounts the container's snapshot at the rootfs. */
static int mount_rootfs(task_env *env, const task *t, const ctr_rec *c, bt_err *e)
{
	if (!c->snapshot_key || !*c->snapshot_key)
		return bt_err_set(e, BT_FAILED_PRECONDITION, "container %s: has no snapshot key (no root filesystem)",
				  t->id);
	const char *sn = c->snapshotter && *c->snapshotter ? c->snapshotter : bt_config_default_snapshotter(env->cfg);
	_cleanup_free_ char *addr = bt_config_snapshotter_address(env->cfg, sn);
	if (!addr)
		return bt_err_set(e, BT_NOT_FOUND, "container %s: unknown snapshotter \"%s\"", t->id, sn);
	berth_options o = { .address = addr, .namespace_ = t->ns, .timeout_ms = 10000 };
	berth_error err;
	berth_client *bc = berth_client_new(&o, &err);
	if (!bc)
		return bt_err_set(e, err.code, "snapshotter %s: %s", sn, err.message);
	berth_mount *m = NULL;
	size_t n = 0;
	int rc = berth_snapshot_mounts(bc, t->ns, sn, c->snapshot_key, &m, &n, &err);
	berth_client_free(&bc);
	if (rc < 0)
		return bt_err_set(e, err.code, "container %s: mounts of snapshot %s: %s", t->id, c->snapshot_key,
				  err.message);
	if (mkdir(t->rootfs, 0700) < 0 && errno != EEXIST) {
		berth_mounts_free(m, n);
		return bt_err_errno(e, errno, "mkdir %s", t->rootfs);
	}
	rc = berth_mount_all(m, n, t->rootfs, &err);
	berth_mounts_free(m, n);
	if (rc < 0)
		return bt_err_set(e, err.code, "container %s: mount rootfs: %s", t->id, err.message);
	return 0;
}

/* Starts berth-shim for t; returns once it listens. */
static int start_shim(task_env *env, task *t, bt_err *e)
{
	char *argv[] = { env->shim_bin, (char *)"--namespace", t->ns,	     (char *)"--id",
			 t->id,		(char *)"--state-dir", t->dir,	     (char *)"--runtime",
			 t->runtime,	(char *)"--runtime-root", t->runtime_root, NULL };
	_cleanup_free_ char *out = NULL;
	int ws = run_cmd(argv, &out, e);
	if (ws < 0)
		return -1;
	chomp(out);
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		return bt_err_set(e, BT_INTERNAL, "task %s: start shim: %s", t->id, *out ? out : "failed");
	int pid;
	_cleanup_free_ char *pf = bt_xasprintf("%s/" BT_SHIM_PIDFILE, t->dir);
	if (bt_shim_pid_read(pf, &pid, e) < 0)
		return bt_err_wrap(e, "task %s: shim", t->id);
	t->shim_pid = pid;
	return 0;
}

/* Whether process PID has exited (a zombie counts: its parent, not us, reaps it). */
static bool pid_exited(pid_t pid)
{
	int pfd = pidfd_open(pid, 0);
	if (pfd < 0)
		return errno == ESRCH || kill(pid, 0) < 0;
	struct pollfd p = { .fd = pfd, .events = POLLIN };
	bool gone = poll(&p, 1, 0) > 0;
	close(pfd);
	return gone;
}

/* Waits (bounded) for a shim process to go, then kills it.  The shim is not
 * our child (double fork): its parent is init or a subreaper, which may reap
 * it long after it exited, and kill(pid, 0) succeeds on a zombie.  A pidfd
 * becomes readable at the exit itself. */
static void reap_shim(pid_t pid)
{
	if (pid <= 0)
		return;
	int pfd = pidfd_open(pid, 0);
	if (pfd >= 0) {
		struct pollfd p = { .fd = pfd, .events = POLLIN };
		int r;
		do
			r = poll(&p, 1, 2000);
		while (r < 0 && errno == EINTR);
		close(pfd);
		if (r > 0)
			return;
		if (r == 0) {
			bt_log_warn("shim %d did not exit after Shutdown: killing it", (int)pid);
			kill(pid, SIGKILL);
			return;
		}
	} else if (errno == ESRCH) {
		return;
	}
	for (int i = 0; i < 100; i++) {
		if (kill(pid, 0) < 0)
			return;
		usleep(20000);
	}
	bt_log_warn("shim %d did not exit after Shutdown: killing it", (int)pid);
	kill(pid, SIGKILL);
}

static void shim_shutdown(task *t)
{
	Berth__Shim__V1__ShutdownRequest sd = BERTH__SHIM__V1__SHUTDOWN_REQUEST__INIT;
	bt_err e;
	/* the shim may still be finishing the runtime job that answered Delete */
	for (int i = 0; i < 40; i++) {
		if (shim_call_path(t->sock, t->ns, t->id, "Shutdown", &sd.base, NULL, SHIM_QUICK_MS, NULL, &e) == 0)
			break;
		if (e.code != BT_FAILED_PRECONDITION || i == 39) {
			bt_log_warn("task %s/%s: shim shutdown: %s", t->ns, t->id, e.msg);
			break;
		}
		usleep(50000);
	}
	reap_shim(t->shim_pid);
}

static int create_steps(task_env *env, task *t, const ctr_rec *c, const task_stdio *io, int64_t timeout_ms,
			uint32_t *pid, bool *shim_up, bt_err *e)
{
	_cleanup_free_ char *nsdir = bt_xasprintf("%s/%s", env->tasks_dir, t->ns);
	if (bt_mkdir_p(nsdir, 0700, e) < 0)
		return -1;
	if (mkdir(t->dir, 0700) < 0) {
		if (errno == EEXIST)
			return bt_err_set(e, BT_ALREADY_EXISTS, "task %s: bundle %s exists already", t->id, t->dir);
		return bt_err_errno(e, errno, "mkdir %s", t->dir);
	}
	if (bt_mkdir_p(t->runtime_root, 0700, e) < 0 || write_meta(t, c, e) < 0 || mount_rootfs(env, t, c, e) < 0 ||
	    write_config(t, c->spec, e) < 0)
		return -1;
	if (start_shim(env, t, e) < 0)
		return -1;
	*shim_up = true;
	Berth__Shim__V1__CreateRequest req = BERTH__SHIM__V1__CREATE_REQUEST__INIT;
	Berth__Shim__V1__Stdio st = BERTH__SHIM__V1__STDIO__INIT;
	st.stdin = (char *)(io->in ? io->in : "");
	st.stdout = (char *)(io->out ? io->out : "");
	st.stderr = (char *)(io->err ? io->err : "");
	st.terminal = io->terminal;
	req.stdio = &st;
	Berth__Shim__V1__CreateResponse *r = NULL;
	if (shim_call_path(t->sock, t->ns, t->id, "Create", &req.base, &berth__shim__v1__create_response__descriptor,
			   timeout_ms, (ProtobufCMessage **)&r, e) < 0)
		return -1;
	*pid = r->pid;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return 0;
}

int task_create(task_env *env, const char *ns, const char *id, const task_stdio *io, int64_t timeout_ms,
		uint32_t *pid, bt_err *e)
{
	ctr_rec c = { 0 };
	if (task_store_get(env->store, ns, id, &c, e) < 0)
		return -1;
	if (task_stdio_check(io, e) < 0) {
		ctr_rec_clear(&c);
		return bt_err_wrap(e, "task %s", id);
	}
	task *t = task_new(env, ns, id);
	t->runtime = bt_xstrdup(c.runtime_binary && *c.runtime_binary ? c.runtime_binary : c.runtime);
	t->runtime_root = c.runtime_root && *c.runtime_root ? bt_xstrdup(c.runtime_root)
							    : bt_xasprintf("%s/%s/%s", env->cfg->run, c.runtime, ns);
	t->status = ST_UNKNOWN;
	t->deleting = true; /* nobody acts on it until it is made */
	t->terminal = io->terminal;
	free(t->in), t->in = bt_xstrdup(io->in ? io->in : "");
	free(t->out), t->out = bt_xstrdup(io->out ? io->out : "");
	free(t->err), t->err = bt_xstrdup(io->err ? io->err : "");
	pthread_mutex_lock(&env->mu);
	if (find_locked(env, ns, id)) {
		pthread_mutex_unlock(&env->mu);
		ctr_rec_clear(&c);
		task_free(t);
		return bt_err_set(e, BT_ALREADY_EXISTS, "task %s: the container has a task already", id);
	}
	t->next = env->tasks;
	env->tasks = t;
	t->refs++;
	pthread_mutex_unlock(&env->mu);

	bool shim_up = false;
	int rc = create_steps(env, t, &c, io, timeout_ms, pid, &shim_up, e);
	ctr_rec_clear(&c);
	if (rc < 0) {
		/* nothing stays: shim, container, mount, bundle */
		if (shim_up) {
			shim_shutdown(t);
			runtime_delete(t);
		}
		bt_err ce;
		if (access(t->dir, F_OK) == 0 && e->code != BT_ALREADY_EXISTS && remove_bundle(t, &ce) < 0)
			bt_log_err("task %s/%s: clean up after a failed create: %s", ns, id, ce.msg);
		pthread_mutex_lock(&env->mu);
		remove_locked(env, t);
		pthread_mutex_unlock(&env->mu);
		task_put(env, &t);
		return -1;
	}
	pthread_mutex_lock(&env->mu);
	t->pid = *pid;
	t->status = ST_CREATED;
	t->deleting = false;
	t->mon_want = true;
	wake_monitor(env);
	pthread_mutex_unlock(&env->mu);
	task_put(env, &t);
	return 0;
}

/* --- delete -------------------------------------------------------------------- */

int task_delete(task_env *env, const char *ns, const char *id, int64_t timeout_ms, uint32_t *pid,
		uint32_t *exit_status, int64_t *exited_at, bt_err *e)
{
	task *t = task_get(env, ns, id, e);
	if (!t)
		return -1;
	pthread_mutex_lock(&env->mu);
	if (t->deleting) {
		pthread_mutex_unlock(&env->mu);
		task_put(env, &t);
		return bt_err_set(e, BT_FAILED_PRECONDITION, "task %s: being created or deleted", id);
	}
	t->deleting = true;
	bool lost = t->lost;
	pthread_mutex_unlock(&env->mu);

	if (!lost) {
		Berth__Shim__V1__DeleteRequest req = BERTH__SHIM__V1__DELETE_REQUEST__INIT;
		Berth__Shim__V1__DeleteResponse *r = NULL;
		if (shim_call_path(t->sock, t->ns, t->id, "Delete", &req.base,
				   &berth__shim__v1__delete_response__descriptor, timeout_ms, (ProtobufCMessage **)&r,
				   e) < 0) {
			bool dead = e->code == BT_UNAVAILABLE && (t->shim_pid <= 0 || pid_exited(t->shim_pid));
			if (!dead) {
				pthread_mutex_lock(&env->mu);
				t->deleting = false;
				pthread_mutex_unlock(&env->mu);
				task_put(env, &t);
				return -1;
			}
			/* the shim died (after the exit, or under us): settle it here */
			settle_lost(env, t);
			pthread_mutex_lock(&env->mu);
			*pid = t->pid;
			*exit_status = t->exit_status;
			*exited_at = t->exited_at;
			pthread_mutex_unlock(&env->mu);
		} else {
			*pid = r->pid;
			*exit_status = r->exit_status;
			*exited_at = r->exited_at_ns;
			protobuf_c_message_free_unpacked(&r->base, NULL);
			shim_shutdown(t);
		}
	} else {
		pthread_mutex_lock(&env->mu);
		while (!t->exited) /* settle_lost is finishing */
			pthread_cond_wait(&env->cond, &env->mu);
		*pid = t->pid;
		*exit_status = t->exit_status;
		*exited_at = t->exited_at;
		pthread_mutex_unlock(&env->mu);
	}
	if (remove_bundle(t, e) < 0) {
		pthread_mutex_lock(&env->mu);
		t->deleting = false;
		t->lost = true;
		pthread_mutex_unlock(&env->mu);
		task_put(env, &t);
		return -1;
	}
	pthread_mutex_lock(&env->mu);
	bool first = !t->exited;
	if (!t->exited) {
		t->exited = true;
		t->exit_status = *exit_status;
		t->exited_at = *exited_at;
	}
	uint32_t xpid = t->pid;
	remove_locked(env, t);
	pthread_mutex_unlock(&env->mu);
	if (first)
		exit_event(t->ns, t->id, xpid, *exit_status, *exited_at);
	task_put(env, &t);
	return 0;
}

/* --- wait ---------------------------------------------------------------------- */

int task_wait_init(task_env *env, task *t, bool (*done)(void *arg), void *arg, uint32_t *exit_status,
		   int64_t *exited_at, bt_err *e)
{
	pthread_mutex_lock(&env->mu);
	while (!t->exited) {
		if (t->removed) {
			pthread_mutex_unlock(&env->mu);
			return bt_err_set(e, BT_NOT_FOUND, "task %s: deleted", t->id);
		}
		if (done(arg)) {
			pthread_mutex_unlock(&env->mu);
			return bt_err_set(e, BT_CANCELLED, "task %s: wait ended by the caller", t->id);
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 500 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&env->cond, &env->mu, &ts);
	}
	*exit_status = t->exit_status;
	*exited_at = t->exited_at;
	pthread_mutex_unlock(&env->mu);
	return 0;
}

int task_wait_exec(task_env *env, task *t, const char *exec_id, bool (*done)(void *arg), void *arg,
		   uint32_t *exit_status, int64_t *exited_at, bt_err *e)
{
	if (task_check_live(env, t, e) < 0)
		return -1;
	_cleanup_close_ int fd = bt_seqrpc_connect(t->sock, e);
	if (fd < 0)
		return bt_err_wrap(e, "task %s: shim", t->id);
	Berth__Shim__V1__WaitRequest w = BERTH__SHIM__V1__WAIT_REQUEST__INIT;
	w.exec_id = (char *)exec_id;
	if (mon_send(fd, t, "Wait", MON_WAIT_ID, &w.base, e) < 0)
		return bt_err_wrap(e, "task %s: shim", t->id);
	for (;;) {
		if (done(arg))
			return bt_err_set(e, BT_CANCELLED, "task %s: wait ended by the caller", t->id);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int n = poll(&p, 1, 500);
		if (n <= 0)
			continue;
		_cleanup_free_ uint8_t *buf = NULL;
		size_t len;
		int r = bt_seqrpc_recv(fd, MSG_DONTWAIT, &buf, &len, e);
		if (r < 0 && errno == EAGAIN)
			continue;
		if (r <= 0)
			return bt_err_set(e, BT_UNAVAILABLE, "task %s: exec %s: the shim went away", t->id, exec_id);
		const uint8_t *hb, *bb;
		size_t hl, bl;
		if (bt_seqrpc_split(buf, len, &hb, &hl, &bb, &bl, e) < 0)
			return -1;
		Berth__Rpc__V1__ResponseHeader *rh = berth__rpc__v1__response_header__unpack(NULL, hl, hb);
		if (!rh)
			return bt_err_set(e, BT_INTERNAL, "task %s: malformed reply from the shim", t->id);
		int rc = 0;
		if (rh->code != BERTH__RPC__V1__CODE__OK) {
			rc = bt_err_set(e, (int)rh->code, "task %s: %s", t->id, rh->message ? rh->message : "");
		} else {
			Berth__Shim__V1__WaitResponse *wr = berth__shim__v1__wait_response__unpack(NULL, bl, bb);
			if (!wr) {
				rc = bt_err_set(e, BT_INTERNAL, "task %s: malformed Wait reply", t->id);
			} else {
				*exit_status = wr->exit_status;
				*exited_at = wr->exited_at_ns;
				berth__shim__v1__wait_response__free_unpacked(wr, NULL);
			}
		}
		berth__rpc__v1__response_header__free_unpacked(rh, NULL);
		return rc;
	}
}

/* --- rebuilding at start -------------------------------------------------------- */

static bool is_shim(pid_t pid)
{
	char path[64], comm[64] = "";
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool ok = fgets(comm, sizeof(comm), f) != NULL;
	fclose(f);
	return ok && strncmp(comm, "berth-shim", 10) == 0;
}

/* One state directory: a task to list again, or leftovers to remove. */
static void recover_one(task_env *env, const char *ns, const char *id)
{
	task *t = task_new(env, ns, id);
	bt_err e;
	if (bt_ident_validate("namespace", ns, &e) < 0 || bt_ident_validate("container id", id, &e) < 0) {
		bt_log_warn("%s: not a task directory: %s", t->dir, e.msg);
		task_free(t);
		return;
	}
	if (read_meta(t, &e) < 0) {
		/* died before its shim was started: only a mount and files to remove */
		bt_log_info("task %s/%s: left half-created (%s): removing it", ns, id, e.msg);
		if (remove_bundle(t, &e) < 0)
			bt_log_err("%s", e.msg);
		task_free(t);
		return;
	}
	_cleanup_free_ char *pf = bt_xasprintf("%s/" BT_SHIM_PIDFILE, t->dir);
	int spid = 0;
	bool alive = bt_shim_pid_read(pf, &spid, &e) == 0 && is_shim(spid);
	t->shim_pid = spid;
	_cleanup_free_ char *ipf = bt_xasprintf("%s/" BT_SHIM_INIT_PID, t->dir);
	int ipid = 0;
	if (bt_shim_pid_read(ipf, &ipid, &e) == 0)
		t->pid = (uint32_t)ipid;
	if (alive) {
		Berth__Shim__V1__InfoRequest req = BERTH__SHIM__V1__INFO_REQUEST__INIT;
		Berth__Shim__V1__InfoResponse *r = NULL;
		if (shim_call_path(t->sock, ns, id, "Info", &req.base, &berth__shim__v1__info_response__descriptor, 2000,
				   (ProtobufCMessage **)&r, &e) == 0) {
			bool has_init = r->n_processes > 0 && (!r->processes[0]->exec_id || !*r->processes[0]->exec_id);
			if (!has_init) {
				protobuf_c_message_free_unpacked(&r->base, NULL);
				bt_log_info("task %s/%s: its shim never created it: removing it", ns, id);
				shim_shutdown(t);
				runtime_delete(t);
				if (remove_bundle(t, &e) < 0)
					bt_log_err("%s", e.msg);
				task_free(t);
				return;
			}
			const Berth__Shim__V1__ProcessState *p = r->processes[0];
			t->status = (int)p->status;
			t->pid = p->pid;
			t->terminal = p->terminal;
			free(t->in), t->in = bt_xstrdup(p->stdin ? p->stdin : "");
			free(t->out), t->out = bt_xstrdup(p->stdout ? p->stdout : "");
			free(t->err), t->err = bt_xstrdup(p->stderr ? p->stderr : "");
			if (p->status == BERTH__SHIM__V1__STATUS__STOPPED) {
				t->exited = true;
				t->exit_status = p->exit_status;
				t->exited_at = p->exited_at_ns;
			}
			protobuf_c_message_free_unpacked(&r->base, NULL);
		} else {
			bt_log_warn("task %s/%s: %s", ns, id, e.msg);
			t->status = ST_UNKNOWN;
			t->reason = bt_xstrdup("shim not answering");
			t->mon_info = true;
		}
		t->mon_want = !t->exited;
		pthread_mutex_lock(&env->mu);
		t->next = env->tasks;
		env->tasks = t;
		pthread_mutex_unlock(&env->mu);
		bt_log_info("task %s/%s: shim %d reconnected", ns, id, spid);
		return;
	}
	/* the shim is gone: the exit it recorded, or an unknown one */
	t->lost = true;
	pthread_mutex_lock(&env->mu);
	t->next = env->tasks;
	env->tasks = t;
	pthread_mutex_unlock(&env->mu);
	settle_lost(env, t);
}

static void recover(task_env *env)
{
	_cleanup_dir_ DIR *d = opendir(env->tasks_dir);
	if (!d)
		return;
	struct dirent *ns;
	while ((ns = readdir(d))) {
		if (ns->d_name[0] == '.')
			continue;
		_cleanup_free_ char *nsdir = bt_xasprintf("%s/%s", env->tasks_dir, ns->d_name);
		_cleanup_dir_ DIR *d2 = opendir(nsdir);
		if (!d2)
			continue;
		struct dirent *id;
		while ((id = readdir(d2))) {
			if (id->d_name[0] == '.')
				continue;
			recover_one(env, ns->d_name, id->d_name);
		}
	}
}

/* --- the environment ------------------------------------------------------------- */

static char *find_shim(void)
{
	const char *env = getenv("BERTH_SHIM");
	if (env && *env)
		return bt_xstrdup(env);
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			char *p = bt_xasprintf("%s/berth-shim", self);
			if (access(p, X_OK) == 0)
				return p;
			free(p);
		}
	}
	return bt_xstrdup("/usr/local/bin/berth-shim");
}

task_env *task_env_new(bt_config *cfg, task_store *store, bt_err *e)
{
	task_env *env = bt_xzalloc(sizeof(*env));
	env->cfg = cfg;
	env->store = store;
	env->tasks_dir = bt_xasprintf("%s/tasks", cfg->run);
	env->shim_bin = find_shim();
	env->wake[0] = env->wake[1] = -1;
	pthread_mutex_init(&env->mu, NULL);
	pthread_cond_init(&env->cond, NULL);
	if (pipe2(env->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		bt_err_errno(e, errno, "pipe");
		task_env_free(&env);
		return NULL;
	}
	if (bt_mkdir_p(env->tasks_dir, 0700, e) < 0) {
		task_env_free(&env);
		return NULL;
	}
	if (access(env->shim_bin, X_OK) < 0) {
		bt_err_errno(e, errno, "shim %s", env->shim_bin);
		task_env_free(&env);
		return NULL;
	}
	return env;
}

int task_env_start(task_env *env, bt_err *e)
{
	recover(env);
	if (pthread_create(&env->mon, NULL, monitor_main, env) != 0)
		return bt_err_set(e, BT_INTERNAL, "cannot start the monitor thread");
	env->mon_running = true;
	return 0;
}

void task_env_free(task_env **envp)
{
	task_env *env = *envp;
	if (!env)
		return;
	if (env->mon_running) {
		pthread_mutex_lock(&env->mu);
		env->stopping = true;
		wake_monitor(env);
		pthread_mutex_unlock(&env->mu);
		pthread_join(env->mon, NULL);
	}
	/* the shims live on: only our view of them goes */
	while (env->tasks) {
		task *t = env->tasks;
		env->tasks = t->next;
		task_free(t);
	}
	while (env->graveyard) {
		task *t = env->graveyard;
		env->graveyard = t->next;
		if (--t->refs == 0)
			task_free(t);
	}
	if (env->wake[0] >= 0)
		close(env->wake[0]);
	if (env->wake[1] >= 0)
		close(env->wake[1]);
	pthread_mutex_destroy(&env->mu);
	pthread_cond_destroy(&env->cond);
	free(env->tasks_dir);
	free(env->shim_bin);
	free(env);
	*envp = NULL;
}
