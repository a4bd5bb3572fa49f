/*
 * bt_shimstate — the files berth-shim keeps in its state directory that a
 * task service reads back (after its own restart, or after a shim died):
 * exit records and pid files.  Layout in docs/tasks.md.
 *
 * An exit record is text, one key=value per line:
 *   pid=1234
 *   exit_status=137
 *   exited_at_ns=1764351431123456789
 * written durably (temp file, fsync, rename, fsync of the directory).
 */
#ifndef BT_SHIMSTATE_H
#define BT_SHIMSTATE_H

#include <stdint.h>

#include "bt_err.h"

#define BT_SHIM_SOCKET "shim.sock"
#define BT_SHIM_PIDFILE "shim.pid"
#define BT_SHIM_LOG "shim.log"
#define BT_SHIM_INIT_PID "init.pid"
#define BT_SHIM_INIT_EXIT "init.exit"
/* per exec: exec-<id>.json (process spec), exec-<id>.pid, exec-<id>.exit */

typedef struct bt_shim_exit {
	int pid;
	int exit_status;
	int64_t exited_at_ns;
} bt_shim_exit;

/* Writes the record to path durably. */
int bt_shim_exit_write(const char *path, const bt_shim_exit *x, bt_err *e);
/* Reads a record; NOT_FOUND when there is none (the process has not exited
 * as far as the shim recorded), INVALID_ARGUMENT when it is malformed. */
int bt_shim_exit_read(const char *path, bt_shim_exit *x, bt_err *e);
/* Reads a pid file (decimal, optional newline). */
int bt_shim_pid_read(const char *path, int *pid, bt_err *e);

#endif
