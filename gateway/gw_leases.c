/*
 * gw_leases — leases (see gw_leases.h), as containerd's lease manager keeps
 * them: an id per namespace, labels, an optional expiry, and resources the
 * collector (gw_gc.c) counts as roots while the lease lives.  Resources may
 * name objects that do not exist yet: a client adds a blob before it writes
 * it, so that no collection can fall between the write and the hold.
 */
#define _GNU_SOURCE
#include "gw_leases.h"

#include <pthread.h>
#include <string.h>

#include "berth/leases/v1/leases.pb-c.h"
#include "bt_db.h"
#include "bt_events.h"
#include "bt_filter.h"
#include "bt_ident.h"
#include "bt_labels.h"
#include "bt_log.h"
#include "bt_pbmap.h"
#include "bt_util.h"
#include "gw_gc.h"

#define MAX_RESOURCE_ID 1024

struct gw_leases {
	bt_db *db;
	struct gw_gc *gc;
};

static const char *const migrations[] = {
	/* 1 */
	"CREATE TABLE leases ("
	"  id INTEGER PRIMARY KEY, ns TEXT NOT NULL, name TEXT NOT NULL,"
	"  created INTEGER NOT NULL, expires INTEGER NOT NULL, UNIQUE (ns, name));"
	"CREATE TABLE lease_labels ("
	"  owner INTEGER NOT NULL REFERENCES leases (id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (owner, key));"
	"CREATE TABLE lease_resources ("
	"  owner INTEGER NOT NULL REFERENCES leases (id) ON DELETE CASCADE,"
	"  type TEXT NOT NULL, rid TEXT NOT NULL, PRIMARY KEY (owner, type, rid));",
};

int gw_leases_open(const char *dir, gw_leases **out, bt_err *e)
{
	gw_leases *l = bt_xzalloc(sizeof(*l));
	if (bt_db_open_in(dir, "leases.db", migrations, (int)BT_ARRAY_LEN(migrations), &l->db, e) < 0) {
		free(l);
		return -1;
	}
	*out = l;
	return 0;
}

void gw_leases_free(gw_leases **lp)
{
	gw_leases *l = *lp;
	if (!l)
		return;
	bt_db_close(&l->db);
	free(l);
	*lp = NULL;
}

void gw_leases_set_gc(gw_leases *l, struct gw_gc *gc)
{
	l->gc = gc;
}

/* --- records ------------------------------------------------------------------------- */

typedef struct lease_rec {
	int64_t row;
	char *name;
	int64_t created, expires;
	bt_labels labels;
} lease_rec;

static void rec_clear(lease_rec *r)
{
	free(r->name);
	bt_labels_clear(&r->labels);
	memset(r, 0, sizeof(*r));
}

/* The row of lease name in ns (caller holds the lock): > 0, 0 when none, -1 on error. */
static int64_t row_of(gw_leases *l, const char *ns, const char *name, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (bt_db_prepare(l->db, "SELECT id FROM leases WHERE ns = ? AND name = ?", &st, e) < 0 ||
	    bt_db_bind_text(l->db, st, 1, ns, e) < 0 || bt_db_bind_text(l->db, st, 2, name, e) < 0)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return sqlite3_column_int64(st, 0);
	if (rc != SQLITE_DONE)
		return bt_db_error(l->db, e, "lease lookup");
	return 0;
}

static int64_t must_row(gw_leases *l, const char *ns, const char *name, bt_err *e)
{
	int64_t row = row_of(l, ns, name, e);
	if (row == 0)
		bt_err_set(e, BT_NOT_FOUND, "lease %s: not found", name);
	return row > 0 ? row : -1;
}

static void to_pb(const lease_rec *r, Berth__Leases__V1__Lease *p)
{
	berth__leases__v1__lease__init(p);
	p->id = r->name;
	p->created_at = r->created;
	p->expires_at = r->expires;
	p->labels = (Berth__Leases__V1__Lease__LabelsEntry **)bt_pbmap_from_labels(
		&r->labels, &berth__leases__v1__lease__labels_entry__descriptor, &p->n_labels);
}

static void pb_release(Berth__Leases__V1__Lease *p)
{
	bt_pbmap_free((void **)p->labels, p->n_labels);
}

/* "content", "ingests", "images", "snapshots/<name>"; an id of 1…1024 bytes. */
static int resource_validate(const Berth__Leases__V1__Resource *r, bt_err *e)
{
	if (!r)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "a resource is required");
	bool sn = bt_startswith(r->type, "snapshots/") && r->type[strlen("snapshots/")];
	if (!sn && strcmp(r->type, "content") && strcmp(r->type, "ingests") && strcmp(r->type, "images"))
		return bt_err_set(e, BT_INVALID_ARGUMENT,
				  "resource type \"%.100s\": expected content, ingests, images or snapshots/<snapshotter>",
				  r->type);
	size_t n = strlen(r->id);
	if (n == 0 || n > MAX_RESOURCE_ID)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "resource id: 1 to %d bytes", MAX_RESOURCE_ID);
	return 0;
}

