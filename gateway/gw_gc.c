/*
 * gw_gc — mark and sweep of one namespace across the services.
 *
 * Mark: the roots are the images' targets, the containers' snapshots, the
 * content and snapshots labelled berth.io/gc.root, and (until leases hold
 * them) every active snapshot and view; from content, the gc reference
 * labels lead to more content and to snapshots; from a snapshot, its parent.
 * Sweep: content and snapshots no root reaches, made before the collection
 * began, go — snapshots leaf first; a blob's bytes leave the disk when the
 * last namespace holding it lets go (berth-contentd's Delete).
 *
 * While it runs, the gateway holds the namespace's requests that could add
 * a reference (gw_gc_fence_kind), after those already sent are answered:
 * nothing it is about to remove can be taken into use meanwhile.  It waits
 * for no transfer: when one runs in the namespace (its blobs and snapshots
 * are not referenced yet), it is refused with UNAVAILABLE and can be asked
 * again.  Each removal is atomic in its own service, so a collection cut
 * short (a daemon killed) leaves only reachable things and garbage the next
 * one finds again.
 */
#define _GNU_SOURCE
#include "gw_gc.h"

#include <inttypes.h>
#include <pthread.h>
#include <time.h>
#include <string.h>

#include "berth/berth.h"
#include "berth/gc/v1/gc.pb-c.h"
#include "berth/system/v1/system.pb-c.h"
#include "bt_gc.h"
#include "bt_log.h"
#include "bt_map.h"
#include "bt_util.h"
#include "gw_leases.h"

#define GC_TIMEOUT_MS 30000
#define USAGE_TIMEOUT_MS 5000
#define FENCE_TIMEOUT_MS 10000

struct gw_gc {
	const gw_backend_ref *backends;
	size_t n;
	char *default_sn;
	gw_leases *leases;
	gw_proxy *proxy;       /* under mu: NULL until the gateway routes */
	pthread_mutex_t run_mu; /* one collection at a time */
	berth_client **clients; /* under run_mu: one per backend, made when first used */
	/* the scheduler */
	int64_t delay_ms;
	pthread_t thread;
	bool started, stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bt_map *due; /* namespace → due time (bt_mono_ns), boxed */
};

