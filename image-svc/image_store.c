/*
 * image_store — image records in sqlite: images (one row per namespace and
 * name) with their labels and their target descriptor's annotations in
 * owner-keyed tables.
 */
#define _GNU_SOURCE
#include "image_store.h"

#include "bt_events.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "bt_db.h"
#include "bt_ident.h"
#include "bt_util.h"

struct image_store {
	bt_db *db;
};

static const char *const migrations[] = {
	/* 1 */
	"CREATE TABLE images ("
	"  id INTEGER PRIMARY KEY,"
	"  ns TEXT NOT NULL, name TEXT NOT NULL,"
	"  media_type TEXT NOT NULL, digest TEXT NOT NULL, size INTEGER NOT NULL,"
	"  created INTEGER NOT NULL, updated INTEGER NOT NULL,"
	"  UNIQUE (ns, name));"
	"CREATE INDEX images_by_digest ON images (ns, digest);"
	"CREATE TABLE image_labels ("
	"  owner INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (owner, key));"
	"CREATE TABLE image_annotations ("
	"  owner INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (owner, key));",
};

void image_rec_clear(image_rec *r)
{
	free(r->name);
	free(r->media_type);
	bt_labels_clear(&r->labels);
	bt_labels_clear(&r->annotations);
	memset(r, 0, sizeof(*r));
}

void image_rec_copy(image_rec *dst, const image_rec *src)
{
	image_rec_clear(dst);
	dst->name = bt_xstrdup(src->name);
	dst->media_type = bt_xstrdup(src->media_type);
	memcpy(dst->digest, src->digest, sizeof(dst->digest));
	dst->size = src->size;
	dst->created = src->created;
	dst->updated = src->updated;
	bt_labels_copy(&dst->labels, &src->labels);
	bt_labels_copy(&dst->annotations, &src->annotations);
}

int image_name_validate(const char *name, bt_err *e)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "image name is empty");
	if (n > 1024)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "image name of %zu characters (at most 1024)", n);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= ' ' || c == 0x7f)
			return bt_err_set(e, BT_INVALID_ARGUMENT, "image name \"%.100s\": no spaces or control characters",
					  name);
	}
	return 0;
}

int image_rec_validate(const image_rec *r, bt_err *e)
{
	if (image_name_validate(r->name, e) < 0)
		return -1;
	if (bt_digest_validate(r->digest, NULL, e) < 0)
		return bt_err_wrap(e, "image %s: target", r->name);
	if (!r->media_type || !*r->media_type || strlen(r->media_type) > 255)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "image %s: target media type is empty or too long", r->name);
	if (r->size < 0)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "image %s: negative target size", r->name);
	if (bt_labels_validate(&r->labels, true, e) < 0 || bt_labels_validate(&r->annotations, true, e) < 0)
		return bt_err_wrap(e, "image %s", r->name);
	return 0;
}

int image_store_open(const char *dir, image_store **out, bt_err *e)
{
	image_store *s = bt_xzalloc(sizeof(*s));

	if (bt_db_open_in(dir, "meta.db", migrations, (int)BT_ARRAY_LEN(migrations), &s->db, e) < 0) {
		image_store_free(&s);
		return -1;
	}
	*out = s;
	return 0;
}

void image_store_free(image_store **sp)
{
	image_store *s = *sp;
	if (!s)
		return;
	bt_db_close(&s->db);
	free(s);
	*sp = NULL;
}

#define COLS "id, name, media_type, digest, size, created, updated"

/* Fills r from a row of COLS, labels and annotations included. */
static int row(image_store *s, bool ro, sqlite3_stmt *st, image_rec *r, bt_err *e)
{
	int64_t id = sqlite3_column_int64(st, 0);

	r->name = bt_xstrdup(bt_db_col_text(st, 1));
	r->media_type = bt_xstrdup(bt_db_col_text(st, 2));
	snprintf(r->digest, sizeof(r->digest), "%s", bt_db_col_text(st, 3));
	r->size = sqlite3_column_int64(st, 4);
	r->created = sqlite3_column_int64(st, 5);
	r->updated = sqlite3_column_int64(st, 6);
	if (bt_db_labels_load(s->db, ro, "image_labels", id, &r->labels, e) < 0 ||
	    bt_db_labels_load(s->db, ro, "image_annotations", id, &r->annotations, e) < 0)
		return -1;
	return 0;
}

