/*
 * gw_ns — the gateway's namespaces: a registry in its own database
 * ($ROOT/gateway/namespaces.db) and the "namespaces" service over it.
 *
 * A namespace is recorded the first time a request that may write names it
 * (gw_ns_touch, called by the forwarding loop for every request: a lookup
 * in memory, a database write only the first time) or by Create.  Delete
 * asks every backend what it still holds there (system.NamespaceUsage, in
 * parallel, with a short deadline) and refuses, naming what remains, unless
 * every one answers that it holds nothing.
 */
#define _GNU_SOURCE
#include "gw_ns.h"

#include "gw_auth.h"

#include <inttypes.h>
#include <pthread.h>
#include <string.h>

#include "berth/namespaces/v1/namespaces.pb-c.h"
#include "berth/system/v1/system.pb-c.h"
#include "bt_client.h"
#include "bt_db.h"
#include "bt_events.h"
#include "bt_filter.h"
#include "bt_ident.h"
#include "bt_labels.h"
#include "bt_log.h"
#include "bt_map.h"
#include "bt_pbmap.h"
#include "bt_rpc.h"
#include "bt_util.h"
#include "gw_leases.h"

/* Each backend gets this long to answer; one that is not there at all is
 * given up on sooner, so that it does not eat the others' time. */
#define USAGE_TIMEOUT_MS 5000
#define USAGE_CONNECT_MS 500

struct gw_ns {
	bt_db *db;
	pthread_mutex_t mu;
	bt_map *known; /* names recorded, so that touching one costs no query */
	const gw_backend_ref *backends;
	size_t n_backends;
	gw_leases *leases; /* the gateway's own holdings in a namespace */
};

static const char *const migrations[] = {
	/* 1 */
	"CREATE TABLE namespaces ("
	"  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
	"  created INTEGER NOT NULL, updated INTEGER NOT NULL);"
	"CREATE TABLE namespace_labels ("
	"  owner INTEGER NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (owner, key));",
};

int gw_ns_open(const char *dir, const gw_backend_ref *backends, size_t n_backends, gw_ns **out, bt_err *e)
{
	gw_ns *g = bt_xzalloc(sizeof(*g));
	_cleanup_stmt_ sqlite3_stmt *st = NULL;

	pthread_mutex_init(&g->mu, NULL);
	g->known = bt_map_new();
	g->backends = backends;
	g->n_backends = n_backends;
	if (bt_db_open_in(dir, "namespaces.db", migrations, (int)BT_ARRAY_LEN(migrations), &g->db, e) < 0 ||
	    bt_db_prepare(g->db, "SELECT name FROM namespaces", &st, e) < 0) {
		gw_ns_free(&g);
		return -1;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *n = bt_db_col_text(st, 0);
		bt_map_put(g->known, n, strlen(n), (void *)1);
	}
	*out = g;
	return 0;
}

void gw_ns_free(gw_ns **gp)
{
	gw_ns *g = *gp;
	if (!g)
		return;
	bt_db_close(&g->db);
	bt_map_free(&g->known);
	pthread_mutex_destroy(&g->mu);
	free(g);
	*gp = NULL;
}

/* Methods that never bring a namespace into being: those that only read,
 * and those that take something away. */
static bool creates(const char *method)
{
	static const char *const removals[] = { "Delete", "Remove", "Abort", "Cleanup", "Kill", "Collect" };
	if (gw_method_reads(method))
		return false;
	for (size_t i = 0; i < BT_ARRAY_LEN(removals); i++)
		if (!strcmp(method, removals[i]))
			return false;
	return true;
}

