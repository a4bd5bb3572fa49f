/*
 * shim_runtime — runs the OCI runtime binary (runc, crun) as asynchronous
 * jobs of the poll loop: fork, exec with exactly the descriptors meant for
 * it, collect its JSON log in a memfd, finish when the loop reaps it.  Also
 * the --console-socket through which the runtime hands over a pty master.
 */
#define _GNU_SOURCE
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <inttypes.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bt_util.h"

#ifndef CLOSE_RANGE_UNSHARE
#include <linux/close_range.h>
#endif
#include <sys/syscall.h>

static int memfd(const char *name, bt_err *e)
{
	int fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return bt_err_errno(e, errno, "memfd_create");
	return fd;
}

void shim_job_free(shim_job *j)
{
	if (j == NULL)
		return;
	if (j->logfd >= 0)
		close(j->logfd);
	if (j->outfd >= 0)
		close(j->outfd);
	if (j->console >= 0)
		close(j->console);
	if (j->console_path) {
		unlink(j->console_path);
		free(j->console_path);
	}
	free(j);
}

/* In the child: fds[t] becomes descriptor t for t < n; everything else is
 * closed; signals as a fresh process has them.  Never returns. */
static _Noreturn void child_exec(char **argv, int *fds, int n)
{
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	/* move sources out of the target range first, so no dup2 clobbers one */
	for (int t = 0; t < n; t++)
		if (fds[t] < n && (fds[t] = fcntl(fds[t], F_DUPFD_CLOEXEC, n)) < 0)
			_exit(126);
	for (int t = 0; t < n; t++)
		if (dup2(fds[t], t) < 0)
			_exit(126);
	if (syscall(SYS_close_range, (unsigned)n, ~0U, 0) < 0)
		for (int fd = n; fd < 1024; fd++)
			close(fd);
	execv(argv[0], argv);
	dprintf(2, "{\"level\":\"error\",\"msg\":\"exec %s: %s\"}\n", argv[0], strerror(errno));
	_exit(127);
}

shim_job *shim_rt_start(shim *s, int kind, shim_proc *p, const char *const *args, const int *stdio,
			int extra_fd, bt_err *e)
{
	shim_job *j = bt_xzalloc(sizeof(*j));
	/* declared before the first goto: fail: must never see them uninitialised */
	_cleanup_close_ int devnull = -1;
	_cleanup_strv_ char **argv = NULL;
	j->kind = kind;
	j->proc = p;
	j->outfd = -1;
	j->console = -1;
	j->logfd = memfd("runtime-log", e);
	if (j->logfd < 0)
		goto fail;
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0) {
		bt_err_errno(e, errno, "open /dev/null");
		goto fail;
	}
	int fds[5];
	if (stdio == NULL) {
		j->outfd = memfd("runtime-out", e);
		if (j->outfd < 0)
			goto fail;
		fds[0] = devnull;
		fds[1] = j->outfd;
		fds[2] = j->logfd;
	} else {
		for (int i = 0; i < 3; i++)
			fds[i] = stdio[i] >= 0 ? stdio[i] : devnull;
	}
	fds[3] = j->logfd;
	fds[4] = extra_fd >= 0 ? extra_fd : devnull;

	bt_strv_push(&argv, s->runtime);
	if (s->runtime_root && *s->runtime_root) {
		bt_strv_push(&argv, "--root");
		bt_strv_push(&argv, s->runtime_root);
	}
	bt_strv_push(&argv, "--log");
	bt_strv_push(&argv, "/proc/self/fd/3");
	bt_strv_push(&argv, "--log-format");
	bt_strv_push(&argv, "json");
	for (size_t i = 0; args[i]; i++)
		bt_strv_push(&argv, args[i]);

	pid_t pid = fork();
	if (pid < 0) {
		bt_err_errno(e, errno, "fork");
		goto fail;
	}
	if (pid == 0)
		child_exec(argv, fds, extra_fd >= 0 ? 5 : 4);
	j->pid = pid;
	j->next = s->jobs;
	s->jobs = j;
	return j;
