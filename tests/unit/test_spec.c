/*
 * test_spec — unit tests of the OCI runtime spec generator's pure parts:
 * users and groups resolved in a crafted root file system (names, groups,
 * numeric ids, ids out of range, negative ids, an /etc/passwd that is a
 * symlink out of the root, one too large to read, a FIFO), the default
 * seccomp profile (every name known to libseccomp, the filter loadable by
 * libseccomp), capabilities cut to a bounding set, and specs built from
 * image configs.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth_spec.h"
#include "bt_seccomp.h"
#include "bt_util.h"

/* Bounding set of this test host's kind: everything up to CAP_CHECKPOINT_RESTORE
 * except CAP_SYS_RESOURCE (24). */
#define BND_NO_RESOURCE (((1ull << 41) - 1) & ~(1ull << 24))

static char *tmp;     /* the test's scratch directory */
static char *root;    /* a root file system with passwd and group */
static char *outside; /* a directory beside it, standing for the host */

static void put(const char *dir, const char *rel, const char *data)
{
	_cleanup_free_ char *p = bt_xasprintf("%s/%s", dir, rel);
	bt_err e;
	_cleanup_free_ char *d = bt_xstrdup(p);
	*strrchr(d, '/') = '\0';
	assert_int_equal(bt_mkdir_p(d, 0755, &e), 0);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(data, f);
	fclose(f);
}

static char *mkroot(const char *name)
{
	char *d = bt_xasprintf("%s/%s", tmp, name);
	bt_err e;
	assert_int_equal(bt_mkdir_p(d, 0755, &e), 0);
	_cleanup_free_ char *etc = bt_xasprintf("%s/etc", d);
	assert_int_equal(bt_mkdir_p(etc, 0755, &e), 0);
	return d;
}

static int group_setup(void **state)
{
	(void)state;
	char t[] = "/tmp/bt-spec.XXXXXX";
	if (!mkdtemp(t))
		return -1;
	tmp = bt_xstrdup(t);
	root = bt_xasprintf("%s/root", tmp);
	outside = bt_xasprintf("%s/host", tmp);
	put(root, "etc/passwd",
	    "root:x:0:0:root:/root:/bin/sh\n"
	    "# a comment\n"
	    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	    "berth:x:1000:1000:berth:/home:/bin/sh\n"
	    "big:x:4294967295:1:too large:/:/bin/sh\n"
	    "huge:x:99999999999999999999:1::/:/bin/sh\n"
	    "neg:x:-5:1::/:/bin/sh\n"
	    "badgid:x:3000:-1::/:/bin/sh\n"
	    "max:x:4294967294:4294967294::/:/bin/sh\n"
	    "short:x\n");
	put(root, "etc/group",
	    "root:x:0:\n"
	    "nogroup:x:65534:\n"
	    "berth:x:1000:\n"
	    "extra:x:2000:berth\n"
	    "more:x:2001:nobody,berth,root\n"
	    "wrapped:x:4294967296:berth\n"
	    "neggroup:x:-3:berth\n");
	/* the "host": a passwd with an entry no image has */
	put(outside, "passwd", "hostonly:x:4321:4321::/:/bin/sh\nroot:x:0:0::/:/bin/sh\n");
	put(outside, "group", "hostgroup:x:4322:hostonly\n");
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	bt_err e;
	bt_rm_rf(tmp, &e);
	free(tmp);
	free(root);
	free(outside);
	return 0;
}

