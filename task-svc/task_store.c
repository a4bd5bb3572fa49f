/*
 * task_store — container records in sqlite: one row per namespace and id,
 * labels in an owner-keyed table.
 */
#define _GNU_SOURCE
#include "task_store.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "bt_db.h"
#include "bt_ident.h"
#include "bt_util.h"

#define SPEC_MAX (1u << 20)
#define FIELD_MAX 4096

struct task_store {
	bt_db *db;
};

static const char *const migrations[] = {
	/* 1 */
	"CREATE TABLE containers ("
	"  rowid INTEGER PRIMARY KEY,"
	"  ns TEXT NOT NULL, id TEXT NOT NULL,"
	"  image TEXT NOT NULL, spec TEXT NOT NULL,"
	"  snapshotter TEXT NOT NULL, snapshot_key TEXT NOT NULL,"
	"  runtime TEXT NOT NULL, runtime_binary TEXT NOT NULL, runtime_root TEXT NOT NULL,"
	"  created INTEGER NOT NULL, updated INTEGER NOT NULL,"
	"  UNIQUE (ns, id));"
	"CREATE TABLE container_labels ("
	"  owner INTEGER NOT NULL REFERENCES containers (rowid) ON DELETE CASCADE,"
	"  key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (owner, key));",
};

static char *dup0(const char *s)
{
	return bt_xstrdup(s ? s : "");
}

void ctr_rec_clear(ctr_rec *r)
{
	free(r->id);
	free(r->image);
	free(r->spec);
	free(r->snapshotter);
	free(r->snapshot_key);
	free(r->runtime);
	free(r->runtime_binary);
	free(r->runtime_root);
	bt_labels_clear(&r->labels);
	memset(r, 0, sizeof(*r));
}

void ctr_rec_copy(ctr_rec *dst, const ctr_rec *src)
{
	ctr_rec_clear(dst);
	dst->id = dup0(src->id);
	dst->image = dup0(src->image);
	dst->spec = dup0(src->spec);
	dst->snapshotter = dup0(src->snapshotter);
	dst->snapshot_key = dup0(src->snapshot_key);
	dst->runtime = dup0(src->runtime);
	dst->runtime_binary = dup0(src->runtime_binary);
	dst->runtime_root = dup0(src->runtime_root);
	bt_labels_copy(&dst->labels, &src->labels);
	dst->created = src->created;
	dst->updated = src->updated;
}

/* A free-form field: at most FIELD_MAX bytes, no control characters. */
static int check_text(const char *id, const char *what, const char *v, bool abs_path, bt_err *e)
{
	size_t n = v ? strlen(v) : 0;
	if (n > FIELD_MAX)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "container %s: %s of %zu bytes (at most %d)", id, what, n,
				  FIELD_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < ' ' || v[i] == 0x7f)
			return bt_err_set(e, BT_INVALID_ARGUMENT, "container %s: %s: no control characters", id, what);
	if (abs_path && n > 0 && v[0] != '/')
		return bt_err_set(e, BT_INVALID_ARGUMENT, "container %s: %s \"%s\": must be an absolute path", id,
				  what, v);
	return 0;
}

static int check_spec(const char *id, const char *spec, bt_err *e)
{
	size_t n = spec ? strlen(spec) : 0;
	json_error_t je;
	if (n == 0)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "container %s: spec is required (an OCI runtime spec, JSON)",
				  id);
	if (n > SPEC_MAX)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "container %s: spec of %zu bytes (at most %u)", id, n,
				  SPEC_MAX);
	json_t *j = json_loadb(spec, n, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "container %s: spec is not valid JSON: line %d column %d: %s",
				  id, je.line, je.column, je.text);
	bool obj = json_is_object(j);
	json_t *proc = obj ? json_object_get(j, "process") : NULL;
	bool bad_proc = proc && !json_is_object(proc);
	json_decref(j);
	if (!obj)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "container %s: spec is not a JSON object", id);
	if (bad_proc)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "container %s: spec: process is not an object", id);
	return 0;
}

