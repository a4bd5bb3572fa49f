/*
 * bt_seccomp — the default seccomp profile (see bt_seccomp.h).
 *
 * The profile is built as data: a base allowlist that any unprivileged
 * program needs, argument-conditional rules for the calls that are only safe
 * with some arguments (personality, socket, clone), per-architecture extras,
 * and additions for capabilities a container may be given.  Each name goes
 * through libseccomp first; the runtime would otherwise warn about, or
 * refuse, names the host cannot resolve.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "bt_seccomp.h"
#include "bt_util.h"

/* Calls every container may make. */
static const char *const base_allow[] = {
	"accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat", "capget", "capset",
	"chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres",
	"clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64",
	"close", "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create",
	"epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait",
	"epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat",
	"faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat",
	"fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr",
	"flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64",
	"fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv",
	"futex_wake", "futimesat", "get_robust_list", "get_thread_area", "getcpu", "getcwd", "getdents",
	"getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups",
	"getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
	"getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "getrusage", "getsid",
	"getsockname", "getsockopt", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
	"inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "io_destroy",
	"io_getevents", "io_pgetevents", "io_pgetevents_time64", "io_setup", "io_submit", "ioctl", "ioprio_get",
	"ioprio_set", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
	"lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek",
	"lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack", "membarrier",
	"memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2",
	"mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
	"mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap", "msgctl",
	"msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap", "name_to_handle_at",
	"nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2", "pause", "pidfd_open",
	"pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll",
	"ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease",
	"process_vm_readv", "process_vm_writev", "pselect6", "pselect6_time64", "pwrite64", "pwritev",
	"pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg",
	"recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
	"restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
	"rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
	"sched_get_priority_max", "sched_get_priority_min", "sched_getaffinity", "sched_getattr",
	"sched_getparam", "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
	"sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp",
	"select", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile",
	"sendfile64", "sendmmsg", "sendmsg", "sendto", "set_robust_list", "set_thread_area", "set_tid_address",
	"setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32",
	"setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
	"setresuid32", "setreuid", "setreuid32", "setrlimit", "setsid", "setsockopt", "setuid", "setuid32",
	"setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4",
	"sigprocmask", "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64", "statfs", "statfs64",
	"statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time",
	"timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
	"timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
	"timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink",
	"unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid",
	"waitpid", "write", "writev",
};

/* Extras by architecture family. */
static const char *const x86_allow[] = { "arch_prctl", "modify_ldt" };
static const char *const arm_allow[] = { "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2",
					 "breakpoint", "cacheflush", "set_tls" };

/* What a capability adds to the profile. */
typedef struct cap_extra {
	const char *cap;
	const char *const names[24];
} cap_extra;

static const cap_extra cap_extras[] = {
	{ "CAP_SYS_ADMIN",
	  { "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie",
	    "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl", "quotactl_fd",
	    "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare", NULL } },
	{ "CAP_SYS_BOOT", { "reboot", NULL } },
	{ "CAP_SYS_CHROOT", { "chroot", NULL } },
	{ "CAP_SYS_MODULE", { "delete_module", "init_module", "finit_module", NULL } },
	{ "CAP_SYS_PACCT", { "acct", NULL } },
	{ "CAP_SYS_PTRACE", { "kcmp", "pidfd_getfd", "process_madvise", "ptrace", NULL } },
	{ "CAP_SYS_RAWIO", { "iopl", "ioperm", NULL } },
	{ "CAP_SYS_TIME", { "settimeofday", "stime", "clock_settime", "clock_settime64", NULL } },
	{ "CAP_SYS_TTY_CONFIG", { "vhangup", NULL } },
	{ "CAP_SYS_NICE", { "get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node", NULL } },
	{ "CAP_SYSLOG", { "syslog", NULL } },
	{ "CAP_BPF", { "bpf", NULL } },
	{ "CAP_PERFMON", { "perf_event_open", NULL } },
	{ "CAP_DAC_READ_SEARCH", { "open_by_handle_at", NULL } },
};

/* personality(2) personas that are harmless: PER_LINUX, UNAME26,
 * PER_LINUX32, PER_LINUX32|UNAME26, and the query 0xffffffff. */
static const unsigned long personas[] = { 0x0, 0x8, 0x20000, 0x20008, 0xffffffff };

/* Namespace flags clone(2) may not carry without CAP_SYS_ADMIN. */
#define NS_FLAGS                                                                                      \
	((unsigned long)(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |   \
			 CLONE_NEWNET | CLONE_NEWCGROUP))

#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static const char *const arches_x86_64[] = { "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", NULL };
static const char *const arches_aarch64[] = { "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", NULL };

