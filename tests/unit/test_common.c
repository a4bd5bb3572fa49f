/*
 * test_common — errors, utilities, digests, the sqlite helper, the map,
 * labels and update masks, and the envelope codec.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bt_db.h"
#include "bt_digest.h"
#include "bt_err.h"
#include "bt_labels.h"
#include "bt_map.h"
#include "bt_rpc.h"
#include "bt_util.h"

static void test_err(void **state)
{
	(void)state;
	bt_err e;

	assert_int_equal(bt_err_set(&e, BT_NOT_FOUND, "blob %s", "x"), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	assert_string_equal(e.msg, "blob x");
	bt_err_wrap(&e, "read %d", 3);
	assert_string_equal(e.msg, "read 3: blob x");
	assert_int_equal(e.code, BT_NOT_FOUND);
	bt_err_errno(&e, ENOENT, "open %s", "/nope");
	assert_int_equal(e.code, BT_NOT_FOUND);
	assert_non_null(strstr(e.msg, "No such file"));
	assert_int_equal(bt_code_from_errno(EEXIST), BT_ALREADY_EXISTS);
	assert_int_equal(bt_code_from_errno(ENOSPC), BT_RESOURCE_EXHAUSTED);
	assert_string_equal(bt_code_name(BT_UNAVAILABLE), "UNAVAILABLE");
	assert_string_equal(bt_code_name(99), "UNKNOWN");
	assert_int_equal(bt_code_from_name("OUT_OF_RANGE"), BT_OUT_OF_RANGE);
	assert_int_equal(bt_code_from_name("nope"), -1);
}

static void test_parse(void **state)
{
	(void)state;
	uint64_t u;
	int64_t ms;

	assert_int_equal(bt_parse_u64("123", &u), 0);
	assert_int_equal(u, 123);
	assert_int_equal(bt_parse_u64("-1", &u), -1);
	assert_int_equal(bt_parse_u64("12x", &u), -1);
	assert_int_equal(bt_parse_u64("", &u), -1);
	assert_int_equal(bt_parse_u64("99999999999999999999999", &u), -1);
	assert_int_equal(bt_parse_size("16MiB", &u), 0);
	assert_int_equal(u, 16u << 20);
	assert_int_equal(bt_parse_size("2k", &u), 0);
	assert_int_equal(u, 2048);
	assert_int_equal(bt_parse_size("3 MB", &u), -1);
	assert_int_equal(bt_parse_size("99999999999G", &u), -1);
	assert_int_equal(bt_parse_duration_ms("30s", &ms), 0);
	assert_int_equal(ms, 30000);
	assert_int_equal(bt_parse_duration_ms("500ms", &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(bt_parse_duration_ms("2m", &ms), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(bt_parse_duration_ms("1d", &ms), -1);
	assert_int_equal(bt_parse_duration_ms("-5s", &ms), -1);
}

static void test_files(void **state)
{
	(void)state;
	char dir[] = "/tmp/bt-util.XXXXXX";
	bt_err e;
	char *data = NULL;
	size_t len;

	assert_non_null(mkdtemp(dir));
	_cleanup_free_ char *deep = bt_xasprintf("%s/a/b/c", dir);
	assert_int_equal(bt_mkdir_p(deep, 0700, &e), 0);
	assert_int_equal(bt_mkdir_p(deep, 0700, &e), 0);
	_cleanup_free_ char *f = bt_xasprintf("%s/a/file", dir);
	assert_int_equal(bt_write_file_atomic(f, "hello", 5, 0600, &e), 0);
	assert_int_equal(bt_read_file(f, 100, &data, &len, &e), 0);
	assert_int_equal(len, 5);
	assert_string_equal(data, "hello");
	free(data);
	assert_int_equal(bt_read_file(f, 3, &data, &len, &e), -1);
	assert_int_equal(e.code, BT_RESOURCE_EXHAUSTED);
	struct stat st;
	assert_int_equal(stat(f, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(bt_read_file("/nonexistent/x", 10, &data, &len, &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	assert_int_equal(bt_rm_rf(dir, &e), 0);
	assert_int_equal(access(dir, F_OK), -1);
	assert_int_equal(bt_rm_rf(dir, &e), 0); /* missing is fine */
}

