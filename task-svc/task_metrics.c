/*
 * task_metrics — cgroup files of a container, v1 or v2.
 */
#define _GNU_SOURCE
#include "task_metrics.h"

#include <errno.h>
#include <inttypes.h>
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

int task_metrics_read(const char *root, pid_t pid, task_metrics *m, bt_err *e)
{
	memset(m, 0, sizeof(*m));
	if (!root)
		root = "/sys/fs/cgroup";
	_cleanup_free_ char *cg = bt_xasprintf("/proc/%d/cgroup", (int)pid);
	_cleanup_fclose_ FILE *f = fopen(cg, "re");
	if (!f)
		return errno == ENOENT ? bt_err_set(e, BT_NOT_FOUND, "process %d: gone", (int)pid)
				       : bt_err_errno(e, errno, "open %s", cg);
	char line[1024];
	char *v2 = NULL;
	long ticks = sysconf(_SC_CLK_TCK);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c1 = *c2 = '\0';
		const char *ctrls = c1 + 1, *path = c2 + 1;
		if (*ctrls == '\0') {
			free(v2);
			v2 = bt_xstrdup(path);
			continue;
		}
		_cleanup_free_ char *dir = bt_xasprintf("%s/%s%s", root, ctrls, path);
		char list[256];
		snprintf(list, sizeof(list), ",%s,", ctrls);
		if (strstr(list, ",cpuacct,")) {
			m->cgroup_version = 1;
			m->cpu_usage_ns = read_u64(dir, "cpuacct.usage");
			if (ticks > 0) {
				m->cpu_user_ns = read_key(dir, "cpuacct.stat", "user") * (1000000000ULL / (uint64_t)ticks);
				m->cpu_system_ns =
					read_key(dir, "cpuacct.stat", "system") * (1000000000ULL / (uint64_t)ticks);
			}
		}
		if (strstr(list, ",memory,")) {
			m->cgroup_version = 1;
			m->memory_usage = read_u64(dir, "memory.usage_in_bytes");
			m->memory_limit = read_u64(dir, "memory.limit_in_bytes");
		}
		if (strstr(list, ",pids,")) {
			m->cgroup_version = 1;
			m->pids_current = read_u64(dir, "pids.current");
			m->pids_limit = read_u64(dir, "pids.max");
		}
		if (strstr(list, ",freezer,")) {
			m->cgroup_version = 1;
			read_word(dir, "freezer.state", m->freezer, sizeof(m->freezer));
			snprintf(m->cgroup, sizeof(m->cgroup), "%s", path);
		}
	}
	if (m->cgroup_version == 0 && v2) {
		/* pure v2: the unified hierarchy at root */
		_cleanup_free_ char *dir = bt_xasprintf("%s%s", root, v2);
		m->cgroup_version = 2;
		snprintf(m->cgroup, sizeof(m->cgroup), "%s", v2);
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
	free(v2);
	if (m->cgroup_version == 0)
		return bt_err_set(e, BT_NOT_FOUND, "process %d: no cgroup found", (int)pid);
	return 0;
}

char *task_oom_file(const char *root, pid_t pid)
{
	_cleanup_free_ char *cg = bt_xasprintf("/proc/%d/cgroup", (int)pid);
	_cleanup_fclose_ FILE *f = fopen(cg, "re");
	char line[1024];
	char *v2 = NULL, *v1 = NULL;

	if (!root)
		root = "/sys/fs/cgroup";
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c1 = *c2 = '\0';
		char list[256];
		snprintf(list, sizeof(list), ",%s,", c1 + 1);
		if (!v1 && strstr(list, ",memory,"))
			v1 = bt_xasprintf("%s/memory%s/memory.oom_control", root, c2 + 1);
		else if (!v2 && c1[1] == '\0')
			v2 = bt_xasprintf("%s%s/memory.events", root, c2 + 1);
	}
	if (v1) {
		free(v2);
		return v1;
	}
	if (v2 && access(v2, R_OK) == 0)
		return v2;
	free(v2);
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