const char *const *bt_seccomp_host_arches(void)
{
	static const char *native[2];
	uint32_t a = seccomp_arch_native();

	if (a == SCMP_ARCH_X86_64)
		return arches_x86_64;
	if (a == SCMP_ARCH_AARCH64)
		return arches_aarch64;
	/* other hosts: their own architecture alone */
	static const struct {
		uint32_t tok;
		const char *name;
	} others[] = {
		{ SCMP_ARCH_X86, "SCMP_ARCH_X86" },           { SCMP_ARCH_ARM, "SCMP_ARCH_ARM" },
		{ SCMP_ARCH_PPC64LE, "SCMP_ARCH_PPC64LE" },   { SCMP_ARCH_S390X, "SCMP_ARCH_S390X" },
		{ SCMP_ARCH_RISCV64, "SCMP_ARCH_RISCV64" },   { SCMP_ARCH_MIPS64, "SCMP_ARCH_MIPS64" },
		{ SCMP_ARCH_MIPSEL64, "SCMP_ARCH_MIPSEL64" },
	};
	for (size_t i = 0; i < BT_ARRAY_LEN(others); i++)
		if (others[i].tok == a)
			native[0] = others[i].name;
	return native;
}

bool bt_seccomp_known(const char *name)
{
	const char *const *arches = bt_seccomp_host_arches();

	for (size_t i = 0; arches[i]; i++) {
		/* "SCMP_ARCH_X86_64" → libseccomp's "x86_64" */
		char lower[32];
		size_t k = 0;
		for (const char *p = arches[i] + strlen("SCMP_ARCH_"); *p && k + 1 < sizeof(lower); p++)
			lower[k++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
		lower[k] = '\0';
		uint32_t tok = seccomp_arch_resolve_name(lower);
		if (tok && seccomp_syscall_resolve_name_arch(tok, name) != __NR_SCMP_ERROR)
			return true;
	}
	return false;
}

/* A name list of the known names among v (or NULL when none is known). */
typedef struct names {
	json_t *arr;
	size_t *dropped;
} names;

static void add_name(names *n, const char *name)
{
	if (!bt_seccomp_known(name)) {
		if (n->dropped)
			(*n->dropped)++;
		return;
	}
	/* no duplicates: a name twice in one rule is refused by some runtimes */
	size_t i;
	json_t *v;
	json_array_foreach (n->arr, i, v)
		if (!strcmp(json_string_value(v), name))
			return;
	json_array_append_new(n->arr, json_string(name));
}

static json_t *rule(json_t *names_arr, const char *action)
{
	json_t *r = json_object();
	json_object_set_new(r, "names", names_arr);
	json_object_set_new(r, "action", json_string(action));
	return r;
}

static json_t *arg(unsigned index, unsigned long value, unsigned long value2, const char *op)
{
	json_t *a = json_object();
	json_object_set_new(a, "index", json_integer(index));
	json_object_set_new(a, "value", json_integer((json_int_t)value));
	json_object_set_new(a, "valueTwo", json_integer((json_int_t)value2));
	json_object_set_new(a, "op", json_string(op));
	return a;
}

/* Adds a one-name rule with one argument condition, when the name is known. */
static void add_cond(json_t *syscalls, const char *name, json_t *cond, size_t *dropped)
{
	if (!bt_seccomp_known(name)) {
		json_decref(cond);
		if (dropped)
			(*dropped)++;
		return;
	}
	json_t *r = rule(json_pack("[s]", name), "SCMP_ACT_ALLOW");
	json_object_set_new(r, "args", json_pack("[o]", cond));
	json_array_append_new(syscalls, r);
}

static bool has_cap(const char *const *caps, size_t n, const char *cap)
{
	for (size_t i = 0; i < n; i++)
		if (caps[i] && !strcmp(caps[i], cap))
			return true;
	return false;
}

/* ptrace is safe to allow from 4.8 on, when seccomp is rechecked after a tracer changes a call. */
static bool kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return false;
	return ma > major || (ma == major && mi >= minor);
}