fail:
	shim_job_free(j);
	return NULL;
}

char *shim_rt_error(shim_job *j)
{
	struct stat st;
	if (j->logfd < 0 || fstat(j->logfd, &st) < 0 || st.st_size <= 0)
		return NULL;
	size_t n = (size_t)BT_MIN(st.st_size, 65536);
	char *buf = bt_xmalloc(n + 1);
	ssize_t r = bt_pread_all(j->logfd, buf, n, st.st_size - (off_t)n);
	if (r < 0) {
		free(buf);
		return NULL;
	}
	buf[r] = '\0';
	char *msg = shim_json_log_msg(buf);
	if (msg == NULL) {
		/* not JSON: the last non-empty line as it is */
		while (r > 0 && (buf[r - 1] == '\n' || buf[r - 1] == ' '))
			buf[--r] = '\0';
		char *nl = strrchr(buf, '\n');
		msg = bt_xstrdup(nl ? nl + 1 : buf);
	}
	free(buf);
	return msg;
}

void shim_rt_reaped(shim *s, pid_t pid, int wstatus)
{
	for (shim_job **jp = &s->jobs; *jp; jp = &(*jp)->next) {
		shim_job *j = *jp;
		if (j->pid == pid) {
			*jp = j->next;
			shim_rpc_job_done(s, j, wstatus);
			shim_job_free(j);
			return;
		}
	}
	for (shim_proc *p = s->procs; p; p = p->next) {
		if (p->pid == pid && !p->exited) {
			shim_proc_exited(s, p, wstatus, bt_now_ns());
			return;
		}
	}
	/* not known yet: its pid file may not have been read; keep it a while */
	shim_orphan *o = &s->orphans[s->n_orphans++ % BT_ARRAY_LEN(s->orphans)];
	o->pid = pid;
	o->status = wstatus;
	o->at_ns = bt_now_ns();
}

int shim_rt_orphan_take(shim *s, pid_t pid, int *wstatus, int64_t *at_ns)
{
	for (size_t i = 0; i < BT_ARRAY_LEN(s->orphans); i++) {
		shim_orphan *o = &s->orphans[i];
		if (o->pid != 0 && o->pid == pid) {
			*wstatus = o->status;
			*at_ns = o->at_ns;
			o->pid = 0;
			return 0;
		}
	}
	return -1;
}

int shim_console_listen(shim *s, char **path, bt_err *e)
{
	char name[64];
	snprintf(name, sizeof(name), "console-%" PRIu64 ".sock", s->next_console++);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_free_ char *full = bt_xasprintf("%s/%s", s->dir, name);
	/* the runtime connects by path: a long one goes through our dirfd */
	if (strlen(full) < sizeof(sa.sun_path))
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", full);
	else
		snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/%d/fd/%d/%s", (int)getpid(), s->dirfd, name);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return bt_err_errno(e, errno, "console socket");
	unlink(full);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
		bt_err_errno(e, errno, "console socket %s", full);
		close(fd);
		unlink(full);
		return -1;
	}
	*path = bt_xstrdup(sa.sun_path);
	return fd;
}

int shim_console_recv(int lfd, bt_err *e)
{
	_cleanup_close_ int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return bt_err_errno(e, errno, "console socket: the runtime sent no terminal");
	char data[256];
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = { .iov_base = data, .iov_len = sizeof(data) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	ssize_t n;
	do
		n = recvmsg(c, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return bt_err_errno(e, errno, "console socket: receive terminal");
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	if (h == NULL || h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS ||
	    h->cmsg_len != CMSG_LEN(sizeof(int)))
		return bt_err_set(e, BT_INTERNAL, "console socket: the runtime sent no terminal descriptor");
	int fd;
	memcpy(&fd, CMSG_DATA(h), sizeof(fd));
	return fd;
}