int ctr_rec_validate(ctr_rec *r, bt_err *e)
{
	if (bt_ident_validate("container id", r->id ? r->id : "", e) < 0)
		return -1;
	if (!r->runtime || !*r->runtime) {
		free(r->runtime);
		r->runtime = bt_xstrdup("runc");
	}
	if (strcmp(r->runtime, "runc") != 0 && strcmp(r->runtime, "crun") != 0)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "container %s: runtime \"%.64s\": must be runc or crun", r->id,
				  r->runtime);
	if (check_spec(r->id, r->spec, e) < 0 || check_text(r->id, "image", r->image, false, e) < 0 ||
	    check_text(r->id, "snapshotter", r->snapshotter, false, e) < 0 ||
	    check_text(r->id, "snapshot key", r->snapshot_key, false, e) < 0 ||
	    check_text(r->id, "runtime binary", r->runtime_binary, true, e) < 0 ||
	    check_text(r->id, "runtime root", r->runtime_root, true, e) < 0)
		return -1;
	if (bt_labels_validate(&r->labels, false, e) < 0)
		return bt_err_wrap(e, "container %s", r->id);
	return 0;
}

int task_store_open(const char *dir, task_store **out, bt_err *e)
{
	task_store *s = bt_xzalloc(sizeof(*s));

	if (bt_db_open_in(dir, "meta.db", migrations, (int)BT_ARRAY_LEN(migrations), &s->db, e) < 0) {
		task_store_free(&s);
		return -1;
	}
	*out = s;
	return 0;
}

void task_store_free(task_store **sp)
{
	task_store *s = *sp;
	if (!s)
		return;
	bt_db_close(&s->db);
	free(s);
	*sp = NULL;
}

#define COLS "rowid, id, image, spec, snapshotter, snapshot_key, runtime, runtime_binary, runtime_root, created, updated"

static int row(task_store *s, bool ro, sqlite3_stmt *st, ctr_rec *r, bt_err *e)
{
	int64_t owner = sqlite3_column_int64(st, 0);
	r->id = bt_xstrdup(bt_db_col_text(st, 1));
	r->image = bt_xstrdup(bt_db_col_text(st, 2));
	r->spec = bt_xstrdup(bt_db_col_text(st, 3));
	r->snapshotter = bt_xstrdup(bt_db_col_text(st, 4));
	r->snapshot_key = bt_xstrdup(bt_db_col_text(st, 5));
	r->runtime = bt_xstrdup(bt_db_col_text(st, 6));
	r->runtime_binary = bt_xstrdup(bt_db_col_text(st, 7));
	r->runtime_root = bt_xstrdup(bt_db_col_text(st, 8));
	r->created = sqlite3_column_int64(st, 9);
	r->updated = sqlite3_column_int64(st, 10);
	return bt_db_labels_load(s->db, ro, "container_labels", owner, &r->labels, e);
}

/* 1 found (r filled, *owner set), 0 not, -1 error. */
static int lookup(task_store *s, bool ro, const char *ns, const char *id, ctr_rec *r, int64_t *owner, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	const char *sql = "SELECT " COLS " FROM containers WHERE ns = ?1 AND id = ?2";
	int rc;

	if ((ro ? bt_db_prepare_read(s->db, sql, &st, e) : bt_db_prepare(s->db, sql, &st, e)) < 0 ||
	    bt_db_bind_text(s->db, st, 1, ns, e) < 0 || bt_db_bind_text(s->db, st, 2, id, e) < 0)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return bt_err_set(e, BT_INTERNAL, "look up container: sqlite: %s", sqlite3_errmsg(sqlite3_db_handle(st)));
	if (owner)
		*owner = sqlite3_column_int64(st, 0);
	return row(s, ro, st, r, e) < 0 ? -1 : 1;
}

int task_store_get(task_store *s, const char *ns, const char *id, ctr_rec *out, bt_err *e)
{
	if (bt_ident_validate("container id", id ? id : "", e) < 0)
		return -1;
	int rc = lookup(s, true, ns, id, out, NULL, e);
	if (rc == 0)
		return bt_err_set(e, BT_NOT_FOUND, "container \"%s\": not found", id);
	return rc < 0 ? -1 : 0;
}

static const char *rec_field(void *obj, const char *const *path, size_t n)
{
	const ctr_rec *r = obj;
	if (n == 1) {
		if (strcmp(path[0], "id") == 0)
			return r->id;
		if (strcmp(path[0], "image") == 0)
			return r->image;
		if (strcmp(path[0], "snapshotter") == 0)
			return r->snapshotter;
		if (strcmp(path[0], "snapshot_key") == 0 || strcmp(path[0], "snapshotkey") == 0)
			return r->snapshot_key;
		if (strcmp(path[0], "runtime") == 0)
			return r->runtime;
	}
	if (n == 2 && strcmp(path[0], "runtime") == 0 && strcmp(path[1], "name") == 0)
		return r->runtime;
	if (n == 2 && strcmp(path[0], "labels") == 0)
		return bt_labels_get(&r->labels, path[1]);
	return NULL;
}