/* --- handlers ------------------------------------------------------------------------- */

static void h_create(bt_call *call, void *ctx)
{
	gw_leases *l = ctx;
	const Berth__Leases__V1__CreateRequest *q = bt_call_req(call);
	Berth__Leases__V1__CreateResponse resp = BERTH__LEASES__V1__CREATE_RESPONSE__INIT;
	Berth__Leases__V1__Lease pl;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	const char *ns = bt_call_namespace(call);
	lease_rec r = { 0 };
	bt_err e = { 0 };
	int rc = 0;

	r.name = *q->id ? bt_xstrdup(q->id) : bt_random_hex(12);
	r.created = bt_now_ns();
	r.expires = q->expire_after_ms > 0 ? r.created + q->expire_after_ms * 1000000 : 0;
	bt_pbmap_to_labels((void *const *)q->labels, q->n_labels, &r.labels);
	if (q->expire_after_ms < 0)
		rc = bt_err_set(&e, BT_INVALID_ARGUMENT, "lease %s: a negative expiry", r.name);
	if (rc == 0)
		rc = bt_ident_validate("lease id", r.name, &e);
	if (rc == 0)
		rc = bt_labels_validate(&r.labels, true, &e);
	if (rc < 0)
		goto out;
	bt_db_lock(l->db);
	rc = bt_db_begin(l->db, &e);
	if (rc == 0 && row_of(l, ns, r.name, &e) != 0)
		rc = e.code ? -1 : bt_err_set(&e, BT_ALREADY_EXISTS, "lease %s: already exists", r.name);
	if (rc == 0 &&
	    (bt_db_prepare(l->db, "INSERT INTO leases (ns, name, created, expires) VALUES (?, ?, ?, ?)", &st, &e) < 0 ||
	     bt_db_bind_text(l->db, st, 1, ns, &e) < 0 || bt_db_bind_text(l->db, st, 2, r.name, &e) < 0 ||
	     bt_db_bind_int64(l->db, st, 3, r.created, &e) < 0 || bt_db_bind_int64(l->db, st, 4, r.expires, &e) < 0 ||
	     bt_db_step_done(l->db, st, &e) < 0))
		rc = -1;
	if (rc == 0)
		rc = bt_db_labels_store(l->db, "lease_labels", sqlite3_last_insert_rowid(bt_db_handle(l->db)), &r.labels,
					&e);
	if (rc == 0)
		rc = bt_db_commit(l->db, &e);
	else
		bt_db_rollback(l->db);
	bt_db_unlock(l->db);
out:
	if (rc < 0) {
		bt_call_error(call, &e);
	} else {
		/* (before the reply: the call, and ns with it, is gone once answered) */
		bt_event(ns, "/leases/create", "id", r.name, NULL);
		to_pb(&r, &pl);
		resp.lease = &pl;
		bt_call_reply(call, &resp.base);
		pb_release(&pl);
	}
	rec_clear(&r);
}

static const char *rec_field(void *obj, const char *const *path, size_t n)
{
	lease_rec *r = obj;
	if (n == 1 && !strcmp(path[0], "id"))
		return r->name;
	if (n == 2 && !strcmp(path[0], "labels"))
		return bt_labels_get(&r->labels, path[1]);
	return NULL;
}