gw_gc *gw_gc_new(const gw_backend_ref *backends, size_t n, const char *default_sn, gw_leases *leases)
{
	gw_gc *g = bt_xzalloc(sizeof(*g));
	g->leases = leases;
	g->backends = backends;
	g->n = n;
	g->default_sn = bt_xstrdup(default_sn);
	pthread_mutex_init(&g->mu, NULL);
	pthread_mutex_init(&g->run_mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->due = bt_map_new();
	g->clients = bt_xcalloc(n + 1, sizeof(*g->clients));
	return g;
}

void gw_gc_free(gw_gc **gp)
{
	gw_gc *g = *gp;
	if (!g)
		return;
	if (g->started) {
		pthread_mutex_lock(&g->mu);
		g->stop = true;
		pthread_cond_broadcast(&g->cv);
		pthread_mutex_unlock(&g->mu);
		pthread_join(g->thread, NULL);
	}
	bt_map_iter it;
	const void *k;
	size_t kl;
	void *v;
	bt_map_iter_init(&it, g->due);
	while (bt_map_iter_next(&it, &k, &kl, &v))
		free(v);
	bt_map_free(&g->due);
	for (size_t i = 0; i < g->n; i++)
		berth_client_free(&g->clients[i]);
	free(g->clients);
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	pthread_mutex_destroy(&g->run_mu);
	free(g->default_sn);
	free(g);
	*gp = NULL;
}

void gw_gc_set_proxy(gw_gc *g, gw_proxy *p)
{
	pthread_mutex_lock(&g->mu);
	g->proxy = p;
	pthread_mutex_unlock(&g->mu);
}

/* What could take a collection's garbage into use: a record or a lease
 * naming it, a label on it or on what reaches it, a snapshot on it.  The
 * image service's transfers do so from inside it, so one in flight refuses
 * the fence (as it refuses the collection: check_idle). */
gw_fence_kind gw_gc_fence_kind(const char *service, const char *method)
{
	static const struct {
		const char *service, *method;
		gw_fence_kind kind;
	} guarded[] = {
		{ "images", "Create", GW_FENCE_HOLD },	   { "images", "Update", GW_FENCE_HOLD },
		{ "images", "Pull", GW_FENCE_BUSY },	   { "images", "Push", GW_FENCE_BUSY },
		{ "images", "Unpack", GW_FENCE_BUSY },	   { "containers", "Create", GW_FENCE_HOLD },
		{ "containers", "Update", GW_FENCE_HOLD }, { "content", "Write", GW_FENCE_HOLD },
		{ "content", "Update", GW_FENCE_HOLD },	   { "snapshots", "Prepare", GW_FENCE_HOLD },
		{ "snapshots", "View", GW_FENCE_HOLD },	   { "snapshots", "Commit", GW_FENCE_HOLD },
		{ "snapshots", "Update", GW_FENCE_HOLD },  { "leases", "Create", GW_FENCE_HOLD },
		{ "leases", "AddResource", GW_FENCE_HOLD },
	};
	for (size_t i = 0; i < BT_ARRAY_LEN(guarded); i++)
		if (!strcmp(guarded[i].method, method) && !strcmp(guarded[i].service, service))
			return guarded[i].kind;
	return GW_FENCE_PASS;
}

/* --- one snapshotter's snapshots ------------------------------------------------------ */

typedef struct snapset {
	const char *name; /* snapshotter */
	berth_client *c; /* the gc's (client_at) */
	berth_snapshot_info *v;
	size_t n;
	bt_map *by_key; /* key → index + 1 */
	bool *marked, *gone;
} snapset;

typedef struct collection {
	gw_gc *g;
	const char *ns;
	int64_t t0;
	bool dry_run;
	berth_client *content; /* the gc's (client_for) */
	berth_content_info *blobs;
	size_t n_blobs;
	bt_map *blob_at; /* digest → index + 1 */
	bool *blob_marked;
	char **todo; /* digests to visit (a stack) */
	size_t n_todo, cap_todo;
	snapset *sets;
	size_t n_sets;
	Berth__Gc__V1__CollectResponse resp;
	Berth__Gc__V1__Removed **removed;
} collection;

static const char *address_of(const gw_gc *g, const char *service)
{
	for (size_t i = 0; i < g->n; i++)
		if (!strcmp(g->backends[i].service, service))
			return g->backends[i].address;
	return NULL;
}

/* The client of backend i, kept from one collection to the next (the
 * caller holds run_mu; it reconnects by itself when the backend restarts). */
static berth_client *client_at(gw_gc *g, size_t i, bt_err *e)
{
	if (!g->clients[i]) {
		berth_options o = { .address = g->backends[i].address, .namespace_ = "default", .timeout_ms = GC_TIMEOUT_MS };
		berth_error err;
		g->clients[i] = berth_client_new(&o, &err);
		if (!g->clients[i])
			bt_err_set(e, err.code, "%s: %s", g->backends[i].address, err.message);
	}
	return g->clients[i];
}

static berth_client *client_for(gw_gc *g, const char *service, bt_err *e)
{
	for (size_t i = 0; i < g->n; i++)
		if (!strcmp(g->backends[i].service, service))
			return client_at(g, i, e);
	bt_err_set(e, BT_INTERNAL, "gc: the gateway routes no %s service", service);
	return NULL;
}

static int fail(bt_err *e, const char *what, const berth_error *err)
{
	return bt_err_set(e, err->code, "gc: %s: %s", what, err->message);
}

static snapset *set_named(collection *c, const char *name)
{
	for (size_t i = 0; i < c->n_sets; i++)
		if (!strcmp(c->sets[i].name, name && *name ? name : c->g->default_sn))
			return &c->sets[i];
	return NULL;
}

static void mark_snapshot(collection *c, const char *sn, const char *key)
{
	snapset *s = set_named(c, sn);
	if (!s)
		return; /* a snapshotter this gateway does not know holds nothing it can sweep */
	for (;;) {
		uintptr_t at = (uintptr_t)bt_map_sget(s->by_key, key);
		if (!at || s->marked[at - 1])
			return;
		s->marked[at - 1] = true;
		key = s->v[at - 1].parent;
		if (!*key)
			return;
	}
}

static void push(collection *c, const char *digest)
{
	if (c->n_todo == c->cap_todo) {
		c->cap_todo = c->cap_todo ? 2 * c->cap_todo : 64;
		c->todo = bt_xrealloc(c->todo, c->cap_todo * sizeof(*c->todo));
	}
	c->todo[c->n_todo++] = bt_xstrdup(digest);
}

static bool has_label(const berth_label *l, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(l[i].key, key))
			return true;
	return false;
}

