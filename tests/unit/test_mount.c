/*
 * test_mount — bt_mount on real mounts (run as root): binds read-write and
 * read-only, overlays with whiteouts, a chain of 128 layers whose options
 * exceed a page (through the new mount API and through relative paths
 * from a child), rollback of a failed list, unmounting a busy target, and
 * the protobuf conversions.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bt_mount.h"
#include "bt_util.h"

typedef struct fx {
	char dir[64];
	char *target;
} fx;

static int setup(void **state)
{
	fx *f = bt_xzalloc(sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/bt-mnt.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->target = bt_xasprintf("%s/target", f->dir);
	assert_int_equal(mkdir(f->target, 0755), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	bt_err e;

	/* whatever a failed test left mounted */
	bt_unmount_all(f->target, &e);
	assert_int_equal(bt_rm_rf(f->dir, &e), 0);
	free(f->target);
	free(f);
	return 0;
}

static char *mkdirf(fx *f, const char *name)
{
	char *p = bt_xasprintf("%s/%s", f->dir, name);
	bt_err e;
	assert_int_equal(bt_mkdir_p(p, 0755, &e), 0);
	return p;
}

static void write_file(const char *dir, const char *name, const char *data)
{
	_cleanup_free_ char *p = bt_xasprintf("%s/%s", dir, name);
	bt_err e;
	assert_int_equal(bt_write_file_atomic(p, data, strlen(data), 0644, &e), 0);
}

/* The content of target/name, or NULL when it cannot be read. */
static char *read_in(const char *dir, const char *name)
{
	_cleanup_free_ char *p = bt_xasprintf("%s/%s", dir, name);
	char *out = NULL;
	bt_err e;
	if (bt_read_file(p, 1 << 20, &out, NULL, &e) < 0)
		return NULL;
	return out;
}

