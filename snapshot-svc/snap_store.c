/*
 * snap_store — snapshot records and directories, the kind and parent
 * rules, and the ordering that keeps both consistent through a crash.
 *
 * Locking: the database lock (bt_db_lock) orders every write transaction,
 * and a creation's rename into place happens inside its transaction, so
 * snap_cleanup (which holds that lock while it scans) never sees a
 * directory between its rename and its record.  store->mu guards the set of
 * directory names that operations in flight own (a snapshot being built,
 * files being deleted), which snap_cleanup leaves alone.  Order: db → mu.
 * Reads (stat, mounts, list, usage) use the thread's read-only connection.
 */
#define _GNU_SOURCE
#include "snap_store.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bt_db.h"
#include "bt_log.h"
#include "bt_map.h"
#include "bt_util.h"

#define TMP_PREFIX "new-"
#define TRASH_PREFIX "rm-"
#define MAX_CHAIN 100000 /* bound on a parent chain walk (a corrupt database could loop) */

struct snap_store {
	char *dir;
	char *snaps; /* dir/snapshots */
	int snaps_fd;
	const snap_driver *drv;
	bt_db *db;
	pthread_mutex_t mu;
	bt_map *busy; /* names under snaps/ owned by an operation in flight */
	snap_hook_fn hook;
	void *hook_arg;
};

static const char *const migrations[] = {
	/* 1 */
	"CREATE TABLE snapshots ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  ns TEXT NOT NULL, name TEXT NOT NULL,"
	"  parent INTEGER REFERENCES snapshots (id),"
	"  kind INTEGER NOT NULL,"
	"  created INTEGER NOT NULL, updated INTEGER NOT NULL,"
	"  size INTEGER NOT NULL DEFAULT 0, inodes INTEGER NOT NULL DEFAULT 0,"
	"  UNIQUE (ns, name));"
	"CREATE INDEX snapshots_by_parent ON snapshots (parent);"
	"CREATE TABLE snapshot_labels ("
	"  id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL, value TEXT NOT NULL,"
	"  PRIMARY KEY (id, key));",
};

/* A record as read from the database. */
typedef struct rec {
	int64_t id;
	int64_t parent; /* 0: none */
	snap_kind kind;
	int64_t created;
	int64_t updated;
	int64_t size;
	int64_t inodes;
	char *parent_name; /* "" when none */
} rec;

static void rec_clear(rec *r)
{
	free(r->parent_name);
	memset(r, 0, sizeof(*r));
}

void snap_info_clear(snap_info *i)
{
	free(i->name);
	free(i->parent);
	bt_labels_clear(&i->labels);
	memset(i, 0, sizeof(*i));
}

const char *snap_kind_name(snap_kind k)
{
	switch (k) {
	case SNAP_VIEW:
		return "view";
	case SNAP_ACTIVE:
		return "active";
	case SNAP_COMMITTED:
		return "committed";
	default:
		return "unknown";
	}
}

void snap_store_set_hook(snap_store *s, snap_hook_fn fn, void *arg)
{
	s->hook = fn;
	s->hook_arg = arg;
}

const snap_driver *snap_store_driver(const snap_store *s)
{
	return s->drv;
}

static void hook(snap_store *s, const char *point)
{
	if (s->hook)
		s->hook(point, s->hook_arg);
}

/* --- keys ------------------------------------------------------------------------ */


/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

int snap_key_validate(const char *what, const char *s, size_t len, bt_err *e)
{
	char shown[128];
	const char *why = NULL;

	if (!s || len == 0)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "invalid %s \"\": must not be empty", what);
	bt_escape(shown, sizeof(shown), s, len);
	if (len > SNAP_KEY_MAX)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "invalid %s \"%s\": longer than %d bytes", what, shown,
				  SNAP_KEY_MAX);
	for (size_t i = 0; i < len && !why;) {
		unsigned char c = (unsigned char)s[i];
		size_t n;
		if (c == 0)
			why = "contains a NUL byte";
		else if (c < 0x20 || c == 0x7f)
			why = "contains a control character";
		else if ((n = utf8_seq((const unsigned char *)s + i, len - i)) == 0)
			why = "is not valid UTF-8";
		else
			i += n;
	}
	if (!why && memmem(s, len, "..", 2))
		why = "must not contain \"..\"";
	else if (!why && (s[0] == '/' || s[len - 1] == '/'))
		why = "must not start or end with '/'";
	else if (!why && memmem(s, len, "//", 2))
		why = "must not contain \"//\"";
	else if (!why && ((len == 1 && s[0] == '.') || (len >= 2 && memcmp(s, "./", 2) == 0) ||
			  memmem(s, len, "/./", 3) || (len >= 2 && memcmp(s + len - 2, "/.", 2) == 0)))
		why = "must not have a \".\" segment";
	if (why)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "invalid %s \"%s\": %s", what, shown, why);
	return 0;
}