static void h_list(bt_call *call, void *ctx)
{
	gw_leases *l = ctx;
	const Berth__Leases__V1__ListRequest *q = bt_call_req(call);
	Berth__Leases__V1__ListResponse resp = BERTH__LEASES__V1__LIST_RESPONSE__INIT;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	bt_filter *f = NULL;
	lease_rec *recs = NULL;
	size_t n = 0;
	bt_err e = { 0 };

	if (bt_filter_parse((const char *const *)q->filters, q->n_filters, &f, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	bt_db_lock(l->db);
	if (bt_db_prepare(l->db, "SELECT id, name, created, expires FROM leases WHERE ns = ? ORDER BY name", &st, &e) ==
		    0 &&
	    bt_db_bind_text(l->db, st, 1, bt_call_namespace(call), &e) == 0) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			lease_rec r = { .row = sqlite3_column_int64(st, 0),
					.name = bt_xstrdup(bt_db_col_text(st, 1)),
					.created = sqlite3_column_int64(st, 2),
					.expires = sqlite3_column_int64(st, 3) };
			if (bt_db_labels_load(l->db, false, "lease_labels", r.row, &r.labels, &e) < 0) {
				rec_clear(&r);
				break;
			}
			if (!bt_filter_match(f, rec_field, &r)) {
				rec_clear(&r);
				continue;
			}
			recs = bt_xrealloc(recs, (n + 1) * sizeof(*recs));
			recs[n++] = r;
		}
	}
	bt_db_unlock(l->db);
	bt_filter_free(&f);
	if (e.code) {
		bt_call_error(call, &e);
	} else {
		Berth__Leases__V1__Lease *p = bt_xcalloc(n ? n : 1, sizeof(*p));
		Berth__Leases__V1__Lease **v = bt_xcalloc(n ? n : 1, sizeof(*v));
		for (size_t i = 0; i < n; i++) {
			to_pb(&recs[i], &p[i]);
			v[i] = &p[i];
		}
		resp.n_leases = n;
		resp.leases = v;
		bt_call_reply(call, &resp.base);
		for (size_t i = 0; i < n; i++)
			pb_release(&p[i]);
		free(p);
		free(v);
	}
	for (size_t i = 0; i < n; i++)
		rec_clear(&recs[i]);
	free(recs);
}

/* Deletes lease name of ns (caller holds the lock). */
static int delete_row(gw_leases *l, int64_t row, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (bt_db_prepare(l->db, "DELETE FROM leases WHERE id = ?", &st, e) < 0 ||
	    bt_db_bind_int64(l->db, st, 1, row, e) < 0 || bt_db_step_done(l->db, st, e) < 0)
		return -1;
	return 0;
}

static void h_delete(bt_call *call, void *ctx)
{
	gw_leases *l = ctx;
	const Berth__Leases__V1__DeleteRequest *q = bt_call_req(call);
	Berth__Leases__V1__DeleteResponse resp = BERTH__LEASES__V1__DELETE_RESPONSE__INIT;
	const char *ns = bt_call_namespace(call);
	bt_err e = { 0 };

	bt_db_lock(l->db);
	int64_t row = must_row(l, ns, q->id, &e);
	int rc = row < 0 ? -1 : delete_row(l, row, &e);
	bt_db_unlock(l->db);
	if (rc == 0) {
		bt_event(ns, "/leases/delete", "id", q->id, NULL);
		/* what it held may be garbage now: with sync, it is gone before the answer */
		if (q->sync && l->gc && gw_gc_run(l->gc, ns, &e) < 0)
			rc = bt_err_wrap(&e, "lease %s deleted; the collection after it", q->id);
	}
	if (rc < 0)
		bt_call_error(call, &e);
	else
		bt_call_reply(call, &resp.base);
}

/* AddResource and DeleteResource: one statement on (lease, type, id); their
 * requests carry the same fields. */
static void edit_resource(bt_call *call, gw_leases *l, const char *lease, const Berth__Leases__V1__Resource *r,
			  const char *sql, const ProtobufCMessage *resp)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	bt_err e = { 0 };
	int rc = resource_validate(r, &e);

	if (rc == 0) {
		bt_db_lock(l->db);
		int64_t row = must_row(l, bt_call_namespace(call), lease, &e);
		if (row < 0 || bt_db_prepare(l->db, sql, &st, &e) < 0 || bt_db_bind_int64(l->db, st, 1, row, &e) < 0 ||
		    bt_db_bind_text(l->db, st, 2, r->type, &e) < 0 || bt_db_bind_text(l->db, st, 3, r->id, &e) < 0 ||
		    bt_db_step_done(l->db, st, &e) < 0)
			rc = -1;
		bt_db_unlock(l->db);
	}
	if (rc < 0)
		bt_call_error(call, &e);
	else
		bt_call_reply(call, resp);
}

static void h_add_resource(bt_call *call, void *ctx)
{
	const Berth__Leases__V1__AddResourceRequest *q = bt_call_req(call);
	Berth__Leases__V1__AddResourceResponse resp = BERTH__LEASES__V1__ADD_RESOURCE_RESPONSE__INIT;
	edit_resource(call, ctx, q->id, q->resource,
		      "INSERT OR IGNORE INTO lease_resources (owner, type, rid) VALUES (?, ?, ?)", &resp.base);
}

static void h_delete_resource(bt_call *call, void *ctx)
{
	const Berth__Leases__V1__DeleteResourceRequest *q = bt_call_req(call);
	Berth__Leases__V1__DeleteResourceResponse resp = BERTH__LEASES__V1__DELETE_RESOURCE_RESPONSE__INIT;
	edit_resource(call, ctx, q->id, q->resource,
		      "DELETE FROM lease_resources WHERE owner = ? AND type = ? AND rid = ?", &resp.base);
}

