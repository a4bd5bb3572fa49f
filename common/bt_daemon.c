/*
 * bt_daemon — flags, signals and service manager notifications for berth daemons.
 */
#define _GNU_SOURCE
#include "bt_daemon.h"

#include "bt_events.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "bt_log.h"
#include "bt_util.h"

static const bt_loop *signal_loop;
static atomic_int watchdog_stop;

/* The service manager's notification socket ($NOTIFY_SOCKET), taken out of
 * the environment at start so that no child inherits it: runc reads it as
 * a request to wait for the container's own READY=1, and `runc start` under
 * a berth-shim of a berth-taskd started by systemd then never returns. */
static char notify_socket[sizeof(((struct sockaddr_un *)0)->sun_path)];

static void notify_take(void)
{
	const char *s = getenv("NOTIFY_SOCKET");

	notify_socket[0] = '\0';
	if (s && (s[0] == '/' || s[0] == '@') && strlen(s) < sizeof(notify_socket))
		snprintf(notify_socket, sizeof(notify_socket), "%s", s);
	else if (s && *s)
		bt_log_warn("NOTIFY_SOCKET \"%s\": not a unix socket path; systemd will not hear from this daemon", s);
	unsetenv("NOTIFY_SOCKET");
}

/* sd_notify(3) to the socket notify_take kept; best effort, as sd_notify. */
static void notify(const char *msg)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(notify_socket);
	int fd;

	if (n == 0)
		return;
	memcpy(sa.sun_path, notify_socket, n);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		bt_log_debug("notify %s: %s", notify_socket, strerror(errno));
	close(fd);
}

static void on_signal(int sig)
{
	(void)sig;
	if (signal_loop)
		signal_loop->stop(signal_loop->arg);
}

int bt_daemon_init(const char *name, const char *summary, int argc, char **argv, bt_daemon_args *args,
		   bt_config **cfg, bt_err *e)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },  { "root", required_argument, NULL, 'R' },
		{ "run", required_argument, NULL, 'r' },     { "address", required_argument, NULL, 'a' },
		{ "log-level", required_argument, NULL, 'l' }, { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },       { NULL, 0, NULL, 0 },
	};
	const char *log_level = NULL;
	int c;

	bt_tune_malloc();
	bt_log_init(name);
	notify_take();
	args->address = NULL;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:a:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			setenv("BERTH_CONFIG", optarg, 1);
			break;
		case 'R':
			setenv("BERTH_ROOT", optarg, 1);
			break;
		case 'r':
			setenv("BERTH_RUN", optarg, 1);
			break;
		case 'a':
			args->address = optarg;
			break;
		case 'l':
			log_level = optarg;
			break;
		case 'h':
			printf("Usage: %s [OPTIONS]\n%s\n\n"
			       "  -c, --config FILE    configuration file (default %s; env BERTH_CONFIG)\n"
			       "      --root DIR       state directory (env BERTH_ROOT)\n"
			       "      --run DIR        runtime directory (env BERTH_RUN)\n"
			       "  -a, --address EP     endpoint to bind instead of the configured one\n"
			       "      --log-level L    error, warn, info or debug (env BERTH_LOG_LEVEL)\n"
			       "  -h, --help           this help\n"
			       "      --version        print the version\n",
			       name, summary, BT_CONFIG_DEFAULT_PATH);
			return 1;
		case 'V':
			printf("%s %s (protocol %u)\n", name, BERTH_VERSION, BT_PROTOCOL_VERSION);
			return 1;
		default:
			return bt_err_set(e, BT_INVALID_ARGUMENT, "unknown option (see %s --help)", name);
		}
	}
	if (optind < argc)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "unexpected argument \"%s\" (see %s --help)", argv[optind],
				  name);
	if (bt_config_load(cfg, e) < 0)
		return -1;
	if (!getenv("BERTH_LOG_LEVEL") || !*getenv("BERTH_LOG_LEVEL")) {
		if (bt_log_set_level_name(bt_config_str(*cfg, "log.level")) < 0)
			bt_log_warn("config: unknown log.level \"%s\"", bt_config_str(*cfg, "log.level"));
	}
	if (log_level && bt_log_set_level_name(log_level) < 0)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "--log-level %s: expected error, warn, info or debug",
				  log_level);
	/* a gateway holds a descriptor per client: take the hard limit (systemd's soft one is 1024) */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			bt_log_warn("raise the open files limit to %llu: %s", (unsigned long long)rl.rlim_max,
				    strerror(errno));
	}
	bt_events_open(*cfg, name);
	return 0;
}

typedef struct watchdog_arg {
	const bt_loop *loop;
	uint64_t usec;
} watchdog_arg;

/* Pings systemd at half the interval, as sd_watchdog_enabled(3) advises, but
 * only while the server loop is turning: a stuck loop gets no pings and
 * systemd restarts the daemon. */
static void *watchdog_main(void *p)
{
	watchdog_arg a = *(watchdog_arg *)p;
	int64_t stale_ms = (int64_t)(a.usec / 1000) / 2;

	free(p);
	while (!atomic_load(&watchdog_stop)) {
		if (bt_mono_ms() - a.loop->last_tick(a.loop->arg) < BT_MAX(stale_ms, 1000))
			notify("WATCHDOG=1");
		usleep((useconds_t)BT_MIN(a.usec / 2, 1000000ULL));
	}
	return NULL;
}

int bt_daemon_run_loop(const bt_loop *loop, const char *status, bt_err *e)
{
	struct sigaction sa = { 0 };
	uint64_t wd_usec = 0;
	pthread_t wd;
	bool wd_running = false;
	int rc;

	signal_loop = loop;
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	atomic_store(&watchdog_stop, 0);
	if (sd_watchdog_enabled(1, &wd_usec) > 0 && wd_usec > 0) {
		watchdog_arg *arg = bt_xmalloc(sizeof(*arg));
		arg->loop = loop;
		arg->usec = wd_usec;
		if (pthread_create(&wd, NULL, watchdog_main, arg) == 0)
			wd_running = true;
		else
			free(arg);
	}
	char ready[512];
	snprintf(ready, sizeof(ready), "READY=1\nSTATUS=%s\nMAINPID=%d", status ? status : "serving", (int)getpid());
	notify(ready);
	bt_log_info("serving on %s", loop->endpoint);
	rc = loop->run(loop->arg, e);
	notify("STOPPING=1");
	bt_log_info("stopping");
	atomic_store(&watchdog_stop, 1);
	if (wd_running)
		pthread_join(wd, NULL);
	signal_loop = NULL;
	return rc;
}

static int server_run(void *arg, bt_err *e)
{
	return bt_server_run(arg, e);
}

static void server_stop(void *arg)
{
	bt_server_stop(arg);
}

static int64_t server_tick(void *arg)
{
	return bt_server_last_tick(arg);
}

int bt_daemon_serve(bt_server *srv, const char *status, bt_err *e)
{
	bt_loop loop = {
		.run = server_run,
		.stop = server_stop,
		.last_tick = server_tick,
		.arg = srv,
		.endpoint = bt_server_endpoint(srv),
	};
	return bt_daemon_run_loop(&loop, status, e);
}