/* Inserts name (caller holds mu); 1 when new, 0 when it existed. */
static int insert(gw_ns *g, const char *name, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int64_t now = bt_now_ns();

	bt_db_lock(g->db);
	int rc = bt_db_prepare(g->db, "INSERT OR IGNORE INTO namespaces (name, created, updated) VALUES (?, ?, ?)",
			       &st, e);
	if (rc == 0 && (bt_db_bind_text(g->db, st, 1, name, e) < 0 || bt_db_bind_int64(g->db, st, 2, now, e) < 0 ||
			bt_db_bind_int64(g->db, st, 3, now, e) < 0 || bt_db_step_done(g->db, st, e) < 0))
		rc = -1;
	if (rc == 0)
		rc = sqlite3_changes(bt_db_handle(g->db)) > 0 ? 1 : 0;
	bt_db_unlock(g->db);
	if (rc >= 0)
		bt_map_put(g->known, name, strlen(name), (void *)1);
	return rc;
}

void gw_ns_touch(gw_ns *g, const char *ns, const char *method)
{
	bt_err e;

	if (!creates(method))
		return;
	pthread_mutex_lock(&g->mu);
	int rc = bt_map_get(g->known, ns, strlen(ns)) ? 0 : insert(g, ns, &e);
	pthread_mutex_unlock(&g->mu);
	if (rc < 0)
		bt_log_warn("recording namespace %s: %s", ns, e.msg);
	else if (rc > 0)
		bt_event(ns, "/namespaces/create", "name", ns, NULL);
}

/* --- records -------------------------------------------------------------------------- */

typedef struct ns_rec {
	int64_t id;
	char *name;
	bt_labels labels;
} ns_rec;

static void rec_clear(ns_rec *r)
{
	free(r->name);
	bt_labels_clear(&r->labels);
	memset(r, 0, sizeof(*r));
}

/* Reads one record (caller holds mu); NOT_FOUND when absent. */
static int load(gw_ns *g, const char *name, ns_rec *r, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;

	memset(r, 0, sizeof(*r));
	if (bt_db_prepare(g->db, "SELECT id FROM namespaces WHERE name = ?", &st, e) < 0 ||
	    bt_db_bind_text(g->db, st, 1, name, e) < 0)
		return -1;
	if (sqlite3_step(st) != SQLITE_ROW)
		return bt_err_set(e, BT_NOT_FOUND, "namespace \"%s\" not found", name);
	r->id = sqlite3_column_int64(st, 0);
	r->name = bt_xstrdup(name);
	if (bt_db_labels_load(g->db, false, "namespace_labels", r->id, &r->labels, e) < 0) {
		rec_clear(r);
		return -1;
	}
	return 0;
}

static int store_labels(gw_ns *g, ns_rec *r, bt_err *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;

	int rc = -1;

	bt_db_lock(g->db);
	if (bt_db_begin(g->db, e) == 0) {
		if (bt_db_labels_store(g->db, "namespace_labels", r->id, &r->labels, e) < 0 ||
		    bt_db_prepare(g->db, "UPDATE namespaces SET updated = ? WHERE id = ?", &st, e) < 0 ||
		    bt_db_bind_int64(g->db, st, 1, bt_now_ns(), e) < 0 ||
		    bt_db_bind_int64(g->db, st, 2, r->id, e) < 0 || bt_db_step_done(g->db, st, e) < 0 ||
		    bt_db_commit(g->db, e) < 0)
			bt_db_rollback(g->db);
		else
			rc = 0;
	}
	bt_db_unlock(g->db);
	return rc;
}

/* A reply's Namespace, borrowing r's strings. */
typedef struct pb_ns {
	Berth__Namespaces__V1__Namespace m;
	void **labels;
} pb_ns;

static void to_pb(const ns_rec *r, pb_ns *out)
{
	berth__namespaces__v1__namespace__init(&out->m);
	out->m.name = r->name;
	out->labels = bt_pbmap_from_labels(&r->labels, &berth__namespaces__v1__namespace__labels_entry__descriptor,
					   &out->m.n_labels);
	out->m.labels = (Berth__Namespaces__V1__Namespace__LabelsEntry **)out->labels;
}

static void pb_clear(pb_ns *p)
{
	bt_pbmap_free(p->labels, p->m.n_labels);
}

static int check_name(const char *name, bt_err *e)
{
	return bt_ident_validate("namespace", name ? name : "", e);
}

