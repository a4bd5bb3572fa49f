/*
 * content_store — blobs, per-namespace records and resumable ingests.
 *
 * Locking: store->mu guards the table of live ingests; each ingest has its
 * own mutex for its bytes and digest state; blob_mu orders the moves of blob
 * files against the checks that decide whether bytes may go.  The database
 * has its own lock (bt_db_lock) for transactions.  Order: ingest → blob_mu → db.
 */
#define _GNU_SOURCE
#include "content_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bt_db.h"
#include "bt_ident.h"
#include "bt_log.h"
#include "bt_map.h"
#include "bt_offload.h"
#include "bt_util.h"

#define FLUSH_EVERY (8 << 20)

typedef struct ingest {
	char *key; /* ns "\n" ref */
	char *ns;
	char *ref;
	char *dir;
	pthread_mutex_t mu;
	int users; /* under store->mu */
	bool gone; /* committed or aborted: the record is no more */
	bool loaded;
	int fd;
	bt_digest *d; /* hash of bytes [0, offset) */
	int64_t offset;
	char *writer;
	int64_t writer_seen; /* monotonic ms */
	int64_t flushed; /* bytes handed to writeback so far */
	bt_job *sync_job; /* a background fdatasync of sync_fd (the data file) */
	int sync_fd;
	int64_t started;
	int64_t total;
	char expected[BT_DIGEST_STR_LEN];
} ingest;

struct content_store {
	char *dir;
	char *blobs;
	char *ingests_dir;
	bt_db *db;
	content_opts o;
	pthread_mutex_t mu;
	bt_map *live;
	pthread_mutex_t blob_mu;
	bt_offload *helpers; /* write a chunk while hashing it */
	bt_offload *syncers; /* make an ingest durable as it goes */
};

static const char *const migrations[] = {
	/* 1 */
	"CREATE TABLE blobs ("
	"  ns TEXT NOT NULL, digest TEXT NOT NULL, size INTEGER NOT NULL,"
	"  created INTEGER NOT NULL, updated INTEGER NOT NULL,"
	"  PRIMARY KEY (ns, digest));"
	"CREATE INDEX blobs_by_digest ON blobs (digest);"
	"CREATE TABLE blob_labels ("
	"  ns TEXT NOT NULL, digest TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
	"  PRIMARY KEY (ns, digest, key),"
	"  FOREIGN KEY (ns, digest) REFERENCES blobs (ns, digest) ON DELETE CASCADE);"
	"CREATE TABLE ingests ("
	"  ns TEXT NOT NULL, ref TEXT NOT NULL, dir TEXT NOT NULL UNIQUE,"
	"  expected TEXT NOT NULL DEFAULT '', total INTEGER NOT NULL DEFAULT 0,"
	"  started INTEGER NOT NULL, committing TEXT NOT NULL DEFAULT '',"
	"  PRIMARY KEY (ns, ref));"
	"CREATE INDEX ingests_by_committing ON ingests (committing);"
	"CREATE TABLE ingest_labels ("
	"  ns TEXT NOT NULL, ref TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
	"  PRIMARY KEY (ns, ref, key),"
	"  FOREIGN KEY (ns, ref) REFERENCES ingests (ns, ref) ON DELETE CASCADE);",
};

void content_info_clear(content_info *i)
{
	bt_labels_clear(&i->labels);
	memset(i, 0, sizeof(*i));
}

void content_status_clear(content_status *s)
{
	free(s->ref);
	memset(s, 0, sizeof(*s));
}

/* Prepares on the writer connection (caller holds the db lock) or, for ro,
 * on this thread's read-only connection (no lock, never waits for writers). */
static int prep(content_store *s, bool ro, const char *sql, sqlite3_stmt **st, bt_err *e)
{
	return ro ? bt_db_prepare_read(s->db, sql, st, e) : bt_db_prepare(s->db, sql, st, e);
}

static char *blob_path(content_store *s, const char *digest)
{
	return bt_xasprintf("%s/%s", s->blobs, digest + 7);
}

/* --- records ---------------------------------------------------------------- */

/* Is digest linked in ns? Caller holds the db lock. 1 yes, 0 no, -1 error. */
static int linked(content_store *s, bool ro, const char *ns, const char *digest, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;

	if (prep(s, ro, "SELECT 1 FROM blobs WHERE ns = ?1 AND digest = ?2", &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, ns, e) < 0 || bt_db_bind_text(s->db, st, 2, digest, e) < 0)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return bt_db_error(s->db, e, "look up blob");
}