static int open_root(const char *dir)
{
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

/* Resolves user in dir (NULL: no rootfs) and expects uid, gid and the gids listed (ending with -1). */
static void user_ok(const char *dir, const char *user, uint32_t uid, uint32_t gid, ...)
{
	int fd = dir ? open_root(dir) : -1;
	berth_spec_user u;
	bt_err e = { 0 };
	va_list ap;
	size_t n = 0;

	if (berth_spec_resolve_user(fd, user, &u, &e) < 0)
		fail_msg("user %s refused: %s", user, e.msg);
	if (fd >= 0)
		close(fd);
	assert_int_equal(u.uid, uid);
	assert_int_equal(u.gid, gid);
	va_start(ap, gid);
	for (long g = va_arg(ap, long); g >= 0; g = va_arg(ap, long), n++) {
		if (n >= u.n_gids)
			fail_msg("user %s: only %zu additional gids", user, u.n_gids);
		assert_int_equal(u.gids[n], (uint32_t)g);
	}
	va_end(ap);
	assert_int_equal(u.n_gids, n);
	berth_spec_user_clear(&u);
}

/* Expects user refused with code, the message containing want. */
static void user_bad(const char *dir, const char *user, int code, const char *want)
{
	int fd = dir ? open_root(dir) : -1;
	berth_spec_user u;
	bt_err e = { 0 };

	if (berth_spec_resolve_user(fd, user, &u, &e) == 0)
		fail_msg("user %s accepted as %u:%u", user, u.uid, u.gid);
	if (fd >= 0)
		close(fd);
	if (e.code != code || !strstr(e.msg, want))
		fail_msg("user %s: got %s \"%s\", want %s containing \"%s\"", user, bt_code_name(e.code), e.msg,
			 bt_code_name(code), want);
}

static void test_user_names_and_numbers(void **state)
{
	(void)state;
	user_ok(root, "root", 0, 0, 0L, 2001L, -1L);
	user_ok(root, "0", 0, 0, 0L, 2001L, -1L);
	user_ok(root, "berth", 1000, 1000, 1000L, 2000L, 2001L, -1L);
	user_ok(root, "1000", 1000, 1000, 1000L, 2000L, 2001L, -1L);
	user_ok(root, "nobody", 65534, 65534, 65534L, 2001L, -1L);
	/* a uid without an entry: gid 0, no memberships */
	user_ok(root, "4242", 4242, 0, 0L, -1L);
	/* explicit groups, by number and by name */
	user_ok(root, "berth:5", 1000, 5, 5L, 2000L, 2001L, -1L);
	user_ok(root, "berth:extra", 1000, 2000, 2000L, 2001L, -1L);
	user_ok(root, "1000:nogroup", 1000, 65534, 65534L, 2000L, 2001L, -1L);
	user_ok(root, "4242:extra", 4242, 2000, 2000L, -1L);
	/* the largest id there is */
	user_ok(root, "max", 4294967294u, 4294967294u, 4294967294L, -1L);
	user_ok(root, "4294967294:4294967294", 4294967294u, 4294967294u, 4294967294L, -1L);
}

static void test_user_unknown(void **state)
{
	(void)state;
	user_bad(root, "nosuch", BT_NOT_FOUND, "\"nosuch\" is not in the image's /etc/passwd");
	user_bad(root, "berth:nosuch", BT_NOT_FOUND, "\"nosuch\" is not in the image's /etc/group");
	user_bad(root, "", BT_INVALID_ARGUMENT, "empty");
	user_bad(root, ":0", BT_INVALID_ARGUMENT, "USER or USER:GROUP");
	user_bad(root, "0:", BT_INVALID_ARGUMENT, "USER or USER:GROUP");
	/* a name that is no line of the file, only a part of one */
	user_bad(root, "x", BT_NOT_FOUND, "not in the image's /etc/passwd");
}

static void test_user_ids_out_of_range(void **state)
{
	(void)state;
	/* 2^32-1 is "no id" to the kernel; beyond, ids would wrap (to root) */
	user_bad(root, "4294967295", BT_OUT_OF_RANGE, "above the largest id");
	user_bad(root, "4294967296", BT_OUT_OF_RANGE, "above the largest id");
	user_bad(root, "99999999999999999999999999", BT_OUT_OF_RANGE, "above the largest id");
	user_bad(root, "0:4294967296", BT_OUT_OF_RANGE, "above the largest id");
	user_bad(NULL, "18446744073709551616", BT_OUT_OF_RANGE, "above the largest id");
	user_bad(root, "-1", BT_INVALID_ARGUMENT, "negative");
	user_bad(root, "0:-1", BT_INVALID_ARGUMENT, "negative");
	user_bad(NULL, "-0", BT_INVALID_ARGUMENT, "negative");
	/* entries of the image holding such ids are refused when chosen */
	user_bad(root, "big", BT_OUT_OF_RANGE, "above the largest id");
	user_bad(root, "huge", BT_OUT_OF_RANGE, "above the largest id");
	user_bad(root, "neg", BT_INVALID_ARGUMENT, "negative");
	user_bad(root, "badgid", BT_INVALID_ARGUMENT, "negative");
	user_bad(root, "0:wrapped", BT_OUT_OF_RANGE, "above the largest id");
	user_bad(root, "0:neggroup", BT_INVALID_ARGUMENT, "negative");
	/* … and memberships in groups with such ids are never wrapped in */
	user_ok(root, "berth", 1000, 1000, 1000L, 2000L, 2001L, -1L);
}

static void test_user_without_rootfs(void **state)
{
	(void)state;
	user_ok(NULL, "1000", 1000, 0, 0L, -1L);
	user_ok(NULL, "1000:1000", 1000, 1000, 1000L, -1L);
	user_bad(NULL, "berth", BT_FAILED_PRECONDITION, "needs the image's root file system");
	user_bad(NULL, "0:extra", BT_FAILED_PRECONDITION, "needs the image's root file system");
}

static void test_user_image_without_etc(void **state)
{
	(void)state;
	_cleanup_free_ char *r = mkroot("bare");
	user_ok(r, "1000", 1000, 0, 0L, -1L);
	user_bad(r, "berth", BT_NOT_FOUND, "the image has no /etc/passwd");
	user_bad(r, "0:berth", BT_NOT_FOUND, "the image has no /etc/group");
}

/* /etc/passwd a symlink to the host's file: read inside the root (where
 * it does not exist, or loops), never the host's. */
static void test_user_symlink_out_of_root(void **state)
{
	(void)state;
	_cleanup_free_ char *abs = mkroot("abs");
	_cleanup_free_ char *rel = mkroot("rel");
	_cleanup_free_ char *self = mkroot("self");
	_cleanup_free_ char *in = mkroot("in");
	_cleanup_free_ char *host_pw = bt_xasprintf("%s/passwd", outside);
	_cleanup_free_ char *host_gr = bt_xasprintf("%s/group", outside);
	_cleanup_free_ char *p = NULL;

	/* an absolute link naming the host's file */
	p = bt_xasprintf("%s/etc/passwd", abs);
	assert_int_equal(symlink(host_pw, p), 0);
	free(p);
	p = bt_xasprintf("%s/etc/group", abs);
	assert_int_equal(symlink(host_gr, p), 0);
	free(p);
	user_bad(abs, "hostonly", BT_NOT_FOUND, "the image has no /etc/passwd");
	user_bad(abs, "0:hostgroup", BT_NOT_FOUND, "the image has no /etc/group");
	/* the uid the host knows gets nothing of the host's entry */
	user_ok(abs, "4321", 4321, 0, 0L, -1L);

	/* a relative link climbing out with .. */
	p = bt_xasprintf("%s/etc/passwd", rel);
	_cleanup_free_ char *up = bt_xasprintf("../../../../../../../../..%s", host_pw);
	assert_int_equal(symlink(up, p), 0);
	free(p);
	user_bad(rel, "hostonly", BT_NOT_FOUND, "the image has no /etc/passwd");

	/* the literal /etc/passwd: inside the root it names itself, a loop */
	p = bt_xasprintf("%s/etc/passwd", self);
	assert_int_equal(symlink("/etc/passwd", p), 0);
	free(p);
	{
		int fd = open_root(self);
		berth_spec_user u;
		bt_err e = { 0 };
		assert_int_equal(berth_spec_resolve_user(fd, "root", &u, &e), -1);
		assert_non_null(strstr(e.msg, "/etc/passwd"));
		assert_null(strstr(e.msg, "not in the image"));
		close(fd);
	}

	/* an absolute link that stays inside the root is followed there */
	put(in, "etc/real/passwd", "inside:x:77:78::/:/bin/sh\nhostonly:x:5:5::/:/bin/sh\n");
	p = bt_xasprintf("%s/etc/passwd", in);
	assert_int_equal(symlink("/etc/real/passwd", p), 0);
	user_ok(in, "inside", 77, 78, 78L, -1L);
	/* the image's own idea of hostonly, not the host's 4321 */
	user_ok(in, "hostonly", 5, 5, 5L, -1L);
}

static void test_user_files_bounded(void **state)
{
	(void)state;
	_cleanup_free_ char *big = mkroot("bigpw");
	_cleanup_free_ char *fifo = mkroot("fifo");
	_cleanup_free_ char *dir = mkroot("dirpw");
	_cleanup_free_ char *p = bt_xasprintf("%s/etc/passwd", big);

	/* a sparse file past the bound: refused without reading it */
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)BERTH_SPEC_MAX_ETC + 1), 0);
	close(fd);
	user_bad(big, "root", BT_RESOURCE_EXHAUSTED, "larger than");
	user_bad(big, "0", BT_RESOURCE_EXHAUSTED, "larger than");

	/* a FIFO must not hang the lookup */
	free(p);
	p = bt_xasprintf("%s/etc/passwd", fifo);
	assert_int_equal(mkfifo(p, 0644), 0);
	user_bad(fifo, "root", BT_FAILED_PRECONDITION, "not a regular file");

	free(p);
	p = bt_xasprintf("%s/etc/passwd", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	user_bad(dir, "root", BT_FAILED_PRECONDITION, "not a regular file");
}

