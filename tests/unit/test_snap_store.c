/*
 * test_snap_store — the snapshot store and its drivers without the RPC
 * layer (run as root: real overlay and bind mounts): key rules, kinds and
 * parents, mounts as each driver returns them and what they show when
 * mounted, namespaces, labels and filters, usage, a 128-layer chain, the
 * state a crash at each step of Prepare/View, Commit and Remove leaves,
 * Cleanup of orphans (also while snapshots are being made), and one call
 * through the RPC layer to see that a NUL in a key arrives and is refused.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "berth/snapshots/v1/snapshots.pb-c.h"
#include "bt_client.h"
#include "bt_mount.h"
#include "bt_server.h"
#include "bt_util.h"
#include "snap_rpc.h"
#include "snap_store.h"

typedef struct fx {
	char dir[64];
	char *state;  /* the store's directory */
	char *target; /* a mount point */
	const snap_driver *drv;
	snap_store *s;
} fx;

static int setup_with(void **state, const snap_driver *drv)
{
	fx *f = bt_xzalloc(sizeof(*f));
	bt_err e;

	snprintf(f->dir, sizeof(f->dir), "/tmp/bt-ss.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->state = bt_xasprintf("%s/st", f->dir);
	f->target = bt_xasprintf("%s/mnt", f->dir);
	assert_int_equal(mkdir(f->target, 0755), 0);
	f->drv = drv;
	assert_int_equal(snap_store_open(f->state, drv, &f->s, &e), 0);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, &snap_overlay_driver);
}

static int setup_native(void **state)
{
	return setup_with(state, &snap_native_driver);
}

static int teardown(void **state)
{
	fx *f = *state;
	bt_err e;

	bt_unmount_all(f->target, &e);
	snap_store_free(&f->s);
	assert_int_equal(bt_rm_rf(f->dir, &e), 0);
	free(f->state);
	free(f->target);
	free(f);
	return 0;
}

static void reopen(fx *f)
{
	bt_err e;
	snap_store_free(&f->s);
	assert_int_equal(snap_store_open(f->state, f->drv, &f->s, &e), 0);
}

/* --- helpers ------------------------------------------------------------------ */

static int prep(fx *f, const char *ns, const char *key, const char *parent, bt_err *e)
{
	bt_mount *m = NULL;
	size_t n = 0;
	int rc = snap_create(f->s, ns, SNAP_ACTIVE, key, parent, NULL, &m, &n, e);
	bt_mounts_free(m, n);
	return rc;
}

static void must_prep(fx *f, const char *ns, const char *key, const char *parent)
{
	bt_err e;
	if (prep(f, ns, key, parent, &e) < 0)
		fail_msg("prepare %s: %s", key, e.msg);
}

static void must_commit(fx *f, const char *ns, const char *name, const char *key)
{
	bt_err e;
	if (snap_commit(f->s, ns, name, key, NULL, &e) < 0)
		fail_msg("commit %s: %s", key, e.msg);
}

/* Mounts the snapshot key at f->target. */
static void mount_key(fx *f, const char *ns, const char *key)
{
	bt_mount *m = NULL;
	size_t n = 0;
	bt_err e;

	if (snap_mounts(f->s, ns, key, &m, &n, &e) < 0)
		fail_msg("mounts %s: %s", key, e.msg);
	if (bt_mount_all(m, n, f->target, &e) < 0)
		fail_msg("mount %s: %s", key, e.msg);
	bt_mounts_free(m, n);
}

static void umount_target(fx *f)
{
	bt_err e;
	assert_int_equal(bt_unmount_all(f->target, &e), 0);
}