int task_store_list(task_store *s, const char *ns, const bt_filter *f, int (*cb)(const ctr_rec *r, void *arg),
		    void *arg, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	ctr_rec *v = NULL;
	size_t n = 0;
	int rc, ret = 0;

	/* collect, then call back: a slow consumer must not hold a statement open */
	if (bt_db_prepare_read(s->db, "SELECT " COLS " FROM containers WHERE ns = ?1 ORDER BY id", &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, ns, e) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		v = bt_xrealloc(v, (n + 1) * sizeof(*v));
		memset(&v[n], 0, sizeof(v[n]));
		if (row(s, true, st, &v[n++], e) < 0) {
			ret = -1;
			break;
		}
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = bt_err_set(e, BT_INTERNAL, "list containers: sqlite: %s", sqlite3_errmsg(sqlite3_db_handle(st)));
	for (size_t i = 0; ret == 0 && i < n; i++) {
		if (f && !bt_filter_match(f, rec_field, &v[i]))
			continue;
		if (cb(&v[i], arg) < 0)
			ret = bt_err_set(e, BT_CANCELLED, "list stopped");
	}
	for (size_t i = 0; i < n; i++)
		ctr_rec_clear(&v[i]);
	free(v);
	return ret;
}

/* Runs fn inside a write transaction under the db lock. */
static int in_txn(task_store *s, int (*fn)(task_store *s, void *arg, bt_err *e), void *arg, bt_err *e)
{
	int rc;

	bt_db_lock(s->db);
	if (bt_db_begin(s->db, e) < 0) {
		bt_db_unlock(s->db);
		return -1;
	}
	rc = fn(s, arg, e);
	if (rc < 0)
		bt_db_rollback(s->db);
	else if (bt_db_commit(s->db, e) < 0)
		rc = -1;
	bt_db_unlock(s->db);
	return rc;
}

typedef struct op {
	const char *ns;
	ctr_rec *r;
	char *const *mask;
	size_t nmask;
	ctr_rec *out;
	const char *id;
} op;

static int bind_fields(task_store *s, sqlite3_stmt *st, const ctr_rec *r, bt_err *e)
{
	return bt_db_bind_text(s->db, st, 3, r->image ? r->image : "", e) < 0 ||
			       bt_db_bind_text(s->db, st, 4, r->spec, e) < 0 ||
			       bt_db_bind_text(s->db, st, 5, r->snapshotter ? r->snapshotter : "", e) < 0 ||
			       bt_db_bind_text(s->db, st, 6, r->snapshot_key ? r->snapshot_key : "", e) < 0 ||
			       bt_db_bind_text(s->db, st, 7, r->runtime, e) < 0 ||
			       bt_db_bind_text(s->db, st, 8, r->runtime_binary ? r->runtime_binary : "", e) < 0 ||
			       bt_db_bind_text(s->db, st, 9, r->runtime_root ? r->runtime_root : "", e) < 0 ||
			       bt_db_bind_int64(s->db, st, 10, r->updated, e) < 0
		       ? -1
		       : 0;
}

static int do_create(task_store *s, void *arg, bt_err *e)
{
	op *o = arg;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;

	o->r->created = o->r->updated = bt_now_ns();
	if (bt_db_prepare(s->db,
			  "INSERT INTO containers (ns, id, image, spec, snapshotter, snapshot_key, runtime, "
			  "runtime_binary, runtime_root, updated, created) "
			  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
			  &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, o->ns, e) < 0 || bt_db_bind_text(s->db, st, 2, o->r->id, e) < 0 ||
	    bind_fields(s, st, o->r, e) < 0)
		return -1;
	if (sqlite3_step(st) != SQLITE_DONE) {
		if ((sqlite3_extended_errcode(bt_db_handle(s->db)) & 0xff) == SQLITE_CONSTRAINT)
			return bt_err_set(e, BT_ALREADY_EXISTS, "container \"%s\": already exists", o->r->id);
		return bt_db_error(s->db, e, "create container");
	}
	int64_t owner = sqlite3_last_insert_rowid(bt_db_handle(s->db));
	if (bt_db_labels_store(s->db, "container_labels", owner, &o->r->labels, e) < 0)
		return -1;
	if (o->out)
		ctr_rec_copy(o->out, o->r);
	return 0;
}

int task_store_create(task_store *s, const char *ns, ctr_rec *r, ctr_rec *out, bt_err *e)
{
	op o = { .ns = ns, .r = r, .out = out };
	if (ctr_rec_validate(r, e) < 0)
		return -1;
	return in_txn(s, do_create, &o, e);
}

static const char *const fields[] = { "image", "spec", "snapshotter", "snapshot_key", "runtime" };

static bool other_field(const char *f)
{
	for (size_t i = 0; i < BT_ARRAY_LEN(fields); i++)
		if (strcmp(f, fields[i]) == 0)
			return true;
	return false;
}

static bool masked(char *const *mask, size_t n, const char *f)
{
	if (n == 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (strcmp(mask[i], f) == 0)
			return true;
	return false;
}

static void take(char **dst, char *const *src)
{
	free(*dst);
	*dst = dup0(*src);
}

static int do_update(task_store *s, void *arg, bt_err *e)
{
	op *o = arg;
	ctr_rec cur = { 0 };
	int64_t owner;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc = lookup(s, false, o->ns, o->r->id, &cur, &owner, e);

	if (rc <= 0) {
		/* not found must fail too: rc 0 would read as success (and leak another namespace's existence) */
		if (rc == 0)
			rc = bt_err_set(e, BT_NOT_FOUND, "container \"%s\": not found", o->r->id);
		goto out;
	}
	rc = -1;
	if (bt_labels_update(&cur.labels, &o->r->labels, o->mask, o->nmask, other_field, e) < 0)
		goto out;
	if (masked(o->mask, o->nmask, "image"))
		take(&cur.image, &o->r->image);
	if (masked(o->mask, o->nmask, "spec"))
		take(&cur.spec, &o->r->spec);
	if (masked(o->mask, o->nmask, "snapshotter"))
		take(&cur.snapshotter, &o->r->snapshotter);
	if (masked(o->mask, o->nmask, "snapshot_key"))
		take(&cur.snapshot_key, &o->r->snapshot_key);
	if (masked(o->mask, o->nmask, "runtime")) {
		take(&cur.runtime, &o->r->runtime);
		take(&cur.runtime_binary, &o->r->runtime_binary);
		take(&cur.runtime_root, &o->r->runtime_root);
	}
	if (ctr_rec_validate(&cur, e) < 0)
		goto out;
	cur.updated = bt_now_ns();
	if (bt_db_prepare(s->db,
			  "UPDATE containers SET image = ?3, spec = ?4, snapshotter = ?5, snapshot_key = ?6, "
			  "runtime = ?7, runtime_binary = ?8, runtime_root = ?9, updated = ?10 WHERE rowid = ?1 "
			  "AND ?2 IS NOT NULL",
			  &st, e) < 0 ||
	    bt_db_bind_int64(s->db, st, 1, owner, e) < 0 || bt_db_bind_text(s->db, st, 2, cur.id, e) < 0 ||
	    bind_fields(s, st, &cur, e) < 0 || bt_db_step_done(s->db, st, e) < 0 ||
	    bt_db_labels_store(s->db, "container_labels", owner, &cur.labels, e) < 0)
		goto out;
	if (o->out)
		ctr_rec_copy(o->out, &cur);
	rc = 0;
out:
	ctr_rec_clear(&cur);
	return rc;
}

int task_store_update(task_store *s, const char *ns, ctr_rec *r, char *const *mask, size_t nmask, ctr_rec *out,
		      bt_err *e)
{
	op o = { .ns = ns, .r = r, .mask = mask, .nmask = nmask, .out = out };
	if (bt_ident_validate("container id", r->id ? r->id : "", e) < 0)
		return -1;
	return in_txn(s, do_update, &o, e);
}

static int do_delete(task_store *s, void *arg, bt_err *e)
{
	op *o = arg;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;

	if (bt_db_prepare(s->db, "DELETE FROM containers WHERE ns = ?1 AND id = ?2", &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, o->ns, e) < 0 || bt_db_bind_text(s->db, st, 2, o->id, e) < 0 ||
	    bt_db_step_done(s->db, st, e) < 0)
		return -1;
	if (sqlite3_changes(bt_db_handle(s->db)) == 0)
		return bt_err_set(e, BT_NOT_FOUND, "container \"%s\": not found", o->id);
	return 0;
}

int task_store_delete(task_store *s, const char *ns, const char *id, bt_err *e)
{
	op o = { .ns = ns, .id = id };
	if (bt_ident_validate("container id", id ? id : "", e) < 0)
		return -1;
	return in_txn(s, do_delete, &o, e);
}

int task_store_ns_usage(void *arg, const char *ns, char ***holds, bt_err *e)
{
	static const bt_db_count t[] = { { "containers", "container", "containers" } };
	task_store *s = arg;
	return bt_db_ns_usage(s->db, t, BT_ARRAY_LEN(t), ns, holds, e);
}