/* --- records ----------------------------------------------------------------------- */

static int prep(snap_store *s, bool ro, const char *sql, sqlite3_stmt **st, bt_err *e)
{
	return ro ? bt_db_prepare_read(s->db, sql, st, e) : bt_db_prepare(s->db, sql, st, e);
}

static int step_error(snap_store *s, sqlite3_stmt *st, bt_err *e, const char *what)
{
	(void)s;
	return bt_err_set(e, BT_INTERNAL, "%s: sqlite: %s", what, sqlite3_errmsg(sqlite3_db_handle(st)));
}

/* Looks name up in ns: 1 found (out filled when given), 0 not, -1 error.
 * ro: on the read-only connection; else the caller holds the db lock. */
static int find(snap_store *s, bool ro, const char *ns, const char *name, rec *out, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc;

	if (prep(s, ro,
		 "SELECT s.id, IFNULL(s.parent, 0), s.kind, s.created, s.updated, s.size, s.inodes, IFNULL(p.name, '') "
		 "FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent WHERE s.ns = ?1 AND s.name = ?2",
		 &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, ns, e) < 0 || bt_db_bind_text(s->db, st, 2, name, e) < 0)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return step_error(s, st, e, "look up snapshot");
	if (out) {
		out->id = sqlite3_column_int64(st, 0);
		out->parent = sqlite3_column_int64(st, 1);
		out->kind = (snap_kind)sqlite3_column_int(st, 2);
		out->created = sqlite3_column_int64(st, 3);
		out->updated = sqlite3_column_int64(st, 4);
		out->size = sqlite3_column_int64(st, 5);
		out->inodes = sqlite3_column_int64(st, 6);
		free(out->parent_name);
		out->parent_name = bt_xstrdup(bt_db_col_text(st, 7));
	}
	return 1;
}

/* Looks name up; NOT_FOUND when it is not there. */
static int must_find(snap_store *s, bool ro, const char *ns, const char *name, rec *out, bt_err *e)
{
	int rc = find(s, ro, ns, name, out, e);
	if (rc == 0)
		return bt_err_set(e, BT_NOT_FOUND, "snapshot \"%s\": not found", name);
	return rc < 0 ? -1 : 0;
}

/* The ids of id and its ancestors, nearest first. */
static int chain(snap_store *s, bool ro, int64_t id, int64_t **out, size_t *n, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int64_t *v = NULL;
	size_t k = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (prep(s, ro,
		 "WITH RECURSIVE c(id, parent, depth) AS ("
		 "  SELECT id, parent, 0 FROM snapshots WHERE id = ?1"
		 "  UNION ALL SELECT s.id, s.parent, c.depth + 1 FROM snapshots s JOIN c ON s.id = c.parent"
		 "  WHERE c.depth < ?2)"
		 "SELECT id FROM c ORDER BY depth",
		 &st, e) < 0 ||
	    bt_db_bind_int64(s->db, st, 1, id, e) < 0 || bt_db_bind_int64(s->db, st, 2, MAX_CHAIN, e) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		v = bt_xrealloc(v, (k + 1) * sizeof(*v));
		v[k++] = sqlite3_column_int64(st, 0);
	}
	if (rc != SQLITE_DONE) {
		free(v);
		return step_error(s, st, e, "walk the parent chain");
	}
	*out = v;
	*n = k;
	return 0;
}