/* Marks what content reaches: more content, snapshots. */
static void mark_content(collection *c)
{
	while (c->n_todo) {
		char *d = c->todo[--c->n_todo];
		uintptr_t at = (uintptr_t)bt_map_sget(c->blob_at, d);
		free(d);
		if (!at || c->blob_marked[at - 1])
			continue;
		c->blob_marked[at - 1] = true;
		const berth_content_info *b = &c->blobs[at - 1];
		for (size_t i = 0; i < b->n_labels; i++) {
			const char *k = b->labels[i].key;
			if (bt_startswith(k, BT_GC_REF_CONTENT))
				push(c, b->labels[i].value);
			else if (bt_startswith(k, BT_GC_REF_SNAPSHOT))
				mark_snapshot(c, k + strlen(BT_GC_REF_SNAPSHOT), b->labels[i].value);
		}
	}
}

/* Fails with UNAVAILABLE while the image service makes objects in ns. */
static int check_idle(collection *c, bt_err *e)
{
	const char *addr = address_of(c->g, "images");
	bt_callspec cs = { .service = "system", .method = "NamespaceUsage", .ns = c->ns };
	Berth__System__V1__NamespaceUsageRequest req = BERTH__SYSTEM__V1__NAMESPACE_USAGE_REQUEST__INIT;
	gw_backend_ref b = { "images", addr };
	int rc = 0;

	if (!addr)
		return 0;
	gw_answer *a = gw_ask_all(&b, 1, &cs, &req.base, &berth__system__v1__namespace_usage_response__descriptor,
				  USAGE_TIMEOUT_MS, USAGE_TIMEOUT_MS);
	const Berth__System__V1__NamespaceUsageResponse *r = a[0].resp;
	if (!r)
		rc = bt_err_set(e, BT_UNAVAILABLE, "gc: cannot ask the image service what runs in namespace %s: %s",
				c->ns, a[0].err.msg);
	for (size_t i = 0; r && rc == 0 && i < r->n_holds; i++)
		if (bt_endswith(r->holds[i], BT_GC_BUSY))
			rc = bt_err_set(e, BT_UNAVAILABLE,
					"gc: namespace %s: %s (the image service); collect once they are done", c->ns,
					r->holds[i]);
	gw_answers_free(a, 1);
	return rc;
}