/* --- capabilities --------------------------------------------------------------- */

static bool strv_has(char *const *v, const char *s)
{
	for (size_t i = 0; v && v[i]; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

static void test_caps_bounded(void **state)
{
	(void)state;
	char **c = berth_spec_caps(BND_NO_RESOURCE, false);
	static const char *const want[] = { "CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FSETID",	"CAP_FOWNER",
					    "CAP_MKNOD",  "CAP_NET_RAW",      "CAP_SETGID",	"CAP_SETUID",
					    "CAP_SETFCAP", "CAP_SETPCAP",     "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
					    "CAP_KILL",   "CAP_AUDIT_WRITE" };
	assert_int_equal(bt_strv_len(c), BT_ARRAY_LEN(want));
	for (size_t i = 0; i < BT_ARRAY_LEN(want); i++)
		assert_true(strv_has(c, want[i]));
	bt_strv_free(c);

	/* a host without NET_RAW (13) and KILL (5): neither is asked for */
	c = berth_spec_caps(BND_NO_RESOURCE & ~(1ull << 13) & ~(1ull << 5), false);
	assert_int_equal(bt_strv_len(c), 12);
	assert_false(strv_has(c, "CAP_NET_RAW"));
	assert_false(strv_has(c, "CAP_KILL"));
	bt_strv_free(c);

	/* privileged: all the host grants, never SYS_RESOURCE when it lacks it */
	c = berth_spec_caps(BND_NO_RESOURCE, true);
	assert_int_equal(bt_strv_len(c), 40);
	assert_false(strv_has(c, "CAP_SYS_RESOURCE"));
	assert_true(strv_has(c, "CAP_SYS_ADMIN"));
	assert_true(strv_has(c, "CAP_CHECKPOINT_RESTORE"));
	bt_strv_free(c);

	c = berth_spec_caps(0, true);
	assert_int_equal(bt_strv_len(c), 0);
	bt_strv_free(c);

	/* this process's own set is read */
	assert_true(berth_spec_host_bounding() != 0);
}

/* --- seccomp ---------------------------------------------------------------------- */

static json_t *rule_for(json_t *prof, const char *name, const char *action)
{
	size_t i, k;
	json_t *r, *n;
	json_array_foreach (json_object_get(prof, "syscalls"), i, r) {
		if (action && strcmp(json_string_value(json_object_get(r, "action")), action))
			continue;
		json_array_foreach (json_object_get(r, "names"), k, n)
			if (!strcmp(json_string_value(n), name))
				return r;
	}
	return NULL;
}

/* The unconditional allowlist holds name. */
static bool allowed(json_t *prof, const char *name)
{
	size_t i, k;
	json_t *r, *n;
	json_array_foreach (json_object_get(prof, "syscalls"), i, r) {
		if (strcmp(json_string_value(json_object_get(r, "action")), "SCMP_ACT_ALLOW") ||
		    json_object_get(r, "args"))
			continue;
		json_array_foreach (json_object_get(r, "names"), k, n)
			if (!strcmp(json_string_value(n), name))
				return true;
	}
	return false;
}

static uint32_t action_of(json_t *r)
{
	const char *a = json_string_value(json_object_get(r, "action"));
	if (!strcmp(a, "SCMP_ACT_ALLOW"))
		return SCMP_ACT_ALLOW;
	if (!strcmp(a, "SCMP_ACT_ERRNO"))
		return SCMP_ACT_ERRNO((uint16_t)json_integer_value(json_object_get(r, "errnoRet")));
	fail_msg("unexpected action %s", a);
	return 0;
}

static enum scmp_compare op_of(const char *op)
{
	static const struct {
		const char *s;
		enum scmp_compare c;
	} ops[] = { { "SCMP_CMP_NE", SCMP_CMP_NE }, { "SCMP_CMP_LT", SCMP_CMP_LT }, { "SCMP_CMP_LE", SCMP_CMP_LE },
		    { "SCMP_CMP_EQ", SCMP_CMP_EQ }, { "SCMP_CMP_GE", SCMP_CMP_GE }, { "SCMP_CMP_GT", SCMP_CMP_GT },
		    { "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ } };
	for (size_t i = 0; i < BT_ARRAY_LEN(ops); i++)
		if (!strcmp(ops[i].s, op))
			return ops[i].c;
	fail_msg("unknown op %s", op);
	return SCMP_CMP_EQ;
}

/* Loads the profile into libseccomp as a runtime would (every arch, every
 * rule): no name may be unknown to all arches, no rule refused. */
static void load_into_libseccomp(json_t *prof)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	size_t i, k;
	json_t *r, *n, *a;

	assert_non_null(ctx);
	json_array_foreach (json_object_get(prof, "architectures"), i, a) {
		char lower[32];
		const char *s = json_string_value(a) + strlen("SCMP_ARCH_");
		size_t j = 0;
		for (; s[j] && j + 1 < sizeof(lower); j++)
			lower[j] = (char)(s[j] >= 'A' && s[j] <= 'Z' ? s[j] - 'A' + 'a' : s[j]);
		lower[j] = '\0';
		uint32_t tok = seccomp_arch_resolve_name(lower);
		assert_true(tok != 0);
		int rc = seccomp_arch_add(ctx, tok);
		assert_true(rc == 0 || rc == -EEXIST);
	}
	json_array_foreach (json_object_get(prof, "syscalls"), i, r) {
		struct scmp_arg_cmp cmp[6];
		unsigned nc = 0;
		size_t x;
		json_t *c;
		json_array_foreach (json_object_get(r, "args"), x, c) {
			assert_true(nc < 6);
			cmp[nc].arg = (unsigned)json_integer_value(json_object_get(c, "index"));
			cmp[nc].op = op_of(json_string_value(json_object_get(c, "op")));
			cmp[nc].datum_a = (scmp_datum_t)json_integer_value(json_object_get(c, "value"));
			cmp[nc].datum_b = (scmp_datum_t)json_integer_value(json_object_get(c, "valueTwo"));
			nc++;
		}
		json_array_foreach (json_object_get(r, "names"), k, n) {
			const char *name = json_string_value(n);
			if (!bt_seccomp_known(name))
				fail_msg("%s in the profile but unknown to libseccomp", name);
			int nr = seccomp_syscall_resolve_name(name);
			if (nr == __NR_SCMP_ERROR)
				continue; /* another of the profile's arches has it */
			int rc = seccomp_rule_add_array(ctx, action_of(r), nr, nc, cmp);
			if (rc < 0 && rc != -EEXIST)
				fail_msg("libseccomp refuses the rule for %s: %s", name, strerror(-rc));
		}
	}
	seccomp_release(ctx);
}

static void test_seccomp_default(void **state)
{
	(void)state;
	size_t dropped = 99;
	json_t *p = bt_seccomp_default(NULL, 0, &dropped);
	bt_err e = { 0 };

	assert_int_equal(bt_seccomp_check(p, &e), 0);
	assert_string_equal(json_string_value(json_object_get(p, "defaultAction")), "SCMP_ACT_ERRNO");
	assert_int_equal(json_integer_value(json_object_get(p, "defaultErrnoRet")), EPERM);
#if defined(__x86_64__)
	json_t *arches = json_object_get(p, "architectures");
	assert_int_equal(json_array_size(arches), 3);
	assert_string_equal(json_string_value(json_array_get(arches, 0)), "SCMP_ARCH_X86_64");
	assert_string_equal(json_string_value(json_array_get(arches, 1)), "SCMP_ARCH_X86");
	assert_string_equal(json_string_value(json_array_get(arches, 2)), "SCMP_ARCH_X32");
	assert_true(allowed(p, "arch_prctl"));
#endif
	assert_true(allowed(p, "read"));
	assert_true(allowed(p, "execve"));
	assert_true(allowed(p, "exit_group"));
	/* what the default keeps out */
	static const char *const denied[] = { "mount", "umount2", "unshare", "setns", "keyctl", "add_key",
					      "request_key", "bpf", "perf_event_open", "userfaultfd",
					      "kexec_load", "init_module", "reboot", "chroot", "acct",
					      "settimeofday", "clock_settime", "iopl", "ioperm", "open_by_handle_at",
					      "syslog", "io_uring_setup", "personality", "socket", "clone",
					      "clone3" };
	for (size_t i = 0; i < BT_ARRAY_LEN(denied); i++)
		if (allowed(p, denied[i]))
			fail_msg("%s allowed unconditionally", denied[i]);
	/* conditional ones */
	json_t *r = rule_for(p, "clone", "SCMP_ACT_ALLOW");
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(r, "args"), 0), "op")),
			    "SCMP_CMP_MASKED_EQ");
	r = rule_for(p, "clone3", "SCMP_ACT_ERRNO");
	if (bt_seccomp_known("clone3")) {
		assert_non_null(r);
		assert_int_equal(json_integer_value(json_object_get(r, "errnoRet")), ENOSYS);
	}
	assert_non_null(rule_for(p, "personality", "SCMP_ACT_ALLOW"));
	assert_non_null(rule_for(p, "socket", "SCMP_ACT_ALLOW"));
	load_into_libseccomp(p);
	json_decref(p);
}