static void h_list_resources(bt_call *call, void *ctx)
{
	gw_leases *l = ctx;
	const Berth__Leases__V1__ListResourcesRequest *q = bt_call_req(call);
	Berth__Leases__V1__ListResourcesResponse resp = BERTH__LEASES__V1__LIST_RESOURCES_RESPONSE__INIT;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	Berth__Leases__V1__Resource *v = NULL;
	Berth__Leases__V1__Resource **pv = NULL;
	size_t n = 0;
	bt_err e = { 0 };

	bt_db_lock(l->db);
	int64_t row = must_row(l, bt_call_namespace(call), q->id, &e);
	if (row > 0 &&
	    bt_db_prepare(l->db, "SELECT type, rid FROM lease_resources WHERE owner = ? ORDER BY type, rid", &st, &e) ==
		    0 &&
	    bt_db_bind_int64(l->db, st, 1, row, &e) == 0) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			v = bt_xrealloc(v, (n + 1) * sizeof(*v));
			berth__leases__v1__resource__init(&v[n]);
			v[n].type = bt_xstrdup(bt_db_col_text(st, 0));
			v[n].id = bt_xstrdup(bt_db_col_text(st, 1));
			n++;
		}
	}
	bt_db_unlock(l->db);
	if (row < 0 || e.code) {
		bt_call_error(call, &e);
	} else {
		pv = bt_xcalloc(n ? n : 1, sizeof(*pv));
		for (size_t i = 0; i < n; i++)
			pv[i] = &v[i];
		resp.n_resources = n;
		resp.resources = pv;
		bt_call_reply(call, &resp.base);
	}
	for (size_t i = 0; i < n; i++) {
		free(v[i].type);
		free(v[i].id);
	}
	free(v);
	free(pv);
}

int64_t gw_leases_count(gw_leases *l, const char *ns, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int64_t n = -1;

	bt_db_lock(l->db);
	if (bt_db_prepare(l->db, "SELECT count(*) FROM leases WHERE ns = ?", &st, e) == 0 &&
	    bt_db_bind_text(l->db, st, 1, ns, e) == 0) {
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int64(st, 0);
		else
			bt_db_error(l->db, e, "count leases");
	}
	bt_db_unlock(l->db);
	return n;
}

int gw_leases_held(gw_leases *l, const char *ns, int64_t now, char ***types, char ***ids, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *del = NULL, *st = NULL;
	int rc = 0;

	*types = *ids = NULL;
	bt_db_lock(l->db);
	if (bt_db_prepare(l->db, "DELETE FROM leases WHERE ns = ? AND expires > 0 AND expires <= ?", &del, e) < 0 ||
	    bt_db_bind_text(l->db, del, 1, ns, e) < 0 || bt_db_bind_int64(l->db, del, 2, now, e) < 0 ||
	    bt_db_step_done(l->db, del, e) < 0)
		rc = -1;
	else if (sqlite3_changes(bt_db_handle(l->db)) > 0)
		bt_log_info("namespace %s: %d expired lease%s removed", ns, sqlite3_changes(bt_db_handle(l->db)),
			    sqlite3_changes(bt_db_handle(l->db)) == 1 ? "" : "s");
	if (rc == 0 &&
	    (bt_db_prepare(l->db,
			   "SELECT r.type, r.rid FROM lease_resources r JOIN leases l ON r.owner = l.id WHERE l.ns = ?",
			   &st, e) < 0 ||
	     bt_db_bind_text(l->db, st, 1, ns, e) < 0))
		rc = -1;
	while (rc == 0) {
		int s = sqlite3_step(st);
		if (s == SQLITE_DONE)
			break;
		if (s != SQLITE_ROW) {
			rc = bt_db_error(l->db, e, "lease resources");
			break;
		}
		bt_strv_push(types, bt_db_col_text(st, 0));
		bt_strv_push(ids, bt_db_col_text(st, 1));
	}
	bt_db_unlock(l->db);
	if (rc < 0) {
		bt_strv_free(*types);
		bt_strv_free(*ids);
		*types = *ids = NULL;
	}
	return rc;
}

static const bt_method methods[] = {
	{ "Create", h_create, 0 },
	{ "List", h_list, 0 },
	{ "Delete", h_delete, 0 },
	{ "AddResource", h_add_resource, 0 },
	{ "DeleteResource", h_delete_resource, 0 },
	{ "ListResources", h_list_resources, 0 },
};

void gw_leases_service(gw_leases *l, bt_service *svc)
{
	svc->name = "leases";
	svc->desc = &berth__leases__v1__leases__descriptor;
	svc->methods = methods;
	svc->n_methods = BT_ARRAY_LEN(methods);
	svc->ctx = l;
}