/* Whether the caller (a remote key, through the gateway) may see ns. */
static bool visible(bt_call *call, const char *ns)
{
	const bt_principal *p = bt_call_principal(call);
	return !p || gw_key_allows(p->namespaces, p->n_namespaces, ns);
}

/* A valid name the caller may use. */
static int check_use(bt_call *call, const char *name, bt_err *e)
{
	if (check_name(name, e) < 0)
		return -1;
	if (!visible(call, name))
		return bt_err_set(e, BT_PERMISSION_DENIED, "namespace \"%s\" is not one this key may use", name);
	return 0;
}

/* --- handlers ------------------------------------------------------------------------- */

static void reply_ns(bt_call *call, const ns_rec *r, ProtobufCMessage *resp, Berth__Namespaces__V1__Namespace **slot)
{
	pb_ns p;
	to_pb(r, &p);
	*slot = &p.m;
	bt_call_reply(call, resp);
	pb_clear(&p);
}

static void h_get(bt_call *call, void *ctx)
{
	gw_ns *g = ctx;
	const Berth__Namespaces__V1__GetNamespaceRequest *q = bt_call_req(call);
	Berth__Namespaces__V1__GetNamespaceResponse resp = BERTH__NAMESPACES__V1__GET_NAMESPACE_RESPONSE__INIT;
	ns_rec r;
	bt_err e;

	if (check_use(call, q->name, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	pthread_mutex_lock(&g->mu);
	int rc = load(g, q->name, &r, &e);
	pthread_mutex_unlock(&g->mu);
	if (rc < 0) {
		bt_call_error(call, &e);
		return;
	}
	reply_ns(call, &r, &resp.base, &resp.namespace_);
	rec_clear(&r);
}

static const char *rec_field(void *obj, const char *const *path, size_t n)
{
	ns_rec *r = obj;
	if (n == 1 && !strcmp(path[0], "name"))
		return r->name;
	if (n == 2 && !strcmp(path[0], "labels"))
		return bt_labels_get(&r->labels, path[1]);
	return NULL;
}

static void h_list(bt_call *call, void *ctx)
{
	gw_ns *g = ctx;
	const Berth__Namespaces__V1__ListNamespacesRequest *q = bt_call_req(call);
	Berth__Namespaces__V1__ListNamespacesResponse resp = BERTH__NAMESPACES__V1__LIST_NAMESPACES_RESPONSE__INIT;
	bt_filter *f = NULL;
	ns_rec *recs = NULL;
	size_t n = 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	bt_err e = { 0 };

	if (bt_filter_parse((const char *const *)q->filters, q->n_filters, &f, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	pthread_mutex_lock(&g->mu);
	if (bt_db_prepare(g->db, "SELECT id, name FROM namespaces ORDER BY name", &st, &e) == 0) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			ns_rec r = { .id = sqlite3_column_int64(st, 0), .name = bt_xstrdup(bt_db_col_text(st, 1)) };
			if (bt_db_labels_load(g->db, false, "namespace_labels", r.id, &r.labels, &e) < 0) {
				rec_clear(&r);
				break;
			}
			if (!visible(call, r.name) || !bt_filter_match(f, rec_field, &r)) {
				rec_clear(&r);
				continue;
			}
			recs = bt_xrealloc(recs, (n + 1) * sizeof(*recs));
			recs[n++] = r;
		}
	}
	pthread_mutex_unlock(&g->mu);
	bt_filter_free(&f);
	if (e.code) {
		bt_call_error(call, &e);
	} else {
		pb_ns *p = bt_xcalloc(n ? n : 1, sizeof(*p));
		Berth__Namespaces__V1__Namespace **v = bt_xcalloc(n ? n : 1, sizeof(*v));
		for (size_t i = 0; i < n; i++) {
			to_pb(&recs[i], &p[i]);
			v[i] = &p[i].m;
		}
		resp.n_namespaces = n;
		resp.namespaces = v;
		bt_call_reply(call, &resp.base);
		for (size_t i = 0; i < n; i++)
			pb_clear(&p[i]);
		free(p);
		free(v);
	}
	for (size_t i = 0; i < n; i++)
		rec_clear(&recs[i]);
	free(recs);
}

static void h_create(bt_call *call, void *ctx)
{
	gw_ns *g = ctx;
	const Berth__Namespaces__V1__CreateNamespaceRequest *q = bt_call_req(call);
	Berth__Namespaces__V1__CreateNamespaceResponse resp = BERTH__NAMESPACES__V1__CREATE_NAMESPACE_RESPONSE__INIT;
	bt_labels want = { 0 };
	ns_rec r = { 0 };
	bt_err e = { 0 };
	int rc;

	if (!q->namespace_) {
		bt_call_errorf(call, BT_INVALID_ARGUMENT, "a namespace is required");
		return;
	}
	bt_pbmap_to_labels((void *const *)q->namespace_->labels, q->namespace_->n_labels, &want);
	if (check_use(call, q->namespace_->name, &e) < 0 || bt_labels_validate(&want, false, &e) < 0) {
		bt_labels_clear(&want);
		bt_call_error(call, &e);
		return;
	}
	pthread_mutex_lock(&g->mu);
	rc = insert(g, q->namespace_->name, &e);
	if (rc == 0)
		rc = bt_err_set(&e, BT_ALREADY_EXISTS, "namespace \"%s\" already exists", q->namespace_->name);
	if (rc > 0 && (rc = load(g, q->namespace_->name, &r, &e)) == 0) {
		bt_labels_copy(&r.labels, &want);
		rc = store_labels(g, &r, &e);
	}
	pthread_mutex_unlock(&g->mu);
	bt_labels_clear(&want);
	if (rc < 0) {
		bt_call_error(call, &e);
	} else {
		reply_ns(call, &r, &resp.base, &resp.namespace_);
		bt_event(r.name, "/namespaces/create", "name", r.name, NULL);
	}
	rec_clear(&r);
}

static void h_update(bt_call *call, void *ctx)
{
	gw_ns *g = ctx;
	const Berth__Namespaces__V1__UpdateNamespaceRequest *q = bt_call_req(call);
	Berth__Namespaces__V1__UpdateNamespaceResponse resp = BERTH__NAMESPACES__V1__UPDATE_NAMESPACE_RESPONSE__INIT;
	bt_labels want = { 0 };
	ns_rec r = { 0 };
	bt_err e = { 0 };
	int rc;

	if (!q->namespace_) {
		bt_call_errorf(call, BT_INVALID_ARGUMENT, "a namespace is required");
		return;
	}
	bt_pbmap_to_labels((void *const *)q->namespace_->labels, q->namespace_->n_labels, &want);
	if (check_use(call, q->namespace_->name, &e) < 0) {
		bt_labels_clear(&want);
		bt_call_error(call, &e);
		return;
	}
	pthread_mutex_lock(&g->mu);
	rc = load(g, q->namespace_->name, &r, &e);
	if (rc == 0)
		rc = bt_labels_update(&r.labels, &want, q->update_mask, q->n_update_mask, NULL, &e);
	if (rc == 0)
		rc = bt_labels_validate(&r.labels, false, &e);
	if (rc == 0)
		rc = store_labels(g, &r, &e);
	pthread_mutex_unlock(&g->mu);
	bt_labels_clear(&want);
	if (rc < 0) {
		bt_call_error(call, &e);
	} else {
		reply_ns(call, &r, &resp.base, &resp.namespace_);
		bt_event(r.name, "/namespaces/update", "name", r.name, NULL);
	}
	rec_clear(&r);
}

/* Asks every backend what it holds in ns; fills remains ("images: 1 image") or fails when one cannot answer. */
static int usage(gw_ns *g, const char *ns, char ***remains, bt_err *e)
{
	bt_callspec cs = { .service = "system", .method = "NamespaceUsage", .ns = ns };
	Berth__System__V1__NamespaceUsageRequest req = BERTH__SYSTEM__V1__NAMESPACE_USAGE_REQUEST__INIT;
	gw_answer *a = gw_ask_all(g->backends, g->n_backends, &cs, &req.base,
				  &berth__system__v1__namespace_usage_response__descriptor, USAGE_TIMEOUT_MS,
				  USAGE_CONNECT_MS);
	int rc = 0;

	for (size_t i = 0; i < g->n_backends; i++) {
		const Berth__System__V1__NamespaceUsageResponse *r = a[i].resp;
		if (!r) {
			if (rc == 0)
				rc = bt_err_set(e, BT_UNAVAILABLE, "cannot tell whether namespace \"%s\" is empty: %s: %s",
						ns, g->backends[i].service, a[i].err.msg);
			continue;
		}
		for (size_t k = 0; k < r->n_holds; k++) {
			_cleanup_free_ char *line = bt_xasprintf("%s: %s", g->backends[i].service, r->holds[k]);
			bt_strv_push(remains, line);
		}
	}
	gw_answers_free(a, g->n_backends);
	if (rc == 0 && g->leases) {
		int64_t n = gw_leases_count(g->leases, ns, e);
		if (n < 0)
			return -1;
		if (n > 0) {
			_cleanup_free_ char *line = bt_xasprintf("leases: %" PRId64 " lease%s", n, n == 1 ? "" : "s");
			bt_strv_push(remains, line);
		}
	}
	return rc;
}

void gw_ns_set_leases(gw_ns *g, gw_leases *l)
{
	g->leases = l;
}

static void h_delete(bt_call *call, void *ctx)
{
	gw_ns *g = ctx;
	const Berth__Namespaces__V1__DeleteNamespaceRequest *q = bt_call_req(call);
	Berth__Namespaces__V1__DeleteNamespaceResponse resp = BERTH__NAMESPACES__V1__DELETE_NAMESPACE_RESPONSE__INIT;
	_cleanup_strv_ char **remains = NULL;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	ns_rec r;
	bt_err e = { 0 };
	int rc;

	if (check_use(call, q->name, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	pthread_mutex_lock(&g->mu);
	rc = load(g, q->name, &r, &e);
	pthread_mutex_unlock(&g->mu);
	if (rc < 0) {
		bt_call_error(call, &e);
		return;
	}
	rec_clear(&r);
	if (usage(g, q->name, &remains, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	if (remains) {
		bt_buf what = { 0 };
		for (size_t i = 0; remains[i]; i++) {
			if (i)
				bt_buf_append(&what, ", ", 2);
			bt_buf_append(&what, remains[i], strlen(remains[i]));
		}
		bt_buf_append(&what, "", 1);
		bt_call_errorf(call, BT_FAILED_PRECONDITION, "namespace \"%s\" is not empty: %s", q->name, what.data);
		bt_buf_free(&what);
		return;
	}
	pthread_mutex_lock(&g->mu);
	bt_db_lock(g->db);
	rc = bt_db_prepare(g->db, "DELETE FROM namespaces WHERE name = ?", &st, &e);
	if (rc == 0 && (bt_db_bind_text(g->db, st, 1, q->name, &e) < 0 || bt_db_step_done(g->db, st, &e) < 0))
		rc = -1;
	bt_db_unlock(g->db);
	if (rc == 0)
		bt_map_del(g->known, q->name, strlen(q->name));
	pthread_mutex_unlock(&g->mu);
	if (rc < 0) {
		bt_call_error(call, &e);
	} else {
		bt_event(q->name, "/namespaces/delete", "name", q->name, NULL); /* q goes with the reply */
		bt_call_reply(call, &resp.base);
	}
}

static const bt_method methods[] = {
	{ "Get", h_get, BT_M_NO_NAMESPACE },	   { "List", h_list, BT_M_NO_NAMESPACE },
	{ "Create", h_create, BT_M_NO_NAMESPACE }, { "Update", h_update, BT_M_NO_NAMESPACE },
	{ "Delete", h_delete, BT_M_NO_NAMESPACE },
};

void gw_ns_service(gw_ns *g, bt_service *svc)
{
	svc->name = "namespaces";
	svc->desc = &berth__namespaces__v1__namespaces__descriptor;
	svc->methods = methods;
	svc->n_methods = BT_ARRAY_LEN(methods);
	svc->ctx = g;
}