static int load_labels(content_store *s, bool ro, const char *table, const char *col, const char *ns, const char *id,
		       bt_labels *out, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *sql = bt_xasprintf("SELECT key, value FROM %s WHERE ns = ?1 AND %s = ?2 ORDER BY key",
						table, col);
	int rc;

	if (prep(s, ro, sql, &st, e) < 0 || bt_db_bind_text(s->db, st, 1, ns, e) < 0 ||
	    bt_db_bind_text(s->db, st, 2, id, e) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		bt_labels_set(out, bt_db_col_text(st, 0), bt_db_col_text(st, 1));
	if (rc != SQLITE_DONE)
		return bt_db_error(s->db, e, "read labels");
	return 0;
}

static int store_labels(content_store *s, const char *table, const char *col, const char *ns, const char *id,
			const bt_labels *l, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *del = NULL;
	_cleanup_stmt_ sqlite3_stmt *ins = NULL;
	_cleanup_free_ char *dsql = bt_xasprintf("DELETE FROM %s WHERE ns = ?1 AND %s = ?2", table, col);
	_cleanup_free_ char *isql = bt_xasprintf("INSERT INTO %s (ns, %s, key, value) VALUES (?1, ?2, ?3, ?4)", table,
						 col);

	if (bt_db_prepare(s->db, dsql, &del, e) < 0 || bt_db_bind_text(s->db, del, 1, ns, e) < 0 ||
	    bt_db_bind_text(s->db, del, 2, id, e) < 0 || bt_db_step_done(s->db, del, e) < 0)
		return -1;
	if (!l || l->n == 0)
		return 0;
	if (bt_db_prepare(s->db, isql, &ins, e) < 0)
		return -1;
	for (size_t i = 0; i < l->n; i++) {
		sqlite3_reset(ins);
		if (bt_db_bind_text(s->db, ins, 1, ns, e) < 0 || bt_db_bind_text(s->db, ins, 2, id, e) < 0 ||
		    bt_db_bind_text(s->db, ins, 3, l->keys[i], e) < 0 ||
		    bt_db_bind_text(s->db, ins, 4, l->vals[i], e) < 0 || bt_db_step_done(s->db, ins, e) < 0)
			return -1;
	}
	return 0;
}

static int read_info(content_store *s, bool ro, const char *ns, const char *digest, content_info *out, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc;

	if (prep(s, ro, "SELECT size, created, updated FROM blobs WHERE ns = ?1 AND digest = ?2", &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, ns, e) < 0 || bt_db_bind_text(s->db, st, 2, digest, e) < 0)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return bt_err_set(e, BT_NOT_FOUND, "content %s: not found", digest);
	if (rc != SQLITE_ROW)
		return bt_db_error(s->db, e, "read blob");
	snprintf(out->digest, sizeof(out->digest), "%s", digest);
	out->size = sqlite3_column_int64(st, 0);
	out->created = sqlite3_column_int64(st, 1);
	out->updated = sqlite3_column_int64(st, 2);
	return load_labels(s, ro, "blob_labels", "digest", ns, digest, &out->labels, e);
}

int content_info_get(content_store *s, const char *ns, const char *digest, content_info *out, bt_err *e)
{
	int rc;

	if (bt_digest_validate(digest, NULL, e) < 0)
		return -1;
	rc = read_info(s, true, ns, digest, out, e);
	return rc;
}

int content_update(content_store *s, const char *ns, const char *digest, const bt_labels *labels,
		   char *const *mask, size_t nmask, content_info *out, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;

	if (bt_digest_validate(digest, NULL, e) < 0)
		return -1;
	if (bt_labels_validate(labels, true, e) < 0)
		return -1;
	bt_db_lock(s->db);
	if (bt_db_begin(s->db, e) < 0)
		goto fail;
	if (read_info(s, false, ns, digest, out, e) < 0)
		goto rollback;
	if (bt_labels_update(&out->labels, labels, mask, nmask, NULL, e) < 0 ||
	    bt_labels_validate(&out->labels, true, e) < 0)
		goto rollback;
	out->updated = bt_now_ns();
	if (store_labels(s, "blob_labels", "digest", ns, digest, &out->labels, e) < 0 ||
	    bt_db_prepare(s->db, "UPDATE blobs SET updated = ?3 WHERE ns = ?1 AND digest = ?2", &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, ns, e) < 0 || bt_db_bind_text(s->db, st, 2, digest, e) < 0 ||
	    bt_db_bind_int64(s->db, st, 3, out->updated, e) < 0 || bt_db_step_done(s->db, st, e) < 0)
		goto rollback;
	if (bt_db_commit(s->db, e) < 0)
		goto fail;
	bt_db_unlock(s->db);
	return 0;
rollback:
	bt_db_rollback(s->db);
fail:
	bt_db_unlock(s->db);
	return -1;
}

typedef struct info_view {
	const content_info *info;
	char size[24];
} info_view;

static const char *info_field(void *obj, const char *const *path, size_t n)
{
	info_view *v = obj;
	if (n == 1 && strcmp(path[0], "digest") == 0)
		return v->info->digest;
	if (n == 1 && strcmp(path[0], "size") == 0) {
		snprintf(v->size, sizeof(v->size), "%lld", (long long)v->info->size);
		return v->size;
	}
	if (n == 2 && strcmp(path[0], "labels") == 0)
		return bt_labels_get(&v->info->labels, path[1]);
	return NULL;
}

int content_list(content_store *s, const char *ns, const bt_filter *f,
		 int (*cb)(const content_info *i, void *arg), void *arg, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	content_info *items = NULL;
	size_t n = 0, cap = 0;
	int rc, ret = -1;

	/* Collect under the lock, call back without it: a slow reader of the
	 * list must not hold up writers. */
	if (prep(s, true, "SELECT digest, size, created, updated FROM blobs WHERE ns = ?1 ORDER BY digest", &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, ns, e) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			items = bt_xrealloc(items, cap * sizeof(*items));
		}
		content_info *i = &items[n++];
		memset(i, 0, sizeof(*i));
		snprintf(i->digest, sizeof(i->digest), "%s", bt_db_col_text(st, 0));
		i->size = sqlite3_column_int64(st, 1);
		i->created = sqlite3_column_int64(st, 2);
		i->updated = sqlite3_column_int64(st, 3);
		if (load_labels(s, true, "blob_labels", "digest", ns, i->digest, &i->labels, e) < 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		bt_err_set(e, BT_INTERNAL, "list blobs: sqlite: %s", sqlite3_errmsg(sqlite3_db_handle(st)));
	if (rc == SQLITE_DONE) {
		ret = 0;
		for (size_t j = 0; j < n; j++) {
			info_view v = { .info = &items[j] };
			if (f && !bt_filter_match(f, info_field, &v))
				continue;
			if (cb(&items[j], arg) < 0) {
				ret = bt_err_set(e, BT_CANCELLED, "list stopped");
				break;
			}
		}
	}
	for (size_t j = 0; j < n; j++)
		content_info_clear(&items[j]);
	free(items);
	return ret;
}

/* Is digest held by any namespace or by a commit under way? Caller holds the db lock. */
static int referenced(content_store *s, const char *digest, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;

	if (bt_db_prepare(s->db,
			  "SELECT 1 FROM blobs WHERE digest = ?1 UNION ALL "
			  "SELECT 1 FROM ingests WHERE committing = ?1 LIMIT 1",
			  &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, digest, e) < 0)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return bt_db_error(s->db, e, "look up references");
}

int content_delete(content_store *s, const char *ns, const char *digest, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc = -1, refs;

	if (bt_digest_validate(digest, NULL, e) < 0)
		return -1;
	pthread_mutex_lock(&s->blob_mu);
	bt_db_lock(s->db);
	if (bt_db_prepare(s->db, "DELETE FROM blobs WHERE ns = ?1 AND digest = ?2", &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, ns, e) < 0 || bt_db_bind_text(s->db, st, 2, digest, e) < 0 ||
	    bt_db_step_done(s->db, st, e) < 0)
		goto out;
	if (sqlite3_changes(bt_db_handle(s->db)) == 0) {
		bt_err_set(e, BT_NOT_FOUND, "content %s: not found", digest);
		goto out;
	}
	refs = referenced(s, digest, e);
	if (refs < 0)
		goto out;
	if (refs == 0) {
		/* No namespace holds the bytes any more. A crash before this
		 * unlink leaves an orphan that start-up removes. */
		_cleanup_free_ char *p = blob_path(s, digest);
		if (unlink(p) < 0 && errno != ENOENT)
			bt_log_warn("remove %s: %s (start-up will retry)", p, strerror(errno));
	}
	rc = 0;
out:
	bt_db_unlock(s->db);
	pthread_mutex_unlock(&s->blob_mu);
	return rc;
}

int content_open(content_store *s, const char *ns, const char *digest, int *fd, int64_t *size, bt_err *e)
{
	_cleanup_free_ char *p = NULL;
	struct stat st;
	int rc;

	if (bt_digest_validate(digest, NULL, e) < 0)
		return -1;
	rc = linked(s, true, ns, digest, e);
	if (rc < 0)
		return -1;
	if (rc == 0)
		return bt_err_set(e, BT_NOT_FOUND, "content %s: not found", digest);
	p = blob_path(s, digest);
	*fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (*fd < 0)
		return bt_err_errno(e, errno, "content %s: open", digest);
	if (fstat(*fd, &st) < 0) {
		int err = errno;
		close(*fd);
		*fd = -1;
		return bt_err_errno(e, err, "content %s: stat", digest);
	}
	*size = st.st_size;
	return 0;
}

/* --- ingests ------------------------------------------------------------------ */

static char *ingest_id(const char *ns, const char *ref)
{
	_cleanup_free_ char *k = bt_xasprintf("%s\n%s", ns, ref);
	char d[BT_DIGEST_STR_LEN];
	bt_digest_buf(k, strlen(k), d);
	return bt_xstrdup(d + 7);
}

/* Waits for the ingest's background fdatasync, before its fd closes. */
static void ingest_sync_wait(ingest *g)
{
	if (g->sync_job)
		bt_job_wait(g->sync_job);
	g->sync_job = NULL;
}

static void ingest_sync_run(void *arg)
{
	(void)fdatasync(*(int *)arg);
}

static void ingest_free(ingest *g)
{
	if (!g)
		return;
	ingest_sync_wait(g);
	if (g->fd >= 0)
		close(g->fd);
	bt_digest_free(&g->d);
	pthread_mutex_destroy(&g->mu);
	free(g->key);
	free(g->ns);
	free(g->ref);
	free(g->dir);
	free(g->writer);
	free(g);
}

static ingest *ingest_new(content_store *s, const char *ns, const char *ref, const char *id)
{
	ingest *g = bt_xzalloc(sizeof(*g));
	g->key = bt_xasprintf("%s\n%s", ns, ref);
	g->ns = bt_xstrdup(ns);
	g->ref = bt_xstrdup(ref);
	g->dir = bt_xasprintf("%s/%s", s->ingests_dir, id);
	g->fd = -1;
	pthread_mutex_init(&g->mu, NULL);
	return g;
}

/* Reads the ingest's record into g. 1 found, 0 none, -1 error. Caller holds the db lock. */
static int ingest_row(content_store *s, ingest *g, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc;

	if (bt_db_prepare(s->db, "SELECT expected, total, started FROM ingests WHERE ns = ?1 AND ref = ?2", &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, g->ns, e) < 0 || bt_db_bind_text(s->db, st, 2, g->ref, e) < 0)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return bt_db_error(s->db, e, "read ingest");
	snprintf(g->expected, sizeof(g->expected), "%s", bt_db_col_text(st, 0));
	g->total = sqlite3_column_int64(st, 1);
	g->started = sqlite3_column_int64(st, 2);
	return 1;
}

static int count_ingests(content_store *s, const char *ns, int64_t *n, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;

	if (bt_db_prepare(s->db, "SELECT count(*) FROM ingests WHERE ns = ?1", &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, ns, e) < 0)
		return -1;
	if (sqlite3_step(st) != SQLITE_ROW)
		return bt_db_error(s->db, e, "count ingests");
	*n = sqlite3_column_int64(st, 0);
	return 0;
}

/* Creates the ingest's directory, empty data file and record. Caller holds the db lock. */
static int ingest_create(content_store *s, ingest *g, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *data = bt_xasprintf("%s/data", g->dir);
	int64_t n = 0;
	int fd;

	if (count_ingests(s, g->ns, &n, e) < 0)
		return -1;
	if (n >= s->o.max_ingests)
		return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "namespace %s has %lld ingests in progress (limit %lld)",
				  g->ns, (long long)n, (long long)s->o.max_ingests);
	/* Directory first, record second: a crash in between leaves a
	 * directory no record owns, which start-up removes. */
	if (mkdir(g->dir, 0700) < 0 && errno != EEXIST)
		return bt_err_errno(e, errno, "create ingest %s", g->ref);
	fd = open(data, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return bt_err_errno(e, errno, "create ingest %s", g->ref);
	close(fd);
	g->started = bt_now_ns();
	if (bt_db_prepare(s->db, "INSERT INTO ingests (ns, ref, dir, expected, total, started) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			  &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, g->ns, e) < 0 || bt_db_bind_text(s->db, st, 2, g->ref, e) < 0 ||
	    bt_db_bind_text(s->db, st, 3, strrchr(g->dir, '/') + 1, e) < 0 ||
	    bt_db_bind_text(s->db, st, 4, g->expected, e) < 0 || bt_db_bind_int64(s->db, st, 5, g->total, e) < 0 ||
	    bt_db_bind_int64(s->db, st, 6, g->started, e) < 0 || bt_db_step_done(s->db, st, e) < 0)
		return -1;
	return 0;
}

/* Finds the live ingest for (ns, ref), loading its record, or creating it
 * when create is set. The caller releases it with ingest_put. */
static int ingest_get(content_store *s, const char *ns, const char *ref, bool create, ingest **out, bt_err *e)
{
	_cleanup_free_ char *key = bt_xasprintf("%s\n%s", ns, ref);
	ingest *g;
	int rc;

	pthread_mutex_lock(&s->mu);
	g = bt_map_sget(s->live, key);
	if (g) {
		g->users++;
		pthread_mutex_unlock(&s->mu);
		*out = g;
		return 0;
	}
	_cleanup_free_ char *id = ingest_id(ns, ref);
	g = ingest_new(s, ns, ref, id);
	bt_db_lock(s->db);
	rc = ingest_row(s, g, e);
	if (rc == 0) {
		if (create)
			rc = ingest_create(s, g, e) < 0 ? -1 : 1;
		else
			rc = bt_err_set(e, BT_NOT_FOUND, "ingest %s: not found", ref);
	}
	bt_db_unlock(s->db);
	if (rc < 0) {
		pthread_mutex_unlock(&s->mu);
		ingest_free(g);
		return -1;
	}
	g->users = 1;
	bt_map_sput(s->live, g->key, g);
	pthread_mutex_unlock(&s->mu);
	*out = g;
	return 0;
}

static void ingest_put(content_store *s, ingest *g)
{
	pthread_mutex_lock(&s->mu);
	if (--g->users == 0 && g->gone) {
		if (bt_map_sget(s->live, g->key) == g)
			bt_map_sdel(s->live, g->key);
		ingest_free(g);
	}
	pthread_mutex_unlock(&s->mu);
}

/* Marks g as finished so no one finds it again. Caller holds g->mu. */
static void ingest_retire(content_store *s, ingest *g)
{
	pthread_mutex_lock(&s->mu);
	g->gone = true;
	if (bt_map_sget(s->live, g->key) == g)
		bt_map_sdel(s->live, g->key);
	pthread_mutex_unlock(&s->mu);
}

/* Opens the data file and rebuilds the digest of what it holds (after a restart). Caller holds g->mu. */
static int ingest_load(ingest *g, bt_err *e)
{
	_cleanup_free_ char *data = NULL;
	struct stat st;

	if (g->loaded)
		return 0;
	data = bt_xasprintf("%s/data", g->dir);
	g->fd = open(data, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (g->fd < 0)
		return bt_err_errno(e, errno, "ingest %s: open data", g->ref);
	if (fstat(g->fd, &st) < 0)
		return bt_err_errno(e, errno, "ingest %s: stat data", g->ref);
	g->d = bt_digest_new();
	if (bt_digest_fd(g->d, g->fd, st.st_size, e) != st.st_size) {
		close(g->fd);
		g->fd = -1;
		bt_digest_free(&g->d);
		return bt_err_wrap(e, "ingest %s: resume", g->ref);
	}
	g->offset = st.st_size;
	g->flushed = st.st_size;
	g->loaded = true;
	return 0;
}

static int64_t data_mtime(ingest *g)
{
	_cleanup_free_ char *data = bt_xasprintf("%s/data", g->dir);
	struct stat st;
	if (stat(data, &st) < 0)
		return g->started;
	return (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

static int64_t data_size(ingest *g)
{
	_cleanup_free_ char *data = NULL;
	struct stat st;
	if (g->loaded)
		return g->offset;
	data = bt_xasprintf("%s/data", g->dir);
	return stat(data, &st) < 0 ? 0 : st.st_size;
}

static void fill_status(ingest *g, content_status *out)
{
	out->ref = bt_xstrdup(g->ref);
	out->offset = data_size(g);
	out->total = g->total;
	snprintf(out->expected, sizeof(out->expected), "%s", g->expected);
	out->started = g->started;
	out->updated = data_mtime(g);
}

int content_status_get(content_store *s, const char *ns, const char *ref, content_status *out, bt_err *e)
{
	ingest *g;

	if (bt_ref_validate(ref, strlen(ref), e) < 0)
		return -1;
	if (ingest_get(s, ns, ref, false, &g, e) < 0)
		return -1;
	pthread_mutex_lock(&g->mu);
	fill_status(g, out);
	pthread_mutex_unlock(&g->mu);
	ingest_put(s, g);
	return 0;
}

typedef struct status_view {
	const content_status *st;
} status_view;

static const char *status_field(void *obj, const char *const *path, size_t n)
{
	status_view *v = obj;
	if (n == 1 && strcmp(path[0], "ref") == 0)
		return v->st->ref;
	if (n == 1 && strcmp(path[0], "expected") == 0)
		return v->st->expected[0] ? v->st->expected : NULL;
	return NULL;
}

int content_list_statuses(content_store *s, const char *ns, const bt_filter *f,
			  int (*cb)(const content_status *st, void *arg), void *arg, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_strv_ char **refs = NULL;
	int rc;

	bt_db_lock(s->db);
	if (bt_db_prepare(s->db, "SELECT ref FROM ingests WHERE ns = ?1 AND committing = '' ORDER BY ref", &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, ns, e) < 0) {
		bt_db_unlock(s->db);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		bt_strv_push(&refs, bt_db_col_text(st, 0));
	bt_db_unlock(s->db);
	if (rc != SQLITE_DONE)
		return bt_db_error(s->db, e, "list ingests");
	for (size_t i = 0; refs && refs[i]; i++) {
		content_status cs = { 0 };
		bt_err ignore;
		if (content_status_get(s, ns, refs[i], &cs, &ignore) < 0)
			continue; /* committed or aborted meanwhile */
		status_view v = { &cs };
		if (!f || bt_filter_match(f, status_field, &v)) {
			if (cb(&cs, arg) < 0) {
				content_status_clear(&cs);
				return bt_err_set(e, BT_CANCELLED, "list stopped");
			}
		}
		content_status_clear(&cs);
	}
	return 0;
}

/* Removes the ingest's record and files. Caller holds g->mu. */
static int ingest_remove(content_store *s, ingest *g, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	bt_err ignore;

	bt_db_lock(s->db);
	if (bt_db_prepare(s->db, "DELETE FROM ingests WHERE ns = ?1 AND ref = ?2", &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, g->ns, e) < 0 || bt_db_bind_text(s->db, st, 2, g->ref, e) < 0 ||
	    bt_db_step_done(s->db, st, e) < 0) {
		bt_db_unlock(s->db);
		return -1;
	}
	bt_db_unlock(s->db);
	ingest_retire(s, g);
	if (bt_rm_rf(g->dir, &ignore) < 0)
		bt_log_warn("remove %s: %s (start-up will retry)", g->dir, ignore.msg);
	return 0;
}

int content_abort(content_store *s, const char *ns, const char *ref, bt_err *e)
{
	ingest *g;
	int rc;

	if (bt_ref_validate(ref, strlen(ref), e) < 0)
		return -1;
	if (ingest_get(s, ns, ref, false, &g, e) < 0)
		return -1;
	pthread_mutex_lock(&g->mu);
	rc = g->gone ? bt_err_set(e, BT_NOT_FOUND, "ingest %s: not found", ref) : ingest_remove(s, g, e);
	pthread_mutex_unlock(&g->mu);
	ingest_put(s, g);
	return rc;
}

static int save_expectations(content_store *s, ingest *g, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc = 0;

	bt_db_lock(s->db);
	if (bt_db_prepare(s->db, "UPDATE ingests SET expected = ?3, total = ?4 WHERE ns = ?1 AND ref = ?2", &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, g->ns, e) < 0 || bt_db_bind_text(s->db, st, 2, g->ref, e) < 0 ||
	    bt_db_bind_text(s->db, st, 3, g->expected, e) < 0 || bt_db_bind_int64(s->db, st, 4, g->total, e) < 0 ||
	    bt_db_step_done(s->db, st, e) < 0)
		rc = -1;
	bt_db_unlock(s->db);
	return rc;
}

/* Links the committed digest into the ingest's namespace and drops the
 * ingest record, in one transaction. Caller holds the db lock. */
static int link_commit(content_store *s, const char *ns, const char *ref, const char *digest, int64_t size,
		       const bt_labels *labels, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *ins = NULL;
	_cleanup_stmt_ sqlite3_stmt *del = NULL;
	int64_t now = bt_now_ns();
	int exists;

	if (bt_db_begin(s->db, e) < 0)
		return -1;
	exists = linked(s, false, ns, digest, e);
	if (exists < 0)
		goto rollback;
	if (!exists) {
		if (bt_db_prepare(s->db, "INSERT INTO blobs (ns, digest, size, created, updated) VALUES (?1, ?2, ?3, ?4, ?4)",
				  &ins, e) < 0 ||
		    bt_db_bind_text(s->db, ins, 1, ns, e) < 0 || bt_db_bind_text(s->db, ins, 2, digest, e) < 0 ||
		    bt_db_bind_int64(s->db, ins, 3, size, e) < 0 || bt_db_bind_int64(s->db, ins, 4, now, e) < 0 ||
		    bt_db_step_done(s->db, ins, e) < 0 ||
		    store_labels(s, "blob_labels", "digest", ns, digest, labels, e) < 0)
			goto rollback;
	}
	if (bt_db_prepare(s->db, "DELETE FROM ingests WHERE ns = ?1 AND ref = ?2", &del, e) < 0 ||
	    bt_db_bind_text(s->db, del, 1, ns, e) < 0 || bt_db_bind_text(s->db, del, 2, ref, e) < 0 ||
	    bt_db_step_done(s->db, del, e) < 0)
		goto rollback;
	if (bt_db_commit(s->db, e) < 0)
		return -1;
	return exists ? 1 : 0;
rollback:
	bt_db_rollback(s->db);
	return -1;
}

/* Moves verified bytes into blobs/ (or drops them when the blob is there
 * already). Caller holds blob_mu. */
static int place_blob(content_store *s, const char *data, const char *digest, bt_err *e)
{
	_cleanup_free_ char *dst = blob_path(s, digest);

	if (access(dst, F_OK) == 0) {
		/* The same bytes are stored already: keep one copy. */
		if (unlink(data) < 0 && errno != ENOENT)
			return bt_err_errno(e, errno, "remove %s", data);
		return 0;
	}
	if (rename(data, dst) < 0)
		return bt_err_errno(e, errno, "move %s into the store", digest);
	return bt_fsync_dir(s->blobs, e);
}

static int commit(content_store *s, ingest *g, const content_write_req *w, content_write_res *out, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *data = bt_xasprintf("%s/data", g->dir);
	char digest[BT_DIGEST_STR_LEN];
	int rc;

	if (g->total > 0 && g->offset != g->total)
		return bt_err_set(e, BT_FAILED_PRECONDITION, "commit %s: unexpected size %lld, expected %lld", g->ref,
				  (long long)g->offset, (long long)g->total);
	bt_digest_peek(g->d, digest);
	if (g->expected[0] && strcmp(g->expected, digest) != 0)
		return bt_err_set(e, BT_FAILED_PRECONDITION, "commit %s: unexpected digest %s, expected %s", g->ref,
				  digest, g->expected);
	if (w->labels && bt_labels_validate(w->labels, true, e) < 0)
		return -1;
	ingest_sync_wait(g);
	if (fsync(g->fd) < 0)
		return bt_err_errno(e, errno, "commit %s: fsync", g->ref);

	/* 1: record what is being committed, with its labels. */
	bt_db_lock(s->db);
	if (bt_db_begin(s->db, e) < 0)
		goto unlock;
	if (bt_db_prepare(s->db, "UPDATE ingests SET committing = ?3 WHERE ns = ?1 AND ref = ?2", &st, e) < 0 ||
	    bt_db_bind_text(s->db, st, 1, g->ns, e) < 0 || bt_db_bind_text(s->db, st, 2, g->ref, e) < 0 ||
	    bt_db_bind_text(s->db, st, 3, digest, e) < 0 || bt_db_step_done(s->db, st, e) < 0 ||
	    store_labels(s, "ingest_labels", "ref", g->ns, g->ref, w->labels, e) < 0) {
		bt_db_rollback(s->db);
		goto unlock;
	}
	if (bt_db_commit(s->db, e) < 0)
		goto unlock;
	bt_db_unlock(s->db);

	/* 2: the bytes into blobs/; 3: link and drop the ingest. */
	pthread_mutex_lock(&s->blob_mu);
	rc = place_blob(s, data, digest, e);
	if (rc == 0) {
		bt_db_lock(s->db);
		rc = link_commit(s, g->ns, g->ref, digest, g->offset, w->labels, e);
		bt_db_unlock(s->db);
	}
	pthread_mutex_unlock(&s->blob_mu);
	if (rc < 0)
		return bt_err_wrap(e, "commit %s", g->ref); /* start-up finishes it */
	ingest_retire(s, g);
	bt_err ignore;
	if (bt_rm_rf(g->dir, &ignore) < 0)
		bt_log_warn("remove %s: %s", g->dir, ignore.msg);
	snprintf(out->digest, sizeof(out->digest), "%s", digest);
	out->existed = rc == 1;
	return 0;
unlock:
	bt_db_unlock(s->db);
	return bt_err_wrap(e, "commit %s", g->ref);
}

static int check_writer(content_store *s, ingest *g, const char *writer, bt_err *e)
{
	int64_t now = bt_mono_ms();

	if (!writer || !*writer)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "ingest %s: a writer token is required to write", g->ref);
	if (g->writer && strcmp(g->writer, writer) != 0 && now - g->writer_seen < s->o.lock_timeout_ms)
		return bt_err_set(e, BT_UNAVAILABLE,
				  "ref %s locked: another writer holds it (idle %llds; the hold lapses after %llds)",
				  g->ref, (long long)(now - g->writer_seen) / 1000,
				  (long long)s->o.lock_timeout_ms / 1000);
	if (!g->writer || strcmp(g->writer, writer) != 0) {
		free(g->writer);
		g->writer = bt_xstrdup(writer);
	}
	g->writer_seen = now;
	return 0;
}

typedef struct chunk_write {
	int fd;
	const void *data;
	size_t len;
	off_t off;
	int rc;
	int err;
} chunk_write;

static void chunk_write_run(void *arg)
{
	chunk_write *cw = arg;
	cw->rc = bt_pwrite_all(cw->fd, cw->data, cw->len, cw->off);
	cw->err = errno;
}

static int write_locked(content_store *s, ingest *g, const content_write_req *w, content_write_res *out, bt_err *e)
{
	if (g->gone)
		return bt_err_set(e, BT_NOT_FOUND, "ingest %s: committed or aborted meanwhile", w->ref);
	if (ingest_load(g, e) < 0)
		return -1;
	if (w->expected && w->expected[0] && strcmp(g->expected, w->expected) != 0) {
		if (g->expected[0])
			return bt_err_set(e, BT_INVALID_ARGUMENT, "ref %s is ingesting %s, not %s", w->ref, g->expected,
					  w->expected);
		snprintf(g->expected, sizeof(g->expected), "%s", w->expected);
		if (save_expectations(s, g, e) < 0)
			return -1;
	}
	if (w->total > 0 && w->total != g->total) {
		if (g->offset > w->total)
			return bt_err_set(e, BT_INVALID_ARGUMENT, "ref %s: total %lld is below the %lld bytes written",
					  w->ref, (long long)w->total, (long long)g->offset);
		g->total = w->total;
		if (save_expectations(s, g, e) < 0)
			return -1;
	}
	if (w->action != CONTENT_STAT) {
		if (check_writer(s, g, w->writer, e) < 0)
			return -1;
		if (w->len > 0 || w->offset != 0) {
			if (w->offset == 0 && g->offset > 0 && w->len > 0) {
				/* offset 0 on a non-empty ingest starts it over */
				if (ftruncate(g->fd, 0) < 0)
					return bt_err_errno(e, errno, "ref %s: restart", w->ref);
				bt_digest_reset(g->d);
				g->offset = 0;
				g->flushed = 0;
			}
			if (w->offset != g->offset)
				return bt_err_set(e, BT_FAILED_PRECONDITION,
						  "ref %s: write at offset %lld, but the ingest is at %lld (STAT to resume)",
						  w->ref, (long long)w->offset, (long long)g->offset);
			if (g->total > 0 && g->offset + (int64_t)w->len > g->total)
				return bt_err_set(e, BT_INVALID_ARGUMENT,
						  "ref %s: %zu bytes at %lld run past the expected size %lld", w->ref,
						  w->len, (long long)g->offset, (long long)g->total);
			if (w->len > 0) {
				/* write on a helper while hashing here: the two take
				 * about as long, and this machine has another core */
				chunk_write cw = { g->fd, w->data, w->len, (off_t)g->offset, 0, 0 };
				bt_job *job = bt_job_start(s->helpers, chunk_write_run, &cw);
				bt_digest_update(g->d, w->data, w->len);
				bt_job_wait(job);
				if (cw.rc < 0) {
					int err = cw.err;
					/* cut the file back to what was there, and forget the
					 * hash (it includes this chunk): the next request
					 * rebuilds it from the file */
					if (ftruncate(g->fd, g->offset) < 0)
						bt_log_warn("ref %s: truncate after failed write: %s", w->ref,
							    strerror(errno));
					ingest_sync_wait(g);
					close(g->fd);
					g->fd = -1;
					bt_digest_free(&g->d);
					g->loaded = false;
					return bt_err_errno(e, err, "ref %s: write", w->ref);
				}
				g->offset += (int64_t)w->len;
				/* Start writeback as data arrives, so the fsync at commit
				 * only waits for the tail instead of the whole blob. */
				if (g->offset - g->flushed >= FLUSH_EVERY) {
					sync_file_range(g->fd, g->flushed, g->offset - g->flushed, SYNC_FILE_RANGE_WRITE);
					g->flushed = g->offset;
					/* And make it durable in the background, one sync at a
					 * time: the disk's cache flush costs in proportion to
					 * what it holds (≈ 130 ms for 200 MiB on the machine of
					 * docs/benchmarks.md), so the fsync at commit would
					 * otherwise pay for the whole blob after the last
					 * chunk instead of for the tail. */
					if (!g->sync_job || bt_job_done(g->sync_job)) {
						ingest_sync_wait(g);
						g->sync_fd = g->fd;
						g->sync_job = bt_job_start(s->syncers, ingest_sync_run, &g->sync_fd);
					}
				}
			}
		}
	}
	out->started = g->started;
	out->updated = data_mtime(g);
	out->offset = g->offset;
	out->total = g->total;
	if (w->action == CONTENT_COMMIT && commit(s, g, w, out, e) < 0) {
		/* A failed commit ends the writer's session: let the next one in. */
		free(g->writer);
		g->writer = NULL;
		return -1;
	}
	return 0;
}

int content_write(content_store *s, const char *ns, const content_write_req *w, content_write_res *out, bt_err *e)
{
	ingest *g;
	int rc;

	if (!w->ref || bt_ref_validate(w->ref, strlen(w->ref), e) < 0)
		return -1;
	if (w->expected && w->expected[0] && bt_digest_validate(w->expected, NULL, e) < 0)
		return -1;
	if (w->total < 0 || w->offset < 0)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "ref %s: negative total or offset", w->ref);
	if (w->expected && w->expected[0]) {
		rc = linked(s, true, ns, w->expected, e);
		if (rc < 0)
			return -1;
		if (rc == 1)
			return bt_err_set(e, BT_ALREADY_EXISTS, "content %s: already exists", w->expected);
	}
	if (ingest_get(s, ns, w->ref, true, &g, e) < 0)
		return -1;
	pthread_mutex_lock(&g->mu);
	rc = write_locked(s, g, w, out, e);
	pthread_mutex_unlock(&g->mu);
	ingest_put(s, g);
	return rc;
}

/* --- start-up ------------------------------------------------------------------ */

/* Finishes or undoes commits a crash interrupted. */
static int recover_commits(content_store *s, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc;
	struct pending {
		char *ns, *ref, *dir, *digest;
	} *p = NULL;
	size_t n = 0;

	bt_db_lock(s->db);
	if (bt_db_prepare(s->db, "SELECT ns, ref, dir, committing FROM ingests WHERE committing != ''", &st, e) < 0) {
		bt_db_unlock(s->db);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		p = bt_xrealloc(p, (n + 1) * sizeof(*p));
		p[n].ns = bt_xstrdup(bt_db_col_text(st, 0));
		p[n].ref = bt_xstrdup(bt_db_col_text(st, 1));
		p[n].dir = bt_xasprintf("%s/%s", s->ingests_dir, bt_db_col_text(st, 2));
		p[n].digest = bt_xstrdup(bt_db_col_text(st, 3));
		n++;
	}
	bt_db_unlock(s->db);
	rc = rc == SQLITE_DONE ? 0 : bt_db_error(s->db, e, "recover commits");
	for (size_t i = 0; i < n && rc == 0; i++) {
		_cleanup_free_ char *blob = blob_path(s, p[i].digest);
		_cleanup_free_ char *data = bt_xasprintf("%s/data", p[i].dir);
		bt_labels labels = { 0 };
		bool have_blob = access(blob, F_OK) == 0;

		if (!have_blob) {
			/* The rename did not happen: verify the bytes again before moving them. */
			_cleanup_close_ int fd = open(data, O_RDONLY | O_CLOEXEC);
			char d[BT_DIGEST_STR_LEN] = "";
			if (fd >= 0) {
				_cleanup_digest_ bt_digest *dg = bt_digest_new();
				if (bt_digest_fd(dg, fd, -1, e) >= 0)
					bt_digest_final(dg, d);
			}
			if (strcmp(d, p[i].digest) != 0 || place_blob(s, data, p[i].digest, e) < 0) {
				bt_log_warn("recover: ingest %s in %s: bytes do not match %s; back to in progress",
					    p[i].ref, p[i].ns, p[i].digest);
				_cleanup_stmt_ sqlite3_stmt *u = NULL;
				bt_db_lock(s->db);
				if (bt_db_prepare(s->db, "UPDATE ingests SET committing = '' WHERE ns = ?1 AND ref = ?2",
						  &u, e) < 0 ||
				    bt_db_bind_text(s->db, u, 1, p[i].ns, e) < 0 ||
				    bt_db_bind_text(s->db, u, 2, p[i].ref, e) < 0 || bt_db_step_done(s->db, u, e) < 0)
					rc = -1;
				bt_db_unlock(s->db);
				continue;
			}
		}
		struct stat bst;
		if (stat(blob, &bst) < 0) {
			rc = bt_err_errno(e, errno, "recover: stat %s", blob);
			break;
		}
		bt_db_lock(s->db);
		if (load_labels(s, false, "ingest_labels", "ref", p[i].ns, p[i].ref, &labels, e) < 0 ||
		    link_commit(s, p[i].ns, p[i].ref, p[i].digest, bst.st_size, &labels, e) < 0)
			rc = -1;
		bt_db_unlock(s->db);
		bt_labels_clear(&labels);
		if (rc == 0) {
			bt_log_info("recover: finished the commit of %s (ingest %s in %s)", p[i].digest, p[i].ref,
				    p[i].ns);
			bt_err ignore;
			bt_rm_rf(p[i].dir, &ignore);
		}
	}
	for (size_t i = 0; i < n; i++) {
		free(p[i].ns);
		free(p[i].ref);
		free(p[i].dir);
		free(p[i].digest);
	}
	free(p);
	return rc;
}

/* Removes ingest directories no record owns, records whose directory is gone,
 * and blob files no namespace or commit references. */
static int sweep(content_store *s, bt_err *e)
{
	_cleanup_dir_ DIR *d = NULL;
	struct dirent *de;
	bt_map *dirs = bt_map_new();
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc;

	bt_db_lock(s->db);
	if (bt_db_prepare(s->db, "SELECT dir FROM ingests", &st, e) < 0) {
		bt_db_unlock(s->db);
		bt_map_free(&dirs);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		bt_map_sput(dirs, bt_db_col_text(st, 0), (void *)1);
	bt_db_unlock(s->db);

	d = opendir(s->ingests_dir);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (bt_map_sget(dirs, de->d_name)) {
			bt_map_sdel(dirs, de->d_name);
			continue;
		}
		_cleanup_free_ char *p = bt_xasprintf("%s/%s", s->ingests_dir, de->d_name);
		bt_err ignore;
		bt_log_info("sweep: removing ingest directory %s (no record)", p);
		bt_rm_rf(p, &ignore);
	}
	/* records left in the map have no directory: their bytes are gone */
	bt_map_iter it;
	const void *k;
	size_t klen;
	bt_map_iter_init(&it, dirs);
	while (bt_map_iter_next(&it, &k, &klen, NULL)) {
		_cleanup_free_ char *dir = bt_xstrndup(k, klen);
		_cleanup_stmt_ sqlite3_stmt *del = NULL;
		bt_log_warn("sweep: ingest record %s has no data; dropping it", dir);
		bt_db_lock(s->db);
		if (bt_db_prepare(s->db, "DELETE FROM ingests WHERE dir = ?1 AND committing = ''", &del, e) == 0 &&
		    bt_db_bind_text(s->db, del, 1, dir, e) == 0)
			bt_db_step_done(s->db, del, e);
		bt_db_unlock(s->db);
	}
	bt_map_free(&dirs);

	_cleanup_dir_ DIR *b = opendir(s->blobs);
	while (b && (de = readdir(b))) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_free_ char *digest = bt_xasprintf("sha256:%s", de->d_name);
		_cleanup_free_ char *p = bt_xasprintf("%s/%s", s->blobs, de->d_name);
		if (bt_digest_validate(digest, NULL, e) < 0) {
			bt_log_warn("sweep: removing stray file %s", p);
			unlink(p);
			continue;
		}
		bt_db_lock(s->db);
		int r = referenced(s, digest, e);
		bt_db_unlock(s->db);
		if (r < 0)
			return -1;
		if (r == 0) {
			bt_log_info("sweep: removing %s (held by no namespace)", digest);
			unlink(p);
		}
	}
	return 0;
}

int content_store_open(const char *dir, const content_opts *o, content_store **out, bt_err *e)
{
	content_store *s = bt_xzalloc(sizeof(*s));

	s->dir = bt_xstrdup(dir);
	s->blobs = bt_xasprintf("%s/blobs/sha256", dir);
	s->ingests_dir = bt_xasprintf("%s/ingest", dir);
	s->o = *o;
	if (s->o.lock_timeout_ms <= 0)
		s->o.lock_timeout_ms = 30000;
	if (s->o.max_ingests <= 0)
		s->o.max_ingests = 4096;
	s->live = bt_map_new();
	s->helpers = bt_offload_new(2);
	s->syncers = bt_offload_new(1);
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->blob_mu, NULL);
	if (bt_mkdir_p(s->blobs, 0700, e) < 0 || bt_mkdir_p(s->ingests_dir, 0700, e) < 0)
		goto fail;
	if (bt_db_open_in(dir, "meta.db", migrations, (int)BT_ARRAY_LEN(migrations), &s->db, e) < 0)
		goto fail;
	if (recover_commits(s, e) < 0 || sweep(s, e) < 0) {
		bt_err_wrap(e, "recover %s", dir);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	content_store_free(&s);
	return -1;
}

void content_store_free(content_store **sp)
{
	content_store *s = *sp;
	bt_map_iter it;
	void *v;

	if (!s)
		return;
	if (s->live) {
		bt_map_iter_init(&it, s->live);
		while (bt_map_iter_next(&it, NULL, NULL, &v))
			ingest_free(v);
		bt_map_free(&s->live);
	}
	bt_db_close(&s->db);
	bt_offload_free(&s->helpers);
	bt_offload_free(&s->syncers);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->blob_mu);
	free(s->dir);
	free(s->blobs);
	free(s->ingests_dir);
	free(s);
	*sp = NULL;
}

int content_store_ns_usage(void *arg, const char *ns, char ***holds, bt_err *e)
{
	static const bt_db_count t[] = { { "blobs", "blob", "blobs" }, { "ingests", "ingest", "ingests" } };
	content_store *s = arg;
	return bt_db_ns_usage(s->db, t, BT_ARRAY_LEN(t), ns, holds, e);
}