static void put(const char *dir, const char *name, const char *data)
{
	_cleanup_free_ char *p = bt_xasprintf("%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(bt_write_all(fd, data, strlen(data)), 0);
	close(fd);
}

static char *get(const char *dir, const char *name)
{
	_cleanup_free_ char *p = bt_xasprintf("%s/%s", dir, name);
	char *out = NULL;
	bt_err e;
	if (bt_read_file(p, 1 << 20, &out, NULL, &e) < 0)
		return NULL;
	return out;
}

static bool exists(const char *dir, const char *name)
{
	_cleanup_free_ char *p = bt_xasprintf("%s/%s", dir, name);
	struct stat st;
	return lstat(p, &st) == 0;
}

/* Counts the entries of state/snapshots and checks each is a record's id. */
static size_t check_dirs_match_records(fx *f)
{
	_cleanup_free_ char *snaps = bt_xasprintf("%s/snapshots", f->state);
	_cleanup_free_ char *db = bt_xasprintf("%s/meta.db", f->state);
	sqlite3 *h = NULL;
	DIR *d = opendir(snaps);
	struct dirent *de;
	size_t n = 0, records = 0;
	sqlite3_stmt *st;

	assert_non_null(d);
	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		assert_int_equal(sqlite3_prepare_v2(h, "SELECT count(*) FROM snapshots WHERE id = ?1", -1, &st, NULL),
				 SQLITE_OK);
		char *end;
		long long id = strtoll(de->d_name, &end, 10);
		if (*end)
			fail_msg("stray entry %s in %s", de->d_name, snaps);
		sqlite3_bind_int64(st, 1, id);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		if (sqlite3_column_int(st, 0) != 1)
			fail_msg("directory %s has no record", de->d_name);
		sqlite3_finalize(st);
		n++;
	}
	closedir(d);
	assert_int_equal(sqlite3_prepare_v2(h, "SELECT id FROM snapshots", -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		_cleanup_free_ char *p = bt_xasprintf("%s/%lld", snaps, (long long)sqlite3_column_int64(st, 0));
		struct stat sb;
		if (stat(p, &sb) < 0)
			fail_msg("record %lld has no directory", (long long)sqlite3_column_int64(st, 0));
		records++;
	}
	sqlite3_finalize(st);
	sqlite3_close(h);
	assert_int_equal(n, records);
	return n;
}

static snap_kind kind_of(fx *f, const char *ns, const char *key)
{
	snap_info i = { 0 };
	bt_err e;
	if (snap_stat(f->s, ns, key, &i, &e) < 0)
		return SNAP_UNKNOWN;
	snap_kind k = i.kind;
	snap_info_clear(&i);
	return k;
}

/* --- keys ------------------------------------------------------------------------ */

static void test_key_rules(void **state)
{
	static const char *const good[] = {
		"a", "sha256:0123abcd", "extract-123 sha256:abc", "k8s.io/1/extract-5", "ünïcødé", "a.b", ".hidden", "a-.b",
	};
	static const struct {
		const char *s;
		size_t len;
		const char *why;
	} bad[] = {
		{ "", 0, "must not be empty" },
		{ "a\0b", 3, "NUL" },
		{ "a\tb", 3, "control character" },
		{ "a\x7f", 2, "control character" },
		{ "\xff\xfe", 2, "UTF-8" },
		{ "\xc0\xaf", 2, "UTF-8" },
		{ "..", 2, "\"..\"" },
		{ "a/../b", 6, "\"..\"" },
		{ "a..b", 4, "\"..\"" },
		{ "/a", 2, "'/'" },
		{ "a/", 2, "'/'" },
		{ "a//b", 4, "\"//\"" },
		{ ".", 1, "\".\" segment" },
		{ "./a", 3, "\".\" segment" },
		{ "a/./b", 5, "\".\" segment" },
		{ "a/.", 3, "\".\" segment" },
	};
	bt_err e;
	(void)state;

	for (size_t i = 0; i < BT_ARRAY_LEN(good); i++)
		if (snap_key_validate("key", good[i], strlen(good[i]), &e) < 0)
			fail_msg("%s refused: %s", good[i], e.msg);
	for (size_t i = 0; i < BT_ARRAY_LEN(bad); i++) {
		assert_int_equal(snap_key_validate("key", bad[i].s, bad[i].len, &e), -1);
		assert_int_equal(e.code, BT_INVALID_ARGUMENT);
		if (!strstr(e.msg, bad[i].why))
			fail_msg("key #%zu: \"%s\" lacks \"%s\"", i, e.msg, bad[i].why);
	}
	/* a NUL shows escaped in the message */
	snap_key_validate("parent", "a\0b", 3, &e);
	assert_non_null(strstr(e.msg, "invalid parent \"a\\x00b\""));
	char *big = bt_xmalloc(SNAP_KEY_MAX + 2);
	memset(big, 'k', SNAP_KEY_MAX + 1);
	big[SNAP_KEY_MAX + 1] = '\0';
	assert_int_equal(snap_key_validate("key", big, SNAP_KEY_MAX, &e), 0);
	assert_int_equal(snap_key_validate("key", big, SNAP_KEY_MAX + 1, &e), -1);
	free(big);
}

/* --- rules ----------------------------------------------------------------------- */

static void test_kinds_and_rules(void **state)
{
	fx *f = *state;
	snap_info info = { 0 };
	bt_mount *m = NULL;
	size_t n = 0;
	bt_err e;

	must_prep(f, "ns", "base", NULL);
	/* an existing key */
	assert_int_equal(prep(f, "ns", "base", NULL, &e), -1);
	assert_int_equal(e.code, BT_ALREADY_EXISTS);
	assert_string_equal(e.msg, "snapshot \"base\": already exists");
	/* an active parent */
	assert_int_equal(prep(f, "ns", "child", "base", &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_non_null(strstr(e.msg, "parent \"base\" is not a committed snapshot (it is active)"));
	/* an unknown parent */
	assert_int_equal(prep(f, "ns", "child", "nope", &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	assert_string_equal(e.msg, "parent snapshot \"nope\": not found");

	must_commit(f, "ns", "layer1", "base");
	/* the key is gone, the name is committed */
	assert_int_equal(snap_stat(f->s, "ns", "base", &info, &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	assert_int_equal(snap_stat(f->s, "ns", "layer1", &info, &e), 0);
	assert_int_equal(info.kind, SNAP_COMMITTED);
	assert_string_equal(info.parent, "");
	snap_info_clear(&info);
	/* committed: no mounts of its own, not committed again */
	assert_int_equal(snap_mounts(f->s, "ns", "layer1", &m, &n, &e), -1);
	assert_int_equal(e.code, BT_FAILED_PRECONDITION);
	must_prep(f, "ns", "work", "layer1");
	assert_int_equal(snap_commit(f->s, "ns", "x", "layer1", NULL, &e), -1);
	assert_int_equal(e.code, BT_FAILED_PRECONDITION);
	assert_non_null(strstr(e.msg, "already committed"));
	/* a view cannot be committed nor be a parent */
	assert_int_equal(snap_create(f->s, "ns", SNAP_VIEW, "v", "layer1", NULL, &m, &n, &e), 0);
	bt_mounts_free(m, n);
	assert_int_equal(snap_commit(f->s, "ns", "x", "v", NULL, &e), -1);
	assert_int_equal(e.code, BT_FAILED_PRECONDITION);
	assert_string_equal(e.msg, "snapshot \"v\" is a view: only an active snapshot can be committed");
	assert_int_equal(prep(f, "ns", "on-view", "v", &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	/* committing onto a name that exists */
	assert_int_equal(snap_commit(f->s, "ns", "layer1", "work", NULL, &e), -1);
	assert_int_equal(e.code, BT_ALREADY_EXISTS);
	assert_int_equal(kind_of(f, "ns", "work"), SNAP_ACTIVE);
	/* committing an unknown key */
	assert_int_equal(snap_commit(f->s, "ns", "y", "nope", NULL, &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	/* a parent cannot go while it has children */
	assert_int_equal(snap_remove(f->s, "ns", "layer1", &e), -1);
	assert_int_equal(e.code, BT_FAILED_PRECONDITION);
	assert_non_null(strstr(e.msg, "parent of 2 snapshots (\"v\", \"work\")"));
	assert_int_equal(snap_remove(f->s, "ns", "nope", &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	/* bad keys everywhere */
	assert_int_equal(prep(f, "ns", "", NULL, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_int_equal(prep(f, "ns", "ok", "../layer1", &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_int_equal(snap_commit(f->s, "ns", "a/../b", "work", NULL, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_int_equal(snap_remove(f->s, "ns", "/abs", &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	/* none of the refusals changed anything */
	assert_int_equal(check_dirs_match_records(f), 3);
	assert_int_equal(kind_of(f, "ns", "work"), SNAP_ACTIVE);
	assert_int_equal(kind_of(f, "ns", "v"), SNAP_VIEW);
	/* children first, then the parent */
	assert_int_equal(snap_remove(f->s, "ns", "v", &e), 0);
	assert_int_equal(snap_remove(f->s, "ns", "work", &e), 0);
	assert_int_equal(snap_remove(f->s, "ns", "layer1", &e), 0);
	assert_int_equal(check_dirs_match_records(f), 0);
}

static void test_overlay_mount_shapes(void **state)
{
	fx *f = *state;
	bt_mount *m = NULL;
	size_t n = 0;
	bt_err e;

	/* no parent: a bind of its own fs/, rw for an active one, ro for a view */
	assert_int_equal(snap_create(f->s, "ns", SNAP_ACTIVE, "a", NULL, NULL, &m, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(m[0].type, "bind");
	assert_true(bt_endswith(m[0].source, "/snapshots/1/fs"));
	assert_int_equal(m[0].n_options, 2);
	assert_string_equal(m[0].options[0], "rw");
	assert_string_equal(m[0].options[1], "rbind");
	bt_mounts_free(m, n);
	assert_int_equal(snap_create(f->s, "ns", SNAP_VIEW, "empty-view", NULL, NULL, &m, &n, &e), 0);
	assert_string_equal(m[0].type, "bind");
	assert_string_equal(m[0].options[0], "ro");
	bt_mounts_free(m, n);
	must_commit(f, "ns", "l1", "a");
	must_prep(f, "ns", "b", "l1");
	must_commit(f, "ns", "l2", "b");

	/* active with parents: overlay, nearest parent first */
	assert_int_equal(snap_create(f->s, "ns", SNAP_ACTIVE, "c", "l2", NULL, &m, &n, &e), 0);
	assert_string_equal(m[0].type, "overlay");
	assert_string_equal(m[0].source, "overlay");
	_cleanup_free_ char *wd = bt_xasprintf("workdir=%s/snapshots/4/work", f->state);
	_cleanup_free_ char *ud = bt_xasprintf("upperdir=%s/snapshots/4/fs", f->state);
	_cleanup_free_ char *ld = bt_xasprintf("lowerdir=%s/snapshots/3/fs:%s/snapshots/1/fs", f->state, f->state);
	assert_int_equal(m[0].n_options, 3);
	assert_string_equal(m[0].options[0], wd);
	assert_string_equal(m[0].options[1], ud);
	assert_string_equal(m[0].options[2], ld);
	bt_mounts_free(m, n);
	/* the same from Mounts */
	assert_int_equal(snap_mounts(f->s, "ns", "c", &m, &n, &e), 0);
	assert_string_equal(m[0].options[2], ld);
	bt_mounts_free(m, n);
	/* view with one parent: a read-only bind of the parent */
	assert_int_equal(snap_create(f->s, "ns", SNAP_VIEW, "v1", "l1", NULL, &m, &n, &e), 0);
	assert_string_equal(m[0].type, "bind");
	_cleanup_free_ char *l1fs = bt_xasprintf("%s/snapshots/1/fs", f->state);
	assert_string_equal(m[0].source, l1fs);
	assert_string_equal(m[0].options[0], "ro");
	bt_mounts_free(m, n);
	/* view with more: lowerdirs only */
	assert_int_equal(snap_create(f->s, "ns", SNAP_VIEW, "v2", "l2", NULL, &m, &n, &e), 0);
	assert_string_equal(m[0].type, "overlay");
	assert_int_equal(m[0].n_options, 1);
	assert_string_equal(m[0].options[0], ld);
	bt_mounts_free(m, n);
}

/* What a chain shows when mounted: the same for both drivers. */
static void chain_contents(fx *f)
{
	bt_err e;

	must_prep(f, "ns", "k1", NULL);
	mount_key(f, "ns", "k1");
	put(f->target, "a", "one");
	put(f->target, "gone", "bye");
	_cleanup_free_ char *d = bt_xasprintf("%s/dir", f->target);
	assert_int_equal(mkdir(d, 0750), 0);
	put(d, "inner", "in");
	umount_target(f);
	must_commit(f, "ns", "l1", "k1");

	must_prep(f, "ns", "k2", "l1");
	mount_key(f, "ns", "k2");
	_cleanup_free_ char *a = get(f->target, "a");
	assert_string_equal(a, "one");
	put(f->target, "a", "two"); /* changes a parent's file */
	_cleanup_free_ char *g = bt_xasprintf("%s/gone", f->target);
	assert_int_equal(unlink(g), 0); /* deletes a parent's file */
	put(f->target, "b", "new");
	umount_target(f);
	must_commit(f, "ns", "l2", "k2");

	/* the child of the chain sees both layers and the deletion */
	must_prep(f, "ns", "k3", "l2");
	mount_key(f, "ns", "k3");
	_cleanup_free_ char *a3 = get(f->target, "a");
	_cleanup_free_ char *b3 = get(f->target, "b");
	_cleanup_free_ char *in3 = get(d, "inner");
	assert_string_equal(a3, "two");
	assert_string_equal(b3, "new");
	assert_string_equal(in3, "in");
	assert_false(exists(f->target, "gone"));
	struct stat st;
	assert_int_equal(stat(d, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);
	umount_target(f);

	/* the parents are untouched: a view of l1 still has the old files */
	bt_mount *m = NULL;
	size_t n = 0;
	assert_int_equal(snap_create(f->s, "ns", SNAP_VIEW, "v", "l1", NULL, &m, &n, &e), 0);
	assert_int_equal(bt_mount_all(m, n, f->target, &e), 0);
	bt_mounts_free(m, n);
	_cleanup_free_ char *a1 = get(f->target, "a");
	assert_string_equal(a1, "one");
	assert_true(exists(f->target, "gone"));
	/* views are read-only */
	_cleanup_free_ char *w = bt_xasprintf("%s/write", f->target);
	assert_int_equal(open(w, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), -1);
	assert_int_equal(errno, EROFS);
	umount_target(f);
	/* and a view of l2 (two layers) too */
	assert_int_equal(snap_create(f->s, "ns", SNAP_VIEW, "v2", "l2", NULL, &m, &n, &e), 0);
	assert_int_equal(bt_mount_all(m, n, f->target, &e), 0);
	bt_mounts_free(m, n);
	_cleanup_free_ char *a2 = get(f->target, "a");
	assert_string_equal(a2, "two");
	assert_false(exists(f->target, "gone"));
	assert_int_equal(open(w, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), -1);
	assert_int_equal(errno, EROFS);
	umount_target(f);
	assert_int_equal(check_dirs_match_records(f), 5);
}

static void test_chain_contents(void **state)
{
	fx *f = *state;
	chain_contents(f);
	/* overlay: the deletion is a whiteout in k2's layer */
	_cleanup_free_ char *wh = bt_xasprintf("%s/snapshots/2/fs/gone", f->state);
	struct stat st;
	assert_int_equal(lstat(wh, &st), 0);
	assert_true(S_ISCHR(st.st_mode));
}

static void test_native_chain_contents(void **state)
{
	fx *f = *state;
	bt_mount *m = NULL;
	size_t n = 0;
	bt_err e;

	chain_contents(f);
	/* native: every snapshot is a bind of its own full copy */
	assert_int_equal(snap_mounts(f->s, "ns", "k3", &m, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(m[0].type, "bind");
	_cleanup_free_ char *fs = bt_xasprintf("%s/snapshots/3/fs", f->state);
	assert_string_equal(m[0].source, fs);
	assert_string_equal(m[0].options[0], "rw");
	bt_mounts_free(m, n);
	_cleanup_free_ char *a = get(fs, "a");
	assert_string_equal(a, "two");
	assert_false(exists(fs, "gone"));
}

static void test_native_copy_keeps_metadata(void **state)
{
	fx *f = *state;
	struct stat a, b;
	bt_err e;

	must_prep(f, "ns", "k", NULL);
	_cleanup_free_ char *fs = bt_xasprintf("%s/snapshots/1/fs", f->state);
	put(fs, "file", "data");
	_cleanup_free_ char *file = bt_xasprintf("%s/file", fs);
	_cleanup_free_ char *hard = bt_xasprintf("%s/hard", fs);
	_cleanup_free_ char *sym = bt_xasprintf("%s/sym", fs);
	_cleanup_free_ char *dev = bt_xasprintf("%s/null", fs);
	_cleanup_free_ char *fifo = bt_xasprintf("%s/fifo", fs);
	_cleanup_free_ char *ro = bt_xasprintf("%s/ro", fs);
	assert_int_equal(chown(file, 1234, 5678), 0);
	assert_int_equal(chmod(file, 04755), 0);
	assert_int_equal(link(file, hard), 0);
	assert_int_equal(symlink("../outside/target", sym), 0);
	assert_int_equal(mknod(dev, S_IFCHR | 0666, makedev(1, 3)), 0);
	assert_int_equal(mkfifo(fifo, 0640), 0);
	assert_int_equal(setxattr(file, "user.note", "v", 1, 0), 0);
	assert_int_equal(mkdir(ro, 0555), 0);
	put(fs, "big", "");
	must_commit(f, "ns", "l", "k");
	must_prep(f, "ns", "copy", "l");

	_cleanup_free_ char *cfs = bt_xasprintf("%s/snapshots/2/fs", f->state);
	_cleanup_free_ char *cfile = bt_xasprintf("%s/file", cfs);
	_cleanup_free_ char *clink = bt_xasprintf("%s/hard", cfs);
	assert_int_equal(lstat(file, &a), 0);
	assert_int_equal(lstat(cfile, &b), 0);
	assert_int_equal(b.st_uid, 1234);
	assert_int_equal(b.st_gid, 5678);
	assert_int_equal(b.st_mode & 07777, 04755); /* setuid survives the chown */
	assert_int_equal(b.st_mtim.tv_sec, a.st_mtim.tv_sec);
	assert_int_equal(b.st_mtim.tv_nsec, a.st_mtim.tv_nsec);
	assert_int_equal(b.st_nlink, 2);
	struct stat c;
	assert_int_equal(lstat(clink, &c), 0);
	assert_int_equal(c.st_ino, b.st_ino); /* a hard link stays one */
	assert_true(b.st_ino != a.st_ino);    /* but it is a copy */
	char buf[64] = { 0 };
	_cleanup_free_ char *csym = bt_xasprintf("%s/sym", cfs);
	assert_int_equal(readlink(csym, buf, sizeof(buf)), 17);
	assert_string_equal(buf, "../outside/target");
	_cleanup_free_ char *cdev = bt_xasprintf("%s/null", cfs);
	assert_int_equal(lstat(cdev, &c), 0);
	assert_true(S_ISCHR(c.st_mode));
	assert_int_equal(c.st_rdev, makedev(1, 3));
	_cleanup_free_ char *cfifo = bt_xasprintf("%s/fifo", cfs);
	assert_int_equal(lstat(cfifo, &c), 0);
	assert_true(S_ISFIFO(c.st_mode));
	assert_int_equal(c.st_mode & 0777, 0640);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(getxattr(cfile, "user.note", buf, sizeof(buf)), 1);
	assert_string_equal(buf, "v");
	_cleanup_free_ char *cro = bt_xasprintf("%s/ro", cfs);
	assert_int_equal(lstat(cro, &c), 0);
	assert_int_equal(c.st_mode & 07777, 0555);
	_cleanup_free_ char *data = get(cfs, "file");
	assert_string_equal(data, "data");
	/* the copy is independent of its parent */
	put(cfs, "file", "changed");
	_cleanup_free_ char *orig = get(fs, "file");
	assert_string_equal(orig, "data");
	(void)e;
}

static void test_chain_128_mounts(void **state)
{
	fx *f = *state;
	char key[32], name[32], parent[32] = "";
	bt_err e;

	/* 128 committed layers, each adding a file and overwriting "top" */
	for (int i = 0; i < 128; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		snprintf(name, sizeof(name), "layer-%d", i);
		must_prep(f, "ns", key, parent[0] ? parent : NULL);
		_cleanup_free_ char *fs = bt_xasprintf("%s/snapshots/%d/fs", f->state, i + 1);
		_cleanup_free_ char *file = bt_xasprintf("f%d", i);
		_cleanup_free_ char *val = bt_xasprintf("%d", i);
		put(fs, file, "x");
		put(fs, "top", val);
		must_commit(f, "ns", name, key);
		snprintf(parent, sizeof(parent), "%s", name);
	}
	bt_mount *m = NULL;
	size_t n = 0;
	assert_int_equal(snap_create(f->s, "ns", SNAP_ACTIVE, "top", parent, NULL, &m, &n, &e), 0);
	const char *lower = bt_mount_option(&m[0], "lowerdir");
	assert_non_null(lower);
	assert_true(strlen(lower) > 4096); /* more than a page: overlay's legacy limit */
	assert_int_equal(bt_mount_all(m, n, f->target, &e), 0);
	bt_mounts_free(m, n);
	for (int i = 0; i < 128; i++) {
		_cleanup_free_ char *file = bt_xasprintf("f%d", i);
		assert_true(exists(f->target, file));
	}
	_cleanup_free_ char *top = get(f->target, "top");
	assert_string_equal(top, "127");
	put(f->target, "mine", "y");
	umount_target(f);
	/* the same chain through a child that mounts with relative paths */
	assert_int_equal(snap_mounts(f->s, "ns", "top", &m, &n, &e), 0);
	assert_int_equal(bt_mount_all_flags(m, n, f->target, BT_MOUNT_NO_NEW_API, &e), 0);
	bt_mounts_free(m, n);
	_cleanup_free_ char *mine = get(f->target, "mine");
	assert_string_equal(mine, "y");
	assert_true(exists(f->target, "f0"));
	umount_target(f);
	/* and a view of all 128 */
	assert_int_equal(snap_create(f->s, "ns", SNAP_VIEW, "view", parent, NULL, &m, &n, &e), 0);
	assert_int_equal(bt_mount_all(m, n, f->target, &e), 0);
	bt_mounts_free(m, n);
	assert_true(exists(f->target, "f64"));
	umount_target(f);
}

static void test_namespaces(void **state)
{
	fx *f = *state;
	snap_info i = { 0 };
	bt_err e;

	must_prep(f, "a", "same", NULL);
	must_prep(f, "b", "same", NULL); /* the same key in another namespace */
	must_commit(f, "a", "base", "same");
	/* b cannot see a's snapshots, nor use them as parents */
	assert_int_equal(snap_stat(f->s, "b", "base", &i, &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	assert_int_equal(prep(f, "b", "child", "base", &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	assert_int_equal(snap_remove(f->s, "b", "base", &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	assert_int_equal(snap_commit(f->s, "b", "base", "same", NULL, &e), 0); /* names too are per namespace */
	assert_int_equal(kind_of(f, "a", "base"), SNAP_COMMITTED);
	assert_int_equal(kind_of(f, "b", "base"), SNAP_COMMITTED);
	assert_int_equal(snap_remove(f->s, "a", "base", &e), 0);
	assert_int_equal(kind_of(f, "b", "base"), SNAP_COMMITTED);
	assert_int_equal(check_dirs_match_records(f), 1);
}

typedef struct names {
	char *v[16];
	size_t n;
} names;

static int collect(const snap_info *i, void *arg)
{
	names *ns = arg;
	if (ns->n < 16)
		ns->v[ns->n++] = bt_xasprintf("%s:%s:%s", i->name, i->parent, snap_kind_name(i->kind));
	return 0;
}

static void list_is(fx *f, const char *filter, const char *want)
{
	bt_filter *flt = NULL;
	names got = { 0 };
	bt_buf b = { 0 };
	bt_err e;

	assert_int_equal(bt_filter_parse(filter ? &filter : NULL, filter ? 1 : 0, &flt, &e), 0);
	assert_int_equal(snap_list(f->s, "ns", flt, collect, &got, &e), 0);
	for (size_t i = 0; i < got.n; i++) {
		bt_buf_appendf(&b, "%s%s", i ? " " : "", got.v[i]);
		free(got.v[i]);
	}
	assert_string_equal(b.data ? b.data : "", want);
	bt_buf_free(&b);
	bt_filter_free(&flt);
}

static void test_labels_and_filters(void **state)
{
	fx *f = *state;
	bt_labels l = { 0 }, want = { 0 };
	snap_info i = { 0 };
	bt_mount *m = NULL;
	size_t n = 0;
	bt_err e;

	bt_labels_set(&l, "team", "red");
	bt_labels_set(&l, "app.kubernetes.io/name", "web");
	assert_int_equal(snap_create(f->s, "ns", SNAP_ACTIVE, "a", NULL, &l, &m, &n, &e), 0);
	bt_mounts_free(m, n);
	assert_int_equal(snap_stat(f->s, "ns", "a", &i, &e), 0);
	assert_string_equal(bt_labels_get(&i.labels, "team"), "red");
	snap_info_clear(&i);
	/* commit labels replace the active one's (as containerd does) */
	bt_labels_clear(&l);
	bt_labels_set(&l, "layer", "1");
	assert_int_equal(snap_commit(f->s, "ns", "c", "a", &l, &e), 0);
	assert_int_equal(snap_stat(f->s, "ns", "c", &i, &e), 0);
	assert_int_equal(i.labels.n, 1);
	assert_string_equal(bt_labels_get(&i.labels, "layer"), "1");
	snap_info_clear(&i);
	must_prep(f, "ns", "b", "c");

	/* masks: one key set, one key removed, an immutable field refused */
	bt_labels_set(&want, "x", "y");
	char *mask1[] = { (char *)"labels.x", (char *)"labels.layer" };
	assert_int_equal(snap_update(f->s, "ns", "c", &want, mask1, 2, &i, &e), 0);
	assert_int_equal(i.labels.n, 1);
	assert_string_equal(bt_labels_get(&i.labels, "x"), "y");
	assert_true(i.updated >= i.created);
	snap_info_clear(&i);
	char *mask2[] = { (char *)"parent" };
	assert_int_equal(snap_update(f->s, "ns", "c", &want, mask2, 1, &i, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_int_equal(snap_update(f->s, "ns", "nope", &want, NULL, 0, &i, &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	/* empty mask: every mutable field (all labels replaced) */
	bt_labels_clear(&want);
	bt_labels_set(&want, "only", "this");
	assert_int_equal(snap_update(f->s, "ns", "b", &want, NULL, 0, &i, &e), 0);
	snap_info_clear(&i);

	list_is(f, NULL, "b:c:active c::committed");
	list_is(f, "kind==active", "b:c:active");
	list_is(f, "kind==committed", "c::committed");
	list_is(f, "parent==c", "b:c:active");
	list_is(f, "name~=^c", "c::committed");
	list_is(f, "labels.x==y", "c::committed");
	list_is(f, "labels.only", "b:c:active");
	list_is(f, "labels.x!=y", "b:c:active");
	bt_labels_clear(&l);
	bt_labels_clear(&want);
}

static void test_usage(void **state)
{
	fx *f = *state;
	snap_usage_info u0, u1, u2, uc;
	bt_err e;

	must_prep(f, "ns", "k", NULL);
	assert_int_equal(snap_usage(f->s, "ns", "k", &u0, &e), 0);
	assert_int_equal(u0.inodes, 1); /* the layer's root */
	_cleanup_free_ char *fs = bt_xasprintf("%s/snapshots/1/fs", f->state);
	char big[10000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	put(fs, "a", big);
	assert_int_equal(snap_usage(f->s, "ns", "k", &u1, &e), 0);
	assert_int_equal(u1.inodes, 2);
	assert_true(u1.size >= u0.size + 8192);
	/* a hard link is one inode */
	_cleanup_free_ char *a = bt_xasprintf("%s/a", fs);
	_cleanup_free_ char *h = bt_xasprintf("%s/h", fs);
	assert_int_equal(link(a, h), 0);
	assert_int_equal(snap_usage(f->s, "ns", "k", &u2, &e), 0);
	assert_int_equal(u2.inodes, 2);
	assert_int_equal(u2.size, u1.size);
	must_commit(f, "ns", "c", "k");
	assert_int_equal(snap_usage(f->s, "ns", "c", &uc, &e), 0);
	assert_int_equal(uc.size, u2.size);
	assert_int_equal(uc.inodes, u2.inodes);
	/* an overlay child's own layer starts empty */
	must_prep(f, "ns", "child", "c");
	assert_int_equal(snap_usage(f->s, "ns", "child", &u0, &e), 0);
	assert_int_equal(u0.inodes, 1);
	assert_int_equal(snap_usage(f->s, "ns", "nope", &u0, &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
}

/* --- crashes ---------------------------------------------------------------------- */

typedef enum { OP_PREPARE, OP_VIEW, OP_COMMIT, OP_REMOVE } op_kind;

typedef struct crash {
	const char *point;
} crash;

static void die_at(const char *point, void *arg)
{
	crash *c = arg;
	if (strcmp(point, c->point) == 0)
		_exit(42); /* as sudden as kill -9: nothing is cleaned up */
}

/* Runs op in a child process that dies at point; returns true when it died there. */
static bool crash_at(fx *f, op_kind op, const char *point)
{
	snap_store_free(&f->s);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		snap_store *s = NULL;
		bt_mount *m = NULL;
		size_t n = 0;
		bt_err e;
		crash c = { .point = point };
		if (snap_store_open(f->state, f->drv, &s, &e) < 0)
			_exit(1);
		snap_store_set_hook(s, die_at, &c);
		int rc = -1;
		switch (op) {
		case OP_PREPARE:
			rc = snap_create(s, "ns", SNAP_ACTIVE, "new", "base", NULL, &m, &n, &e);
			break;
		case OP_VIEW:
			rc = snap_create(s, "ns", SNAP_VIEW, "new", "base", NULL, &m, &n, &e);
			break;
		case OP_COMMIT:
			rc = snap_commit(s, "ns", "done", "work", NULL, &e);
			break;
		case OP_REMOVE:
			rc = snap_remove(s, "ns", "work", &e);
			break;
		}
		_exit(rc == 0 ? 0 : 2);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	reopen(f);
	return WIFEXITED(status) && WEXITSTATUS(status) == 42;
}

/* A committed "base" with a file, and an active "work" on it. */
static void crash_fixture(fx *f)
{
	must_prep(f, "ns", "b", NULL);
	_cleanup_free_ char *fs = bt_xasprintf("%s/snapshots/1/fs", f->state);
	put(fs, "base-file", "b");
	must_commit(f, "ns", "base", "b");
	must_prep(f, "ns", "work", "base");
}

static void test_crash_create(void **state)
{
	fx *f = *state;
	static const struct {
		const char *point;
		bool done; /* the new snapshot exists after the crash */
	} points[] = {
		{ "create:built", false },
		{ "create:renamed", false },
		{ "create:recorded", true },
	};

	crash_fixture(f);
	for (int view = 0; view < 2; view++) {
		for (size_t i = 0; i < BT_ARRAY_LEN(points); i++) {
			assert_true(crash_at(f, view ? OP_VIEW : OP_PREPARE, points[i].point));
			/* old or new, and nothing in between */
			snap_kind k = kind_of(f, "ns", "new");
			if (points[i].done) {
				assert_int_equal(k, view ? SNAP_VIEW : SNAP_ACTIVE);
				mount_key(f, "ns", "new");
				assert_true(exists(f->target, "base-file"));
				umount_target(f);
				bt_err e;
				assert_int_equal(snap_remove(f->s, "ns", "new", &e), 0);
			} else {
				assert_int_equal(k, SNAP_UNKNOWN);
			}
			assert_int_equal(check_dirs_match_records(f), 2);
		}
	}
	/* a run without a crash still works afterwards */
	must_prep(f, "ns", "after", "base");
	assert_int_equal(check_dirs_match_records(f), 3);
}

static void test_crash_commit(void **state)
{
	fx *f = *state;
	bt_err e;

	crash_fixture(f);
	assert_true(crash_at(f, OP_COMMIT, "commit:synced"));
	assert_int_equal(kind_of(f, "ns", "work"), SNAP_ACTIVE);
	assert_int_equal(kind_of(f, "ns", "done"), SNAP_UNKNOWN);
	assert_int_equal(check_dirs_match_records(f), 2);
	assert_true(crash_at(f, OP_COMMIT, "commit:recorded"));
	assert_int_equal(kind_of(f, "ns", "work"), SNAP_UNKNOWN);
	assert_int_equal(kind_of(f, "ns", "done"), SNAP_COMMITTED);
	assert_int_equal(check_dirs_match_records(f), 2);
	must_prep(f, "ns", "on-done", "done");
	assert_int_equal(snap_remove(f->s, "ns", "on-done", &e), 0);
}

static void test_crash_remove(void **state)
{
	fx *f = *state;

	crash_fixture(f);
	assert_true(crash_at(f, OP_REMOVE, "remove:unrecorded"));
	assert_int_equal(kind_of(f, "ns", "work"), SNAP_UNKNOWN);
	assert_int_equal(check_dirs_match_records(f), 1); /* start-up removed the orphan */
	must_prep(f, "ns", "work", "base");
	assert_true(crash_at(f, OP_REMOVE, "remove:renamed"));
	assert_int_equal(kind_of(f, "ns", "work"), SNAP_UNKNOWN);
	assert_int_equal(check_dirs_match_records(f), 1);
	/* the parent can go now */
	bt_err e;
	assert_int_equal(snap_remove(f->s, "ns", "base", &e), 0);
	assert_int_equal(check_dirs_match_records(f), 0);
}

static void test_cleanup_orphans(void **state)
{
	fx *f = *state;
	int64_t removed = -1;
	bt_err e;

	crash_fixture(f);
	_cleanup_free_ char *snaps = bt_xasprintf("%s/snapshots", f->state);
	static const char *const strays[] = { "99", "007", "new-abcdef", "rm-3-cafe", "junk" };
	for (size_t i = 0; i < BT_ARRAY_LEN(strays); i++) {
		_cleanup_free_ char *p = bt_xasprintf("%s/%s/fs/deep", snaps, strays[i]);
		assert_int_equal(bt_mkdir_p(p, 0700, &e), 0);
	}
	put(snaps, "stray-file", "x");
	assert_int_equal(snap_cleanup(f->s, &removed, &e), 0);
	assert_int_equal(removed, 6);
	assert_int_equal(check_dirs_match_records(f), 2);
	assert_int_equal(snap_cleanup(f->s, &removed, &e), 0);
	assert_int_equal(removed, 0);
	/* a stale directory under the next id does not stop a new snapshot */
	_cleanup_free_ char *next = bt_xasprintf("%s/3/fs", snaps);
	assert_int_equal(bt_mkdir_p(next, 0700, &e), 0);
	put(next, "stale", "x");
	must_prep(f, "ns", "fresh", "base");
	assert_int_equal(check_dirs_match_records(f), 3);
	_cleanup_free_ char *fresh = bt_xasprintf("%s/3/fs", snaps);
	assert_false(exists(fresh, "stale"));
}

typedef struct racer {
	fx *f;
	int rounds;
	int failures;
} racer;

static void *prepare_loop(void *p)
{
	racer *r = p;
	bt_err e;
	char key[32];

	for (int i = 0; i < r->rounds; i++) {
		snprintf(key, sizeof(key), "race-%d", i);
		if (prep(r->f, "ns", key, "base", &e) < 0)
			r->failures++;
		if (i % 2 && snap_remove(r->f->s, "ns", key, &e) < 0)
			r->failures++;
	}
	return NULL;
}

static void test_cleanup_during_prepares(void **state)
{
	fx *f = *state;
	racer r = { .f = f, .rounds = 60 };
	pthread_t t;
	bt_err e;

	f->drv = &snap_native_driver; /* copies take a while: a wide window */
	reopen(f);
	crash_fixture(f);
	assert_int_equal(pthread_create(&t, NULL, prepare_loop, &r), 0);
	for (int i = 0; i < 200; i++) {
		int64_t removed = 0;
		assert_int_equal(snap_cleanup(f->s, &removed, &e), 0);
		assert_int_equal(removed, 0); /* nothing in flight was taken for an orphan */
	}
	pthread_join(t, NULL);
	assert_int_equal(r.failures, 0);
	/* every snapshot made is whole */
	assert_int_equal(check_dirs_match_records(f), 2 + 30);
	for (int i = 0; i < r.rounds; i += 2) {
		char key[32];
		snprintf(key, sizeof(key), "race-%d", i);
		assert_int_equal(kind_of(f, "ns", key), SNAP_ACTIVE);
	}
}

/* --- through the RPC layer ---------------------------------------------------------- */

static void *serve(void *srv)
{
	bt_err e;
	bt_server_run(srv, &e);
	return NULL;
}

static void test_rpc_nul_and_snapshotter(void **state)
{
	fx *f = *state;
	snap_rpc ctx = { .store = f->s, .name = "overlayfs" };
	bt_service svc;
	bt_err e;
	_cleanup_free_ char *ep = bt_xasprintf("ipc://%s/s.sock", f->dir);
	bt_server_opts so = { .daemon = "test", .endpoint = ep };
	bt_server *srv = bt_server_new(&so, &e);
	pthread_t t;

	assert_non_null(srv);
	snap_rpc_service(&ctx, &svc);
	assert_int_equal(bt_server_add(srv, &svc, &e), 0);
	assert_int_equal(pthread_create(&t, NULL, serve, srv), 0);
	bt_conn *c = bt_conn_new(ep, NULL, &e);
	assert_non_null(c);

	Berth__Snapshots__V1__PrepareSnapshotRequest req = BERTH__SNAPSHOTS__V1__PREPARE_SNAPSHOT_REQUEST__INIT;
	bt_callspec cs = { .service = "snapshots", .method = "Prepare", .ns = "ns" };
	void *resp = NULL;
	/* a key with a NUL arrives whole and is refused, not cut to "a" */
	req.key.data = (uint8_t *)"a\0b";
	req.key.len = 3;
	assert_int_equal(bt_conn_call(c, &cs, &req.base, &berth__snapshots__v1__prepare_snapshot_response__descriptor,
				      &resp, &e),
			 -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_non_null(strstr(e.msg, "invalid key \"a\\x00b\": contains a NUL byte"));
	assert_int_equal(kind_of(f, "ns", "a"), SNAP_UNKNOWN);
	/* another snapshotter's name: NOT_FOUND */
	req.key.data = (uint8_t *)"a";
	req.key.len = 1;
	cs.snapshotter = "native";
	assert_int_equal(bt_conn_call(c, &cs, &req.base, &berth__snapshots__v1__prepare_snapshot_response__descriptor,
				      &resp, &e),
			 -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	assert_non_null(strstr(e.msg, "snapshotter \"native\" not found"));
	/* its own name (or none) works */
	cs.snapshotter = "overlayfs";
	assert_int_equal(bt_conn_call(c, &cs, &req.base, &berth__snapshots__v1__prepare_snapshot_response__descriptor,
				      &resp, &e),
			 0);
	Berth__Snapshots__V1__PrepareSnapshotResponse *r = resp;
	assert_int_equal(r->n_mounts, 1);
	assert_string_equal(r->mounts[0]->type, "bind");
	protobuf_c_message_free_unpacked(resp, NULL);

	bt_conn_free(&c);
	bt_server_stop(srv);
	pthread_join(t, NULL);
	bt_server_free(&srv);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define N(fn) cmocka_unit_test_setup_teardown(fn, setup_native, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_rules),
		T(test_kinds_and_rules),
		N(test_kinds_and_rules),
		T(test_overlay_mount_shapes),
		T(test_chain_contents),
		N(test_native_chain_contents),
		N(test_native_copy_keeps_metadata),
		T(test_chain_128_mounts),
		T(test_namespaces),
		T(test_labels_and_filters),
		T(test_usage),
		T(test_crash_create),
		N(test_crash_create),
		T(test_crash_commit),
		T(test_crash_remove),
		N(test_crash_remove),
		T(test_cleanup_orphans),
		T(test_cleanup_during_prepares),
		T(test_rpc_nul_and_snapshotter),
	};
	if (geteuid() != 0) {
		fprintf(stderr, "test_snap_store: needs root (real mounts)\n");
		return 1;
	}
	return cmocka_run_group_tests_name("snap_store", tests, NULL, NULL);
}