/* The roots and every object, then the marks. */
static int mark(collection *c, bt_err *e)
{
	berth_error err;
	berth_image *imgs = NULL;
	berth_container *ctrs = NULL;
	size_t n_imgs = 0, n_ctrs = 0;
	char **lt = NULL, **lid = NULL;
	int rc = -1;

	/* the leases first: a lease let go after this was replaced by the record it waited for */
	if (c->g->leases && gw_leases_held(c->g->leases, c->ns, c->t0, &lt, &lid, e) < 0)
		return -1;
	berth_client *images = client_for(c->g, "images", e);
	berth_client *tasks = images ? client_for(c->g, "containers", e) : NULL;
	c->content = tasks ? client_for(c->g, "content", e) : NULL;
	if (!c->content)
		goto out;
	/* the records first: whatever they name was made before them */
	if (berth_image_list(images, c->ns, NULL, 0, &imgs, &n_imgs, &err) < 0) {
		fail(e, "list images", &err);
		goto out;
	}
	if (berth_container_list(tasks, c->ns, NULL, 0, &ctrs, &n_ctrs, &err) < 0) {
		fail(e, "list containers", &err);
		goto out;
	}
	if (berth_content_list(c->content, c->ns, NULL, 0, &c->blobs, &c->n_blobs, &err) < 0) {
		fail(e, "list content", &err);
		goto out;
	}
	c->blob_at = bt_map_new();
	c->blob_marked = bt_xcalloc(c->n_blobs + 1, sizeof(bool));
	for (size_t i = 0; i < c->n_blobs; i++)
		bt_map_sput(c->blob_at, c->blobs[i].digest, (void *)(uintptr_t)(i + 1));
	for (size_t i = 0; i < c->g->n; i++) {
		if (!bt_startswith(c->g->backends[i].service, "snapshots/"))
			continue;
		c->sets = bt_xrealloc(c->sets, (c->n_sets + 1) * sizeof(*c->sets));
		snapset *s = &c->sets[c->n_sets++];
		memset(s, 0, sizeof(*s));
		s->name = c->g->backends[i].service + strlen("snapshots/");
		s->by_key = bt_map_new();
		if (!(s->c = client_at(c->g, i, e)))
			goto out;
		if (berth_snapshot_list(s->c, c->ns, s->name, NULL, 0, &s->v, &s->n, &err) < 0) {
			bt_err_set(e, err.code, "gc: list snapshots of %s: %s", s->name, err.message);
			goto out;
		}
		s->marked = bt_xcalloc(s->n + 1, sizeof(bool));
		s->gone = bt_xcalloc(s->n + 1, sizeof(bool));
		for (size_t k = 0; k < s->n; k++)
			bt_map_sput(s->by_key, s->v[k].name, (void *)(uintptr_t)(k + 1));
	}

	/* roots */
	for (size_t i = 0; lt && lt[i]; i++) {
		if (!strcmp(lt[i], "content"))
			push(c, lid[i]);
		else if (bt_startswith(lt[i], "snapshots/"))
			mark_snapshot(c, lt[i] + strlen("snapshots/"), lid[i]);
	}
	for (size_t i = 0; i < n_imgs; i++)
		push(c, imgs[i].target.digest);
	for (size_t i = 0; i < c->n_blobs; i++)
		if (has_label(c->blobs[i].labels, c->blobs[i].n_labels, BT_GC_ROOT))
			push(c, c->blobs[i].digest);
	for (size_t i = 0; i < n_ctrs; i++)
		if (*ctrs[i].snapshot_key)
			mark_snapshot(c, ctrs[i].snapshotter, ctrs[i].snapshot_key);
	for (size_t i = 0; i < c->n_sets; i++) {
		snapset *s = &c->sets[i];
		for (size_t k = 0; k < s->n; k++)
			if (s->v[k].kind != BERTH_SNAPSHOT_COMMITTED ||
			    has_label(s->v[k].labels, s->v[k].n_labels, BT_GC_ROOT))
				mark_snapshot(c, s->name, s->v[k].name);
	}
	mark_content(c);
	rc = 0;
out:
	bt_strv_free(lt);
	bt_strv_free(lid);
	berth_images_free(imgs, n_imgs);
	berth_containers_free(ctrs, n_ctrs);
	return rc;
}

static void report(collection *c, const char *kind, const char *id, const char *sn, int64_t size)
{
	Berth__Gc__V1__Removed *r = bt_xcalloc(1, sizeof(*r));
	berth__gc__v1__removed__init(r);
	r->kind = bt_xstrdup(kind);
	r->id = bt_xstrdup(id);
	r->snapshotter = bt_xstrdup(sn ? sn : "");
	r->size = size;
	c->removed = bt_xrealloc(c->removed, (c->resp.n_removed + 1) * sizeof(*c->removed));
	c->removed[c->resp.n_removed++] = r;
}

static int sweep_content(collection *c, bt_err *e)
{
	berth_error err;
	for (size_t i = 0; i < c->n_blobs; i++) {
		const berth_content_info *b = &c->blobs[i];
		if (c->blob_marked[i] || b->created_at >= c->t0) {
			c->resp.kept_content++;
			continue;
		}
		if (!c->dry_run && berth_content_delete(c->content, c->ns, b->digest, &err) < 0) {
			if (err.code == BERTH_NOT_FOUND)
				continue; /* gone meanwhile */
			return fail(e, b->digest, &err);
		}
		report(c, "content", b->digest, NULL, b->size);
		c->resp.content_bytes += b->size;
	}
	return 0;
}

/* Unmarked snapshots go leaf first: a pass removes those no remaining
 * snapshot names as parent, until a pass removes nothing. */