json_t *bt_seccomp_default(const char *const *caps, size_t n_caps, size_t *n_dropped)
{
	size_t dropped = 0;
	json_t *p = json_object();
	json_t *syscalls = json_array();
	json_t *arches = json_array();
	const char *const *host = bt_seccomp_host_arches();
	names allow = { .arr = json_array(), .dropped = &dropped };

	json_object_set_new(p, "defaultAction", json_string("SCMP_ACT_ERRNO"));
	json_object_set_new(p, "defaultErrnoRet", json_integer(EPERM));
	for (size_t i = 0; host[i]; i++)
		json_array_append_new(arches, json_string(host[i]));
	json_object_set_new(p, "architectures", arches);

	for (size_t i = 0; i < BT_ARRAY_LEN(base_allow); i++)
		add_name(&allow, base_allow[i]);
	if (host == arches_x86_64)
		for (size_t i = 0; i < BT_ARRAY_LEN(x86_allow); i++)
			add_name(&allow, x86_allow[i]);
	if (host == arches_aarch64)
		for (size_t i = 0; i < BT_ARRAY_LEN(arm_allow); i++)
			add_name(&allow, arm_allow[i]);
	if (kernel_at_least(4, 8))
		add_name(&allow, "ptrace");
	for (size_t i = 0; i < BT_ARRAY_LEN(cap_extras); i++) {
		if (!has_cap(caps, n_caps, cap_extras[i].cap))
			continue;
		for (size_t k = 0; cap_extras[i].names[k]; k++)
			add_name(&allow, cap_extras[i].names[k]);
	}
	json_array_append_new(syscalls, rule(allow.arr, "SCMP_ACT_ALLOW"));

	/* personality: the harmless personas only (one rule each: conditions on
	 * one argument within a rule would be ANDed) */
	for (size_t i = 0; i < BT_ARRAY_LEN(personas); i++)
		add_cond(syscalls, "personality", arg(0, personas[i], 0, "SCMP_CMP_EQ"), &dropped);

	/* socket: every family but AF_ALG (kernel crypto) and AF_VSOCK */
	add_cond(syscalls, "socket", arg(0, AF_ALG, 0, "SCMP_CMP_LT"), &dropped);
	for (unsigned long fam = AF_ALG + 1; fam < AF_VSOCK; fam++)
		add_cond(syscalls, "socket", arg(0, fam, 0, "SCMP_CMP_EQ"), &dropped);
	add_cond(syscalls, "socket", arg(0, AF_VSOCK, 0, "SCMP_CMP_GT"), &dropped);

	if (!has_cap(caps, n_caps, "CAP_SYS_ADMIN")) {
		/* clone without namespace flags (its flags are argument 0 here:
		 * s390 is not among the architectures this profile lists) */
		add_cond(syscalls, "clone", arg(0, NS_FLAGS, 0, "SCMP_CMP_MASKED_EQ"), &dropped);
		/* clone3 cannot be filtered on its flags (they sit in memory):
		 * ENOSYS makes libc fall back to clone */
		if (bt_seccomp_known("clone3")) {
			json_t *r = rule(json_pack("[s]", "clone3"), "SCMP_ACT_ERRNO");
			json_object_set_new(r, "errnoRet", json_integer(ENOSYS));
			json_array_append_new(syscalls, r);
		} else {
			dropped++;
		}
	}
	json_object_set_new(p, "syscalls", syscalls);
	if (n_dropped)
		*n_dropped = dropped;
	return p;
}

static bool known_action(const char *a)
{
	static const char *const acts[] = { "SCMP_ACT_KILL",  "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
					    "SCMP_ACT_TRAP",  "SCMP_ACT_ERRNO",        "SCMP_ACT_TRACE",
					    "SCMP_ACT_ALLOW", "SCMP_ACT_LOG",          "SCMP_ACT_NOTIFY" };
	for (size_t i = 0; a && i < BT_ARRAY_LEN(acts); i++)
		if (!strcmp(a, acts[i]))
			return true;
	return false;
}

int bt_seccomp_check(const json_t *j, bt_err *e)
{
	size_t i, k;
	json_t *v, *s;

	if (!json_is_object(j))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "seccomp profile: not a JSON object");
	if (!known_action(json_string_value(json_object_get(j, "defaultAction"))))
		return bt_err_set(e, BT_INVALID_ARGUMENT,
				  "seccomp profile: defaultAction missing or not an action (SCMP_ACT_…)");
	v = json_object_get(j, "architectures");
	if (v && !json_is_array(v))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "seccomp profile: architectures is not an array");
	json_array_foreach (v, i, s)
		if (!json_is_string(s) || !bt_startswith(json_string_value(s), "SCMP_ARCH_"))
			return bt_err_set(e, BT_INVALID_ARGUMENT, "seccomp profile: architectures[%zu] is not SCMP_ARCH_…",
					  i);
	v = json_object_get(j, "syscalls");
	if (v && !json_is_array(v))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "seccomp profile: syscalls is not an array");
	json_array_foreach (v, i, s) {
		json_t *n = json_object_get(s, "names"), *name;
		if (!json_is_object(s) || !json_is_array(n) || json_array_size(n) == 0)
			return bt_err_set(e, BT_INVALID_ARGUMENT, "seccomp profile: syscalls[%zu] has no names", i);
		json_array_foreach (n, k, name)
			if (!json_is_string(name) || json_string_length(name) == 0)
				return bt_err_set(e, BT_INVALID_ARGUMENT,
						  "seccomp profile: syscalls[%zu].names[%zu] is not a name", i, k);
		if (!known_action(json_string_value(json_object_get(s, "action"))))
			return bt_err_set(e, BT_INVALID_ARGUMENT,
					  "seccomp profile: syscalls[%zu] has no action (SCMP_ACT_…)", i);
	}
	return 0;
}
