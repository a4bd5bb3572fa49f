/*
 * bt_db — sqlite helpers: open with WAL and migrations, a lock for
 * multi-statement transactions, and checked binds and steps.
 */
#define _GNU_SOURCE
#include "bt_db.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <pthread.h>

#include "bt_log.h"
#include "bt_util.h"

struct bt_db {
	sqlite3 *h;
	pthread_mutex_t mu;
	char *path;
	pthread_key_t reader; /* per-thread read-only connection (a reader) */
	bool reader_key;
};

/* A thread's read-only connection keeps the statements it prepared, so a
 * read repeated on the thread (a daemon's Info, Get...) skips parsing and
 * planning its SQL: bt_db_stmt_freep resets them instead of finalizing. */
#define READ_CACHE 16

typedef struct cached_stmt {
	char *sql;
	sqlite3_stmt *st;
	bool busy; /* handed out and not yet given back */
} cached_stmt;

typedef struct reader {
	sqlite3 *h;
	cached_stmt cache[READ_CACHE];
	int n;
	int evict; /* next slot to reuse when full */
	struct reader *next;
} reader;

/* This thread's readers (one per database it read), for bt_db_stmt_freep. */
static __thread reader *tl_readers;

static int handle_error(sqlite3 *h, bt_err *e, const char *what)
{
	int rc = sqlite3_extended_errcode(h);
	int code = BT_INTERNAL;

	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
		code = BT_ALREADY_EXISTS;
		break;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		code = BT_UNAVAILABLE;
		break;
	case SQLITE_FULL:
		code = BT_RESOURCE_EXHAUSTED;
		break;
	case SQLITE_READONLY:
	case SQLITE_PERM:
		code = BT_PERMISSION_DENIED;
		break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		code = BT_DATA_LOSS;
		break;
	}
	return bt_err_set(e, code, "%s: sqlite: %s", what, sqlite3_errmsg(h));
}

int bt_db_error(bt_db *db, bt_err *e, const char *what)
{
	return handle_error(db->h, e, what);
}