/* Names libseccomp does not know are dropped and counted, never fatal. */
static void test_seccomp_unknown_dropped(void **state)
{
	(void)state;
	assert_false(bt_seccomp_known("no_such_syscall_at_all"));
	assert_false(bt_seccomp_known(""));
	assert_true(bt_seccomp_known("read"));
	/* 32-bit only calls resolve through the x86 arch of the list */
#if defined(__x86_64__)
	assert_true(bt_seccomp_known("socketcall"));
#endif

	size_t dropped = 0;
	json_t *p = bt_seccomp_default(NULL, 0, &dropped);
	/* names in the built-in list that this libseccomp lacks: absent and counted */
	static const char *const recent[] = { "cachestat", "fchmodat2", "map_shadow_stack", "futex_wake",
					      "futex_wait", "futex_requeue", "memfd_secret", "process_mrelease" };
	size_t unknown = 0;
	for (size_t i = 0; i < BT_ARRAY_LEN(recent); i++) {
		if (bt_seccomp_known(recent[i])) {
			assert_non_null(rule_for(p, recent[i], NULL));
		} else {
			unknown++;
			assert_null(rule_for(p, recent[i], NULL));
		}
	}
	assert_true(dropped >= unknown);
	json_decref(p);
}

/* Capabilities widen the profile: SYS_ADMIN brings the mount family and
 * drops the clone restriction. */