/* Looks name up: 1 found (r filled, *id set), 0 not, -1 error. */
static int lookup(image_store *s, bool ro, const char *ns, const char *name, image_rec *r, int64_t *id, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	const char *sql = "SELECT " COLS " FROM images WHERE ns = ?1 AND name = ?2";
	int rc;

	if ((ro ? bt_db_prepare_read(s->db, sql, &st, e) : bt_db_prepare(s->db, sql, &st, e)) < 0 ||
	    bt_db_bind_text(s->db, st, 1, ns, e) < 0 || bt_db_bind_text(s->db, st, 2, name, e) < 0)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return bt_err_set(e, BT_INTERNAL, "look up image: sqlite: %s", sqlite3_errmsg(sqlite3_db_handle(st)));
	if (id)
		*id = sqlite3_column_int64(st, 0);
	if (row(s, ro, st, r, e) < 0)
		return -1;
	return 1;
}

int image_store_get(image_store *s, const char *ns, const char *name, image_rec *out, bt_err *e)
{
	int rc;

	if (image_name_validate(name, e) < 0)
		return -1;
	rc = lookup(s, true, ns, name, out, NULL, e);
	if (rc == 0)
		return bt_err_set(e, BT_NOT_FOUND, "image \"%s\": not found", name);
	return rc < 0 ? -1 : 0;
}

typedef struct rec_view {
	const image_rec *r;
	char size[24];
} rec_view;

static const char *rec_field(void *obj, const char *const *path, size_t n)
{
	rec_view *v = obj;
	if (n == 1 && strcmp(path[0], "name") == 0)
		return v->r->name;
	if (n == 2 && strcmp(path[0], "target") == 0) {
		if (strcmp(path[1], "digest") == 0)
			return v->r->digest;
		if (strcmp(path[1], "media_type") == 0 || strcmp(path[1], "mediatype") == 0)
			return v->r->media_type;
		if (strcmp(path[1], "size") == 0) {
			snprintf(v->size, sizeof(v->size), "%lld", (long long)v->r->size);
			return v->size;
		}
	}
	if (n == 2 && strcmp(path[0], "labels") == 0)
		return bt_labels_get(&v->r->labels, path[1]);
	return NULL;
}

