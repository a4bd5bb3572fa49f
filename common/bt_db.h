/*
 * bt_db — sqlite3 as every berth service uses it: one database file per
 * service, WAL journal, a busy timeout, foreign keys on, synchronous=FULL,
 * and a schema version (PRAGMA user_version) advanced by an ordered list of
 * migrations, each applied in its own transaction.
 *
 * A bt_db is shared by a daemon's threads; bt_db_lock/unlock serialise the
 * statements and transactions that must not interleave (sqlite's own
 * serialisation is per statement, not per transaction).
 */
#ifndef BT_DB_H
#define BT_DB_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "bt_err.h"
#include "bt_labels.h"

typedef struct bt_db bt_db;

/* Migrations: migrations[i] takes the schema from version i to i+1. */
int bt_db_open(const char *path, const char *const *migrations, int n_migrations, bt_db **out, bt_err *e);
/* A service's database: dir (made, and kept private: mode 0700) / file. */
int bt_db_open_in(const char *dir, const char *file, const char *const *migrations, int n_migrations, bt_db **out,
		  bt_err *e);
void bt_db_close(bt_db **db);
sqlite3 *bt_db_handle(bt_db *db);
int bt_db_schema_version(bt_db *db);

void bt_db_lock(bt_db *db);
void bt_db_unlock(bt_db *db);

/* These expect the caller to hold the lock. */
int bt_db_exec(bt_db *db, const char *sql, bt_err *e);
int bt_db_begin(bt_db *db, bt_err *e);       /* BEGIN IMMEDIATE */
int bt_db_commit(bt_db *db, bt_err *e);
void bt_db_rollback(bt_db *db);              /* never fails visibly */
/* Prepares a statement; message names the SQL on failure. */
int bt_db_prepare(bt_db *db, const char *sql, sqlite3_stmt **out, bt_err *e);
/* Prepares a statement on this thread's read-only connection (opened on
 * first use): no lock needed, and in WAL mode it never waits for writers.
 * The connection keeps the statements of the last few SQL texts it saw, so
 * the same read again skips parsing: release the statement with
 * bt_db_stmt_freep (_cleanup_stmt_), which gives it back reset, never with
 * sqlite3_finalize, and on the thread that prepared it. */
int bt_db_prepare_read(bt_db *db, const char *sql, sqlite3_stmt **out, bt_err *e);
/* Fills e from the connection's last error, prefixed with what. */
int bt_db_error(bt_db *db, bt_err *e, const char *what);

/* What a service holds in a namespace, for system.NamespaceUsage: for each
 * table (with an ns column), "N one|many" appended to *holds when N > 0. */
typedef struct bt_db_count {
	const char *table; /* a constant name, never input */
	const char *one, *many;
} bt_db_count;
int bt_db_ns_usage(bt_db *db, const bt_db_count *t, size_t n, const char *ns, char ***holds, bt_err *e);

/* Labels kept in a table (owner INTEGER, key TEXT, value TEXT) beside the
 * records they belong to. load reads owner's labels (ro: on this thread's
 * read-only connection); store replaces them (writer connection: caller
 * holds the lock, inside a transaction). */
int bt_db_labels_load(bt_db *db, bool ro, const char *table, int64_t owner, bt_labels *out, bt_err *e);
int bt_db_labels_store(bt_db *db, const char *table, int64_t owner, const bt_labels *l, bt_err *e);

void bt_db_stmt_freep(sqlite3_stmt **s);
#define _cleanup_stmt_ __attribute__((cleanup(bt_db_stmt_freep)))

/* Binds text (NULL → SQL NULL) — wrappers that check the return value. */
int bt_db_bind_text(bt_db *db, sqlite3_stmt *s, int idx, const char *v, bt_err *e);
int bt_db_bind_int64(bt_db *db, sqlite3_stmt *s, int idx, int64_t v, bt_err *e);
/* Steps a statement that returns no rows (INSERT/UPDATE/DELETE). */
int bt_db_step_done(bt_db *db, sqlite3_stmt *s, bt_err *e);
/* Column text or "" when NULL. */
const char *bt_db_col_text(sqlite3_stmt *s, int col);

#endif