/* errno of creating target/name (0 on success). */
static int try_create(const char *dir, const char *name)
{
	_cleanup_free_ char *p = bt_xasprintf("%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int mounted(const char *p)
{
	bt_err e;
	int r = bt_is_mountpoint(p, &e);
	assert_true(r >= 0);
	return r;
}

static void test_bind_rw_and_ro(void **state)
{
	fx *f = *state;
	_cleanup_free_ char *src = mkdirf(f, "src");
	bt_mount m;
	bt_err e;

	write_file(src, "hello", "hi");
	assert_int_equal(mounted(f->target), 0);

	bt_mount_init(&m, "bind", src);
	bt_mount_add_option(&m, "rw");
	bt_mount_add_option(&m, "rbind");
	assert_int_equal(bt_mount_all(&m, 1, f->target, &e), 0);
	assert_int_equal(mounted(f->target), 1);
	_cleanup_free_ char *got = read_in(f->target, "hello");
	assert_string_equal(got, "hi");
	assert_int_equal(try_create(f->target, "new"), 0);
	assert_int_equal(bt_unmount(f->target, &e), 0);
	assert_int_equal(mounted(f->target), 0);
	bt_mount_clear(&m);

	/* read-only: the bind is remounted ro, writes fail with EROFS */
	bt_mount_init(&m, "bind", src);
	bt_mount_add_option(&m, "ro");
	bt_mount_add_option(&m, "rbind");
	assert_int_equal(bt_mount_all(&m, 1, f->target, &e), 0);
	assert_int_equal(try_create(f->target, "refused"), EROFS);
	_cleanup_free_ char *again = read_in(f->target, "new");
	assert_non_null(again);
	assert_int_equal(bt_unmount(f->target, &e), 0);
	bt_mount_clear(&m);
	/* the source itself stays writable */
	assert_int_equal(try_create(src, "fine"), 0);
}

static void test_overlay_whiteouts(void **state)
{
	fx *f = *state;
	_cleanup_free_ char *l1 = mkdirf(f, "l1");
	_cleanup_free_ char *l2 = mkdirf(f, "l2");
	_cleanup_free_ char *up = mkdirf(f, "up");
	_cleanup_free_ char *wk = mkdirf(f, "wk");
	bt_mount m;
	bt_err e;

	write_file(l1, "a", "from l1");
	write_file(l1, "shared", "l1");
	write_file(l2, "shared", "l2");
	bt_mount_init(&m, "overlay", "overlay");
	bt_mount_add_optionf(&m, "workdir=%s", wk);
	bt_mount_add_optionf(&m, "upperdir=%s", up);
	bt_mount_add_optionf(&m, "lowerdir=%s:%s", l2, l1);
	assert_int_equal(bt_mount_all(&m, 1, f->target, &e), 0);
	_cleanup_free_ char *a = read_in(f->target, "a");
	_cleanup_free_ char *sh = read_in(f->target, "shared");
	assert_string_equal(a, "from l1");
	assert_string_equal(sh, "l2"); /* nearest layer first */
	/* deleting a lower file leaves a whiteout (char device 0/0) in the upper */
	_cleanup_free_ char *pa = bt_xasprintf("%s/a", f->target);
	assert_int_equal(unlink(pa), 0);
	assert_null(read_in(f->target, "a"));
	assert_int_equal(bt_unmount(f->target, &e), 0);
	_cleanup_free_ char *wh = bt_xasprintf("%s/a", up);
	struct stat st;
	assert_int_equal(lstat(wh, &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(st.st_rdev, 0);
	bt_mount_clear(&m);
}

/* 128 layers laid out as a snapshotter keeps them, under a long state
 * directory: the lowerdir option alone is ~9 KB. */
#define STATE "a-rather-long-state-directory/snapshots/overlayfs/snapshots"
static void chain_128(fx *f, unsigned flags, bool check_len)
{
	char **layers = bt_xcalloc(128, sizeof(char *));
	bt_buf lower = { 0 };
	_cleanup_free_ char *up = mkdirf(f, STATE "/200/fs");
	_cleanup_free_ char *wk = mkdirf(f, STATE "/200/work");
	bt_mount m;
	bt_err e;

	for (int i = 0; i < 128; i++) {
		_cleanup_free_ char *name = bt_xasprintf(STATE "/%d/fs", i + 1);
		layers[i] = mkdirf(f, name);
		_cleanup_free_ char *file = bt_xasprintf("f%03d", i);
		write_file(layers[i], file, "x");
		_cleanup_free_ char *val = bt_xasprintf("%d", i);
		write_file(layers[i], "top", val);
	}
	/* nearest first: layer 127 is the top */
	bt_buf_append(&lower, "lowerdir=", 9);
	for (int i = 127; i >= 0; i--) {
		bt_buf_append(&lower, layers[i], strlen(layers[i]));
		if (i)
			bt_buf_append(&lower, ":", 1);
	}
	if (check_len)
		assert_true(lower.len > 8192);
	bt_mount_init(&m, "overlay", "overlay");
	bt_mount_add_optionf(&m, "workdir=%s", wk);
	bt_mount_add_optionf(&m, "upperdir=%s", up);
	bt_mount_add_option(&m, lower.data);
	int rc = bt_mount_all_flags(&m, 1, f->target, flags, &e);
	if (rc < 0)
		print_error("mount: %s\n", e.msg);
	assert_int_equal(rc, 0);
	for (int i = 0; i < 128; i++) {
		_cleanup_free_ char *file = bt_xasprintf("f%03d", i);
		_cleanup_free_ char *got = read_in(f->target, file);
		assert_non_null(got);
	}
	_cleanup_free_ char *top = read_in(f->target, "top");
	assert_string_equal(top, "127");
	assert_int_equal(try_create(f->target, "written"), 0);
	assert_int_equal(bt_unmount(f->target, &e), 0);
	_cleanup_free_ char *in_upper = read_in(up, "written");
	assert_non_null(in_upper);
	bt_mount_clear(&m);
	bt_buf_free(&lower);
	for (int i = 0; i < 128; i++)
		free(layers[i]);
	free(layers);
}

static void test_chain_128_new_api(void **state)
{
	chain_128(*state, 0, true);
}

static void test_chain_128_relative(void **state)
{
	chain_128(*state, BT_MOUNT_NO_NEW_API, true);
}

static void test_short_overlay_new_api(void **state)
{
	fx *f = *state;
	_cleanup_free_ char *l1 = mkdirf(f, "a");
	_cleanup_free_ char *l2 = mkdirf(f, "b");
	bt_mount m;
	bt_err e;

	write_file(l1, "one", "1");
	write_file(l2, "two", "2");
	/* lowerdirs only: a read-only overlay */
	bt_mount_init(&m, "overlay", "overlay");
	bt_mount_add_optionf(&m, "lowerdir=%s:%s", l2, l1);
	assert_int_equal(bt_mount_all_flags(&m, 1, f->target, BT_MOUNT_FORCE_NEW_API, &e), 0);
	_cleanup_free_ char *one = read_in(f->target, "one");
	_cleanup_free_ char *two = read_in(f->target, "two");
	assert_string_equal(one, "1");
	assert_string_equal(two, "2");
	assert_int_equal(try_create(f->target, "x"), EROFS);
	assert_int_equal(bt_unmount(f->target, &e), 0);
	bt_mount_clear(&m);
}

static void test_too_long_without_common_parent(void **state)
{
	fx *f = *state;
	bt_mount m;
	bt_buf lower = { 0 };
	bt_err e;

	/* layers under different top-level directories share no parent: the
	 * relative fallback cannot help and says so */
	bt_buf_append(&lower, "lowerdir=", 9);
	for (int i = 0; i < 300; i++)
		bt_buf_appendf(&lower, "%s/%s/nonexistent-layer-%d", i ? ":" : "", i % 2 ? "usr" : "var", i);
	bt_mount_init(&m, "overlay", "overlay");
	bt_mount_add_option(&m, lower.data);
	assert_int_equal(bt_mount_all_flags(&m, 1, f->target, BT_MOUNT_NO_NEW_API, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_non_null(strstr(e.msg, "exceed a page"));
	assert_int_equal(mounted(f->target), 0);
	bt_mount_clear(&m);
	bt_buf_free(&lower);
}

static void test_rollback_and_errors(void **state)
{
	fx *f = *state;
	_cleanup_free_ char *src = mkdirf(f, "src");
	_cleanup_free_ char *sub = mkdirf(f, "src/sub");
	bt_mount m[2];
	bt_err e;

	/* the second mount fails: the first is undone */
	bt_mount_init(&m[0], "bind", src);
	bt_mount_add_option(&m[0], "rbind");
	bt_mount_init(&m[1], "bind", "/nonexistent/source");
	bt_mount_add_option(&m[1], "rbind");
	m[1].target = bt_xstrdup("sub");
	assert_int_equal(bt_mount_all(m, 2, f->target, &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	assert_non_null(strstr(e.msg, "/nonexistent/source"));
	assert_int_equal(mounted(f->target), 0);
	bt_mount_clear(&m[1]);

	/* a sub-target may not climb out */
	bt_mount_init(&m[1], "bind", src);
	m[1].target = bt_xstrdup("sub/../../escape");
	assert_int_equal(bt_mount_all(m, 2, f->target, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_int_equal(mounted(f->target), 0);
	bt_mount_clear(&m[1]);

	/* a sub-target below the first mount works, and both come off */
	bt_mount_init(&m[1], "tmpfs", "tmpfs");
	bt_mount_add_option(&m[1], "size=1m");
	m[1].target = bt_xstrdup("/sub");
	assert_int_equal(bt_mount_all(m, 2, f->target, &e), 0);
	_cleanup_free_ char *t_sub = bt_xasprintf("%s/sub", f->target);
	assert_int_equal(mounted(t_sub), 1);
	assert_int_equal(bt_unmount(t_sub, &e), 0);
	assert_int_equal(bt_unmount_all(f->target, &e), 0);
	assert_int_equal(mounted(f->target), 0);
	bt_mount_clear(&m[0]);
	bt_mount_clear(&m[1]);

	/* no type; unknown filesystem */
	bt_mount_init(&m[0], "", "x");
	assert_int_equal(bt_mount_all(m, 1, f->target, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	bt_mount_clear(&m[0]);
	bt_mount_init(&m[0], "nosuchfs", "x");
	assert_int_equal(bt_mount_all(m, 1, f->target, &e), -1);
	assert_non_null(strstr(e.msg, "nosuchfs"));
	bt_mount_clear(&m[0]);

	/* unmounting what is not mounted */
	assert_int_equal(bt_unmount(f->target, &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	assert_int_equal(bt_unmount_all(f->target, &e), 0);
	(void)sub;
}

typedef struct closer {
	int fd;
	int delay_ms;
} closer;

static void *close_later(void *p)
{
	closer *c = p;
	usleep((useconds_t)c->delay_ms * 1000);
	close(c->fd);
	return NULL;
}

static void test_unmount_busy(void **state)
{
	fx *f = *state;
	_cleanup_free_ char *src = mkdirf(f, "src");
	bt_mount m;
	bt_err e;

	write_file(src, "held", "x");
	bt_mount_init(&m, "bind", src);
	bt_mount_add_option(&m, "rbind");
	assert_int_equal(bt_mount_all(&m, 1, f->target, &e), 0);
	_cleanup_free_ char *p = bt_xasprintf("%s/held", f->target);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	/* busy for longer than the retries: an error, and still mounted (no lazy detach) */
	int64_t t0 = bt_mono_ms();
	assert_int_equal(bt_unmount(f->target, &e), -1);
	assert_true(bt_mono_ms() - t0 >= 500);
	assert_int_equal(e.code, BT_FAILED_PRECONDITION);
	assert_non_null(strstr(e.msg, "busy"));
	assert_int_equal(mounted(f->target), 1);
	/* busy for a moment only: the retry gets through */
	closer c = { .fd = fd, .delay_ms = 200 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, close_later, &c), 0);
	assert_int_equal(bt_unmount(f->target, &e), 0);
	pthread_join(t, NULL);
	assert_int_equal(mounted(f->target), 0);
	bt_mount_clear(&m);
}

static void test_pb_roundtrip(void **state)
{
	bt_mount m, back;
	(void)state;

	bt_mount_init(&m, "overlay", "overlay");
	bt_mount_add_option(&m, "workdir=/w");
	bt_mount_add_option(&m, "lowerdir=/a\\:b:/c");
	Berth__Types__V1__Mount **pb = bt_mounts_to_pb(&m, 1);
	assert_string_equal(pb[0]->type, "overlay");
	assert_string_equal(pb[0]->target, "");
	assert_int_equal(pb[0]->n_options, 2);
	size_t len = berth__types__v1__mount__get_packed_size(pb[0]);
	uint8_t *buf = bt_xmalloc(len);
	berth__types__v1__mount__pack(pb[0], buf);
	Berth__Types__V1__Mount *un = berth__types__v1__mount__unpack(NULL, len, buf);
	assert_non_null(un);
	bt_mount_from_pb(un, &back);
	assert_string_equal(back.type, "overlay");
	assert_string_equal(back.source, "overlay");
	assert_null(back.target);
	assert_int_equal(back.n_options, 2);
	assert_string_equal(bt_mount_option(&back, "lowerdir"), "/a\\:b:/c");
	assert_null(bt_mount_option(&back, "upperdir"));
	berth__types__v1__mount__free_unpacked(un, NULL);
	free(buf);
	bt_mounts_pb_free(pb, 1);
	bt_mount_clear(&m);
	bt_mount_clear(&back);
	assert_null(bt_mounts_to_pb(NULL, 0));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_bind_rw_and_ro),	      T(test_overlay_whiteouts),
		T(test_chain_128_new_api),     T(test_chain_128_relative),
		T(test_short_overlay_new_api), T(test_too_long_without_common_parent),
		T(test_rollback_and_errors),   T(test_unmount_busy),
		cmocka_unit_test(test_pb_roundtrip),
	};
	if (geteuid() != 0) {
		fprintf(stderr, "test_mount: needs root (real mounts)\n");
		return 1;
	}
	return cmocka_run_group_tests_name("mount", tests, NULL, NULL);
}
