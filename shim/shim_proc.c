/*
 * shim_proc — the task's processes as berth-shim keeps them: their stdio
 * (client FIFOs copied through pipes, or a pty master), their exits
 * (recorded durably, then announced to waiters once their output is
 * drained) and their state files.
 */
#define _GNU_SOURCE
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bt_shimstate.h"
#include "bt_util.h"

/* How long an exit waits for the process's output to drain (a daemonized
 * grandchild may hold the pipe open for ever). */
#define DRAIN_MS 2000

static void pump_init(shim_pump *pm)
{
	memset(pm, 0, sizeof(*pm));
	pm->src = pm->dst = -1;
}

shim_proc *shim_proc_new(shim *s, const char *exec_id)
{
	shim_proc *p = bt_xzalloc(sizeof(*p));
	p->exec_id = exec_id ? bt_xstrdup(exec_id) : NULL;
	p->master = -1;
	pump_init(&p->in);
	pump_init(&p->out);
	pump_init(&p->err);
	for (int i = 0; i < 3; i++)
		p->child_fd[i] = -1;
	if (exec_id == NULL) {
		p->next = s->procs;
		s->procs = p;
	} else {
		shim_proc **pp = &s->procs;
		while (*pp)
			pp = &(*pp)->next;
		*pp = p;
	}
	return p;
}

shim_proc *shim_proc_find(shim *s, const char *exec_id)
{
	bool init = exec_id == NULL || *exec_id == '\0';
	for (shim_proc *p = s->procs; p; p = p->next) {
		if (p->status == PS_DELETED)
			continue;
		if (init ? p->exec_id == NULL : (p->exec_id && strcmp(p->exec_id, exec_id) == 0))
			return p;
	}
	return NULL;
}

void shim_pump_close(shim_pump *pm)
{
	if (pm->src >= 0)
		close(pm->src);
	if (pm->dst >= 0)
		close(pm->dst);
	pm->src = pm->dst = -1;
	pm->blocked = false;
}

void shim_proc_close_child_fds(shim_proc *p)
{
	for (int i = 0; i < 3; i++)
		if (p->child_fd[i] >= 0) {
			close(p->child_fd[i]);
			p->child_fd[i] = -1;
		}
}