static int load_labels(snap_store *s, bool ro, int64_t id, bt_labels *out, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc;

	if (prep(s, ro, "SELECT key, value FROM snapshot_labels WHERE id = ?1 ORDER BY key", &st, e) < 0 ||
	    bt_db_bind_int64(s->db, st, 1, id, e) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		bt_labels_set(out, bt_db_col_text(st, 0), bt_db_col_text(st, 1));
	if (rc != SQLITE_DONE)
		return step_error(s, st, e, "read labels");
	return 0;
}

/* Replaces id's labels. Caller holds the db lock, in a transaction. */
static int store_labels(snap_store *s, int64_t id, const bt_labels *l, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *del = NULL;
	_cleanup_stmt_ sqlite3_stmt *ins = NULL;

	if (bt_db_prepare(s->db, "DELETE FROM snapshot_labels WHERE id = ?1", &del, e) < 0 ||
	    bt_db_bind_int64(s->db, del, 1, id, e) < 0 || bt_db_step_done(s->db, del, e) < 0)
		return -1;
	if (!l || l->n == 0)
		return 0;
	if (bt_db_prepare(s->db, "INSERT INTO snapshot_labels (id, key, value) VALUES (?1, ?2, ?3)", &ins, e) < 0)
		return -1;
	for (size_t i = 0; i < l->n; i++) {
		sqlite3_reset(ins);
		if (bt_db_bind_int64(s->db, ins, 1, id, e) < 0 || bt_db_bind_text(s->db, ins, 2, l->keys[i], e) < 0 ||
		    bt_db_bind_text(s->db, ins, 3, l->vals[i], e) < 0 || bt_db_step_done(s->db, ins, e) < 0)
			return -1;
	}
	return 0;
}

static void rec_to_info(const char *name, const rec *r, snap_info *out)
{
	out->name = bt_xstrdup(name);
	out->parent = bt_xstrdup(r->parent_name ? r->parent_name : "");
	out->kind = r->kind;
	out->created = r->created;
	out->updated = r->updated;
}

/* --- directories -------------------------------------------------------------------- */

static char *id_name(int64_t id)
{
	return bt_xasprintf("%lld", (long long)id);
}

static char *snap_dir(snap_store *s, int64_t id)
{
	return bt_xasprintf("%s/%lld", s->snaps, (long long)id);
}

static void busy_add(snap_store *s, const char *name)
{
	pthread_mutex_lock(&s->mu);
	bt_map_sput(s->busy, name, (void *)1);
	pthread_mutex_unlock(&s->mu);
}

static void busy_del(snap_store *s, const char *name)
{
	pthread_mutex_lock(&s->mu);
	bt_map_sdel(s->busy, name);
	pthread_mutex_unlock(&s->mu);
}

static bool is_busy(snap_store *s, const char *name)
{
	pthread_mutex_lock(&s->mu);
	bool b = bt_map_sget(s->busy, name) != NULL;
	pthread_mutex_unlock(&s->mu);
	return b;
}

/* A fresh name for files on their way out. */
static char *trash_name(const char *what)
{
	_cleanup_free_ char *rnd = bt_random_hex(4);
	return bt_xasprintf(TRASH_PREFIX "%s-%s", what, rnd);
}

/* Deletes the trash entry name (owned by the caller: busy). */
static void delete_trash(snap_store *s, const char *name)
{
	_cleanup_free_ char *p = bt_xasprintf("%s/%s", s->snaps, name);
	bt_err e;

	if (bt_rm_rf(p, &e) < 0)
		bt_log_warn("remove %s: %s (cleanup will retry)", p, e.msg);
}

/* Renames the directory from (under snaps/) to id's name, moving aside a
 * stale directory of that name (which no record owns: the caller just
 * inserted the record with this id). Caller holds the db lock. */
static int place_dir(snap_store *s, const char *from, int64_t id, bt_err *e)
{
	_cleanup_free_ char *to = id_name(id);

	for (int attempt = 0;; attempt++) {
		int rc = renameat2(s->snaps_fd, from, s->snaps_fd, to, RENAME_NOREPLACE);
		if (rc < 0 && errno == EINVAL)
			rc = renameat(s->snaps_fd, from, s->snaps_fd, to);
		if (rc == 0)
			return 0;
		if ((errno != EEXIST && errno != ENOTEMPTY) || attempt > 0)
			return bt_err_errno(e, errno, "rename %s to %s", from, to);
		_cleanup_free_ char *stale = trash_name(to);
		bt_log_warn("snapshot directory %s/%s belongs to no record; removing it", s->snaps, to);
		if (renameat(s->snaps_fd, to, s->snaps_fd, stale) < 0)
			return bt_err_errno(e, errno, "move aside stale %s", to);
		busy_add(s, stale);
		delete_trash(s, stale);
		busy_del(s, stale);
	}
}

/* --- create ------------------------------------------------------------------------ */

/* The mounts of snapshot id of kind, whose ancestors are anc[0..n). */
static int make_mounts(snap_store *s, int64_t id, snap_kind kind, const int64_t *anc, size_t n, bt_mount **mounts,
		       size_t *nm, bt_err *e)
{
	_cleanup_free_ char *dir = snap_dir(s, id);
	char **dirs = bt_xcalloc(n + 1, sizeof(char *));
	int rc;

	for (size_t i = 0; i < n; i++)
		dirs[i] = snap_dir(s, anc[i]);
	rc = s->drv->mounts(dir, kind, dirs, n, mounts, nm, e);
	bt_strv_free(dirs);
	return rc;
}

/* Checks parent for a new snapshot on the connection ro: it exists, is
 * committed, and (when want_id) still is want_id; fills pr and its chain. */
static int check_parent(snap_store *s, bool ro, const char *ns, const char *parent, int64_t want_id, rec *pr,
			int64_t **anc, size_t *nanc, bt_err *e)
{
	int rc = find(s, ro, ns, parent, pr, e);

	if (rc < 0)
		return -1;
	if (rc == 0 || (want_id && pr->id != want_id))
		return bt_err_set(e, BT_NOT_FOUND, "parent snapshot \"%s\": not found", parent);
	if (pr->kind != SNAP_COMMITTED)
		return bt_err_set(e, BT_INVALID_ARGUMENT,
				  "parent \"%s\" is not a committed snapshot (it is %s): commit it first", parent,
				  snap_kind_name(pr->kind));
	if (chain(s, ro, pr->id, anc, nanc, e) < 0)
		return -1;
	if (s->drv->max_depth && *nanc > s->drv->max_depth)
		return bt_err_set(e, BT_FAILED_PRECONDITION, "parent \"%s\" has %zu layers; %s takes at most %zu",
				  parent, *nanc, s->drv->name, s->drv->max_depth);
	return 0;
}

/* Inserts the record and moves tmp into place, in one transaction.
 * Returns the new id, or -1. Caller holds the db lock. */
static int64_t record_new(snap_store *s, const char *ns, snap_kind kind, const char *key, const char *parent,
			  int64_t parent_id, const bt_labels *labels, const char *tmp, int64_t **anc, size_t *nanc,
			  bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	rec pr = { 0 };
	int64_t id = 0, now = bt_now_ns();

	if (bt_db_begin(s->db, e) < 0)
		return -1;
	if (parent && check_parent(s, false, ns, parent, parent_id, &pr, anc, nanc, e) < 0)
		goto rollback;
	if (bt_db_prepare(s->db,
			  "INSERT INTO snapshots (ns, name, parent, kind, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
			  &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, ns, e) < 0 || bt_db_bind_text(s->db, st, 2, key, e) < 0 ||
	    (parent_id ? bt_db_bind_int64(s->db, st, 3, parent_id, e) : bt_db_bind_text(s->db, st, 3, NULL, e)) < 0 ||
	    bt_db_bind_int64(s->db, st, 4, kind, e) < 0 || bt_db_bind_int64(s->db, st, 5, now, e) < 0)
		goto rollback;
	if (bt_db_step_done(s->db, st, e) < 0) {
		if (e->code == BT_ALREADY_EXISTS)
			bt_err_set(e, BT_ALREADY_EXISTS, "snapshot \"%s\": already exists", key);
		goto rollback;
	}
	id = sqlite3_last_insert_rowid(bt_db_handle(s->db));
	if (store_labels(s, id, labels, e) < 0)
		goto rollback;
	if (place_dir(s, tmp, id, e) < 0)
		goto rollback;
	hook(s, "create:renamed");
	if (fsync(s->snaps_fd) < 0) {
		bt_err_errno(e, errno, "sync %s", s->snaps);
		goto undo_rename;
	}
	if (bt_db_commit(s->db, e) < 0)
		goto undo_rename;
	rec_clear(&pr);
	return id;
undo_rename: {
	_cleanup_free_ char *idn = id_name(id);
	bt_db_rollback(s->db);
	if (renameat(s->snaps_fd, idn, s->snaps_fd, tmp) < 0)
		bt_log_warn("move %s back to %s: %s (cleanup will remove it)", idn, tmp, strerror(errno));
	rec_clear(&pr);
	return -1;
}
rollback:
	bt_db_rollback(s->db);
	rec_clear(&pr);
	return -1;
}

int snap_create(snap_store *s, const char *ns, snap_kind kind, const char *key, const char *parent,
		const bt_labels *labels, bt_mount **mounts, size_t *n, bt_err *e)
{
	rec pr = { 0 };
	int64_t *anc = NULL;
	size_t nanc = 0;
	int64_t id;
	int rc = -1;
	_cleanup_free_ char *rnd = bt_random_hex(6);
	_cleanup_free_ char *tmpname = bt_xasprintf(TMP_PREFIX "%s", rnd);
	_cleanup_free_ char *tmp = bt_xasprintf("%s/%s", s->snaps, tmpname);
	_cleanup_free_ char *parent_dir = NULL;

	assert(kind == SNAP_ACTIVE || kind == SNAP_VIEW);
	if (parent && !*parent)
		parent = NULL;
	if (snap_key_validate("key", key, strlen(key), e) < 0 ||
	    (parent && snap_key_validate("parent", parent, strlen(parent), e) < 0) ||
	    (labels && bt_labels_validate(labels, true, e) < 0))
		return -1;
	/* The cheap refusals first, before anything is built. */
	int found = find(s, true, ns, key, NULL, e);
	if (found < 0)
		return -1;
	if (found)
		return bt_err_set(e, BT_ALREADY_EXISTS, "snapshot \"%s\": already exists", key);
	if (parent) {
		if (check_parent(s, true, ns, parent, 0, &pr, &anc, &nanc, e) < 0)
			goto out;
		parent_dir = snap_dir(s, pr.id);
		free(anc);
		anc = NULL;
	}

	busy_add(s, tmpname);
	if (mkdir(tmp, 0700) < 0) {
		bt_err_errno(e, errno, "create %s", tmp);
		goto unbusy;
	}
	if (s->drv->create(tmp, parent_dir, kind, e) < 0) {
		bt_err_wrap(e, "%s \"%s\"", kind == SNAP_VIEW ? "view" : "prepare", key);
		goto remove_tmp;
	}
	hook(s, "create:built");

	bt_db_lock(s->db);
	id = record_new(s, ns, kind, key, parent, pr.id, labels, tmpname, &anc, &nanc, e);
	bt_db_unlock(s->db);
	if (id < 0)
		goto remove_tmp;
	busy_del(s, tmpname);
	hook(s, "create:recorded");
	rc = make_mounts(s, id, kind, anc, nanc, mounts, n, e);
	goto out;

remove_tmp: {
	bt_err ignore;
	if (bt_rm_rf(tmp, &ignore) < 0)
		bt_log_warn("remove %s: %s (cleanup will retry)", tmp, ignore.msg);
}
unbusy:
	busy_del(s, tmpname);
out:
	free(anc);
	rec_clear(&pr);
	return rc;
}

int snap_mounts(snap_store *s, const char *ns, const char *key, bt_mount **mounts, size_t *n, bt_err *e)
{
	rec r = { 0 };
	int64_t *anc = NULL;
	size_t nanc = 0;
	int rc = -1;

	if (snap_key_validate("key", key, strlen(key), e) < 0)
		return -1;
	if (must_find(s, true, ns, key, &r, e) < 0)
		goto out;
	if (r.kind == SNAP_COMMITTED) {
		bt_err_set(e, BT_FAILED_PRECONDITION,
			   "snapshot \"%s\" is committed: only active snapshots and views have mounts (prepare or view "
			   "one on top of it)",
			   key);
		goto out;
	}
	if (r.parent && chain(s, true, r.parent, &anc, &nanc, e) < 0)
		goto out;
	rc = make_mounts(s, r.id, r.kind, anc, nanc, mounts, n, e);
out:
	free(anc);
	rec_clear(&r);
	return rc;
}

/* --- commit -------------------------------------------------------------------------- */

static int sync_dir(const char *path, bt_err *e)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return bt_err_errno(e, errno, "open %s", path);
	if (syncfs(fd) < 0)
		return bt_err_errno(e, errno, "sync %s", path);
	return 0;
}

