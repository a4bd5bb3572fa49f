/*
 * bt_log — the log of a berth process: lines on stderr, or structured
 * entries in the journal when systemd started the process with its stderr
 * connected to journald (JOURNAL_STREAM names stderr's device and inode).
 */
#ifndef BT_LOG_H
#define BT_LOG_H

#include "bt_err.h"

enum bt_log_level { BT_LOG_ERR = 3, BT_LOG_WARN = 4, BT_LOG_INFO = 6, BT_LOG_DEBUG = 7 };

/* Names the process in every line; level from BERTH_LOG_LEVEL (error, warn, info, debug) or info. */
void bt_log_init(const char *ident);
/* Sets the level from a name; returns -1 for an unknown name. */
int bt_log_set_level_name(const char *name);
void bt_log_set_level(int level);
int bt_log_get_level(void);

void bt_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define bt_log_err(...) bt_log(BT_LOG_ERR, __VA_ARGS__)
#define bt_log_warn(...) bt_log(BT_LOG_WARN, __VA_ARGS__)
#define bt_log_info(...) bt_log(BT_LOG_INFO, __VA_ARGS__)
#define bt_log_debug(...) bt_log(BT_LOG_DEBUG, __VA_ARGS__)

#endif
