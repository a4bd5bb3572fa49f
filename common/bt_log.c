/*
 * bt_log — stderr or journald logging with a level filter.  Lines are
 * written with one write(2) each so concurrent threads never interleave.
 */
#define _GNU_SOURCE
#include "bt_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "bt_util.h"

static char log_ident[64] = "berth";
static int log_level = BT_LOG_INFO;
static int log_journal;

static int journal_connected(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int bt_log_set_level_name(const char *name)
{
	static const struct {
		const char *name;
		int level;
	} levels[] = {
		{ "error", BT_LOG_ERR }, { "warn", BT_LOG_WARN }, { "warning", BT_LOG_WARN },
		{ "info", BT_LOG_INFO }, { "debug", BT_LOG_DEBUG },
	};
	for (size_t i = 0; i < BT_ARRAY_LEN(levels); i++) {
		if (strcmp(name, levels[i].name) == 0) {
			log_level = levels[i].level;
			return 0;
		}
	}
	return -1;
}

void bt_log_init(const char *ident)
{
	const char *lvl = getenv("BERTH_LOG_LEVEL");

	snprintf(log_ident, sizeof(log_ident), "%s", ident);
	log_journal = journal_connected();
	if (lvl && *lvl)
		bt_log_set_level_name(lvl);
}

void bt_log_set_level(int level)
{
	log_level = level;
}

int bt_log_get_level(void)
{
	return log_level;
}

void bt_log(int level, const char *fmt, ...)
{
	static const char *const names[] = { [BT_LOG_ERR] = "error", [BT_LOG_WARN] = "warn",
					     [BT_LOG_INFO] = "info", [BT_LOG_DEBUG] = "debug" };
	char msg[2048];
	char line[2304];
	char ts[48];
	va_list ap;
	int n;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_journal) {
		sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", level, "SYSLOG_IDENTIFIER=%s", log_ident,
				NULL);
		return;
	}
	bt_time_fmt(bt_now_ns(), ts, sizeof(ts));
	n = snprintf(line, sizeof(line), "%.23sZ %s[%d]: %s: %s\n", ts, log_ident, (int)getpid(),
		     level >= 0 && level <= BT_LOG_DEBUG && names[level] ? names[level] : "log", msg);
	if (n > (int)sizeof(line))
		n = (int)sizeof(line);
	if (n > 0)
		(void)!write(STDERR_FILENO, line, (size_t)n);
}