static void test_seccomp_caps(void **state)
{
	(void)state;
	const char *caps[] = { "CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_CHROOT" };
	json_t *p = bt_seccomp_default(caps, BT_ARRAY_LEN(caps), NULL);
	assert_true(allowed(p, "mount"));
	assert_true(allowed(p, "unshare"));
	assert_true(allowed(p, "setns"));
	assert_true(allowed(p, "clone"));
	assert_true(allowed(p, "chroot"));
	assert_true(allowed(p, "kcmp"));
	/* no argument-conditional clone rule is left */
	size_t i;
	json_t *r;
	json_array_foreach (json_object_get(p, "syscalls"), i, r)
		if (json_object_get(r, "args"))
			assert_string_not_equal(json_string_value(json_array_get(json_object_get(r, "names"), 0)), "clone");
	assert_false(allowed(p, "reboot"));
	load_into_libseccomp(p);
	json_decref(p);
}

static void check_bad_profile(const char *json, const char *want)
{
	json_error_t je;
	json_t *j = json_loads(json, 0, &je);
	bt_err e = { 0 };
	assert_non_null(j);
	assert_int_equal(bt_seccomp_check(j, &e), -1);
	if (!strstr(e.msg, want))
		fail_msg("%s: got \"%s\", want \"%s\"", json, e.msg, want);
	json_decref(j);
}

