/*
 * cli_tasks — `berth tasks start|ls|kill|exec|ps|pause|resume|metrics|update|
 * rm|attach|wait`, following ctr's verbs and flags.
 *
 * Stdio flows through FIFOs the CLI makes in a private temporary directory
 * (as ctr's cio does): the shim opens them by path, the CLI copies its own
 * stdin into one and the others to its stdout and stderr.  With -t the
 * CLI's terminal goes raw and its size follows SIGWINCH.  A foreground
 * task's exit code is the CLI's; `wait` blocks until the task exits and
 * exits with its code.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "bt_util.h"
#include "cli.h"

#define IO_PREFIX "berth-io."

/* --- stdio ----------------------------------------------------------------------- */

void cli_cio_close(cli_cio *io)
{
	int *fds[] = { &io->fd_in, &io->fd_out, &io->fd_err };
	for (int i = 0; i < 3; i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
	if (!io->keep && io->dir[0]) {
		unlink(io->in);
		unlink(io->out);
		unlink(io->err);
		rmdir(io->dir);
	}
}

/* FIFOs in a new private directory; the CLI's ends are opened at once so
 * that neither side waits for the other. */
int cli_cio_new(cli_cio *io, bool terminal, bool with_stdin, bool keep)
{
	memset(io, 0, sizeof(*io));
	io->fd_in = io->fd_out = io->fd_err = -1;
	io->terminal = terminal;
	io->keep = keep;
	if (snprintf(io->dir, sizeof(io->dir), "%s/" IO_PREFIX "XXXXXX", cli_tmpdir()) >= (int)sizeof(io->dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (!mkdtemp(io->dir))
		return -1;
	snprintf(io->out, sizeof(io->out), "%s/stdout", io->dir);
	if (mkfifo(io->out, 0600) < 0 || (io->fd_out = open(io->out, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
		goto fail;
	if (!terminal) {
		snprintf(io->err, sizeof(io->err), "%s/stderr", io->dir);
		if (mkfifo(io->err, 0600) < 0 || (io->fd_err = open(io->err, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
			goto fail;
	}
	if (with_stdin) {
		snprintf(io->in, sizeof(io->in), "%s/stdin", io->dir);
		if (mkfifo(io->in, 0600) < 0 || (io->fd_in = open(io->in, O_RDWR | O_CLOEXEC)) < 0)
			goto fail;
	}
	return 0;
fail:;
	int saved = errno;
	io->keep = false;
	cli_cio_close(io);
	errno = saved;
	return -1;
}

void cli_cio_none(cli_cio *io, bool terminal)
{
	memset(io, 0, sizeof(*io));
	io->fd_in = io->fd_out = io->fd_err = -1;
	io->terminal = terminal;
}

berth_stdio cli_cio_stdio(const cli_cio *io)
{
	berth_stdio s = { .in = io->in, .out = io->out, .err = io->err, .terminal = io->terminal };
	return s;
}

/* What the stdin thread works with.  It may sit in read(0) long after the
 * session is over (nothing can interrupt it), so it owns this: its own copy
 * of the FIFO's end and of the names, freed by whichever lets go last. */
typedef struct stdin_job {
	atomic_int refs;   /* the session's and the thread's */
	atomic_bool over;  /* the process exited: nothing more to pass on */
	int fd;
	cli_ctx *ctx;      /* main's: lives until the process exits */
	char *id, *exec_id;
} stdin_job;

static void stdin_job_put(stdin_job *j)
{
	if (!j || atomic_fetch_sub(&j->refs, 1) != 1)
		return;
	close(j->fd);
	free(j->id);
	free(j->exec_id);
	free(j);
}

/* What the copying threads share. */
typedef struct session {
	cli_ctx *ctx;
	const char *id, *exec_id;
	cli_cio *io;
	int done_pipe[2]; /* the waiter writes when the process exited */
	uint32_t exit_status;
	int wait_rc;
	berth_error wait_err;
	stdin_job *in;    /* NULL without a stdin thread */
} session;

static void *waiter_main(void *arg)
{
	session *s = arg;
	berth_client *c = cli_client_new(s->ctx, &s->wait_err);
	s->wait_rc = -1;
	if (c) {
		/* a restart of the services in between is not the task's exit */
		for (int tries = 0; tries < 30; tries++) {
			s->wait_rc = berth_task_wait(c, NULL, s->id, s->exec_id, &s->exit_status, NULL, &s->wait_err);
			if (s->wait_rc == 0 || !s->wait_err.transport)
				break;
			sleep(1);
		}
		berth_client_free(&c);
	}
	if (s->in)
		atomic_store(&s->in->over, true);
	char x = 1;
	if (write(s->done_pipe[1], &x, 1) < 0)
		s->wait_rc = -1;
	return NULL;
}

static void *stdin_main(void *arg)
{
	stdin_job *j = arg;
	char buf[16384];
	bool eof = false;
	while (!atomic_load(&j->over)) {
		ssize_t n = read(0, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			eof = true;
			break;
		}
		if (bt_write_all(j->fd, buf, (size_t)n) < 0)
			break;
	}
	if (eof && !atomic_load(&j->over)) {
		berth_error err;
		berth_client *c = cli_client_new(j->ctx, &err);
		if (c) {
			/* once the process has exited there is no stdin left to close (and
			 * its task or exec may be gone already): only an error before that
			 * is one */
			if (berth_task_close_stdin(c, NULL, j->id, j->exec_id, &err) < 0 && !atomic_load(&j->over) &&
			    err.code != BERTH_NOT_FOUND)
				fprintf(stderr, "%s: close stdin: %s\n", j->ctx->prog, err.message);
			berth_client_free(&c);
		}
	}
	stdin_job_put(j);
	return NULL;
}

/* Copies what is in fd to out; returns -1 at end of stream. */
static int pump(int fd, int out)
{
	char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			if (bt_write_all(out, buf, (size_t)n) < 0)
				return -1;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		return -1;
	}
}

static volatile sig_atomic_t got_winch;
static int sig_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char b = (unsigned char)sig;
	if (sig == SIGWINCH)
		got_winch = 1;
	if (sig_pipe[1] >= 0 && write(sig_pipe[1], &b, 1) < 0) {
		/* nothing to do */
	}
	errno = saved;
}

/* Gives the process's terminal the size of ours (if ours has one). */
void cli_send_size(berth_client *c, const char *id, const char *exec_id)
{
	struct winsize ws;
	berth_error err;
	if (ioctl(0, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		berth_task_resize(c, NULL, id, exec_id, ws.ws_col, ws.ws_row, &err);
}

/*
 * Runs the copy loop of a started process until it exits: stdin on a
 * thread, output here, the exit from a waiter thread.  Signals (INT, TERM,
 * HUP, QUIT) are passed to the process unless it has a terminal.
 * Returns the exit status, or -1 after printing why.
 */
int cli_session_run(cli_ctx *ctx, berth_client *c, const char *id, const char *exec_id, cli_cio *io, bool with_stdin)
{
	session s = { .ctx = ctx, .id = id, .exec_id = exec_id, .io = io };
	struct termios saved;
	bool raw = false;
	pthread_t wt, it;
	bool it_started = false;
	if (pipe2(s.done_pipe, O_CLOEXEC) < 0 || pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return cli_errorf(ctx, "pipe: %s", strerror(errno)), -1;
	if (io->terminal && isatty(0) && tcgetattr(0, &saved) == 0) {
		struct termios t = saved;
		cfmakeraw(&t);
		raw = tcsetattr(0, TCSANOW, &t) == 0;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGWINCH, &sa, NULL);
	if (!io->terminal) {
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
		sigaction(SIGQUIT, &sa, NULL);
	}
	if (io->terminal)
		cli_send_size(c, id, exec_id);
	if (with_stdin && io->fd_in >= 0) {
		stdin_job *j = bt_xzalloc(sizeof(*j));
		atomic_init(&j->refs, 2);
		j->fd = fcntl(io->fd_in, F_DUPFD_CLOEXEC, 3);
		j->ctx = ctx;
		j->id = bt_xstrdup(id);
		j->exec_id = exec_id ? bt_xstrdup(exec_id) : NULL;
		if (j->fd >= 0 && pthread_create(&it, NULL, stdin_main, j) == 0) {
			it_started = true;
			s.in = j;
		} else {
			atomic_init(&j->refs, 1);
			stdin_job_put(j);
		}
	}
	if (pthread_create(&wt, NULL, waiter_main, &s) != 0) {
		if (it_started) {
			atomic_store(&s.in->over, true);
			pthread_detach(it);
			stdin_job_put(s.in);
		}
		return cli_errorf(ctx, "cannot start a thread"), -1;
	}
	bool exited = false;
	int out_fd = io->fd_out, err_fd = io->fd_err;
	while (!exited) {
		struct pollfd p[4] = { { .fd = s.done_pipe[0], .events = POLLIN },
				       { .fd = sig_pipe[0], .events = POLLIN },
				       { .fd = out_fd, .events = POLLIN },
				       { .fd = err_fd, .events = POLLIN } };
		if (poll(p, 4, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			exited = true;
		if (p[1].revents) {
			unsigned char sig;
			while (read(sig_pipe[0], &sig, 1) == 1) {
				berth_error err;
				if (sig == SIGWINCH)
					cli_send_size(c, id, exec_id);
				else if (berth_task_kill(c, NULL, id, exec_id, sig, false, &err) < 0)
					fprintf(stderr, "%s: forward signal %d: %s\n", ctx->prog, sig, err.message);
			}
		}
		if (out_fd >= 0 && p[2].revents && pump(out_fd, 1) < 0)
			out_fd = -1;
		if (err_fd >= 0 && p[3].revents && pump(err_fd, 2) < 0)
			err_fd = -1;
	}
	pthread_join(wt, NULL);
	/* the shim copied everything out before it announced the exit */
	if (out_fd >= 0)
		pump(out_fd, 1);
	if (err_fd >= 0)
		pump(err_fd, 2);
	if (raw)
		tcsetattr(0, TCSANOW, &saved);
	if (it_started) {
		atomic_store(&s.in->over, true);
		pthread_detach(it); /* it may sit in read(0) for ever: it frees the job */
		stdin_job_put(s.in);
	}
	close(s.done_pipe[0]);
	close(s.done_pipe[1]);
	if (s.wait_rc < 0) {
		cli_fail(ctx, &s.wait_err);
		return -1;
	}
	return (int)s.exit_status;
}

/* --- start ------------------------------------------------------------------------ */

typedef struct run_args {
	bool tty, detach, null_io;
	const char *exec_id;
	cli_ctx *ctx;
} run_args;

static const cli_opt start_opts[] = {
	{ "tty", 't', NULL, "give the process a terminal" },
	{ "detach", 'd', NULL, "return once started (its stdio FIFOs stay for attach)" },
	{ "null-io", 0, NULL, "stdio to /dev/null" },
	{ NULL, 0, NULL, NULL },
};

static int start_opt(void *arg, int idx, const char *val)
{
	run_args *a = arg;
	(void)val;
	if (idx == 0)
		a->tty = true;
	else if (idx == 1)
		a->detach = true;
	else if (idx == 2)
		a->null_io = true;
	return 0;
}

static int tasks_start(cli_ctx *ctx, int argc, char **argv)
{
	run_args a = { .ctx = ctx };
	berth_error err;
	cli_cio io;
	uint32_t pid;
	int first = cli_parse(ctx, "tasks start", "[OPTIONS] ID",
			      "Create and start the task of container ID; without -d, wait for it, pass stdio and exit "
			      "with its code (the task is deleted then).",
			      start_opts, argc, argv, start_opt, &a);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first != 1)
		return cli_usage_error(ctx, "tasks start", "expected an ID");
	const char *id = argv[first];
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (a.null_io)
		cli_cio_none(&io, a.tty);
	else if (cli_cio_new(&io, a.tty, !a.detach, a.detach) < 0) {
		return cli_errorf(ctx, "stdio FIFOs: %s", strerror(errno));
	}
	berth_stdio st = cli_cio_stdio(&io);
	if (berth_task_create(c, NULL, id, &st, &pid, &err) < 0) {
		io.keep = false;
		cli_cio_close(&io);
		return cli_fail(ctx, &err);
	}
	/* the terminal exists once created: sized before the process runs */
	if (a.tty)
		cli_send_size(c, id, NULL);
	if (berth_task_start(c, NULL, id, NULL, &pid, &err) < 0) {
		int rc = cli_fail(ctx, &err);
		berth_task_delete(c, NULL, id, NULL, NULL, NULL, &err);
		io.keep = false;
		cli_cio_close(&io);
		return rc;
	}
	if (a.detach) {
		cli_cio_close(&io);
		printf("%u\n", pid);
		return 0;
	}
	int status = cli_session_run(ctx, c, id, NULL, &io, true);
	if (berth_task_delete(c, NULL, id, NULL, NULL, NULL, &err) < 0)
		cli_fail(ctx, &err);
	cli_cio_close(&io);
	return status < 0 ? CLI_EXIT_FAIL : status;
}

/* --- exec ------------------------------------------------------------------------- */

static const cli_opt exec_opts[] = {
	{ "exec-id", 0, "ID", "the exec's id (required)" },
	{ "tty", 't', NULL, "give the process a terminal" },
	{ "detach", 'd', NULL, "return once started" },
	{ "cwd", 0, "DIR", "working directory" },
	{ NULL, 0, NULL, NULL },
};

typedef struct exec_args {
	const char *exec_id, *cwd;
	bool tty, detach;
} exec_args;

static int exec_opt(void *arg, int idx, const char *val)
{
	exec_args *a = arg;
	if (idx == 0)
		a->exec_id = val;
	else if (idx == 1)
		a->tty = true;
	else if (idx == 2)
		a->detach = true;
	else if (idx == 3)
		a->cwd = val;
	return 0;
}

/* The container's process with other args: the exec's process spec. */
static char *exec_process(const berth_container *ctr, char **args, int n, bool tty, const char *cwd)
{
	json_error_t je;
	json_t *spec = json_loads(ctr->spec, 0, &je);
	json_t *proc = json_object_get(spec, "process");
	proc = json_is_object(proc) ? json_deep_copy(proc) : json_object();
	json_decref(spec);
	json_t *arr = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(arr, json_string(args[i]));
	json_object_set_new(proc, "args", arr);
	json_object_set_new(proc, "terminal", json_boolean(tty));
	/* an exec's terminal is made when it starts: its size goes with the process */
	struct winsize ws;
	if (tty && ioctl(0, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		json_object_set_new(proc, "consoleSize", json_pack("{s:i, s:i}", "height", (int)ws.ws_row, "width",
								   (int)ws.ws_col));
	else
		json_object_del(proc, "consoleSize");
	if (cwd)
		json_object_set_new(proc, "cwd", json_string(cwd));
	char *s = json_dumps(proc, JSON_COMPACT);
	json_decref(proc);
	return s;
}

static int tasks_exec(cli_ctx *ctx, int argc, char **argv)
{
	exec_args a = { 0 };
	berth_error err;
	berth_container ctr;
	cli_cio io;
	int first = cli_parse(ctx, "tasks exec", "--exec-id ID [OPTIONS] CONTAINER CMD [ARG...]",
			      "Run another process in a running task; exit with its code.", exec_opts, argc, argv,
			      exec_opt, &a);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (!a.exec_id)
		return cli_usage_error(ctx, "tasks exec", "--exec-id is required");
	if (argc - first < 2)
		return cli_usage_error(ctx, "tasks exec", "expected a CONTAINER and a command");
	const char *id = argv[first];
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_container_get(c, NULL, id, &ctr, &err) < 0)
		return cli_fail(ctx, &err);
	_cleanup_free_ char *proc = exec_process(&ctr, argv + first + 1, argc - first - 1, a.tty, a.cwd);
	berth_container_clear(&ctr);
	if (cli_cio_new(&io, a.tty, !a.detach, false) < 0)
		return cli_errorf(ctx, "stdio FIFOs: %s", strerror(errno));
	berth_stdio st = cli_cio_stdio(&io);
	if (a.detach) {
		st.in = st.out = st.err = "";
	}
	if (berth_task_exec(c, NULL, id, a.exec_id, proc, &st, &err) < 0) {
		cli_cio_close(&io);
		return cli_fail(ctx, &err);
	}
	uint32_t pid;
	if (berth_task_start(c, NULL, id, a.exec_id, &pid, &err) < 0) {
		int rc = cli_fail(ctx, &err);
		berth_task_delete(c, NULL, id, a.exec_id, NULL, NULL, &err);
		cli_cio_close(&io);
		return rc;
	}
	if (a.detach) {
		cli_cio_close(&io);
		printf("%u\n", pid);
		return 0;
	}
	int status = cli_session_run(ctx, c, id, a.exec_id, &io, true);
	if (berth_task_delete(c, NULL, id, a.exec_id, NULL, NULL, &err) < 0 && status >= 0)
		cli_fail(ctx, &err);
	cli_cio_close(&io);
	return status < 0 ? CLI_EXIT_FAIL : status;
}

/* --- attach, wait ------------------------------------------------------------------- */

static int tasks_attach(cli_ctx *ctx, int argc, char **argv)
{
	berth_error err;
	berth_process p;
	int first = cli_parse(ctx, "tasks attach", "ID", "Copy a running task's stdio until it exits; exit with its code.",
			      NULL, argc, argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first != 1)
		return cli_usage_error(ctx, "tasks attach", "expected an ID");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_task_get(c, NULL, argv[first], NULL, &p, &err) < 0)
		return cli_fail(ctx, &err);
	cli_cio io = { .fd_in = -1, .fd_out = -1, .fd_err = -1, .terminal = p.terminal, .keep = true };
	if (*p.out && (io.fd_out = open(p.out, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
		fprintf(stderr, "%s: stdout %s: %s\n", ctx->prog, p.out, strerror(errno));
	if (*p.err && (io.fd_err = open(p.err, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
		fprintf(stderr, "%s: stderr %s: %s\n", ctx->prog, p.err, strerror(errno));
	if (*p.in && (io.fd_in = open(p.in, O_RDWR | O_CLOEXEC)) < 0)
		fprintf(stderr, "%s: stdin %s: %s\n", ctx->prog, p.in, strerror(errno));
	berth_process_clear(&p);
	int status = cli_session_run(ctx, c, argv[first], NULL, &io, io.fd_in >= 0);
	cli_cio_close(&io);
	return status < 0 ? CLI_EXIT_FAIL : status;
}

static int tasks_wait(cli_ctx *ctx, int argc, char **argv)
{
	exec_args a = { 0 };
	berth_error err;
	uint32_t status;
	static const cli_opt opts[] = { { "exec-id", 0, "ID", "wait for an exec" }, { NULL, 0, NULL, NULL } };
	int first = cli_parse(ctx, "tasks wait", "[--exec-id ID] ID", "Wait for a task to exit; exit with its code.",
			      opts, argc, argv, exec_opt, &a);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first != 1)
		return cli_usage_error(ctx, "tasks wait", "expected an ID");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_task_wait(c, NULL, argv[first], a.exec_id, &status, NULL, &err) < 0)
		return cli_fail(ctx, &err);
	return (int)status;
}

/* --- ls, ps, kill, pause, resume, metrics, rm --------------------------------------------- */

typedef struct {
	cli_ctx *ctx;
	bool quiet;
	cli_format fmt;
} list_args;

static int list_opt(void *arg, int idx, const char *val)
{
	list_args *a = arg;
	if (idx == 0)
		a->quiet = true;
	else
		return cli_parse_format(a->ctx, val, &a->fmt);
	return 0;
}

static int format_opt(void *arg, int idx, const char *val)
{
	(void)idx;
	return cli_parse_format(((list_args *)arg)->ctx, val, &((list_args *)arg)->fmt);
}

static json_t *task_json(const berth_process *p)
{
	json_t *o = json_pack("{s:s, s:I, s:s, s:b}", "id", p->container_id, "pid", (json_int_t)p->pid, "status",
			      berth_task_status_name(p->status), "terminal", p->terminal);
	if (p->status == BERTH_TASK_STOPPED) {
		char t[64];
		json_object_set_new(o, "exitStatus", json_integer(p->exit_status));
		json_object_set_new(o, "exitedAt", json_string(bt_time_fmt(p->exited_at, t, sizeof(t))));
	}
	if (*p->reason)
		json_object_set_new(o, "reason", json_string(p->reason));
	return o;
}

static int tasks_ls(cli_ctx *ctx, int argc, char **argv)
{
	list_args a = { .ctx = ctx, .fmt = CLI_FMT_TABLE };
	berth_process *v = NULL;
	size_t n = 0;
	berth_error err;
	static const cli_opt opts[] = { { "quiet", 'q', NULL, "print only the ids" },
					{ "format", 0, "FORMAT", "table (default) or json" },
					{ NULL, 0, NULL, NULL } };
	int first = cli_parse(ctx, "tasks ls", "[OPTIONS] [FILTER...]", "List tasks (filters: container_id, status, pid).",
			      opts, argc, argv, list_opt, &a);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_task_list(c, NULL, (const char *const *)argv + first, (size_t)(argc - first), &v, &n, &err) < 0)
		return cli_fail(ctx, &err);
	if (a.fmt == CLI_FMT_JSON && !a.quiet) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, task_json(&v[i]));
		cli_print_json(arr);
		berth_processes_free(v, n);
		return 0;
	}
	static const char *const hdr[] = { "TASK", "PID", "STATUS" };
	cli_table *t = cli_table_new(3, hdr);
	for (size_t i = 0; i < n; i++) {
		char pid[16], st[300];
		snprintf(pid, sizeof(pid), "%u", v[i].pid);
		if (v[i].status == BERTH_TASK_STOPPED)
			snprintf(st, sizeof(st), "STOPPED (exit %u)%s%s", v[i].exit_status, *v[i].reason ? ": " : "",
				 v[i].reason);
		else
			snprintf(st, sizeof(st), "%s", berth_task_status_name(v[i].status));
		for (char *p = st; *p && *p != ' '; p++)
			*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		const char *row[] = { v[i].container_id, pid, st };
		cli_table_row(t, row);
	}
	cli_table_print(t, stdout, a.quiet);
	cli_table_free(&t);
	berth_processes_free(v, n);
	return 0;
}

static int tasks_ps(cli_ctx *ctx, int argc, char **argv)
{
	list_args a = { .ctx = ctx, .fmt = CLI_FMT_TABLE };
	berth_pid_info *v = NULL;
	size_t n = 0;
	berth_error err;
	static const cli_opt opts[] = { { "quiet", 'q', NULL, "print only the pids" },
					{ "format", 0, "FORMAT", "table (default) or json" },
					{ NULL, 0, NULL, NULL } };
	int first = cli_parse(ctx, "tasks ps", "[OPTIONS] ID", "List the processes of a task.", opts, argc, argv,
			      list_opt, &a);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first != 1)
		return cli_usage_error(ctx, "tasks ps", "expected an ID");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_task_pids(c, NULL, argv[first], &v, &n, &err) < 0)
		return cli_fail(ctx, &err);
	if (a.fmt == CLI_FMT_JSON && !a.quiet) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, json_pack("{s:I, s:s}", "pid", (json_int_t)v[i].pid, "execId",
							     v[i].exec_id));
		cli_print_json(arr);
		berth_pid_infos_free(v, n);
		return 0;
	}
	static const char *const hdr[] = { "PID", "EXEC" };
	cli_table *t = cli_table_new(2, hdr);
	for (size_t i = 0; i < n; i++) {
		char pid[16];
		snprintf(pid, sizeof(pid), "%u", v[i].pid);
		const char *row[] = { pid, *v[i].exec_id ? v[i].exec_id : "-" };
		cli_table_row(t, row);
	}
	cli_table_print(t, stdout, a.quiet);
	cli_table_free(&t);
	berth_pid_infos_free(v, n);
	return 0;
}

static int parse_signal(const char *s)
{
	static const struct {
		const char *name;
		int num;
	} sigs[] = { { "HUP", SIGHUP },	  { "INT", SIGINT },   { "QUIT", SIGQUIT }, { "KILL", SIGKILL },
		     { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "TERM", SIGTERM }, { "STOP", SIGSTOP },
		     { "CONT", SIGCONT }, { "ALRM", SIGALRM }, { "WINCH", SIGWINCH } };
	uint64_t v;
	if (bt_parse_u64(s, &v) == 0)
		return v > 0 && v < 65 ? (int)v : -1;
	if (!strncasecmp(s, "SIG", 3))
		s += 3;
	for (size_t i = 0; i < BT_ARRAY_LEN(sigs); i++)
		if (!strcasecmp(s, sigs[i].name))
			return sigs[i].num;
	return -1;
}

typedef struct kill_args {
	int sig;
	bool all;
	const char *exec_id;
	cli_ctx *ctx;
} kill_args;

static int kill_opt(void *arg, int idx, const char *val)
{
	kill_args *a = arg;
	if (idx == 0 && (a->sig = parse_signal(val)) < 0)
		return cli_usage_error(a->ctx, "tasks kill", "--signal %s: not a signal", val), -2;
	if (idx == 1)
		a->all = true;
	if (idx == 2)
		a->exec_id = val;
	return 0;
}

static int tasks_kill(cli_ctx *ctx, int argc, char **argv)
{
	kill_args a = { .sig = SIGTERM, .ctx = ctx };
	berth_error err;
	static const cli_opt opts[] = { { "signal", 's', "SIG", "signal name or number (default SIGTERM)" },
					{ "all", 'a', NULL, "every process of the container" },
					{ "exec-id", 0, "ID", "signal an exec" },
					{ NULL, 0, NULL, NULL } };
	int first = cli_parse(ctx, "tasks kill", "[OPTIONS] ID", "Signal a task.", opts, argc, argv, kill_opt, &a);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first != 1)
		return cli_usage_error(ctx, "tasks kill", "expected an ID");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_task_kill(c, NULL, argv[first], a.exec_id, a.sig, a.all, &err) < 0)
		return cli_fail(ctx, &err);
	return 0;
}

static int simple(cli_ctx *ctx, int argc, char **argv, const char *path, const char *summary,
		  int (*fn)(berth_client *, const char *, const char *, berth_error *))
{
	berth_error err;
	int first = cli_parse(ctx, path, "ID", summary, NULL, argc, argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first != 1)
		return cli_usage_error(ctx, path, "expected an ID");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (fn(c, NULL, argv[first], &err) < 0)
		return cli_fail(ctx, &err);
	return 0;
}

static int tasks_pause(cli_ctx *ctx, int argc, char **argv)
{
	return simple(ctx, argc, argv, "tasks pause", "Freeze every process of a task.", berth_task_pause);
}

static int tasks_resume(cli_ctx *ctx, int argc, char **argv)
{
	return simple(ctx, argc, argv, "tasks resume", "Thaw a paused task.", berth_task_resume);
}

static int tasks_metrics(cli_ctx *ctx, int argc, char **argv)
{
	cli_format fmt = CLI_FMT_TABLE;
	berth_task_metrics m;
	berth_error err;
	static const cli_opt opts[] = { { "format", 0, "FORMAT", "table (default) or json" }, { NULL, 0, NULL, NULL } };
	list_args a = { .ctx = ctx, .fmt = CLI_FMT_TABLE };
	int first = cli_parse(ctx, "tasks metrics", "[--format json] ID", "Print a task's cgroup metrics.", opts, argc,
			      argv, format_opt, &a);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	fmt = a.fmt;
	if (argc - first != 1)
		return cli_usage_error(ctx, "tasks metrics", "expected an ID");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_task_metrics_get(c, NULL, argv[first], &m, &err) < 0)
		return cli_fail(ctx, &err);
	if (fmt == CLI_FMT_JSON) {
		json_t *o = json_pack("{s:s, s:i, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "id", argv[first],
				      "cgroup_version", m.cgroup_version, "cgroup", m.cgroup, "cpu_usage_ns",
				      (json_int_t)m.cpu_usage_ns, "cpu_user_ns", (json_int_t)m.cpu_user_ns, "cpu_system_ns",
				      (json_int_t)m.cpu_system_ns, "memory_usage", (json_int_t)m.memory_usage,
				      "memory_limit", (json_int_t)m.memory_limit, "pids_current",
				      (json_int_t)m.pids_current, "pids_limit", (json_int_t)m.pids_limit, "freezer_state",
				      m.freezer_state);
		cli_print_json(o);
		return 0;
	}
	printf("ID              %s\nCGROUP          %s (v%d)\n", argv[first], m.cgroup, m.cgroup_version);
	printf("CPU_USAGE_NS    %llu\nCPU_USER_NS     %llu\nCPU_SYSTEM_NS   %llu\n", (unsigned long long)m.cpu_usage_ns,
	       (unsigned long long)m.cpu_user_ns, (unsigned long long)m.cpu_system_ns);
	printf("MEMORY_USAGE    %llu\nMEMORY_LIMIT    %llu\n", (unsigned long long)m.memory_usage,
	       (unsigned long long)m.memory_limit);
	printf("PIDS_CURRENT    %llu\nPIDS_LIMIT      %llu\nFREEZER_STATE   %s\n", (unsigned long long)m.pids_current,
	       (unsigned long long)m.pids_limit, m.freezer_state);
	return 0;
}

typedef struct update_args {
	json_t *res; /* OCI LinuxResources */
} update_args;

/* Sets res.GROUP.KEY to the number in val (with size: also "64MiB" etc.), or
 * to -1 where minus_one allows it ("no limit"); -1 for a bad value (cli_parse
 * says so). */
static int update_set(update_args *a, const char *group, const char *key, const char *val, bool size, bool minus_one)
{
	uint64_t v;
	json_int_t n;
	if (minus_one && !strcmp(val, "-1"))
		n = -1;
	else if ((size ? bt_parse_size(val, &v) : bt_parse_u64(val, &v)) < 0 || v > INT64_MAX)
		return -1;
	else
		n = (json_int_t)v;
	json_t *g = json_object_get(a->res, group);
	if (!g) {
		g = json_object();
		json_object_set_new(a->res, group, g);
	}
	json_object_set_new(g, key, json_integer(n));
	return 0;
}

static int update_opt(void *arg, int idx, const char *val)
{
	update_args *a = arg;
	switch (idx) {
	case 0: return update_set(a, "memory", "limit", val, true, true);
	case 1: return update_set(a, "cpu", "quota", val, false, true);
	case 2: return update_set(a, "cpu", "period", val, false, false);
	case 3: return update_set(a, "pids", "limit", val, false, true);
	default: return 0;
	}
}

static int tasks_update(cli_ctx *ctx, int argc, char **argv)
{
	update_args a = { .res = json_object() };
	berth_error err;
	static const cli_opt opts[] = { { "memory-limit", 0, "BYTES", "memory limit, bytes or 64MiB etc. (-1: none)" },
					{ "cpu-quota", 0, "N", "CFS quota in microseconds per period (-1: none)" },
					{ "cpu-period", 0, "N", "CFS period in microseconds" },
					{ "pids-limit", 0, "N", "most processes at once (-1: none)" },
					{ NULL, 0, NULL, NULL } };
	int first = cli_parse(ctx, "tasks update", "[OPTIONS] ID", "Change the resource limits of a running task.", opts,
			      argc, argv, update_opt, &a);
	size_t n_set = json_object_size(a.res);
	_cleanup_free_ char *res = json_dumps(a.res, JSON_COMPACT);
	json_decref(a.res);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first != 1)
		return cli_usage_error(ctx, "tasks update", "expected an ID");
	if (n_set == 0)
		return cli_usage_error(ctx, "tasks update",
				       "nothing to update (give --memory-limit, --cpu-quota, --cpu-period or --pids-limit)");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_task_update(c, NULL, argv[first], res, &err) < 0)
		return cli_fail(ctx, &err);
	return 0;
}

/* Removes a FIFO directory this CLI made for a detached task. */
static void remove_cio(const char *path)
{
	_cleanup_free_ char *dir = bt_xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return;
	*slash = '\0';
	/* only a directory the CLI made: …/berth-io.XXXXXX */
	const char *base = strrchr(dir, '/');
	if (!base || !bt_startswith(base + 1, IO_PREFIX))
		return;
	static const char *const names[] = { "stdin", "stdout", "stderr" };
	for (size_t i = 0; i < BT_ARRAY_LEN(names); i++) {
		_cleanup_free_ char *f = bt_xasprintf("%s/%s", dir, names[i]);
		unlink(f);
	}
	rmdir(dir);
}

static int tasks_rm(cli_ctx *ctx, int argc, char **argv)
{
	bool force = false;
	berth_error err;
	static const cli_opt opts[] = { { "force", 'f', NULL, "kill the task first" }, { NULL, 0, NULL, NULL } };
	int first = cli_parse(ctx, "tasks rm", "[-f] ID...", "Delete stopped tasks (their exit status is printed).", opts,
			      argc, argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	for (int i = 1; i < first; i++)
		if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--force"))
			force = true;
	if (argc - first < 1)
		return cli_usage_error(ctx, "tasks rm", "expected an ID");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	int rc = 0;
	for (int i = first; i < argc; i++) {
		berth_process p = { 0 };
		uint32_t status;
		bool have = berth_task_get(c, NULL, argv[i], NULL, &p, &err) == 0;
		if (force && have && p.status != BERTH_TASK_STOPPED) {
			if (berth_task_kill(c, NULL, argv[i], NULL, SIGKILL, true, &err) < 0 ||
			    berth_task_wait(c, NULL, argv[i], NULL, &status, NULL, &err) < 0)
				cli_fail(ctx, &err);
		}
		if (berth_task_delete(c, NULL, argv[i], NULL, &status, NULL, &err) < 0) {
			rc = cli_fail(ctx, &err);
		} else {
			printf("%s: exit status %u\n", argv[i], status);
			if (have) {
				remove_cio(p.out);
				remove_cio(p.in);
			}
		}
		berth_process_clear(&p);
	}
	return rc;
}

const cli_cmd cli_tasks_cmds[] = {
	{ "start", tasks_start, NULL, "Create and start a container's task", NULL, { "run" } },
	{ "ls", tasks_ls, NULL, "List tasks", NULL, { "list" } },
	{ "kill", tasks_kill, NULL, "Signal a task", NULL, { 0 } },
	{ "exec", tasks_exec, NULL, "Run another process in a task", NULL, { 0 } },
	{ "ps", tasks_ps, NULL, "List a task's processes", NULL, { 0 } },
	{ "pause", tasks_pause, NULL, "Freeze a task", NULL, { 0 } },
	{ "resume", tasks_resume, NULL, "Thaw a task", NULL, { 0 } },
	{ "metrics", tasks_metrics, NULL, "Print a task's cgroup metrics", NULL, { "metric" } },
	{ "update", tasks_update, NULL, "Change a task's resource limits", NULL, { 0 } },
	{ "rm", tasks_rm, NULL, "Delete stopped tasks", NULL, { "delete", "remove" } },
	{ "attach", tasks_attach, NULL, "Attach to a task's stdio", NULL, { 0 } },
	{ "wait", tasks_wait, NULL, "Wait for a task to exit and exit with its code", NULL, { 0 } },
	{ NULL, NULL, NULL, NULL, NULL, { 0 } },
};
