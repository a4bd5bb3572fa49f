/*
 * berth-shim — the per-task monitor.  main() only wires: parse flags, check
 * them, detach (double fork, setsid) while the starter waits on a pipe for
 * "ready" or an error, become the child subreaper, bind the socket, write
 * the pid file, run the loop.  See docs/tasks.md.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bt_ident.h"
#include "bt_seqrpc.h"
#include "bt_shimstate.h"
#include "bt_util.h"
#include "shim.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: berth-shim --namespace NS --id ID --state-dir DIR [--runtime BINARY]\n"
		   "                  [--runtime-root DIR] [--foreground]\n"
		   "\n"
		   "Monitors one task: DIR is its bundle (config.json, rootfs) and state\n"
		   "directory (mode 0700).  Returns once the shim listens on DIR/shim.sock,\n"
		   "printing that path, or exits 1 with the reason.\n");
}

typedef struct shim_opts {
	const char *ns, *id, *dir, *runtime, *root;
	bool foreground;
} shim_opts;

/* The runtime binary as an absolute path (PATH searched for a bare name). */
static char *resolve_runtime(const char *name, bt_err *e)
{
	if (strchr(name, '/')) {
		if (access(name, X_OK) < 0)
			return bt_err_errno(e, errno, "runtime %s", name), NULL;
		return name[0] == '/' ? bt_xstrdup(name) : realpath(name, NULL);
	}
	const char *path = getenv("PATH");
	_cleanup_free_ char *copy = bt_xstrdup(path && *path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	char *save = NULL;
	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char *full = bt_xasprintf("%s/%s", d, name);
		if (full[0] == '/' && access(full, X_OK) == 0)
			return full;
		free(full);
	}
	bt_err_set(e, BT_NOT_FOUND, "runtime %s: not found in PATH", name);
	return NULL;
}

static int check_opts(shim_opts *o, shim *s, bt_err *e)
{
	if (!o->ns || !o->id || !o->dir)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "--namespace, --id and --state-dir are required");
	if (bt_ident_validate("namespace", o->ns, e) < 0 || bt_ident_validate("task id", o->id, e) < 0)
		return -1;
	if (o->dir[0] != '/')
		return bt_err_set(e, BT_INVALID_ARGUMENT, "state dir %s: must be an absolute path", o->dir);
	struct stat st;
	if (stat(o->dir, &st) < 0)
		return bt_err_errno(e, errno, "state dir %s", o->dir);
	if (!S_ISDIR(st.st_mode) || (st.st_mode & 077) || st.st_uid != geteuid())
		return bt_err_set(e, BT_PERMISSION_DENIED, "state dir %s: must be a directory of ours with mode 0700",
				  o->dir);
	s->ns = bt_xstrdup(o->ns);
	s->id = bt_xstrdup(o->id);
	s->dir = bt_xstrdup(o->dir);
	s->runtime = resolve_runtime(o->runtime ? o->runtime : "runc", e);
	if (s->runtime == NULL)
		return -1;
	s->runtime_root = o->root ? bt_xstrdup(o->root) : NULL;
	return 0;
}

/* Waits for the shim's word on the ready pipe; the starter's exit status. */
static int starter_wait(pid_t child, int rfd, const char *sock)
{
	int ws;
	while (waitpid(child, &ws, 0) < 0 && errno == EINTR)
		;
	char msg[BT_ERR_MSG_MAX + 8];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(rfd, msg + len, sizeof(msg) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (len += (size_t)n) == sizeof(msg) - 1)
			break;
	}
	msg[len] = '\0';
	if (len > 0 && msg[0] == '\0') {
		printf("%s\n", sock);
		return 0;
	}
	fprintf(stderr, "berth-shim: %s\n", len ? msg : "the shim exited during start-up");
	return 1;
}

/* The detached shim's set-up; on error the message goes to the starter. */
static int shim_setup(shim *s, bt_err *e)
{
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return bt_err_errno(e, errno, "prctl(PR_SET_CHILD_SUBREAPER)");
	s->dirfd = open(s->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0)
		return bt_err_errno(e, errno, "open %s", s->dir);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	s->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->signal_fd < 0)
		return bt_err_errno(e, errno, "signalfd");
	_cleanup_free_ char *sock = bt_xasprintf("%s/" BT_SHIM_SOCKET, s->dir);
	s->listen_fd = bt_seqrpc_listen(sock, e);
	if (s->listen_fd < 0)
		return -1;
	_cleanup_free_ char *pidfile = bt_xasprintf("%s/" BT_SHIM_PIDFILE, s->dir);
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (bt_write_file_atomic(pidfile, pid, (size_t)n, 0600, e) < 0) {
		unlink(sock);
		return -1;
	}
	return 0;
}

