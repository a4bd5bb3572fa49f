/*
 * task_metrics — cgroup files of a container, v1 or v2.
 */
#define _GNU_SOURCE
#include "task_metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bt_util.h"

/* A file's first number ("max" → 0); 0 when the file is absent. */
static uint64_t read_u64(const char *dir, const char *file)
{
	_cleanup_free_ char *p = bt_xasprintf("%s/%s", dir, file);
	_cleanup_fclose_ FILE *f = fopen(p, "re");
	char buf[64];
	if (!f || !fgets(buf, sizeof(buf), f))
		return 0;
	uint64_t v = strtoull(buf, NULL, 10);
	/* v1 reports "no limit" as a huge page-rounded number */
	return v >= (UINT64_C(1) << 62) ? 0 : v;
}

/* The value of key in a "key value" file (cpu.stat, cpuacct.stat). */
static uint64_t read_key(const char *dir, const char *file, const char *key)
{
	_cleanup_free_ char *p = bt_xasprintf("%s/%s", dir, file);
	_cleanup_fclose_ FILE *f = fopen(p, "re");
	char line[256];
	size_t kl = strlen(key);
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, key, kl) == 0 && line[kl] == ' ')
			return strtoull(line + kl + 1, NULL, 10);
	return 0;
}

static void read_word(const char *dir, const char *file, char *out, size_t n)
{
	_cleanup_free_ char *p = bt_xasprintf("%s/%s", dir, file);
	_cleanup_fclose_ FILE *f = fopen(p, "re");
	out[0] = '\0';
	if (f && fgets(out, (int)n, f))
		out[strcspn(out, "\n")] = '\0';
}

/* Calls each(arg, controllers, path) for every line of pid's /proc/PID/cgroup
 * (controllers "" for the v2 hierarchy).  NOT_FOUND when the process is gone. */
static int cgroup_lines(pid_t pid, void (*each)(void *arg, const char *ctrls, const char *path), void *arg,
			bt_err *e)
{
	_cleanup_free_ char *cg = bt_xasprintf("/proc/%d/cgroup", (int)pid);
	_cleanup_fclose_ FILE *f = fopen(cg, "re");
	char line[1024];

	if (!f)
		return errno == ENOENT ? bt_err_set(e, BT_NOT_FOUND, "process %d: gone", (int)pid)
				       : bt_err_errno(e, errno, "open %s", cg);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c1 = *c2 = '\0';
		each(arg, c1 + 1, c2 + 1);
	}
	return 0;
}

/* Whether a comma-separated controller list names ctrl. */
static bool has_ctrl(const char *ctrls, const char *ctrl)
{
	char list[256], want[64];
	snprintf(list, sizeof(list), ",%s,", ctrls);
	snprintf(want, sizeof(want), ",%s,", ctrl);
	return strstr(list, want) != NULL;
}

typedef struct metrics_walk {
	const char *root;
	task_metrics *m;
	char *v2;
	long ticks;
} metrics_walk;

static void metrics_line(void *arg, const char *ctrls, const char *path)
{
	metrics_walk *w = arg;
	task_metrics *m = w->m;

	if (*ctrls == '\0') {
		free(w->v2);
		w->v2 = bt_xstrdup(path);
		return;
	}
	_cleanup_free_ char *dir = bt_xasprintf("%s/%s%s", w->root, ctrls, path);
	if (has_ctrl(ctrls, "cpuacct")) {
		m->cgroup_version = 1;
		m->cpu_usage_ns = read_u64(dir, "cpuacct.usage");
		if (w->ticks > 0) {
			m->cpu_user_ns = read_key(dir, "cpuacct.stat", "user") * (1000000000ULL / (uint64_t)w->ticks);
			m->cpu_system_ns = read_key(dir, "cpuacct.stat", "system") * (1000000000ULL / (uint64_t)w->ticks);
		}
	}
	if (has_ctrl(ctrls, "memory")) {
		m->cgroup_version = 1;
		m->memory_usage = read_u64(dir, "memory.usage_in_bytes");
		m->memory_limit = read_u64(dir, "memory.limit_in_bytes");
	}
	if (has_ctrl(ctrls, "pids")) {
		m->cgroup_version = 1;
		m->pids_current = read_u64(dir, "pids.current");
		m->pids_limit = read_u64(dir, "pids.max");
	}
	if (has_ctrl(ctrls, "freezer")) {
		m->cgroup_version = 1;
		read_word(dir, "freezer.state", m->freezer, sizeof(m->freezer));
		snprintf(m->cgroup, sizeof(m->cgroup), "%s", path);
	}
}

int task_metrics_read(const char *root, pid_t pid, task_metrics *m, bt_err *e)
{
	metrics_walk w = { .root = root ? root : "/sys/fs/cgroup", .m = m, .ticks = sysconf(_SC_CLK_TCK) };

	memset(m, 0, sizeof(*m));
	if (cgroup_lines(pid, metrics_line, &w, e) < 0)
		return -1;
	if (m->cgroup_version == 0 && w.v2) {
		/* pure v2: the unified hierarchy at root */
		_cleanup_free_ char *dir = bt_xasprintf("%s%s", w.root, w.v2);
		m->cgroup_version = 2;
		snprintf(m->cgroup, sizeof(m->cgroup), "%s", w.v2);
		m->cpu_usage_ns = read_key(dir, "cpu.stat", "usage_usec") * 1000;
		m->cpu_user_ns = read_key(dir, "cpu.stat", "user_usec") * 1000;
		m->cpu_system_ns = read_key(dir, "cpu.stat", "system_usec") * 1000;
		m->memory_usage = read_u64(dir, "memory.current");
		m->memory_limit = read_u64(dir, "memory.max");
		m->pids_current = read_u64(dir, "pids.current");
		m->pids_limit = read_u64(dir, "pids.max");
		char fz[8];
		read_word(dir, "cgroup.freeze", fz, sizeof(fz));
		snprintf(m->freezer, sizeof(m->freezer), "%s", strcmp(fz, "1") == 0 ? "FROZEN" : "THAWED");
	}
	free(w.v2);
	if (m->cgroup_version == 0)
		return bt_err_set(e, BT_NOT_FOUND, "process %d: no cgroup found", (int)pid);
	return 0;
}

typedef struct oom_walk {
	const char *root;
	char *v1, *v2;
} oom_walk;

static void oom_line(void *arg, const char *ctrls, const char *path)
{
	oom_walk *w = arg;
	if (!w->v1 && has_ctrl(ctrls, "memory"))
		w->v1 = bt_xasprintf("%s/memory%s/memory.oom_control", w->root, path);
	else if (!w->v2 && *ctrls == '\0')
		w->v2 = bt_xasprintf("%s%s/memory.events", w->root, path);
}

char *task_oom_file(const char *root, pid_t pid)
{
	oom_walk w = { .root = root ? root : "/sys/fs/cgroup" };
	bt_err e;

	if (cgroup_lines(pid, oom_line, &w, &e) == 0 && w.v1) {
		free(w.v2);
		return w.v1;
	}
	free(w.v1);
	if (w.v2 && access(w.v2, R_OK) == 0)
		return w.v2;
	free(w.v2);
	return NULL;
}

uint64_t task_oom_count(const char *file)
{
	_cleanup_free_ char *dir = bt_xstrdup(file);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return 0;
	*slash = '\0';
	return read_key(dir, slash + 1, "oom_kill");
}