void shim_proc_free(shim *s, shim_proc *p)
{
	for (shim_proc **pp = &s->procs; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	shim_pump_close(&p->in);
	shim_pump_close(&p->out);
	shim_pump_close(&p->err);
	shim_proc_close_child_fds(p);
	if (p->master >= 0)
		close(p->master);
	/* a process forgotten before it ran (failed create or exec start) */
	bt_err gone = { 0 };
	if (p->waiters)
		bt_err_set(&gone, BT_NOT_FOUND, "%s: removed: it never ran", p->exec_id ? p->exec_id : "init");
	while (p->waiters) {
		shim_waiter *w = p->waiters;
		p->waiters = w->next;
		shim_reply(s, w->conn_id, w->request_id, &gone, NULL);
		free(w);
	}
	free(p->exec_id);
	free(p->path_in);
	free(p->path_out);
	free(p->path_err);
	free(p);
}

char *shim_proc_file(const shim *s, const shim_proc *p, const char *suffix)
{
	if (p->exec_id == NULL)
		return bt_xasprintf("%s/init.%s", s->dir, suffix);
	return bt_xasprintf("%s/exec-%s.%s", s->dir, p->exec_id, suffix);
}

/* Opens a client's stdio path: FIFOs read-write and non-blocking (neither
 * side blocks on the other's absence; we alone decide when EOF comes). */
static int open_stdio(const char *what, const char *path, bool input, bool *fifo, bt_err *e)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return bt_err_errno(e, errno, "%s %s", what, path);
	*fifo = S_ISFIFO(st.st_mode);
	int flags = O_CLOEXEC | O_NOCTTY;
	if (*fifo)
		flags |= O_RDWR | O_NONBLOCK;
	else if (S_ISREG(st.st_mode) || S_ISCHR(st.st_mode))
		flags |= input ? O_RDONLY : O_WRONLY | O_APPEND;
	else
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s %s: not a FIFO, regular file or device", what, path);
	int fd = open(path, flags);
	if (fd < 0)
		return bt_err_errno(e, errno, "%s %s", what, path);
	return fd;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int shim_proc_stdio(shim_proc *p, const Berth__Shim__V1__Stdio *io, bt_err *e)
{
	const char *paths[3] = { io ? io->stdin : "", io ? io->stdout : "", io ? io->stderr : "" };
	static const char *const what[3] = { "stdin", "stdout", "stderr" };
	shim_pump *pumps[3] = { &p->in, &p->out, &p->err };
	p->terminal = io && io->terminal;
	if (p->terminal && paths[2] && *paths[2])
		return bt_err_set(e, BT_INVALID_ARGUMENT, "stderr: must be empty with a terminal (the pty merges it into stdout)");
	p->path_in = bt_xstrdup(paths[0] ? paths[0] : "");
	p->path_out = bt_xstrdup(paths[1] ? paths[1] : "");
	p->path_err = bt_xstrdup(paths[2] ? paths[2] : "");
	for (int i = 0; i < 3; i++) {
		if (paths[i] == NULL || *paths[i] == '\0')
			continue;
		bool fifo = false;
		int fd = open_stdio(what[i], paths[i], i == 0, &fifo, e);
		if (fd < 0)
			goto fail;
		shim_pump *pm = pumps[i];
		if (i == 0)
			pm->src = fd;
		else
			pm->dst = fd;
		if (p->terminal)
			continue; /* the other end is the pty master, once it arrives */
		int pfd[2];
		if (pipe2(pfd, O_CLOEXEC) < 0) {
			bt_err_errno(e, errno, "pipe");
			goto fail;
		}
		if (i == 0) {
			p->child_fd[0] = pfd[0];
			pm->dst = pfd[1];
		} else {
			p->child_fd[i] = pfd[1];
			pm->src = pfd[0];
		}
		if (set_nonblock(i == 0 ? pfd[1] : pfd[0]) < 0) {
			bt_err_errno(e, errno, "fcntl");
			goto fail;
		}
		pm->splice = fifo;
	}
	return 0;
fail:
	for (int i = 0; i < 3; i++)
		shim_pump_close(pumps[i]);
	shim_proc_close_child_fds(p);
	return -1;
}

void shim_proc_set_master(shim_proc *p, int master)
{
	set_nonblock(master);
	p->master = master;
	if (p->in.src >= 0)
		p->in.dst = fcntl(master, F_DUPFD_CLOEXEC, 3);
	if (p->out.dst >= 0)
		p->out.src = fcntl(master, F_DUPFD_CLOEXEC, 3);
}

int shim_pump_events(const shim_pump *pm, int *fd)
{
	if (pm->src < 0 || pm->dst < 0) {
		*fd = -1;
		return 0;
	}
	if (pm->blocked) {
		*fd = pm->dst;
		return POLLOUT;
	}
	*fd = pm->src;
	return POLLIN;
}

/* The destination refuses more: wait for it, or close when it is gone. */
static bool pump_stalled(shim_pump *pm, int err)
{
	if (err == EAGAIN) {
		/* splice's EAGAIN does not say which side: ask the destination */
		struct pollfd q = { .fd = pm->dst, .events = POLLOUT };
		if (poll(&q, 1, 0) == 1 && (q.revents & POLLOUT) && !(q.revents & (POLLERR | POLLHUP))) {
			/* the source is empty */
			if (pm->closing)
				shim_pump_close(pm);
			pm->blocked = false;
			return true;
		}
		pm->blocked = true;
		return true;
	}
	shim_pump_close(pm); /* EPIPE (reader gone), EIO (pty closed), … */
	return true;
}

void shim_pump_run(shim_pump *pm, bool writable)
{
	(void)writable;
	pm->blocked = false;
	for (int round = 0; round < 16 && pm->src >= 0 && pm->dst >= 0; round++) {
		ssize_t n;
		if (pm->splice) {
			n = splice(pm->src, NULL, pm->dst, NULL, 65536, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
			if (n > 0)
				continue;
			if (n == 0) {
				shim_pump_close(pm);
				return;
			}
			if (errno == EINTR)
				continue;
			if (errno != EINVAL) {
				pump_stalled(pm, errno);
				return;
			}
			pm->splice = false; /* a file system that cannot splice: copy */
		}
		char buf[4096];
		n = read(pm->src, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno == EIO)) {
			shim_pump_close(pm);
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN && pm->closing)
				shim_pump_close(pm);
			else if (errno != EAGAIN)
				shim_pump_close(pm);
			return;
		}
		/* Destinations without splice are the pty master and files: a
		 * short wait here is bounded by the kernel's buffer. */
		size_t off = 0;
		while (off < (size_t)n) {
			ssize_t w = write(pm->dst, buf + off, (size_t)n - off);
			if (w > 0) {
				off += (size_t)w;
				continue;
			}
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && errno == EAGAIN) {
				struct pollfd q = { .fd = pm->dst, .events = POLLOUT };
				if (poll(&q, 1, 1000) == 1 && (q.revents & POLLOUT))
					continue;
			}
			shim_pump_close(pm);
			return;
		}
	}
}

