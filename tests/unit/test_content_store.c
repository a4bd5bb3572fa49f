/*
 * test_content_store — the content store's logic without the RPC layer:
 * ingests, commits, resumption, namespaces, locks, deletion, and recovery
 * from each state a crash can leave.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bt_digest.h"
#include "bt_filter.h"
#include "bt_util.h"
#include "content_store.h"

typedef struct fx {
	char dir[64];
	content_store *s;
	content_opts o;
} fx;

static int setup(void **state)
{
	fx *f = bt_xzalloc(sizeof(*f));
	bt_err e;

	snprintf(f->dir, sizeof(f->dir), "/tmp/bt-cs.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->o.lock_timeout_ms = 200;
	f->o.max_ingests = 8;
	assert_int_equal(content_store_open(f->dir, &f->o, &f->s, &e), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	bt_err e;
	content_store_free(&f->s);
	bt_rm_rf(f->dir, &e);
	free(f);
	return 0;
}

static void reopen(fx *f)
{
	bt_err e;
	content_store_free(&f->s);
	assert_int_equal(content_store_open(f->dir, &f->o, &f->s, &e), 0);
}

static int wr(fx *f, const char *ns, content_action a, const char *ref, const char *writer, int64_t off, const char *data,
	      const char *expected, int64_t total, content_write_res *res, bt_err *e)
{
	content_write_req w = {
		.action = a,
		.ref = ref,
		.writer = writer,
		.offset = off,
		.data = data,
		.len = data ? strlen(data) : 0,
		.expected = expected,
		.total = total,
	};
	content_write_res ignore;
	return content_write(f->s, ns, &w, res ? res : &ignore, e);
}

static void digest_of(const char *s, char out[BT_DIGEST_STR_LEN])
{
	bt_digest_buf(s, strlen(s), out);
}

static void test_write_commit_read(void **state)
{
	fx *f = *state;
	content_write_res r;
	content_info info = { 0 };
	char d[BT_DIGEST_STR_LEN];
	bt_err e;
	int fd;
	int64_t size;

	digest_of("hello world", d);
	assert_int_equal(wr(f, "ns", CONTENT_STAT, "r1", NULL, 0, NULL, d, 11, &r, &e), 0);
	assert_int_equal(r.offset, 0);
	assert_int_equal(wr(f, "ns", CONTENT_WRITE, "r1", "w", 0, "hello ", NULL, 0, &r, &e), 0);
	assert_int_equal(r.offset, 6);
	assert_int_equal(wr(f, "ns", CONTENT_COMMIT, "r1", "w", 6, "world", NULL, 0, &r, &e), 0);
	assert_string_equal(r.digest, d);
	assert_int_equal(content_info_get(f->s, "ns", d, &info, &e), 0);
	assert_int_equal(info.size, 11);
	content_info_clear(&info);
	assert_int_equal(content_open(f->s, "ns", d, &fd, &size, &e), 0);
	char buf[16] = { 0 };
	assert_int_equal(read(fd, buf, sizeof(buf)), 11);
	assert_string_equal(buf, "hello world");
	close(fd);
	/* the ingest is gone */
	content_status st = { 0 };
	assert_int_equal(content_status_get(f->s, "ns", "r1", &st, &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	/* an expected digest the namespace holds is ALREADY_EXISTS at once */
	assert_int_equal(wr(f, "ns", CONTENT_STAT, "r2", NULL, 0, NULL, d, 0, NULL, &e), -1);
	assert_int_equal(e.code, BT_ALREADY_EXISTS);
	/* committing the same bytes again without expecting them: fine, flagged, nothing left behind */
	assert_int_equal(wr(f, "ns", CONTENT_COMMIT, "r3", "w", 0, "hello world", NULL, 0, &r, &e), 0);
	assert_true(r.existed);
	assert_string_equal(r.digest, d);
	assert_int_equal(content_status_get(f->s, "ns", "r3", &st, &e), -1);
}

static void test_empty_blob(void **state)
{
	fx *f = *state;
	content_write_res r;
	bt_err e;

	assert_int_equal(wr(f, "ns", CONTENT_COMMIT, "empty", "w", 0, NULL, NULL, 0, &r, &e), 0);
	assert_string_equal(r.digest, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_mismatches(void **state)
{
	fx *f = *state;
	char d[BT_DIGEST_STR_LEN];
	bt_err e;

	digest_of("other", d);
	assert_int_equal(wr(f, "ns", CONTENT_COMMIT, "m", "w", 0, "data", d, 0, NULL, &e), -1);
	assert_int_equal(e.code, BT_FAILED_PRECONDITION);
	assert_non_null(strstr(e.msg, "unexpected digest"));
	assert_int_equal(content_info_get(f->s, "ns", d, &(content_info){ 0 }, &e), -1);
	assert_int_equal(wr(f, "ns", CONTENT_COMMIT, "s", "w", 0, "data", NULL, 10, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "unexpected size 4, expected 10"));
	assert_int_equal(wr(f, "ns", CONTENT_WRITE, "s2", "w", 0, "too long", NULL, 3, NULL, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	/* a different expected digest for an ingest under way */
	char d2[BT_DIGEST_STR_LEN];
	digest_of("x", d2);
	assert_int_equal(wr(f, "ns", CONTENT_WRITE, "m", "w", 4, "", d2, 0, NULL, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
}

static void test_offsets(void **state)
{
	fx *f = *state;
	content_write_res r;
	bt_err e;

	assert_int_equal(wr(f, "ns", CONTENT_WRITE, "o", "w", 0, "abc", NULL, 0, &r, &e), 0);
	assert_int_equal(wr(f, "ns", CONTENT_WRITE, "o", "w", 5, "def", NULL, 0, &r, &e), -1);
	assert_int_equal(e.code, BT_FAILED_PRECONDITION);
	assert_non_null(strstr(e.msg, "the ingest is at 3"));
	/* offset 0 with data starts over */
	assert_int_equal(wr(f, "ns", CONTENT_WRITE, "o", "w", 0, "xy", NULL, 0, &r, &e), 0);
	assert_int_equal(r.offset, 2);
	assert_int_equal(wr(f, "ns", CONTENT_COMMIT, "o", "w", 2, NULL, NULL, 0, &r, &e), 0);
	char d[BT_DIGEST_STR_LEN];
	digest_of("xy", d);
	assert_string_equal(r.digest, d);
	/* bad arguments */
	assert_int_equal(wr(f, "ns", CONTENT_WRITE, "", "w", 0, "a", NULL, 0, NULL, &e), -1);
	assert_int_equal(wr(f, "ns", CONTENT_WRITE, "a\nb", "w", 0, "a", NULL, 0, NULL, &e), -1);
	assert_int_equal(wr(f, "ns", CONTENT_WRITE, "ok", NULL, 0, "a", NULL, 0, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "writer"));
	assert_int_equal(wr(f, "ns", CONTENT_WRITE, "ok", "w", -1, "a", NULL, 0, NULL, &e), -1);
	assert_int_equal(wr(f, "ns", CONTENT_WRITE, "ok", "w", 0, "a", "sha256:zz", 0, NULL, &e), -1);
}

static void test_resume_after_restart(void **state)
{
	fx *f = *state;
	content_write_res r;
	content_status st = { 0 };
	bt_err e;

	assert_int_equal(wr(f, "ns", CONTENT_WRITE, "res", "w1", 0, "first part ", NULL, 0, &r, &e), 0);
	reopen(f); /* the daemon restarts: locks and hashes are rebuilt from disk */
	assert_int_equal(content_status_get(f->s, "ns", "res", &st, &e), 0);
	assert_int_equal(st.offset, 11);
	content_status_clear(&st);
	assert_int_equal(wr(f, "ns", CONTENT_COMMIT, "res", "w2", 11, "second", NULL, 0, &r, &e), 0);
	char d[BT_DIGEST_STR_LEN];
	digest_of("first part second", d);
	assert_string_equal(r.digest, d);
}

static void test_lock(void **state)
{
	fx *f = *state;
	bt_err e;

	assert_int_equal(wr(f, "ns", CONTENT_WRITE, "l", "A", 0, "aaa", NULL, 0, NULL, &e), 0);
	assert_int_equal(wr(f, "ns", CONTENT_WRITE, "l", "B", 3, "bbb", NULL, 0, NULL, &e), -1);
	assert_int_equal(e.code, BT_UNAVAILABLE);
	assert_non_null(strstr(e.msg, "locked"));
	/* STAT needs no lock */
	assert_int_equal(wr(f, "ns", CONTENT_STAT, "l", "B", 0, NULL, NULL, 0, NULL, &e), 0);
	usleep(300000); /* A idles past the lock timeout */
	if (wr(f, "ns", CONTENT_WRITE, "l", "B", 3, "bbb", NULL, 0, NULL, &e) != 0)
		fail_msg("B after A's hold lapsed: %s", e.msg);
	assert_int_equal(wr(f, "ns", CONTENT_WRITE, "l", "A", 6, "a", NULL, 0, NULL, &e), -1);
	assert_int_equal(e.code, BT_UNAVAILABLE);
	/* a failed commit releases the ref at once */
	assert_int_equal(wr(f, "ns", CONTENT_WRITE, "l2", "A", 0, "abc", NULL, 10, NULL, &e), 0);
	assert_int_equal(wr(f, "ns", CONTENT_COMMIT, "l2", "A", 3, NULL, NULL, 0, NULL, &e), -1);
	assert_int_equal(e.code, BT_FAILED_PRECONDITION);
	assert_int_equal(wr(f, "ns", CONTENT_WRITE, "l2", "B", 3, "defghij", NULL, 0, NULL, &e), 0);
}

static void test_namespaces(void **state)
{
	fx *f = *state;
	content_write_res r;
	content_info info = { 0 };
	char d[BT_DIGEST_STR_LEN];
	bt_err e;
	int fd;
	int64_t size;
	struct stat st;

	assert_int_equal(wr(f, "a", CONTENT_COMMIT, "x", "w", 0, "shared bytes", NULL, 0, &r, &e), 0);
	snprintf(d, sizeof(d), "%s", r.digest);
	assert_int_equal(content_info_get(f->s, "b", d, &info, &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	assert_int_equal(content_open(f->s, "b", d, &fd, &size, &e), -1);
	assert_int_equal(content_delete(f->s, "b", d, &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	/* same ref name in b is a different ingest */
	assert_int_equal(wr(f, "b", CONTENT_COMMIT, "x", "w", 0, "shared bytes", NULL, 0, &r, &e), 0);
	_cleanup_free_ char *blob = bt_xasprintf("%s/blobs/sha256/%s", f->dir, d + 7);
	assert_int_equal(stat(blob, &st), 0);
	assert_int_equal(st.st_nlink, 1);
	assert_int_equal(content_delete(f->s, "a", d, &e), 0);
	assert_int_equal(stat(blob, &st), 0);
	assert_int_equal(content_delete(f->s, "b", d, &e), 0);
	assert_int_equal(stat(blob, &st), -1);
}

static int count_cb(const content_info *i, void *arg)
{
	(void)i;
	(*(int *)arg)++;
	return 0;
}

static void test_list_and_labels(void **state)
{
	fx *f = *state;
	content_write_res r;
	content_info info = { 0 };
	bt_labels l = { 0 };
	bt_filter *flt = NULL;
	bt_err e;
	int n = 0;

	bt_labels_set(&l, "team", "red");
	content_write_req w = { .action = CONTENT_COMMIT, .ref = "l1", .writer = "w", .data = "one", .len = 3, .labels = &l };
	assert_int_equal(content_write(f->s, "ns", &w, &r, &e), 0);
	char d1[BT_DIGEST_STR_LEN];
	snprintf(d1, sizeof(d1), "%s", r.digest);
	assert_int_equal(wr(f, "ns", CONTENT_COMMIT, "l2", "w", 0, "two", NULL, 0, &r, &e), 0);
	const char *fs[] = { "labels.team==red" };
	assert_int_equal(bt_filter_parse(fs, 1, &flt, &e), 0);
	assert_int_equal(content_list(f->s, "ns", flt, count_cb, &n, &e), 0);
	assert_int_equal(n, 1);
	bt_filter_free(&flt);
	n = 0;
	assert_int_equal(content_list(f->s, "ns", NULL, count_cb, &n, &e), 0);
	assert_int_equal(n, 2);
	n = 0;
	assert_int_equal(content_list(f->s, "other", NULL, count_cb, &n, &e), 0);
	assert_int_equal(n, 0);
	/* update */
	bt_labels_clear(&l);
	bt_labels_set(&l, "env", "prod");
	char *mask[] = { "labels.env", "labels.team" };
	assert_int_equal(content_update(f->s, "ns", d1, &l, mask, 2, &info, &e), 0);
	assert_string_equal(bt_labels_get(&info.labels, "env"), "prod");
	assert_null(bt_labels_get(&info.labels, "team"));
	content_info_clear(&info);
	char *badmask[] = { "size" };
	assert_int_equal(content_update(f->s, "ns", d1, &l, badmask, 1, &info, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	bt_labels_clear(&l);
	content_info_clear(&info);
}

static void test_max_ingests_and_abort(void **state)
{
	fx *f = *state;
	bt_err e;
	char ref[16];

	for (int i = 0; i < 8; i++) {
		snprintf(ref, sizeof(ref), "i%d", i);
		assert_int_equal(wr(f, "ns", CONTENT_STAT, ref, NULL, 0, NULL, NULL, 0, NULL, &e), 0);
	}
	assert_int_equal(wr(f, "ns", CONTENT_STAT, "one-too-many", NULL, 0, NULL, NULL, 0, NULL, &e), -1);
	assert_int_equal(e.code, BT_RESOURCE_EXHAUSTED);
	/* another namespace has its own allowance */
	assert_int_equal(wr(f, "ns2", CONTENT_STAT, "fine", NULL, 0, NULL, NULL, 0, NULL, &e), 0);
	assert_int_equal(content_abort(f->s, "ns", "i0", &e), 0);
	assert_int_equal(content_abort(f->s, "ns", "i0", &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	assert_int_equal(wr(f, "ns", CONTENT_STAT, "now-fits", NULL, 0, NULL, NULL, 0, NULL, &e), 0);
}

/* Puts the store in the state a crash leaves between two commit steps. */
static void crash_mid_commit(fx *f, const char *ref, const char *data, bool renamed, const char *claimed)
{
	char d[BT_DIGEST_STR_LEN];
	sqlite3 *db;
	bt_err e;

	assert_int_equal(wr(f, "ns", CONTENT_WRITE, ref, "w", 0, data, NULL, 0, NULL, &e), 0);
	content_store_free(&f->s);
	digest_of(claimed ? claimed : data, d);
	_cleanup_free_ char *dbp = bt_xasprintf("%s/meta.db", f->dir);
	assert_int_equal(sqlite3_open(dbp, &db), SQLITE_OK);
	_cleanup_free_ char *sql = bt_xasprintf("UPDATE ingests SET committing = '%s' WHERE ref = '%s'", d, ref);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	if (renamed) {
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(db, "SELECT dir FROM ingests WHERE ref = ?1", -1, &st, NULL), SQLITE_OK);
		sqlite3_bind_text(st, 1, ref, -1, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		_cleanup_free_ char *src = bt_xasprintf("%s/ingest/%s/data", f->dir, sqlite3_column_text(st, 0));
		_cleanup_free_ char *dst = bt_xasprintf("%s/blobs/sha256/%s", f->dir, d + 7);
		assert_int_equal(rename(src, dst), 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	assert_int_equal(content_store_open(f->dir, &f->o, &f->s, &e), 0);
}

static void test_recover_after_rename(void **state)
{
	fx *f = *state;
	char d[BT_DIGEST_STR_LEN];
	content_info info = { 0 };
	content_status st = { 0 };
	bt_err e;

	crash_mid_commit(f, "c1", "renamed before the link", true, NULL);
	digest_of("renamed before the link", d);
	assert_int_equal(content_info_get(f->s, "ns", d, &info, &e), 0);
	assert_int_equal(info.size, (int64_t)strlen("renamed before the link"));
	content_info_clear(&info);
	assert_int_equal(content_status_get(f->s, "ns", "c1", &st, &e), -1);
}

static void test_recover_before_rename(void **state)
{
	fx *f = *state;
	char d[BT_DIGEST_STR_LEN];
	content_info info = { 0 };
	bt_err e;

	crash_mid_commit(f, "c2", "not yet renamed", false, NULL);
	digest_of("not yet renamed", d);
	assert_int_equal(content_info_get(f->s, "ns", d, &info, &e), 0);
	content_info_clear(&info);
}

static void test_recover_wrong_bytes(void **state)
{
	fx *f = *state;
	char d[BT_DIGEST_STR_LEN];
	content_info info = { 0 };
	content_status st = { 0 };
	bt_err e;

	/* the record claims a digest the bytes do not have: never link it */
	crash_mid_commit(f, "c3", "actual bytes", false, "claimed bytes");
	digest_of("claimed bytes", d);
	assert_int_equal(content_info_get(f->s, "ns", d, &info, &e), -1);
	_cleanup_free_ char *blob = bt_xasprintf("%s/blobs/sha256/%s", f->dir, d + 7);
	assert_int_equal(access(blob, F_OK), -1);
	/* it is an ingest in progress again, resumable */
	assert_int_equal(content_status_get(f->s, "ns", "c3", &st, &e), 0);
	assert_int_equal(st.offset, 12);
	content_status_clear(&st);
}

static void test_sweep_orphans(void **state)
{
	fx *f = *state;
	char d[BT_DIGEST_STR_LEN];
	bt_err e;

	digest_of("orphan", d);
	content_store_free(&f->s);
	_cleanup_free_ char *blob = bt_xasprintf("%s/blobs/sha256/%s", f->dir, d + 7);
	_cleanup_free_ char *stray = bt_xasprintf("%s/blobs/sha256/not-a-digest", f->dir);
	_cleanup_free_ char *idir = bt_xasprintf("%s/ingest/deadbeef", f->dir);
	assert_int_equal(bt_write_file_atomic(blob, "orphan", 6, 0600, &e), 0);
	assert_int_equal(bt_write_file_atomic(stray, "x", 1, 0600, &e), 0);
	assert_int_equal(mkdir(idir, 0700), 0);
	assert_int_equal(content_store_open(f->dir, &f->o, &f->s, &e), 0);
	assert_int_equal(access(blob, F_OK), -1);
	assert_int_equal(access(stray, F_OK), -1);
	assert_int_equal(access(idir, F_OK), -1);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_write_commit_read), T(test_empty_blob),		  T(test_mismatches),
		T(test_offsets),	   T(test_resume_after_restart),  T(test_lock),
		T(test_namespaces),	   T(test_list_and_labels),	  T(test_max_ingests_and_abort),
		T(test_recover_after_rename), T(test_recover_before_rename), T(test_recover_wrong_bytes),
		T(test_sweep_orphans),
	};
	return cmocka_run_group_tests_name("content_store", tests, NULL, NULL);
}