int snap_commit(snap_store *s, const char *ns, const char *name, const char *key, const bt_labels *labels,
		bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *fs = NULL;
	rec r = { 0 }, again = { 0 };
	int64_t size = 0, inodes = 0, now;
	int rc = -1, found;

	if (snap_key_validate("name", name, strlen(name), e) < 0 || snap_key_validate("key", key, strlen(key), e) < 0 ||
	    (labels && bt_labels_validate(labels, true, e) < 0))
		return -1;
	if (must_find(s, true, ns, key, &r, e) < 0)
		goto out;
	if (r.kind != SNAP_ACTIVE) {
		bt_err_set(e, BT_FAILED_PRECONDITION,
			   "snapshot \"%s\" is %s %s: only an active snapshot can be committed", key,
			   r.kind == SNAP_VIEW ? "a" : "already", snap_kind_name(r.kind));
		goto out;
	}
	found = find(s, true, ns, name, NULL, e);
	if (found < 0)
		goto out;
	if (found) {
		bt_err_set(e, BT_ALREADY_EXISTS, "snapshot \"%s\": already exists", name);
		goto out;
	}
	/* The layer's usage is recorded with it; its files are made durable
	 * before the record says they are committed. */
	fs = bt_xasprintf("%s/%lld/fs", s->snaps, (long long)r.id);
	if (snap_disk_usage(fs, &size, &inodes, e) < 0 || sync_dir(fs, e) < 0) {
		bt_err_wrap(e, "commit \"%s\"", key);
		goto out;
	}
	hook(s, "commit:synced");

	bt_db_lock(s->db);
	if (bt_db_begin(s->db, e) < 0)
		goto unlock;
	if (must_find(s, false, ns, key, &again, e) < 0)
		goto rollback;
	if (again.id != r.id || again.kind != SNAP_ACTIVE) {
		bt_err_set(e, BT_NOT_FOUND, "snapshot \"%s\": changed meanwhile", key);
		goto rollback;
	}
	now = bt_now_ns();
	if (bt_db_prepare(s->db,
			  "UPDATE snapshots SET name = ?2, kind = ?3, created = ?4, updated = ?4, size = ?5, inodes = ?6 "
			  "WHERE id = ?1",
			  &st, e) < 0 ||
	    bt_db_bind_int64(s->db, st, 1, r.id, e) < 0 || bt_db_bind_text(s->db, st, 2, name, e) < 0 ||
	    bt_db_bind_int64(s->db, st, 3, SNAP_COMMITTED, e) < 0 || bt_db_bind_int64(s->db, st, 4, now, e) < 0 ||
	    bt_db_bind_int64(s->db, st, 5, size, e) < 0 || bt_db_bind_int64(s->db, st, 6, inodes, e) < 0)
		goto rollback;
	if (bt_db_step_done(s->db, st, e) < 0) {
		if (e->code == BT_ALREADY_EXISTS)
			bt_err_set(e, BT_ALREADY_EXISTS, "snapshot \"%s\": already exists", name);
		goto rollback;
	}
	if (store_labels(s, r.id, labels, e) < 0)
		goto rollback;
	if (bt_db_commit(s->db, e) < 0)
		goto unlock;
	bt_db_unlock(s->db);
	hook(s, "commit:recorded");
	rc = 0;
	goto out;
rollback:
	bt_db_rollback(s->db);
unlock:
	bt_db_unlock(s->db);
out:
	rec_clear(&r);
	rec_clear(&again);
	return rc;
}