/* Closes a reader of the calling thread (its key's destructor, or bt_db_close). */
static void reader_close(void *p)
{
	reader *r = p;

	for (reader **pp = &tl_readers; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	for (int i = 0; i < r->n; i++) {
		sqlite3_finalize(r->cache[i].st);
		free(r->cache[i].sql);
	}
	sqlite3_close_v2(r->h);
	free(r);
}

int bt_db_prepare_read(bt_db *db, const char *sql, sqlite3_stmt **out, bt_err *e)
{
	reader *r = pthread_getspecific(db->reader);
	sqlite3 *h = NULL;

	if (!r) {
		if (sqlite3_open_v2(db->path, &h, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
			bt_err_set(e, BT_INTERNAL, "open %s for reading: %s", db->path,
				   h ? sqlite3_errmsg(h) : "out of memory");
			sqlite3_close_v2(h);
			return -1;
		}
		/* In WAL mode readers do not wait for writers; this only covers
		 * the rare moments a reader must wait (WAL recovery). */
		sqlite3_busy_timeout(h, 100);
		r = bt_xzalloc(sizeof(*r));
		r->h = h;
		r->next = tl_readers;
		tl_readers = r;
		pthread_setspecific(db->reader, r);
	}
	int slot = -1;
	for (int i = 0; i < r->n; i++) {
		if (strcmp(r->cache[i].sql, sql) == 0) {
			if (r->cache[i].busy)
				goto uncached; /* in use further up this thread's stack */
			r->cache[i].busy = true;
			*out = r->cache[i].st;
			return 0;
		}
	}
	if (r->n < READ_CACHE) {
		slot = r->n;
	} else {
		for (int k = 0; k < READ_CACHE && slot < 0; k++) {
			int i = (r->evict + k) % READ_CACHE;
			if (!r->cache[i].busy)
				slot = i;
		}
		if (slot < 0)
			goto uncached;
		r->evict = (slot + 1) % READ_CACHE;
	}
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v3(r->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
		return handle_error(r->h, e, "prepare");
	if (slot < r->n) {
		sqlite3_finalize(r->cache[slot].st);
		free(r->cache[slot].sql);
	} else {
		r->n++;
	}
	r->cache[slot] = (cached_stmt){ .sql = bt_xstrdup(sql), .st = st, .busy = true };
	*out = st;
	return 0;
uncached:
	if (sqlite3_prepare_v2(r->h, sql, -1, out, NULL) != SQLITE_OK)
		return handle_error(r->h, e, "prepare");
	return 0;
}

void bt_db_lock(bt_db *db)
{
	pthread_mutex_lock(&db->mu);
}

void bt_db_unlock(bt_db *db)
{
	pthread_mutex_unlock(&db->mu);
}

sqlite3 *bt_db_handle(bt_db *db)
{
	return db->h;
}

int bt_db_exec(bt_db *db, const char *sql, bt_err *e)
{
	char *msg = NULL;
	if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
		bt_err_set(e, BT_INTERNAL, "sqlite: %s: %.200s", msg ? msg : "error", sql);
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

int bt_db_begin(bt_db *db, bt_err *e)
{
	return bt_db_exec(db, "BEGIN IMMEDIATE", e);
}

int bt_db_commit(bt_db *db, bt_err *e)
{
	if (bt_db_exec(db, "COMMIT", e) < 0) {
		bt_db_rollback(db);
		return -1;
	}
	return 0;
}

void bt_db_rollback(bt_db *db)
{
	if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

int bt_db_prepare(bt_db *db, const char *sql, sqlite3_stmt **out, bt_err *e)
{
	if (sqlite3_prepare_v2(db->h, sql, -1, out, NULL) != SQLITE_OK)
		return bt_db_error(db, e, "prepare");
	return 0;
}

void bt_db_stmt_freep(sqlite3_stmt **s)
{
	if (!*s)
		return;
	/* a statement of this thread's read cache goes back to it, reset (which
	 * also ends its read transaction) and unbound */
	for (reader *r = tl_readers; r; r = r->next) {
		for (int i = 0; i < r->n; i++) {
			if (r->cache[i].st == *s) {
				sqlite3_reset(*s);
				sqlite3_clear_bindings(*s);
				r->cache[i].busy = false;
				*s = NULL;
				return;
			}
		}
	}
	sqlite3_finalize(*s);
	*s = NULL;
}

int bt_db_bind_text(bt_db *db, sqlite3_stmt *s, int idx, const char *v, bt_err *e)
{
	int rc = v ? sqlite3_bind_text(s, idx, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(s, idx);
	(void)db;
	if (rc != SQLITE_OK)
		return handle_error(sqlite3_db_handle(s), e, "bind");
	return 0;
}

int bt_db_bind_int64(bt_db *db, sqlite3_stmt *s, int idx, int64_t v, bt_err *e)
{
	(void)db;
	if (sqlite3_bind_int64(s, idx, v) != SQLITE_OK)
		return handle_error(sqlite3_db_handle(s), e, "bind");
	return 0;
}

int bt_db_step_done(bt_db *db, sqlite3_stmt *s, bt_err *e)
{
	int rc = sqlite3_step(s);
	(void)db;
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return handle_error(sqlite3_db_handle(s), e, "step");
	return 0;
}

const char *bt_db_col_text(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return t ? (const char *)t : "";
}

int bt_db_schema_version(bt_db *db)
{
	sqlite3_stmt *s = NULL;
	int v = -1;
	if (sqlite3_prepare_v2(db->h, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return v;
}

static int migrate(bt_db *db, const char *const *migrations, int n, bt_err *e)
{
	int v = bt_db_schema_version(db);

	if (v < 0)
		return bt_db_error(db, e, "read schema version");
	if (v > n)
		return bt_err_set(e, BT_FAILED_PRECONDITION,
				  "%s: schema version %d is newer than this binary knows (%d): refusing to downgrade",
				  db->path, v, n);
	for (int i = v; i < n; i++) {
		_cleanup_free_ char *set = bt_xasprintf("PRAGMA user_version = %d", i + 1);
		if (bt_db_begin(db, e) < 0)
			return -1;
		if (bt_db_exec(db, migrations[i], e) < 0 || bt_db_exec(db, set, e) < 0) {
			bt_db_rollback(db);
			return bt_err_wrap(e, "%s: migration to schema %d", db->path, i + 1);
		}
		if (bt_db_commit(db, e) < 0)
			return -1;
		bt_log_info("%s: schema migrated to version %d", db->path, i + 1);
	}
	return 0;
}

int bt_db_open(const char *path, const char *const *migrations, int n_migrations, bt_db **out, bt_err *e)
{
	bt_db *db = bt_xzalloc(sizeof(*db));

	pthread_mutex_init(&db->mu, NULL);
	db->path = bt_xstrdup(path);
	if (pthread_key_create(&db->reader, reader_close) == 0)
		db->reader_key = true;
	if (sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
			    NULL) != SQLITE_OK) {
		bt_err_set(e, BT_INTERNAL, "open database %s: %s", path,
			   db->h ? sqlite3_errmsg(db->h) : "out of memory");
		bt_db_close(&db);
		return -1;
	}
	sqlite3_busy_timeout(db->h, 5000);
	if (bt_db_exec(db, "PRAGMA journal_mode=WAL", e) < 0 || bt_db_exec(db, "PRAGMA synchronous=FULL", e) < 0 ||
	    bt_db_exec(db, "PRAGMA foreign_keys=ON", e) < 0 || migrate(db, migrations, n_migrations, e) < 0) {
		bt_err_wrap(e, "open database %s", path);
		bt_db_close(&db);
		return -1;
	}
	*out = db;
	return 0;
}

void bt_db_close(bt_db **dbp)
{
	bt_db *db = *dbp;
	if (!db)
		return;
	if (db->reader_key) {
		/* this thread's reader; other threads' go when they exit */
		reader *r = pthread_getspecific(db->reader);
		if (r)
			reader_close(r);
		pthread_setspecific(db->reader, NULL);
		pthread_key_delete(db->reader);
	}
	if (db->h)
		sqlite3_close_v2(db->h);
	pthread_mutex_destroy(&db->mu);
	free(db->path);
	free(db);
	*dbp = NULL;
}

int bt_db_labels_load(bt_db *db, bool ro, const char *table, int64_t owner, bt_labels *out, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *sql = bt_xasprintf("SELECT key, value FROM %s WHERE owner = ?1 ORDER BY key", table);
	int rc;

	if ((ro ? bt_db_prepare_read(db, sql, &st, e) : bt_db_prepare(db, sql, &st, e)) < 0 ||
	    bt_db_bind_int64(db, st, 1, owner, e) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		bt_labels_set(out, bt_db_col_text(st, 0), bt_db_col_text(st, 1));
	if (rc != SQLITE_DONE)
		return handle_error(sqlite3_db_handle(st), e, "read labels");
	return 0;
}

int bt_db_labels_store(bt_db *db, const char *table, int64_t owner, const bt_labels *l, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *del = NULL;
	_cleanup_stmt_ sqlite3_stmt *ins = NULL;
	_cleanup_free_ char *dsql = bt_xasprintf("DELETE FROM %s WHERE owner = ?1", table);
	_cleanup_free_ char *isql = bt_xasprintf("INSERT INTO %s (owner, key, value) VALUES (?1, ?2, ?3)", table);

	if (bt_db_prepare(db, dsql, &del, e) < 0 || bt_db_bind_int64(db, del, 1, owner, e) < 0 ||
	    bt_db_step_done(db, del, e) < 0)
		return -1;
	if (!l || l->n == 0)
		return 0;
	if (bt_db_prepare(db, isql, &ins, e) < 0)
		return -1;
	for (size_t i = 0; i < l->n; i++) {
		sqlite3_reset(ins);
		if (bt_db_bind_int64(db, ins, 1, owner, e) < 0 || bt_db_bind_text(db, ins, 2, l->keys[i], e) < 0 ||
		    bt_db_bind_text(db, ins, 3, l->vals[i], e) < 0 || bt_db_step_done(db, ins, e) < 0)
			return -1;
	}
	return 0;
}

int bt_db_ns_usage(bt_db *db, const bt_db_count *t, size_t n, const char *ns, char ***holds, bt_err *e)
{
	for (size_t i = 0; i < n; i++) {
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		_cleanup_free_ char *sql = bt_xasprintf("SELECT count(*) FROM %s WHERE ns = ?", t[i].table);
		if (bt_db_prepare_read(db, sql, &st, e) < 0 || bt_db_bind_text(db, st, 1, ns, e) < 0)
			return -1;
		if (sqlite3_step(st) != SQLITE_ROW)
			return handle_error(sqlite3_db_handle(st), e, t[i].table);
		int64_t count = sqlite3_column_int64(st, 0);
		if (count > 0) {
			_cleanup_free_ char *line =
				bt_xasprintf("%" PRId64 " %s", count, count == 1 ? t[i].one : t[i].many);
			bt_strv_push(holds, line);
		}
	}
	return 0;
}

int bt_db_open_in(const char *dir, const char *file, const char *const *migrations, int n_migrations, bt_db **out,
		  bt_err *e)
{
	_cleanup_free_ char *path = bt_xasprintf("%s/%s", dir, file);

	if (bt_mkdir_p(dir, 0700, e) < 0)
		return -1;
	if (chmod(dir, 0700) < 0)
		return bt_err_errno(e, errno, "chmod %s", dir);
	return bt_db_open(path, migrations, n_migrations, out, e);
}