static void test_seccomp_check(void **state)
{
	(void)state;
	check_bad_profile("[]", "not a JSON object");
	check_bad_profile("{}", "defaultAction");
	check_bad_profile("{\"defaultAction\":\"SCMP_ACT_NOPE\"}", "defaultAction");
	check_bad_profile("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"x86_64\"]}", "architectures[0]");
	check_bad_profile("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"action\":\"SCMP_ACT_ERRNO\"}]}",
			  "syscalls[0] has no names");
	check_bad_profile("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"]}]}",
			  "syscalls[0] has no action");
}

/* --- specs from image configs --------------------------------------------------------- */

static json_t *build(const char *config, const berth_spec_opts *o, uint64_t bnd, bt_err *e)
{
	json_t *spec = NULL;
	if (berth_spec_build("ns1", config, config ? strlen(config) : 0, o, bnd, &spec, e) < 0)
		return NULL;
	return spec;
}

static json_t *build_ok(const char *config, const berth_spec_opts *o)
{
	bt_err e = { 0 };
	json_t *s = build(config, o, BND_NO_RESOURCE, &e);
	if (!s)
		fail_msg("spec refused: %s", e.msg);
	return s;
}

static const char *str_at(json_t *arr, size_t i)
{
	return json_string_value(json_array_get(arr, i));
}

static json_t *mount_at(json_t *spec, const char *dst)
{
	size_t i;
	json_t *m;
	json_array_foreach (json_object_get(spec, "mounts"), i, m)
		if (!strcmp(json_string_value(json_object_get(m, "destination")), dst))
			return m;
	return NULL;
}

static bool has_ns(json_t *spec, const char *type)
{
	size_t i;
	json_t *n;
	json_array_foreach (json_object_get(json_object_get(spec, "linux"), "namespaces"), i, n)
		if (!strcmp(json_string_value(json_object_get(n, "type")), type))
			return true;
	return false;
}

#define CFG                                                                                                       \
	"{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"User\":\"berth\",\"Env\":[\"PATH=/bin\","  \
	"\"A=1\",\"B=2\"],\"Entrypoint\":[\"/bin/ep\",\"-x\"],\"Cmd\":[\"sh\",\"-c\",\"echo\"],\"WorkingDir\":" \
	"\"/work\",\"Labels\":{\"org.example\":\"1\"}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}"

static void test_spec_from_image(void **state)
{
	(void)state;
	berth_spec_opts o = { .rootfs = root, .id = "c1" };
	json_t *s = build_ok(CFG, &o);
	json_t *p = json_object_get(s, "process");

	json_t *args = json_object_get(p, "args");
	assert_int_equal(json_array_size(args), 5);
	assert_string_equal(str_at(args, 0), "/bin/ep");
	assert_string_equal(str_at(args, 2), "sh");
	json_t *env = json_object_get(p, "env");
	assert_int_equal(json_array_size(env), 3);
	assert_string_equal(str_at(env, 0), "PATH=/bin"); /* replaced in place */
	assert_string_equal(str_at(env, 2), "B=2");
	assert_string_equal(json_string_value(json_object_get(p, "cwd")), "/work");
	json_t *u = json_object_get(p, "user");
	assert_int_equal(json_integer_value(json_object_get(u, "uid")), 1000);
	assert_int_equal(json_integer_value(json_object_get(u, "gid")), 1000);
	assert_int_equal(json_array_size(json_object_get(u, "additionalGids")), 3);
	assert_true(json_is_true(json_object_get(p, "noNewPrivileges")));
	assert_false(json_is_true(json_object_get(p, "terminal")));
	assert_int_equal(json_array_size(json_object_get(json_object_get(p, "capabilities"), "bounding")), 14);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(p, "rlimits"), 0), "type")),
			    "RLIMIT_NOFILE");
	assert_string_equal(json_string_value(json_object_get(s, "hostname")), "c1");
	json_t *l = json_object_get(s, "linux");
	assert_string_equal(json_string_value(json_object_get(l, "cgroupsPath")), "/ns1/c1");
	assert_true(has_ns(s, "network"));
	assert_true(has_ns(s, "pid"));
	assert_int_equal(json_array_size(json_object_get(l, "maskedPaths")), 11);
	assert_int_equal(json_array_size(json_object_get(l, "readonlyPaths")), 5);
	assert_non_null(json_object_get(l, "seccomp"));
	assert_non_null(mount_at(s, "/proc"));
	assert_non_null(mount_at(s, "/dev/pts"));
	assert_non_null(mount_at(s, "/dev/mqueue"));
	json_decref(s);
}