static int sweep_snapshots(collection *c, snapset *s, bt_err *e)
{
	berth_error err;
	bool progress = true;
	size_t *children = bt_xcalloc(s->n + 1, sizeof(*children));
	int rc = 0;

	for (size_t k = 0; k < s->n; k++) {
		uintptr_t p = *s->v[k].parent ? (uintptr_t)bt_map_sget(s->by_key, s->v[k].parent) : 0;
		if (p)
			children[p - 1]++;
	}
	while (progress && rc == 0) {
		progress = false;
		for (size_t k = 0; k < s->n && rc == 0; k++) {
			const berth_snapshot_info *v = &s->v[k];
			if (s->marked[k] || s->gone[k] || children[k] || v->created_at >= c->t0)
				continue;
			berth_snapshot_usage u = { 0 };
			if (berth_snapshot_get_usage(s->c, c->ns, s->name, v->name, &u, &err) < 0)
				u.size = 0;
			if (!c->dry_run && berth_snapshot_remove(s->c, c->ns, s->name, v->name, &err) < 0 &&
			    err.code != BERTH_NOT_FOUND) {
				rc = bt_err_set(e, err.code, "gc: remove snapshot %s of %s: %s", v->name, s->name,
						err.message);
				break;
			}
			s->gone[k] = true;
			progress = true;
			report(c, "snapshot", v->name, s->name, u.size);
			c->resp.snapshot_bytes += u.size;
			uintptr_t p = *v->parent ? (uintptr_t)bt_map_sget(s->by_key, v->parent) : 0;
			if (p)
				children[p - 1]--;
		}
	}
	for (size_t k = 0; k < s->n; k++)
		if (!s->gone[k])
			c->resp.kept_snapshots++;
	free(children);
	return rc;
}

static void collection_clear(collection *c)
{
	berth_content_infos_free(c->blobs, c->n_blobs);
	bt_map_free(&c->blob_at);
	free(c->blob_marked);
	while (c->n_todo)
		free(c->todo[--c->n_todo]);
	free(c->todo);
	for (size_t i = 0; i < c->n_sets; i++) {
		berth_snapshot_infos_free(c->sets[i].v, c->sets[i].n);
		bt_map_free(&c->sets[i].by_key);
		free(c->sets[i].marked);
		free(c->sets[i].gone);
	}
	free(c->sets);
	for (size_t i = 0; i < c->resp.n_removed; i++) {
		free(c->removed[i]->kind);
		free(c->removed[i]->id);
		free(c->removed[i]->snapshotter);
		free(c->removed[i]);
	}
	free(c->removed);
}

/* A collection of c->ns into c->resp (c->removed); logs what it removed. */
static int collect(collection *c, bt_err *e)
{
	int64_t started = bt_mono_ns();
	gw_proxy *fence = NULL;
	int rc = 0;

	berth__gc__v1__collect_response__init(&c->resp);
	pthread_mutex_lock(&c->g->run_mu);
	c->t0 = bt_now_ns();
	/* a dry run removes nothing: it holds nobody up */
	if (!c->dry_run) {
		pthread_mutex_lock(&c->g->mu);
		fence = c->g->proxy;
		pthread_mutex_unlock(&c->g->mu);
	}
	if (fence && gw_proxy_fence(fence, c->ns, gw_gc_fence_kind, FENCE_TIMEOUT_MS, e) < 0) {
		bt_err_wrap(e, "gc: namespace %s", c->ns);
		fence = NULL;
		rc = -1;
	}
	if (rc == 0)
		rc = check_idle(c, e);
	if (rc == 0)
		rc = mark(c, e);
	if (rc == 0)
		rc = sweep_content(c, e);
	for (size_t i = 0; rc == 0 && i < c->n_sets; i++)
		rc = sweep_snapshots(c, &c->sets[i], e);
	if (fence)
		gw_proxy_unfence(fence);
	pthread_mutex_unlock(&c->g->run_mu);
	c->resp.removed = c->removed;
	c->resp.duration_us = (bt_mono_ns() - started) / 1000;
	if (rc < 0)
		bt_log_warn("gc of namespace %s: %s", c->ns, e->msg);
	else if (!c->dry_run && c->resp.n_removed)
		bt_log_info("gc of namespace %s: removed %zu objects (%" PRId64 " bytes of content, %" PRId64
			    " of snapshots) in %" PRId64 " ms",
			    c->ns, c->resp.n_removed, c->resp.content_bytes, c->resp.snapshot_bytes,
			    c->resp.duration_us / 1000);
	return rc;
}