/* stdio to /dev/null and DIR/shim.log; every inherited fd closed but keep. */
static int shim_detach_fds(const char *dir, int keep)
{
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	_cleanup_free_ char *logp = bt_xasprintf("%s/" BT_SHIM_LOG, dir);
	int log = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (nul < 0 || log < 0)
		return -1;
	keep = fcntl(keep, F_DUPFD_CLOEXEC, 3);
	if (keep < 0 || dup2(nul, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
		return -1;
	if (dup2(keep, 3) < 0 || fcntl(3, F_SETFD, FD_CLOEXEC) < 0)
		return -1;
	if (syscall(SYS_close_range, 4U, ~0U, 0) < 0)
		for (int fd = 4; fd < 1024; fd++)
			close(fd);
	return 3;
}

/* Everything the context holds, for a clean exit (and sanitizer builds). */
static void shim_ctx_free(shim *s)
{
	while (s->procs)
		shim_proc_free(s, s->procs);
	while (s->jobs) {
		shim_job *j = s->jobs;
		s->jobs = j->next;
		shim_job_free(j);
	}
	while (s->conns) {
		shim_conn *c = s->conns;
		s->conns = c->next;
		close(c->fd);
		free(c);
	}
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->signal_fd >= 0)
		close(s->signal_fd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->pfds);
	free(s->pwhat);
	free(s->pkind);
	free(s->ns);
	free(s->id);
	free(s->dir);
	free(s->runtime);
	free(s->runtime_root);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "namespace", required_argument, NULL, 'n' }, { "id", required_argument, NULL, 'i' },
		{ "state-dir", required_argument, NULL, 'd' }, { "runtime", required_argument, NULL, 'r' },
		{ "runtime-root", required_argument, NULL, 'R' }, { "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },            { NULL, 0, NULL, 0 },
	};
	shim_opts o = { 0 };
	int c;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': o.ns = optarg; break;
		case 'i': o.id = optarg; break;
		case 'd': o.dir = optarg; break;
		case 'r': o.runtime = optarg; break;
		case 'R': o.root = optarg; break;
		case 'f': o.foreground = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	shim s = { .dirfd = -1, .listen_fd = -1, .signal_fd = -1 };
	bt_err e = { 0 };
	if (check_opts(&o, &s, &e) < 0) {
		fprintf(stderr, "berth-shim: %s\n", e.msg);
		shim_ctx_free(&s);
		return 1;
	}
	_cleanup_free_ char *sock = bt_xasprintf("%s/" BT_SHIM_SOCKET, s.dir);
	int ready = -1;
	if (!o.foreground) {
		int pfd[2];
		if (pipe2(pfd, O_CLOEXEC) < 0) {
			perror("berth-shim: pipe");
			return 1;
		}
		fflush(NULL);
		pid_t child = fork();
		if (child < 0) {
			perror("berth-shim: fork");
			return 1;
		}
		if (child > 0) {
			close(pfd[1]);
			int rc = starter_wait(child, pfd[0], sock);
			close(pfd[0]);
			shim_ctx_free(&s);
			return rc;
		}
		close(pfd[0]);
		if (setsid() < 0)
			_exit(1);
		pid_t grand = fork();
		if (grand != 0)
			_exit(grand < 0);
		if (chdir("/") < 0 || (ready = shim_detach_fds(s.dir, pfd[1])) < 0) {
			dprintf(pfd[1], "detach: %s", strerror(errno));
			_exit(1);
		}
	}
	if (shim_setup(&s, &e) < 0) {
		if (ready >= 0)
			dprintf(ready, "%s", e.msg);
		else
			fprintf(stderr, "berth-shim: %s\n", e.msg);
		shim_ctx_free(&s);
		return 1;
	}
	if (ready >= 0) {
		bt_write_all(ready, "", 1);
		close(ready);
	} else {
		printf("%s\n", sock);
		fflush(stdout);
	}
	int rc = shim_loop_run(&s, &e) < 0 ? 1 : 0;
	if (rc)
		fprintf(stderr, "berth-shim: %s: %s\n", s.id, e.msg);
	_cleanup_free_ char *pidfile = bt_xasprintf("%s/" BT_SHIM_PIDFILE, s.dir);
	unlink(sock);
	unlink(pidfile);
	shim_ctx_free(&s);
	return rc;
}