static void test_spec_overrides(void **state)
{
	(void)state;
	const char *args[] = { "true", "x" };
	const char *env[] = { "A=9", "B", "C=3", "PATH=/usr/bin" };
	const char *mounts[] = { "type=bind,src=/srv/data,dst=/data,options=rbind:ro", "src=/x,dst=/run" };
	berth_label ann[] = { { (char *)"k", (char *)"v" } };
	berth_spec_opts o = { .args = args, .n_args = 2, .env = env, .n_env = 4, .cwd = "/tmp", .user = "1000:5",
			      .mounts = mounts, .n_mounts = 2, .tty = true, .net_host = true, .annotations = ann,
			      .n_annotations = 1 };
	json_t *s = build_ok(CFG, &o);
	json_t *p = json_object_get(s, "process");

	json_t *a = json_object_get(p, "args");
	assert_int_equal(json_array_size(a), 4); /* the entrypoint stays, Cmd goes */
	assert_string_equal(str_at(a, 2), "true");
	json_t *e = json_object_get(p, "env");
	assert_string_equal(str_at(e, 0), "PATH=/usr/bin");
	assert_string_equal(str_at(e, 1), "A=9");
	assert_string_equal(str_at(e, 2), "C=3");
	bool term = false, hostname = false;
	for (size_t i = 0; i < json_array_size(e); i++) {
		term |= !strcmp(str_at(e, i), "TERM=xterm");
		hostname |= bt_startswith(str_at(e, i), "HOSTNAME=");
		assert_false(bt_startswith(str_at(e, i), "B="));
	}
	assert_true(term);
	assert_true(hostname);
	assert_string_equal(json_string_value(json_object_get(p, "cwd")), "/tmp");
	assert_true(json_is_true(json_object_get(p, "terminal")));
	/* numeric user without rootfs: as given */
	assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "user"), "gid")), 5);
	assert_false(has_ns(s, "network"));
	assert_non_null(mount_at(s, "/etc/resolv.conf"));
	json_t *m = mount_at(s, "/data");
	assert_non_null(m);
	assert_string_equal(json_string_value(json_object_get(m, "source")), "/srv/data");
	assert_string_equal(str_at(json_object_get(m, "options"), 1), "ro");
	/* a later mount replaces the default at its destination */
	m = mount_at(s, "/run");
	assert_string_equal(json_string_value(json_object_get(m, "type")), "bind");
	assert_string_equal(json_string_value(json_object_get(json_object_get(s, "annotations"), "k")), "v");
	assert_null(json_object_get(json_object_get(s, "linux"), "cgroupsPath"));
	json_decref(s);
}

static void test_spec_privileged(void **state)
{
	(void)state;
	berth_spec_opts o = { .privileged = true, .user = "0" };
	json_t *s = build_ok(CFG, &o);
	json_t *l = json_object_get(s, "linux");

	assert_null(json_object_get(l, "seccomp"));
	assert_null(json_object_get(l, "maskedPaths"));
	assert_null(json_object_get(l, "readonlyPaths"));
	json_t *caps = json_object_get(json_object_get(json_object_get(s, "process"), "capabilities"), "bounding");
	assert_int_equal(json_array_size(caps), 40);
	for (size_t i = 0; i < json_array_size(caps); i++)
		assert_string_not_equal(str_at(caps, i), "CAP_SYS_RESOURCE");
	/* a writable /sys, said explicitly as containerd says it */
	json_t *sys = json_object_get(mount_at(s, "/sys"), "options");
	bool rw = false;
	for (size_t i = 0; i < json_array_size(sys); i++) {
		assert_string_not_equal(str_at(sys, i), "ro");
		rw = rw || !strcmp(str_at(sys, i), "rw");
	}
	assert_true(rw);
	assert_true(json_is_array(json_object_get(l, "devices")));
	json_decref(s);
}