/* --- remove ---------------------------------------------------------------------------- */

/* Refuses to remove r when snapshots sit on it. Caller holds the db lock. */
static int check_children(snap_store *s, const char *key, const rec *r, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	bt_buf names = { 0 };
	int64_t n = 0;
	int rc;

	if (bt_db_prepare(s->db, "SELECT name FROM snapshots WHERE parent = ?1 ORDER BY name", &st, e) < 0 ||
	    bt_db_bind_int64(s->db, st, 1, r->id, e) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n < 3)
			bt_buf_appendf(&names, "%s\"%.200s\"", n ? ", " : "", bt_db_col_text(st, 0));
		n++;
	}
	if (rc != SQLITE_DONE) {
		bt_buf_free(&names);
		return step_error(s, st, e, "look up children");
	}
	if (n > 0) {
		bt_err_set(e, BT_FAILED_PRECONDITION,
			   "cannot remove snapshot \"%s\": it is the parent of %lld snapshot%s (%s%s); remove %s first",
			   key, (long long)n, n == 1 ? "" : "s", names.data, n > 3 ? ", …" : "", n == 1 ? "it" : "them");
		bt_buf_free(&names);
		return -1;
	}
	bt_buf_free(&names);
	return 0;
}

int snap_remove(snap_store *s, const char *ns, const char *key, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *idn = NULL;
	_cleanup_free_ char *trash = NULL;
	rec r = { 0 };

	if (snap_key_validate("key", key, strlen(key), e) < 0)
		return -1;
	bt_db_lock(s->db);
	if (bt_db_begin(s->db, e) < 0)
		goto unlock;
	if (must_find(s, false, ns, key, &r, e) < 0 || check_children(s, key, &r, e) < 0)
		goto rollback;
	if (bt_db_prepare(s->db, "DELETE FROM snapshots WHERE id = ?1", &st, e) < 0 ||
	    bt_db_bind_int64(s->db, st, 1, r.id, e) < 0 || bt_db_step_done(s->db, st, e) < 0)
		goto rollback;
	/* From the commit on, the directory is ours alone to delete. */
	idn = id_name(r.id);
	busy_add(s, idn);
	if (bt_db_commit(s->db, e) < 0) {
		busy_del(s, idn);
		goto unlock;
	}
	bt_db_unlock(s->db);
	hook(s, "remove:unrecorded");

	/* Renamed first so that a half-deleted tree never carries an id. */
	trash = trash_name(idn);
	busy_add(s, trash);
	if (renameat(s->snaps_fd, idn, s->snaps_fd, trash) < 0) {
		if (errno != ENOENT)
			bt_log_warn("remove snapshot directory %s/%s: %s (cleanup will retry)", s->snaps, idn,
				    strerror(errno));
	} else {
		hook(s, "remove:renamed");
		delete_trash(s, trash);
	}
	busy_del(s, trash);
	busy_del(s, idn);
	rec_clear(&r);
	return 0;
rollback:
	bt_db_rollback(s->db);
unlock:
	bt_db_unlock(s->db);
	rec_clear(&r);
	return -1;
}

