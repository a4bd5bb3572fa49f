/*
 * bt_daemon — what every berth daemon's main() does around its server:
 * common flags, logging set-up, signals, and systemd notification
 * (READY=1 once the socket is bound and state recovered, WATCHDOG=1 pings
 * while the loop runs, STOPPING=1 on the way out).
 */
#ifndef BT_DAEMON_H
#define BT_DAEMON_H

#include "bt_config.h"
#include "bt_err.h"
#include "bt_server.h"

typedef struct bt_daemon_args {
	const char *address; /* --address: override the endpoint to bind */
} bt_daemon_args;

/* Parses the common flags (--config, --root, --run, --address, --log-level,
 * --help, --version), initialises logging and loads the configuration.
 * Returns 0 to go on, 1 when the process should exit 0 (help/version), -1 on error. */
int bt_daemon_init(const char *name, const char *summary, int argc, char **argv, bt_daemon_args *args,
		   bt_config **cfg, bt_err *e);

/* A main loop the daemon helpers can drive. */
typedef struct bt_loop {
	int (*run)(void *arg, bt_err *e);  /* serves until stop */
	void (*stop)(void *arg);           /* async-signal-safe */
	int64_t (*last_tick)(void *arg);   /* monotonic ms of the last turn */
	void *arg;
	const char *endpoint;              /* for the log */
} bt_loop;

/* Runs loop until SIGTERM/SIGINT, notifying systemd; returns the loop's result. */
int bt_daemon_run_loop(const bt_loop *loop, const char *status, bt_err *e);
/* bt_daemon_run_loop for a bt_server. */
int bt_daemon_serve(bt_server *srv, const char *status, bt_err *e);

#endif