static void test_spec_refused(void **state)
{
	(void)state;
	bt_err e = { 0 };
	berth_spec_opts o = { 0 };

	/* no command at all */
	assert_null(build("{\"config\":{}}", &o, BND_NO_RESOURCE, &e));
	assert_non_null(strstr(e.msg, "no command"));
	/* a config that is not one */
	assert_null(build("{\"config\":{\"Cmd\":\"sh\"}}", &o, BND_NO_RESOURCE, &e));
	assert_non_null(strstr(e.msg, "Cmd is not an array"));
	assert_null(build("[1]", &o, BND_NO_RESOURCE, &e));
	/* a user name without a rootfs */
	assert_null(build(CFG, &o, BND_NO_RESOURCE, &e));
	assert_int_equal(e.code, BT_FAILED_PRECONDITION);
	o.user = "4294967295";
	assert_null(build(CFG, &o, BND_NO_RESOURCE, &e));
	assert_int_equal(e.code, BT_OUT_OF_RANGE);
	o.user = "0";
	o.cwd = "rel";
	assert_null(build(CFG, &o, BND_NO_RESOURCE, &e));
	assert_non_null(strstr(e.msg, "not an absolute path"));
	o.cwd = NULL;
	const char *bad_mounts[][1] = { { "type=bind,src=rel,dst=/x" }, { "src=/a" }, { "type=bind,src=/a,dst=/b,x=1" },
					 { "garbage" } };
	for (size_t i = 0; i < BT_ARRAY_LEN(bad_mounts); i++) {
		o.mounts = bad_mounts[i];
		o.n_mounts = 1;
		assert_null(build(CFG, &o, BND_NO_RESOURCE, &e));
		assert_non_null(strstr(e.msg, "mount"));
	}
	o.mounts = NULL;
	o.n_mounts = 0;
	_cleanup_free_ char *badprof = bt_xasprintf("%s/bad.json", tmp);
	put(tmp, "bad.json", "{\"defaultAction\":1}");
	o.seccomp_profile = badprof;
	assert_null(build(CFG, &o, BND_NO_RESOURCE, &e));
	assert_non_null(strstr(e.msg, "defaultAction"));
	put(tmp, "bad.json", "{\"defaultAction\":\"SCMP_ACT_ALLOW\"}");
	json_t *s = build_ok(CFG, &o);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(json_object_get(s, "linux"), "seccomp"), "defaultAction")),
		"SCMP_ACT_ALLOW");
	json_decref(s);
}

static void test_spec_env_default(void **state)
{
	(void)state;
	berth_spec_opts o = { 0 };
	json_t *s = build_ok("{\"config\":{\"Cmd\":[\"sh\"]}}", &o);
	json_t *env = json_object_get(json_object_get(s, "process"), "env");
	assert_int_equal(json_array_size(env), 1);
	assert_true(bt_startswith(str_at(env, 0), "PATH=/usr/local/sbin:"));
	assert_string_equal(json_string_value(json_object_get(json_object_get(s, "process"), "cwd")), "/");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(s, "process"), "user"), "uid")),
			 0);
	json_decref(s);
}

/* Image config labels a container takes on: berth's reserved prefix left out. */
static void test_spec_image_labels(void **state)
{
	(void)state;
	const char *cfg = "{\"config\":{\"Labels\":{\"org.example\":\"1\",\"berth.io/x\":\"no\",\"n\":7}}}";
	berth_label *l = NULL;
	size_t n = 9;
	berth_error err;

	assert_int_equal(berth_spec_image_labels(cfg, strlen(cfg), &l, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(l[0].key, "org.example");
	assert_string_equal(l[0].value, "1");
	berth_spec_labels_free(l, n);
	assert_int_equal(berth_spec_image_labels("{", 1, &l, &n, &err), -1);
	assert_int_equal(err.code, BERTH_INVALID_ARGUMENT);
	assert_int_equal(berth_spec_image_labels("{}", 2, &l, &n, &err), 0);
	assert_int_equal(n, 0);
	berth_spec_labels_free(l, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_user_names_and_numbers),
		cmocka_unit_test(test_user_unknown),
		cmocka_unit_test(test_user_ids_out_of_range),
		cmocka_unit_test(test_user_without_rootfs),
		cmocka_unit_test(test_user_image_without_etc),
		cmocka_unit_test(test_user_symlink_out_of_root),
		cmocka_unit_test(test_user_files_bounded),
		cmocka_unit_test(test_caps_bounded),
		cmocka_unit_test(test_seccomp_default),
		cmocka_unit_test(test_seccomp_unknown_dropped),
		cmocka_unit_test(test_seccomp_caps),
		cmocka_unit_test(test_seccomp_check),
		cmocka_unit_test(test_spec_from_image),
		cmocka_unit_test(test_spec_overrides),
		cmocka_unit_test(test_spec_privileged),
		cmocka_unit_test(test_spec_refused),
		cmocka_unit_test(test_spec_env_default),
		cmocka_unit_test(test_spec_image_labels),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