/* --- reads -------------------------------------------------------------------------- */

int snap_stat(snap_store *s, const char *ns, const char *key, snap_info *out, bt_err *e)
{
	rec r = { 0 };

	memset(out, 0, sizeof(*out));
	if (snap_key_validate("key", key, strlen(key), e) < 0)
		return -1;
	if (must_find(s, true, ns, key, &r, e) < 0) {
		rec_clear(&r);
		return -1;
	}
	rec_to_info(key, &r, out);
	int rc = load_labels(s, true, r.id, &out->labels, e);
	rec_clear(&r);
	if (rc < 0)
		snap_info_clear(out);
	return rc;
}

int snap_update(snap_store *s, const char *ns, const char *key, const bt_labels *labels, char *const *mask,
		size_t nmask, snap_info *out, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	rec r = { 0 };

	memset(out, 0, sizeof(*out));
	if (snap_key_validate("key", key, strlen(key), e) < 0 || bt_labels_validate(labels, true, e) < 0)
		return -1;
	bt_db_lock(s->db);
	if (bt_db_begin(s->db, e) < 0)
		goto unlock;
	if (must_find(s, false, ns, key, &r, e) < 0)
		goto rollback;
	rec_to_info(key, &r, out);
	if (load_labels(s, false, r.id, &out->labels, e) < 0 ||
	    bt_labels_update(&out->labels, labels, mask, nmask, NULL, e) < 0 ||
	    bt_labels_validate(&out->labels, true, e) < 0)
		goto rollback;
	out->updated = bt_now_ns();
	if (store_labels(s, r.id, &out->labels, e) < 0 ||
	    bt_db_prepare(s->db, "UPDATE snapshots SET updated = ?2 WHERE id = ?1", &st, e) < 0 ||
	    bt_db_bind_int64(s->db, st, 1, r.id, e) < 0 || bt_db_bind_int64(s->db, st, 2, out->updated, e) < 0 ||
	    bt_db_step_done(s->db, st, e) < 0)
		goto rollback;
	if (bt_db_commit(s->db, e) < 0)
		goto unlock;
	bt_db_unlock(s->db);
	rec_clear(&r);
	return 0;
rollback:
	bt_db_rollback(s->db);
unlock:
	bt_db_unlock(s->db);
	rec_clear(&r);
	snap_info_clear(out);
	return -1;
}