int image_store_list(image_store *s, const char *ns, const bt_filter *f, int (*cb)(const image_rec *r, void *arg),
		     void *arg, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	image_rec *v = NULL;
	size_t n = 0;
	int rc, ret = 0;

	/* collect, then call back: a slow consumer must not hold a statement open */
	if (bt_db_prepare_read(s->db, "SELECT " COLS " FROM images WHERE ns = ?1 ORDER BY name", &st, e) < 0 ||
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
		ret = bt_err_set(e, BT_INTERNAL, "list images: sqlite: %s", sqlite3_errmsg(sqlite3_db_handle(st)));
	for (size_t i = 0; ret == 0 && i < n; i++) {
		rec_view rv = { .r = &v[i] };
		if (f && !bt_filter_match(f, rec_field, &rv))
			continue;
		if (cb(&v[i], arg) < 0)
			ret = bt_err_set(e, BT_CANCELLED, "list stopped");
	}
	for (size_t i = 0; i < n; i++)
		image_rec_clear(&v[i]);
	free(v);
	return ret;
}

static int insert(image_store *s, const char *ns, const image_rec *r, int64_t now, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int64_t id;

	if (bt_db_prepare(s->db,
			  "INSERT INTO images (ns, name, media_type, digest, size, created, updated) "
			  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
			  &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, ns, e) < 0 || bt_db_bind_text(s->db, st, 2, r->name, e) < 0 ||
	    bt_db_bind_text(s->db, st, 3, r->media_type, e) < 0 || bt_db_bind_text(s->db, st, 4, r->digest, e) < 0 ||
	    bt_db_bind_int64(s->db, st, 5, r->size, e) < 0 || bt_db_bind_int64(s->db, st, 6, now, e) < 0)
		return -1;
	if (sqlite3_step(st) != SQLITE_DONE) {
		if ((sqlite3_extended_errcode(bt_db_handle(s->db)) & 0xff) == SQLITE_CONSTRAINT)
			return bt_err_set(e, BT_ALREADY_EXISTS, "image \"%s\": already exists", r->name);
		return bt_db_error(s->db, e, "create image");
	}
	id = sqlite3_last_insert_rowid(bt_db_handle(s->db));
	if (bt_db_labels_store(s->db, "image_labels", id, &r->labels, e) < 0 ||
	    bt_db_labels_store(s->db, "image_annotations", id, &r->annotations, e) < 0)
		return -1;
	return 0;
}

/* Writes r's target, times and labels over row id. */
static int rewrite(image_store *s, int64_t id, const image_rec *r, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;

	if (bt_db_prepare(s->db, "UPDATE images SET media_type = ?2, digest = ?3, size = ?4, updated = ?5 WHERE id = ?1",
			  &st, e) < 0 ||
	    bt_db_bind_int64(s->db, st, 1, id, e) < 0 || bt_db_bind_text(s->db, st, 2, r->media_type, e) < 0 ||
	    bt_db_bind_text(s->db, st, 3, r->digest, e) < 0 || bt_db_bind_int64(s->db, st, 4, r->size, e) < 0 ||
	    bt_db_bind_int64(s->db, st, 5, r->updated, e) < 0 || bt_db_step_done(s->db, st, e) < 0)
		return -1;
	if (bt_db_labels_store(s->db, "image_labels", id, &r->labels, e) < 0 ||
	    bt_db_labels_store(s->db, "image_annotations", id, &r->annotations, e) < 0)
		return -1;
	return 0;
}

/* Runs fn inside a write transaction under the db lock. */
static int in_txn(image_store *s, int (*fn)(image_store *s, void *arg, bt_err *e), void *arg, bt_err *e)
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
	const image_rec *r;
	char *const *mask;
	size_t nmask;
	image_rec *out;
	const char *name;
	bool created; /* put: the name was new */
} op;

static int do_create(image_store *s, void *arg, bt_err *e)
{
	op *o = arg;
	int64_t now = bt_now_ns();

	if (insert(s, o->ns, o->r, now, e) < 0)
		return -1;
	if (o->out) {
		image_rec_copy(o->out, o->r);
		o->out->created = o->out->updated = now;
	}
	return 0;
}

int image_store_create(image_store *s, const char *ns, const image_rec *r, image_rec *out, bt_err *e)
{
	op o = { .ns = ns, .r = r, .out = out };

	if (image_rec_validate(r, e) < 0 || in_txn(s, do_create, &o, e) < 0)
		return -1;
	bt_event(ns, "/images/create", "name", r->name, "target", r->digest, NULL);
	return 0;
}

static bool target_field(const char *f)
{
	return strcmp(f, "target") == 0;
}

static int do_update(image_store *s, void *arg, bt_err *e)
{
	op *o = arg;
	image_rec cur = { 0 };
	int64_t id;
	bool target = o->nmask == 0;
	int rc = lookup(s, false, o->ns, o->r->name, &cur, &id, e);

	if (rc <= 0) {
		if (rc == 0)
			bt_err_set(e, BT_NOT_FOUND, "image \"%s\": not found", o->r->name);
		image_rec_clear(&cur);
		return -1;
	}
	for (size_t i = 0; i < o->nmask; i++)
		target |= target_field(o->mask[i]);
	if (bt_labels_update(&cur.labels, &o->r->labels, o->mask, o->nmask, target_field, e) < 0 ||
	    bt_labels_validate(&cur.labels, true, e) < 0) {
		image_rec_clear(&cur);
		return -1;
	}
	if (target) {
		free(cur.media_type);
		cur.media_type = bt_xstrdup(o->r->media_type);
		memcpy(cur.digest, o->r->digest, sizeof(cur.digest));
		cur.size = o->r->size;
		bt_labels_copy(&cur.annotations, &o->r->annotations);
	}
	cur.updated = bt_now_ns();
	rc = rewrite(s, id, &cur, e);
	if (rc == 0 && o->out)
		image_rec_copy(o->out, &cur);
	image_rec_clear(&cur);
	return rc;
}