static void test_digest(void **state)
{
	(void)state;
	char out[BT_DIGEST_STR_LEN], peek[BT_DIGEST_STR_LEN];
	char hex[BT_DIGEST_HEX_LEN + 1];
	bt_err e;

	bt_digest_buf("", 0, out);
	assert_string_equal(out, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	bt_digest *d = bt_digest_new();
	bt_digest_update(d, "hello ", 6);
	bt_digest_peek(d, peek);
	bt_digest_update(d, "world", 5);
	assert_int_equal(bt_digest_count(d), 11);
	bt_digest_final(d, out);
	assert_string_equal(out, "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
	bt_digest_buf("hello ", 6, out);
	assert_string_equal(peek, out);
	bt_digest_free(&d);
	assert_null(d);

	assert_int_equal(bt_digest_validate("sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9", hex, &e),
			 0);
	assert_string_equal(hex, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
	assert_int_equal(bt_digest_validate("sha256:B94D27B9934D3E08A52E52D7DA7DABFAC484EFE37A5380EE9088F7ACE2EFCDE9", NULL, &e),
			 -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_int_equal(bt_digest_validate("sha256:abc", NULL, &e), -1);
	assert_int_equal(bt_digest_validate("sha512:abc", NULL, &e), -1);
	assert_int_equal(e.code, BT_UNIMPLEMENTED);
	assert_int_equal(bt_digest_validate("nocolon", NULL, &e), -1);
	assert_int_equal(bt_digest_validate("", NULL, &e), -1);
	assert_int_equal(bt_digest_validate("SHA!:00", NULL, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_int_equal(bt_digest_validate("sha256:../../../etc/passwd000000000000000000000000000000000000000", NULL, &e), -1);
}

static const char *const mig[] = {
	"CREATE TABLE t (a TEXT PRIMARY KEY, b INTEGER);",
	"ALTER TABLE t ADD COLUMN c TEXT NOT NULL DEFAULT 'x';",
};

/* Reads on a thread's read-only connection reuse their statements: handed
 * back reset (a new write is seen) and unbound, a nested use of the same
 * SQL gets its own statement, and more texts than the cache holds work. */
static void test_db_read_cache(void **state)
{
	(void)state;
	char dir[] = "/tmp/bt-db.XXXXXX";
	bt_db *db = NULL;
	bt_err e;

	assert_non_null(mkdtemp(dir));
	_cleanup_free_ char *path = bt_xasprintf("%s/x.db", dir);
	assert_int_equal(bt_db_open(path, mig, 2, &db, &e), 0);
	assert_int_equal(bt_db_exec(db, "INSERT INTO t (a, b) VALUES ('k', 1), ('z', 2)", &e), 0);

	const char *q = "SELECT b FROM t WHERE a = ?1";
	sqlite3_stmt *outer = NULL, *inner = NULL, *again = NULL;
	assert_int_equal(bt_db_prepare_read(db, q, &outer, &e), 0);
	assert_int_equal(bt_db_bind_text(db, outer, 1, "k", &e), 0);
	assert_int_equal(sqlite3_step(outer), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(outer, 0), 1);
	/* the same SQL while the first is in use: another statement */
	assert_int_equal(bt_db_prepare_read(db, q, &inner, &e), 0);
	assert_ptr_not_equal(inner, outer);
	assert_int_equal(bt_db_bind_text(db, inner, 1, "z", &e), 0);
	assert_int_equal(sqlite3_step(inner), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(inner, 0), 2);
	bt_db_stmt_freep(&inner);
	sqlite3_stmt *kept = outer;
	bt_db_stmt_freep(&outer);
	assert_null(outer);
	/* given back: the same statement, with no binding left (no row) */
	assert_int_equal(bt_db_prepare_read(db, q, &again, &e), 0);
	assert_ptr_equal(again, kept);
	assert_int_equal(sqlite3_step(again), SQLITE_DONE);
	bt_db_stmt_freep(&again);

	/* reset ends the read: a later write is seen through the cached statement */
	sqlite3_stmt *count = NULL;
	assert_int_equal(bt_db_prepare_read(db, "SELECT count(*) FROM t", &count, &e), 0);
	assert_int_equal(sqlite3_step(count), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(count, 0), 2);
	bt_db_stmt_freep(&count);
	assert_int_equal(bt_db_exec(db, "INSERT INTO t (a, b) VALUES ('y', 3)", &e), 0);
	assert_int_equal(bt_db_prepare_read(db, "SELECT count(*) FROM t", &count, &e), 0);
	assert_int_equal(sqlite3_step(count), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(count, 0), 3);
	bt_db_stmt_freep(&count);

	/* more SQL texts than the cache keeps, twice over */
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 40; i++) {
			_cleanup_free_ char *sql = bt_xasprintf("SELECT %d + b FROM t WHERE a = 'k'", i);
			sqlite3_stmt *st = NULL;
			assert_int_equal(bt_db_prepare_read(db, sql, &st, &e), 0);
			assert_int_equal(sqlite3_step(st), SQLITE_ROW);
			assert_int_equal(sqlite3_column_int(st, 0), i + 1);
			bt_db_stmt_freep(&st);
		}
	}
	/* a malformed statement is an error, not a cache entry */
	sqlite3_stmt *bad = NULL;
	assert_int_equal(bt_db_prepare_read(db, "SELECT nope FROM t", &bad, &e), -1);
	assert_null(bad);
	bt_db_close(&db);
	bt_err ignore;
	bt_rm_rf(dir, &ignore);
}

static void test_db(void **state)
{
	(void)state;
	char dir[] = "/tmp/bt-db.XXXXXX";
	bt_db *db = NULL;
	bt_err e;
	sqlite3_stmt *st = NULL;

	assert_non_null(mkdtemp(dir));
	_cleanup_free_ char *path = bt_xasprintf("%s/x.db", dir);
	assert_int_equal(bt_db_open(path, mig, 1, &db, &e), 0);
	assert_int_equal(bt_db_schema_version(db), 1);
	assert_int_equal(bt_db_exec(db, "INSERT INTO t (a, b) VALUES ('k', 1)", &e), 0);
	bt_db_close(&db);
	/* migrating onwards keeps the data */
	assert_int_equal(bt_db_open(path, mig, 2, &db, &e), 0);
	assert_int_equal(bt_db_schema_version(db), 2);
	assert_int_equal(bt_db_prepare(db, "SELECT c FROM t WHERE a = 'k'", &st, &e), 0);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal(bt_db_col_text(st, 0), "x");
	sqlite3_finalize(st);
	/* a constraint failure maps to ALREADY_EXISTS */
	assert_int_equal(bt_db_exec(db, "INSERT INTO t (a, b) VALUES ('k', 2)", &e), -1);
	assert_int_equal(bt_db_prepare(db, "INSERT INTO t (a, b) VALUES ('k', 2)", &st, &e), 0);
	assert_int_equal(bt_db_step_done(db, st, &e), -1);
	assert_int_equal(e.code, BT_ALREADY_EXISTS);
	sqlite3_finalize(st);
	/* a rolled-back transaction leaves nothing */
	bt_db_lock(db);
	assert_int_equal(bt_db_begin(db, &e), 0);
	assert_int_equal(bt_db_exec(db, "INSERT INTO t (a, b) VALUES ('z', 9)", &e), 0);
	bt_db_rollback(db);
	bt_db_unlock(db);
	assert_int_equal(bt_db_prepare(db, "SELECT count(*) FROM t", &st, &e), 0);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 1);
	sqlite3_finalize(st);
	bt_db_close(&db);
	/* a binary that knows fewer migrations refuses a newer database */
	assert_int_equal(bt_db_open(path, mig, 1, &db, &e), -1);
	assert_int_equal(e.code, BT_FAILED_PRECONDITION);
	assert_non_null(strstr(e.msg, "newer"));
	/* a broken migration is rolled back and reported */
	const char *const bad[] = { mig[0], mig[1], "CREATE TABLE oops (" };
	assert_int_equal(bt_db_open(path, bad, 3, &db, &e), -1);
	assert_non_null(strstr(e.msg, "migration to schema 3"));
	assert_int_equal(bt_db_open(path, mig, 2, &db, &e), 0);
	assert_int_equal(bt_db_schema_version(db), 2);
	bt_db_close(&db);
	/* a file that is not a database */
	_cleanup_free_ char *junk = bt_xasprintf("%s/junk.db", dir);
	assert_int_equal(bt_write_file_atomic(junk, "this is not sqlite at all, not even close....", 45, 0600, &e), 0);
	assert_int_equal(bt_db_open(junk, mig, 1, &db, &e), -1);
	bt_rm_rf(dir, &e);
}

static void test_map(void **state)
{
	(void)state;
	bt_map *m = bt_map_new();
	char key[16];
	int vals[1000];

	for (int i = 0; i < 1000; i++) {
		vals[i] = i;
		snprintf(key, sizeof(key), "k%d", i);
		assert_null(bt_map_sput(m, key, &vals[i]));
	}
	assert_int_equal(bt_map_len(m), 1000);
	for (int i = 0; i < 1000; i += 7) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_ptr_equal(bt_map_sget(m, key), &vals[i]);
	}
	assert_ptr_equal(bt_map_sput(m, "k5", &vals[6]), &vals[5]);
	assert_ptr_equal(bt_map_sdel(m, "k5"), &vals[6]);
	assert_null(bt_map_sget(m, "k5"));
	assert_null(bt_map_sdel(m, "k5"));
	bt_map_iter it;
	size_t n = 0;
	bt_map_iter_init(&it, m);
	while (bt_map_iter_next(&it, NULL, NULL, NULL))
		n++;
	assert_int_equal(n, 999);
	uint64_t bin = 0; /* binary keys with NULs */
	assert_null(bt_map_put(m, &bin, sizeof(bin), &vals[0]));
	assert_ptr_equal(bt_map_get(m, &bin, sizeof(bin)), &vals[0]);
	bt_map_free(&m);
	assert_null(m);
}

static bool allow_image(const char *f)
{
	return strcmp(f, "image") == 0;
}

static void test_labels(void **state)
{
	(void)state;
	bt_labels cur = { 0 }, want = { 0 };
	bt_err e;

	bt_labels_set(&cur, "a", "1");
	bt_labels_set(&cur, "b", "2");
	bt_labels_set(&want, "b", "20");
	bt_labels_set(&want, "c", "3");
	char *m1[] = { "labels.b", "labels.a" };
	assert_int_equal(bt_labels_update(&cur, &want, m1, 2, NULL, &e), 0);
	assert_null(bt_labels_get(&cur, "a"));
	assert_string_equal(bt_labels_get(&cur, "b"), "20");
	assert_null(bt_labels_get(&cur, "c"));
	char *m2[] = { "labels" };
	assert_int_equal(bt_labels_update(&cur, &want, m2, 1, NULL, &e), 0);
	assert_int_equal(cur.n, 2);
	assert_string_equal(bt_labels_get(&cur, "c"), "3");
	char *m3[] = { "size" };
	assert_int_equal(bt_labels_update(&cur, &want, m3, 1, NULL, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_int_equal(cur.n, 2); /* unchanged on error */
	char *m4[] = { "image", "labels.z" };
	assert_int_equal(bt_labels_update(&cur, &want, m4, 2, allow_image, &e), 0);
	assert_int_equal(bt_labels_update(&cur, &want, NULL, 0, NULL, &e), 0);
	assert_int_equal(cur.n, 2);
	/* validation */
	bt_labels bad = { 0 };
	char big[5000];
	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	bt_labels_set(&bad, "k", big);
	assert_int_equal(bt_labels_validate(&bad, true, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	bt_labels_clear(&bad);
	bt_labels_set(&bad, "", "v");
	assert_int_equal(bt_labels_validate(&bad, true, &e), -1);
	bt_labels_clear(&bad);
	bt_labels_clear(&cur);
	bt_labels_clear(&want);
}

static void test_envelope(void **state)
{
	(void)state;
	bt_reqhdr h = BERTH__RPC__V1__REQUEST_HEADER__INIT;
	uint8_t buf[256];
	bt_err e;

	h.version = BT_PROTOCOL_VERSION;
	h.service = (char *)"content";
	h.method = (char *)"Info";
	h.namespace_ = (char *)"default";
	h.request_id = 42;
	h.deadline_ms = 1000;
	size_t n = berth__rpc__v1__request_header__pack(&h, buf);
	bt_reqhdr *d = bt_reqhdr_decode(buf, n, &e);
	assert_non_null(d);
	assert_string_equal(d->service, "content");
	assert_int_equal(d->request_id, 42);
	assert_int_equal(d->deadline_ms, 1000);
	bt_reqhdr_free(&d);
	/* truncated */
	assert_null(bt_reqhdr_decode(buf, n - 1, &e)); /* mid-varint */
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	/* garbage */
	assert_null(bt_reqhdr_decode("\xff\xff\xff\xff\xff", 5, &e));
	/* too large */
	char *big = bt_xzalloc(BT_RPC_MAX_HEADER + 1);
	assert_null(bt_reqhdr_decode(big, BT_RPC_MAX_HEADER + 1, &e));
	assert_non_null(strstr(e.msg, "exceeds"));
	free(big);
	/* namespaces */
	assert_int_equal(bt_rpc_check_namespace("default", &e), 0);
	assert_int_equal(bt_rpc_check_namespace("", &e), -1);
	assert_int_equal(e.code, BT_FAILED_PRECONDITION);
	assert_int_equal(bt_rpc_check_namespace(NULL, &e), -1);
	assert_int_equal(e.code, BT_FAILED_PRECONDITION);
	assert_int_equal(bt_rpc_check_namespace("a/b", &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_int_equal(bt_rpc_check_namespace("..", &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err),    cmocka_unit_test(test_parse),  cmocka_unit_test(test_files),
		cmocka_unit_test(test_digest), cmocka_unit_test(test_db),     cmocka_unit_test(test_db_read_cache),     cmocka_unit_test(test_map),
		cmocka_unit_test(test_labels), cmocka_unit_test(test_envelope),
	};
	return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