static const char *info_field(void *obj, const char *const *path, size_t n)
{
	const snap_info *i = obj;

	if (n == 1 && strcmp(path[0], "name") == 0)
		return i->name;
	if (n == 1 && strcmp(path[0], "parent") == 0)
		return i->parent;
	if (n == 1 && strcmp(path[0], "kind") == 0)
		return snap_kind_name(i->kind);
	if (n == 2 && strcmp(path[0], "labels") == 0)
		return bt_labels_get(&i->labels, path[1]);
	return NULL;
}

int snap_list(snap_store *s, const char *ns, const bt_filter *f, int (*cb)(const snap_info *i, void *arg), void *arg,
	      bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	snap_info *items = NULL;
	int64_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc, ret = -1;

	/* Collect, then call back: a slow reader must not hold a statement open. */
	if (prep(s, true,
		 "SELECT s.id, s.name, IFNULL(p.name, ''), s.kind, s.created, s.updated FROM snapshots s "
		 "LEFT JOIN snapshots p ON p.id = s.parent WHERE s.ns = ?1 ORDER BY s.name",
		 &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, ns, e) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			items = bt_xrealloc(items, cap * sizeof(*items));
			ids = bt_xrealloc(ids, cap * sizeof(*ids));
		}
		snap_info *i = &items[n];
		memset(i, 0, sizeof(*i));
		ids[n] = sqlite3_column_int64(st, 0);
		i->name = bt_xstrdup(bt_db_col_text(st, 1));
		i->parent = bt_xstrdup(bt_db_col_text(st, 2));
		i->kind = (snap_kind)sqlite3_column_int(st, 3);
		i->created = sqlite3_column_int64(st, 4);
		i->updated = sqlite3_column_int64(st, 5);
		n++;
	}
	if (rc != SQLITE_DONE) {
		step_error(s, st, e, "list snapshots");
		goto out;
	}
	for (size_t j = 0; j < n; j++)
		if (load_labels(s, true, ids[j], &items[j].labels, e) < 0)
			goto out;
	ret = 0;
	for (size_t j = 0; j < n; j++) {
		if (f && !bt_filter_match(f, info_field, &items[j]))
			continue;
		if (cb(&items[j], arg) < 0) {
			ret = bt_err_set(e, BT_CANCELLED, "list stopped");
			break;
		}
	}
out:
	for (size_t j = 0; j < n; j++)
		snap_info_clear(&items[j]);
	free(items);
	free(ids);
	return ret;
}

int snap_usage(snap_store *s, const char *ns, const char *key, snap_usage_info *out, bt_err *e)
{
	rec r = { 0 };
	int rc = -1;

	if (snap_key_validate("key", key, strlen(key), e) < 0)
		return -1;
	if (must_find(s, true, ns, key, &r, e) < 0)
		goto out;
	if (r.kind == SNAP_COMMITTED) {
		/* measured at commit: a committed layer does not change */
		out->size = r.size;
		out->inodes = r.inodes;
		rc = 0;
		goto out;
	}
	{
		_cleanup_free_ char *fs = bt_xasprintf("%s/%lld/fs", s->snaps, (long long)r.id);
		rc = snap_disk_usage(fs, &out->size, &out->inodes, e);
		if (rc < 0)
			bt_err_wrap(e, "usage of \"%s\"", key);
	}
out:
	rec_clear(&r);
	return rc;
}

/* --- cleanup ---------------------------------------------------------------------------- */

/* Is name the canonical decimal form of an id in ids? */
static bool owned(const bt_map *ids, const char *name)
{
	uint64_t v;

	if (bt_parse_u64(name, &v) < 0 || v == 0 || name[0] == '0')
		return false;
	return bt_map_sget(ids, name) != NULL;
}