int shim_status_code(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return 255;
}

void shim_proc_exited(shim *s, shim_proc *p, int wstatus, int64_t at_ns)
{
	p->exited = true;
	p->exit_status = shim_status_code(wstatus);
	p->exited_at_ns = at_ns;
	p->status = PS_STOPPED;
	p->drain_deadline = bt_mono_ms() + DRAIN_MS;
	/* on disk before anyone hears of it */
	_cleanup_free_ char *path = shim_proc_file(s, p, "exit");
	bt_shim_exit x = { .pid = p->pid, .exit_status = p->exit_status, .exited_at_ns = at_ns };
	bt_err e = { 0 };
	if (bt_shim_exit_write(path, &x, &e) < 0)
		fprintf(stderr, "berth-shim: %s: record exit: %s\n", s->id, e.msg);
	/* nobody reads the process's stdin any more */
	shim_pump_close(&p->in);
	/* Without a pid namespace of its own the container's execs outlive its
	 * init: end them as the kernel would.  They are our unreaped children,
	 * so their pids cannot have been reused. */
	if (p->exec_id == NULL)
		for (shim_proc *q = s->procs; q; q = q->next)
			if (q->exec_id && q->pid > 0 && !q->exited)
				kill(q->pid, SIGKILL);
	shim_proc_announce_ready(s);
}

void shim_proc_fill_state(const shim_proc *p, Berth__Shim__V1__ProcessState *st)
{
	static const int map[] = {
		[PS_NEW] = BERTH__SHIM__V1__STATUS__CREATED,     [PS_CREATING] = BERTH__SHIM__V1__STATUS__CREATED,
		[PS_CREATED] = BERTH__SHIM__V1__STATUS__CREATED, [PS_RUNNING] = BERTH__SHIM__V1__STATUS__RUNNING,
		[PS_PAUSED] = BERTH__SHIM__V1__STATUS__PAUSED,   [PS_STOPPED] = BERTH__SHIM__V1__STATUS__STOPPED,
		[PS_DELETED] = BERTH__SHIM__V1__STATUS__STOPPED,
	};
	st->exec_id = p->exec_id ? p->exec_id : "";
	st->status = (Berth__Shim__V1__Status)map[p->status];
	st->pid = (uint32_t)p->pid;
	st->exit_status = p->exited ? (uint32_t)p->exit_status : 0;
	st->exited_at_ns = p->exited ? p->exited_at_ns : 0;
	st->terminal = p->terminal;
	st->stdin = p->path_in ? p->path_in : "";
	st->stdout = p->path_out ? p->path_out : "";
	st->stderr = p->path_err ? p->path_err : "";
}

void shim_proc_announce_ready(shim *s)
{
	int64_t now = bt_mono_ms();
	for (shim_proc *p = s->procs; p; p = p->next) {
		/* never an exit before the reply to the start of that process */
		if (!p->exited || p->announced || p->busy)
			continue;
		bool drained = p->out.src < 0 && p->err.src < 0;
		/* the init's exit is the container's last: its execs go first */
		if (p->exec_id == NULL)
			for (shim_proc *x = s->procs; x && drained; x = x->next)
				if (x->exec_id && x->pid > 0 && !x->exited)
					drained = false;
		if (!drained && now < p->drain_deadline)
			continue;
		p->announced = true;
		Berth__Shim__V1__WaitResponse r = BERTH__SHIM__V1__WAIT_RESPONSE__INIT;
		r.exit_status = (uint32_t)p->exit_status;
		r.exited_at_ns = p->exited_at_ns;
		while (p->waiters) {
			shim_waiter *w = p->waiters;
			p->waiters = w->next;
			shim_reply(s, w->conn_id, w->request_id, NULL, &r.base);
			free(w);
		}
		if (p->delete_pending)
			shim_rpc_finish_delete(s, p);
	}
}
