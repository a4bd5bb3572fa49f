/*
 * task_metrics — a container's resource use read from the cgroups of its
 * init process: cgroup v1 controllers (cpuacct, memory, pids, freezer) or
 * the v2 hierarchy (cpu.stat, memory.current/max, pids, cgroup.freeze).
 */
#ifndef TASK_METRICS_H
#define TASK_METRICS_H

#include <stdint.h>
#include <sys/types.h>

#include "bt_err.h"

typedef struct task_metrics {
	int cgroup_version;
	uint64_t cpu_usage_ns, cpu_user_ns, cpu_system_ns;
	uint64_t memory_usage, memory_limit; /* limit 0: none */
	uint64_t pids_current, pids_limit;   /* limit 0: none */
	char freezer[16];
	char cgroup[512];
} task_metrics;

/* Reads the metrics of pid's cgroups; root is where cgroups are mounted
 * (NULL: /sys/fs/cgroup).  NOT_FOUND when the process is gone. */
int task_metrics_read(const char *root, pid_t pid, task_metrics *m, bt_err *e);

/* The file counting OOM kills in pid's memory cgroup (v1 memory.oom_control,
 * v2 memory.events), or NULL; caller frees. */
char *task_oom_file(const char *root, pid_t pid);
/* Its oom_kill count (0 when it cannot be read). */
uint64_t task_oom_count(const char *file);

#endif