int snap_cleanup(snap_store *s, int64_t *removed, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_strv_ char **doomed = NULL;
	bt_map *ids = bt_map_new();
	DIR *d = NULL;
	struct dirent *de;
	int64_t n = 0;
	int rc;

	/* Under the lock no creation sits between its rename and its record. */
	bt_db_lock(s->db);
	if (bt_db_prepare(s->db, "SELECT id FROM snapshots", &st, e) < 0)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		_cleanup_free_ char *k = id_name(sqlite3_column_int64(st, 0));
		bt_map_sput(ids, k, (void *)1);
	}
	if (rc != SQLITE_DONE) {
		step_error(s, st, e, "list snapshot ids");
		goto fail;
	}
	int fd = openat(s->snaps_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		bt_err_errno(e, errno, "read %s", s->snaps);
		if (fd >= 0)
			close(fd);
		goto fail;
	}
	while ((errno = 0, de = readdir(d))) {
		const char *name = de->d_name;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (owned(ids, name)) {
			bt_map_sdel(ids, name);
			continue;
		}
		if (is_busy(s, name))
			continue;
		/* No record owns it: take it out of the way now, delete it after. */
		_cleanup_free_ char *trash = bt_startswith(name, TRASH_PREFIX) ? bt_xstrdup(name) : trash_name("orphan");
		if (strcmp(trash, name) != 0 && renameat(s->snaps_fd, name, s->snaps_fd, trash) < 0) {
			bt_log_warn("cleanup: move %s/%s aside: %s", s->snaps, name, strerror(errno));
			continue;
		}
		bt_log_info("cleanup: removing %s/%s (no snapshot record owns it)", s->snaps, name);
		busy_add(s, trash);
		bt_strv_push(&doomed, trash);
	}
	closedir(d);
	/* what is left in ids has a record but no directory */
	bt_map_iter it;
	const void *k;
	size_t klen;
	bt_map_iter_init(&it, ids);
	while (bt_map_iter_next(&it, &k, &klen, NULL))
		bt_log_warn("cleanup: snapshot record %.*s has no directory %s/%.*s", (int)klen, (const char *)k, s->snaps,
			    (int)klen, (const char *)k);
	bt_db_unlock(s->db);
	bt_map_free(&ids);

	for (size_t i = 0; doomed && doomed[i]; i++) {
		delete_trash(s, doomed[i]);
		busy_del(s, doomed[i]);
		n++;
	}
	if (removed)
		*removed = n;
	return 0;
fail:
	bt_db_unlock(s->db);
	bt_map_free(&ids);
	return -1;
}

/* --- open ------------------------------------------------------------------------------- */

int snap_store_open(const char *dir, const snap_driver *driver, snap_store **out, bt_err *e)
{
	snap_store *s = bt_xzalloc(sizeof(*s));

	s->dir = bt_xstrdup(dir);
	s->snaps = bt_xasprintf("%s/snapshots", dir);
	s->snaps_fd = -1;
	s->drv = driver;
	s->busy = bt_map_new();
	pthread_mutex_init(&s->mu, NULL);
	if (driver == &snap_overlay_driver && strpbrk(dir, ",:")) {
		bt_err_set(e, BT_INVALID_ARGUMENT,
			   "state directory %s: overlay mount options cannot name paths with ',' or ':'", dir);
		goto fail;
	}
	if (bt_mkdir_p(s->snaps, 0700, e) < 0)
		goto fail;
	s->snaps_fd = open(s->snaps, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->snaps_fd < 0) {
		bt_err_errno(e, errno, "open %s", s->snaps);
		goto fail;
	}
	if (bt_db_open_in(dir, "meta.db", migrations, (int)BT_ARRAY_LEN(migrations), &s->db, e) < 0)
		goto fail;
	int64_t removed = 0;
	if (snap_cleanup(s, &removed, e) < 0) {
		bt_err_wrap(e, "recover %s", dir);
		goto fail;
	}
	if (removed)
		bt_log_info("start-up: removed %lld directories no snapshot owned", (long long)removed);
	*out = s;
	return 0;
fail:
	snap_store_free(&s);
	return -1;
}

void snap_store_free(snap_store **sp)
{
	snap_store *s = *sp;

	if (!s)
		return;
	bt_db_close(&s->db);
	if (s->snaps_fd >= 0)
		close(s->snaps_fd);
	bt_map_free(&s->busy);
	pthread_mutex_destroy(&s->mu);
	free(s->dir);
	free(s->snaps);
	free(s);
	*sp = NULL;
}

int snap_store_ns_usage(void *arg, const char *ns, char ***holds, bt_err *e)
{
	static const bt_db_count t[] = { { "snapshots", "snapshot", "snapshots" } };
	snap_store *s = arg;
	return bt_db_ns_usage(s->db, t, BT_ARRAY_LEN(t), ns, holds, e);
}