int image_store_update(image_store *s, const char *ns, const image_rec *r, char *const *mask, size_t nmask,
		       image_rec *out, bt_err *e)
{
	op o = { .ns = ns, .r = r, .mask = mask, .nmask = nmask, .out = out };
	bool target = nmask == 0;

	if (image_name_validate(r->name, e) < 0 || bt_labels_validate(&r->labels, true, e) < 0)
		return -1;
	for (size_t i = 0; i < nmask; i++)
		target |= target_field(mask[i]);
	if ((target && image_rec_validate(r, e) < 0) || in_txn(s, do_update, &o, e) < 0)
		return -1;
	bt_event(ns, "/images/update", "name", r->name, NULL);
	return 0;
}

static int do_put(image_store *s, void *arg, bt_err *e)
{
	op *o = arg;
	image_rec cur = { 0 };
	int64_t id;
	int rc = lookup(s, false, o->ns, o->r->name, &cur, &id, e);

	if (rc < 0) {
		image_rec_clear(&cur);
		return -1;
	}
	if (rc == 0) {
		image_rec_clear(&cur);
		o->created = true;
		return do_create(s, o, e);
	}
	for (size_t i = 0; i < o->r->labels.n; i++)
		bt_labels_set(&cur.labels, o->r->labels.keys[i], o->r->labels.vals[i]);
	free(cur.media_type);
	cur.media_type = bt_xstrdup(o->r->media_type);
	memcpy(cur.digest, o->r->digest, sizeof(cur.digest));
	cur.size = o->r->size;
	bt_labels_copy(&cur.annotations, &o->r->annotations);
	cur.updated = bt_now_ns();
	rc = rewrite(s, id, &cur, e);
	if (rc == 0 && o->out)
		image_rec_copy(o->out, &cur);
	image_rec_clear(&cur);
	return rc;
}

int image_store_put(image_store *s, const char *ns, const image_rec *r, image_rec *out, bt_err *e)
{
	op o = { .ns = ns, .r = r, .out = out };

	if (image_rec_validate(r, e) < 0 || in_txn(s, do_put, &o, e) < 0)
		return -1;
	bt_event(ns, o.created ? "/images/create" : "/images/update", "name", r->name, "target", r->digest, NULL);
	return 0;
}

static int do_delete(image_store *s, void *arg, bt_err *e)
{
	op *o = arg;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;

	if (bt_db_prepare(s->db, "DELETE FROM images WHERE ns = ?1 AND name = ?2", &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, o->ns, e) < 0 || bt_db_bind_text(s->db, st, 2, o->name, e) < 0 ||
	    bt_db_step_done(s->db, st, e) < 0)
		return -1;
	if (sqlite3_changes(bt_db_handle(s->db)) == 0)
		return bt_err_set(e, BT_NOT_FOUND, "image \"%s\": not found", o->name);
	return 0;
}

int image_store_delete(image_store *s, const char *ns, const char *name, bt_err *e)
{
	op o = { .ns = ns, .name = name };

	if (image_name_validate(name, e) < 0 || in_txn(s, do_delete, &o, e) < 0)
		return -1;
	bt_event(ns, "/images/delete", "name", name, NULL);
	return 0;
}

int image_store_ns_usage(void *arg, const char *ns, char ***holds, bt_err *e)
{
	static const bt_db_count t[] = { { "images", "image", "images" } };
	image_store *s = arg;
	return bt_db_ns_usage(s->db, t, BT_ARRAY_LEN(t), ns, holds, e);
}