int gw_gc_run(gw_gc *g, const char *ns, bt_err *e)
{
	collection c = { .g = g, .ns = ns };
	int rc = collect(&c, e);
	collection_clear(&c);
	return rc;
}

static void h_collect(bt_call *call, void *ctx)
{
	const Berth__Gc__V1__CollectRequest *q = bt_call_req(call);
	collection c = { .g = ctx, .ns = bt_call_namespace(call), .dry_run = q->dry_run };
	bt_err e = { 0 };

	if (collect(&c, &e) < 0)
		bt_call_error(call, &e);
	else
		bt_call_reply(call, &c.resp.base);
	collection_clear(&c);
}

/* --- scheduling ------------------------------------------------------------------------- */

#define BUSY_RETRY_MS 2000

/* Caller holds mu.  A namespace already due keeps its (earlier) time. */
static void due_at(gw_gc *g, const char *ns, int64_t when)
{
	int64_t *t = bt_map_sget(g->due, ns);
	if (t) {
		if (when < *t)
			*t = when;
		return;
	}
	t = bt_xcalloc(1, sizeof(*t));
	*t = when;
	bt_map_sput(g->due, ns, t);
	pthread_cond_broadcast(&g->cv);
}

void gw_gc_schedule(gw_gc *g, const char *ns)
{
	if (!g || !g->started)
		return;
	pthread_mutex_lock(&g->mu);
	due_at(g, ns, bt_mono_ns() + g->delay_ms * 1000000);
	pthread_mutex_unlock(&g->mu);
}

/* The namespace due first, taken out of the table (caller holds mu); NULL
 * when none is due yet (*wait_ns: until the first one is, or -1). */
static char *take_due(gw_gc *g, int64_t now, int64_t *wait_ns)
{
	bt_map_iter it;
	const void *k;
	size_t kl;
	void *v;
	char *best = NULL;
	int64_t first = -1;

	bt_map_iter_init(&it, g->due);
	while (bt_map_iter_next(&it, &k, &kl, &v)) {
		int64_t t = *(int64_t *)v;
		if (t <= now && !best)
			best = bt_xstrndup(k, kl);
		if (first < 0 || t < first)
			first = t;
	}
	if (best)
		free(bt_map_sdel(g->due, best));
	*wait_ns = first < 0 ? -1 : first - now;
	return best;
}

static void *scheduler_main(void *arg)
{
	gw_gc *g = arg;

	pthread_mutex_lock(&g->mu);
	while (!g->stop) {
		int64_t wait_ns;
		char *ns = take_due(g, bt_mono_ns(), &wait_ns);
		if (!ns) {
			if (wait_ns < 0) {
				pthread_cond_wait(&g->cv, &g->mu);
			} else {
				struct timespec ts = bt_timespec_in(CLOCK_REALTIME, wait_ns);
				pthread_cond_timedwait(&g->cv, &g->mu, &ts);
			}
			continue;
		}
		pthread_mutex_unlock(&g->mu);
		bt_err e = { 0 };
		int rc = gw_gc_run(g, ns, &e);
		pthread_mutex_lock(&g->mu);
		if (rc < 0 && e.code == BT_UNAVAILABLE && !g->stop)
			due_at(g, ns, bt_mono_ns() + (int64_t)BUSY_RETRY_MS * 1000000);
		free(ns);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

int gw_gc_start(gw_gc *g, int64_t delay_ms, bt_err *e)
{
	if (delay_ms <= 0)
		return 0;
	g->delay_ms = delay_ms;
	if (pthread_create(&g->thread, NULL, scheduler_main, g) != 0)
		return bt_err_set(e, BT_INTERNAL, "cannot start the gc scheduler thread");
	g->started = true;
	return 0;
}

static const bt_method methods[] = {
	{ "Collect", h_collect, 0 },
};

void gw_gc_service(gw_gc *g, bt_service *svc)
{
	svc->name = "gc";
	svc->desc = &berth__gc__v1__gc__descriptor;
	svc->methods = methods;
	svc->n_methods = BT_ARRAY_LEN(methods);
	svc->ctx = g;
}
