/*
 * image_pull — the pull pipeline and push.
 *
 * Pull: resolve the reference, fetch the root document (and, for an index,
 * the manifest of the wanted platform) and the config, storing each in the
 * content store; then the layers.  A fetch manager starts layer downloads
 * in order, a few at a time; each download's bytes are teed into two
 * pipes: one feeds a content-store writer (the blob is stored whatever
 * happens next), the other feeds the layer applier.  The job's own thread
 * applies layers one after the other, each as soon as its parent is
 * committed, reading the pipe of a layer being downloaded or, for a layer
 * the store already had, the content store itself.  A pipe that fills
 * pauses its download, so memory stays bounded.
 *
 * Single flight: one download per namespace and digest, one unpack per
 * snapshotter, namespace and chain ID (image_job.c).
 */
#define _GNU_SOURCE
#include "image_pull.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bt_ident.h"
#include "bt_log.h"
#include "bt_oci.h"
#include "bt_pbmap.h"
#include "bt_util.h"
#include "image_gc.h"
#include "image_pipe.h"
#include "image_ref.h"
#include "image_registry.h"

#define PIPE_SIZE (16 << 20)
#define PROGRESS_STEP (1 << 20)

struct image_pull_req {
	image_env *env;
	image_store *store;
	char *ns;
	img_ref ref;
	char name[IMG_REF_STR_MAX];
	char *platform;
	char *snapshotter;
	bool unpack;
	bool plain_http;
	char *user;
	char *lease; /* "" for none */
	bt_labels labels;
	int max_parallel;
};

image_pull_req *image_pull_req_new(image_env *env, image_store *store, const char *ns,
				   const Berth__Images__V1__PullRequest *r, int max_parallel, bt_err *e)
{
	image_pull_req *p = bt_xzalloc(sizeof(*p));
	bt_oci_platform plat;

	if (img_ref_parse(r->ref, &p->ref, e) < 0)
		goto fail;
	if (bt_oci_platform_parse(r->platform, &plat, e) < 0)
		goto fail;
	bt_oci_platform_clear(&plat);
	bt_pbmap_to_labels((void *const *)r->labels, r->n_labels, &p->labels);
	if (bt_labels_validate(&p->labels, false, e) < 0)
		goto fail;
	if (r->user[0] && !strchr(r->user, ':')) {
		bt_err_set(e, BT_INVALID_ARGUMENT, "user \"%s\": expected USER:PASSWORD", r->user);
		goto fail;
	}
	if (r->lease[0] && bt_ident_validate("lease", r->lease, e) < 0) {
		e->code = BT_INVALID_ARGUMENT;
		goto fail;
	}
	img_ref_string(&p->ref, p->name);
	p->env = env;
	p->store = store;
	p->ns = bt_xstrdup(ns);
	p->platform = bt_xstrdup(r->platform);
	p->snapshotter = bt_xstrdup(image_snapshotter_name(env, r->snapshotter));
	p->unpack = r->unpack;
	p->plain_http = r->plain_http;
	p->user = bt_xstrdup(r->user);
	p->lease = bt_xstrdup(r->lease);
	p->max_parallel = max_parallel > 0 ? max_parallel : 4;
	return p;
fail:
	image_pull_req_free(p);
	return NULL;
}

void image_pull_req_free(void *req)
{
	image_pull_req *p = req;
	if (!p)
		return;
	free(p->ns);
	free(p->platform);
	free(p->snapshotter);
	free(p->user);
	free(p->lease);
	bt_labels_clear(&p->labels);
	free(p);
}

char *image_pull_key(const image_pull_req *r)
{
	/* pulls for different leases are different jobs: each lease gets all it holds */
	return bt_xasprintf("pull\n%s\n%s\n%s\n%s\n%d\n%s", r->ns, r->name, r->platform, r->snapshotter, r->unpack,
			    r->lease);
}

/* --- content helpers ------------------------------------------------------------------ */

typedef struct membuf {
	const char *p;
	size_t len, off;
} membuf;

static int64_t mem_source(void *arg, void *buf, size_t len)
{
	membuf *m = arg;
	size_t n = BT_MIN(len, m->len - m->off);
	memcpy(buf, m->p + m->off, n);
	m->off += n;
	return (int64_t)n;
}

static int mem_seek(void *arg, int64_t off)
{
	membuf *m = arg;
	if (off < 0 || (size_t)off > m->len)
		return -1;
	m->off = (size_t)off;
	return 0;
}

/* Stores a small document in the content store (nothing to do when it is there). */
static int store_doc(berth_client *content, const char *ns, const char *kind, const char *digest, const char *data,
		     size_t len, const bt_labels *labels, bt_err *e)
{
	membuf m = { data, len, 0 };
	_cleanup_free_ char *ref = bt_xasprintf("%s-%s", kind, digest);
	berth_label *l = bt_xcalloc(labels->n ? labels->n : 1, sizeof(*l));
	char out[72];
	berth_error err;
	int rc = 0;

	for (size_t i = 0; i < labels->n; i++) {
		l[i].key = labels->keys[i];
		l[i].value = labels->vals[i];
	}
	berth_ingest_opts o = {
		.ref = ref,
		.expected_digest = digest,
		.expected_size = (int64_t)len,
		.labels = l,
		.n_labels = labels->n,
		.source = mem_source,
		.seek = mem_seek,
		.arg = &m,
	};
	if (berth_content_ingest(content, ns, &o, out, &err) < 0)
		rc = bt_err_set(e, err.code, "store %s %s: %s", kind, digest, err.message);
	free(l);
	return rc;
}

static bool content_has(berth_client *content, const char *ns, const char *digest)
{
	berth_content_info info;
	berth_error err;
	if (berth_content_get_info(content, ns, digest, &info, &err) < 0)
		return false;
	berth_content_info_clear(&info);
	return true;
}

/* --- layers --------------------------------------------------------------------------- */

typedef enum { L_PENDING, L_FETCHING, L_STORED, L_FAILED } layer_state;

typedef struct layer {
	struct puller *pl;
	size_t idx;
	const bt_oci_desc *d;
	char chain[BT_DIGEST_STR_LEN];
	const char *diff_id;
	bool in_content;   /* stored before this pull */
	bool chain_exists; /* unpacked before this pull */
	bool need_unpack;
	/* under pl->mu */
	layer_state state;
	bool tee;           /* the download also feeds upipe */
	bool applied;       /* unpacked (or found unpacked): "downloaded" would be news from the past */
	bool once_held;     /* this pull owns the download key … */
	char *once_key;     /* … this one: namespace and digest */
	bt_err err;
	/* the download */
	image_pipe *cpipe;  /* to the content writer */
	image_pipe *upipe;  /* to the applier (when tee) */
	img_xfer *xfer;
	pthread_t writer;
	bool writer_started;
	int64_t received;
	int64_t reported;
} layer;

typedef struct puller {
	image_pull_req *rq;
	xjob *job;
	img_repo *repo;
	bt_labels blob_labels; /* on every stored blob: where it came from */
	layer *layers;
	size_t n;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int running;   /* downloads in progress */
	size_t next;   /* next layer to consider starting */
	bool stop;     /* the pull failed: start nothing more */
	pthread_t manager;
	bool manager_started;
	berth_client *leases; /* the gateway, when the caller names a lease */
} puller;

/* With the caller's lease, holds a blob ("content") or a chain
 * ("snapshots/<sn>") before the pull stores or reuses it: from then on a
 * collection keeps it whatever becomes of the pull. */
static int hold(puller *pl, const char *type, const char *id, bt_err *e)
{
	berth_error err;

	if (!pl->leases)
		return 0;
	if (berth_lease_add_resource(pl->leases, pl->rq->ns, pl->rq->lease, type, id, &err) < 0)
		return bt_err_set(e, err.code, "%s", err.message);
	return 0;
}

static void set_progress(layer *l, const char *state, int64_t offset, const char *msg)
{
	xjob_progress(l->pl->job, "layer", l->d->media_type, l->d->digest, l->d->size, state, offset, l->d->size, msg);
}

/* Reports a layer stored: "downloaded" while its unpack is to come, else
 * final_state; never over the state its unpack reported (the store and the
 * unpack of a layer finish in either order). */
static void downloaded(layer *l, const char *final_state)
{
	pthread_mutex_lock(&l->pl->mu);
	if (!l->applied)
		set_progress(l, l->need_unpack ? "downloaded" : final_state, l->d->size, NULL);
	pthread_mutex_unlock(&l->pl->mu);
}

/* Transfer thread: the download's bytes, teed into the pipes. */
static int on_data(void *arg, const void *p, size_t n, bt_err *e)
{
	layer *l = arg;

	(void)e;
	if (!image_pipe_room(l->cpipe, n) || (l->upipe && !image_pipe_room(l->upipe, n)))
		return IMG_XFER_PAUSE;
	image_pipe_put(l->cpipe, p, n);
	if (l->upipe)
		image_pipe_put(l->upipe, p, n);
	l->received += (int64_t)n;
	if (l->received - l->reported >= PROGRESS_STEP) {
		l->reported = l->received;
		pthread_mutex_lock(&l->pl->mu); /* held briefly, never across a wait */
		if (!l->applied)
			set_progress(l, "downloading", l->received, NULL);
		pthread_mutex_unlock(&l->pl->mu);
	}
	return 0;
}

static void on_done(void *arg, const bt_err *e)
{
	layer *l = arg;
	image_pipe_close(l->cpipe, e);
	if (l->upipe)
		image_pipe_close(l->upipe, e);
}

/* An ingest's source: a pipe, keeping the error that ended it. */
typedef struct pipe_src {
	image_pipe *pipe;
	bt_err err;
} pipe_src;

static int64_t pipe_source(void *arg, void *buf, size_t len)
{
	pipe_src *s = arg;
	ssize_t n = image_pipe_read(s->pipe, buf, len, &s->err);
	return n < 0 ? -1 : n;
}

/* The content writer of one download: the bytes from cpipe into an ingest. */
static void *writer_main(void *arg)
{
	layer *l = arg;
	puller *pl = l->pl;
	bt_err e = { 0 };
	berth_error err;
	char digest[72];
	berth_client *content = image_content_client(pl->rq->env, &e);
	berth_label *lbl = bt_xcalloc(pl->blob_labels.n + 1, sizeof(*lbl));

	for (size_t i = 0; i < pl->blob_labels.n; i++) {
		lbl[i].key = pl->blob_labels.keys[i];
		lbl[i].value = pl->blob_labels.vals[i];
	}
	_cleanup_free_ char *ref = bt_xasprintf("layer-%s", l->d->digest);
	pipe_src src = { .pipe = l->cpipe };
	if (content) {
		berth_ingest_opts o = {
			.ref = ref,
			.expected_digest = l->d->digest,
			.expected_size = l->d->size,
			.labels = lbl,
			.n_labels = pl->blob_labels.n,
			.source = pipe_source,
			.arg = &src,
			.retry_ms = -1, /* the pipe cannot rewind: a lost path fails this pull */
		};
		if (berth_content_ingest(content, pl->rq->ns, &o, digest, &err) < 0) {
			if (src.err.code != BT_OK) /* the download failed: say why */
				e = src.err;
			else
				bt_err_set(&e, err.code, "store layer %s: %s", l->d->digest, err.message);
		}
	}
	/* stored (or refused): the rest of the download is not for the store */
	image_pipe_detach(l->cpipe);
	if (l->xfer && e.code == BT_OK && img_xfer_wait(l->xfer, &e) < 0)
		bt_err_wrap(&e, "layer %s", l->d->digest);
	berth_client_free(&content);
	free(lbl);

	pthread_mutex_lock(&pl->mu);
	l->state = e.code == BT_OK ? L_STORED : L_FAILED;
	l->err = e;
	pl->running--;
	if (e.code != BT_OK)
		pl->stop = true;
	pthread_cond_broadcast(&pl->cv);
	pthread_mutex_unlock(&pl->mu);
	if (l->once_held)
		xonce_end(pl->rq->env->fetches, l->once_key, e.code == BT_OK);
	if (e.code == BT_OK)
		downloaded(l, "done");
	else
		set_progress(l, "error", l->received, e.msg);
	return NULL;
}

/* Starts the download of l (manager thread). 0: started or not needed. */
static int start_download(puller *pl, layer *l, berth_client *content, bt_err *e)
{
	_cleanup_free_ char *key = bt_xasprintf("%s\n%s", pl->rq->ns, l->d->digest);
	int mine = xonce_begin(pl->rq->env->fetches, key);

	/* another pull fetched the same blob meanwhile (we waited for it), or
	 * stored it between our first look and now */
	if (mine == 0 || content_has(content, pl->rq->ns, l->d->digest)) {
		if (mine)
			xonce_end(pl->rq->env->fetches, key, true);
		pthread_mutex_lock(&pl->mu);
		l->state = L_STORED;
		l->tee = false;
		pthread_cond_broadcast(&pl->cv);
		pthread_mutex_unlock(&pl->mu);
		downloaded(l, "exists");
		return 0;
	}
	l->once_held = true;
	l->once_key = BT_STEAL(key);
	l->cpipe = image_pipe_new(PIPE_SIZE);
	if (l->tee)
		l->upipe = image_pipe_new(PIPE_SIZE);
	img_fetch_opts fo = {
		.digest = l->d->digest,
		.size = l->d->size,
		.urls = (const char *const *)l->d->urls,
		.on_data = on_data,
		.on_done = on_done,
		.arg = l,
	};
	set_progress(l, "downloading", 0, NULL);
	pthread_mutex_lock(&pl->mu);
	l->state = L_FETCHING;
	pl->running++;
	/* the applier may be waiting for this layer to start: it must read along,
	 * or the pipe fills and the download stalls for good */
	pthread_cond_broadcast(&pl->cv);
	pthread_mutex_unlock(&pl->mu);
	if (img_fetch_blob(pl->repo, &fo, &l->xfer, e) < 0) {
		bt_err_wrap(e, "layer %s", l->d->digest);
		bt_err ce = *e;
		on_done(l, &ce);
	} else {
		image_pipe_set_xfer(l->cpipe, l->xfer);
		if (l->upipe)
			image_pipe_set_xfer(l->upipe, l->xfer);
	}
	if (pthread_create(&l->writer, NULL, writer_main, l) != 0) {
		/* no thread for the writer: stop the download, report it */
		img_xfer_cancel(l->xfer);
		image_pipe_detach(l->cpipe);
		pthread_mutex_lock(&pl->mu);
		l->state = L_FAILED;
		bt_err_set(&l->err, BT_RESOURCE_EXHAUSTED, "cannot start a thread for layer %s", l->d->digest);
		pl->running--;
		pl->stop = true;
		pthread_cond_broadcast(&pl->cv);
		pthread_mutex_unlock(&pl->mu);
		xonce_end(pl->rq->env->fetches, l->once_key, false);
		l->once_held = false;
		return -1;
	}
	l->writer_started = true;
	return 0;
}

/* Starts downloads in layer order, a few at a time. */
static void *manager_main(void *arg)
{
	puller *pl = arg;
	bt_err ce;
	berth_client *content = image_content_client(pl->rq->env, &ce);

	for (size_t i = 0; i < pl->n; i++) {
		layer *l = &pl->layers[i];
		bt_err e = { 0 };

		if (l->in_content) {
			pthread_mutex_lock(&pl->mu);
			l->state = L_STORED;
			pthread_cond_broadcast(&pl->cv);
			pthread_mutex_unlock(&pl->mu);
			continue;
		}
		pthread_mutex_lock(&pl->mu);
		while (pl->running >= pl->rq->max_parallel && !pl->stop)
			pthread_cond_wait(&pl->cv, &pl->mu);
		bool stop = pl->stop;
		pthread_mutex_unlock(&pl->mu);
		if (stop)
			break;
		if (!content) {
			pthread_mutex_lock(&pl->mu);
			l->state = L_FAILED;
			l->err = ce;
			pl->stop = true;
			pthread_cond_broadcast(&pl->cv);
			pthread_mutex_unlock(&pl->mu);
			break;
		}
		start_download(pl, l, content, &e);
	}
	berth_client_free(&content);
	return NULL;
}

/* --- applying layers ------------------------------------------------------------------------ */

typedef struct layer_reader {
	layer *l;
	image_pipe *pipe;   /* the live download … */
	berth_reader *rd;   /* … or the content store */
} layer_reader;

static ssize_t read_layer(void *arg, void *buf, size_t len, bt_err *e)
{
	layer_reader *r = arg;
	if (r->pipe)
		return image_pipe_read(r->pipe, buf, len, e);
	berth_error err;
	int64_t n = berth_reader_read(r->rd, buf, len, &err);
	if (n < 0)
		return bt_err_set(e, err.code, "%s", err.message);
	return (ssize_t)n;
}

static void apply_progress(void *arg, int64_t consumed)
{
	layer_reader *r = arg;
	set_progress(r->l, "unpacking", consumed, NULL);
}

/* Applies layer l on its parent (job thread). */
static int apply_layer(puller *pl, layer *l, berth_client *snap, berth_client *content, bt_err *e)
{
	const char *sn = pl->rq->snapshotter;
	_cleanup_free_ char *once_key = bt_xasprintf("%s\n%s\n%s", sn, pl->rq->ns, l->chain);
	layer_reader r = { .l = l };
	berth_error err;
	int rc;

	/* wait until the layer is downloading (then read along) or stored */
	pthread_mutex_lock(&pl->mu);
	while (l->state == L_PENDING && !pl->stop)
		pthread_cond_wait(&pl->cv, &pl->mu);
	bool failed = l->state == L_FAILED || (l->state == L_PENDING && pl->stop);
	bt_err lerr = l->err;
	pthread_mutex_unlock(&pl->mu);
	if (failed) {
		*e = lerr.code ? lerr : (bt_err){ .code = BT_ABORTED, .msg = "pull stopped" };
		if (l->upipe)
			image_pipe_detach(l->upipe);
		return -1;
	}
	if (xonce_begin(pl->rq->env->unpacks, once_key) == 0) {
		/* another pull unpacked this chain meanwhile */
		if (l->upipe)
			image_pipe_detach(l->upipe);
		pthread_mutex_lock(&pl->mu);
		l->applied = true;
		set_progress(l, "exists", l->d->size, NULL);
		pthread_mutex_unlock(&pl->mu);
		return 0;
	}
	if (l->upipe) {
		r.pipe = l->upipe;
	} else {
		r.rd = berth_content_reader(content, pl->rq->ns, l->d->digest, 0, &err);
		if (!r.rd) {
			xonce_end(pl->rq->env->unpacks, once_key, false);
			return bt_err_set(e, err.code, "layer %s: %s", l->d->digest, err.message);
		}
	}
	image_layer_job lj = {
		.ns = pl->rq->ns,
		.snapshotter = sn,
		.parent_chain = l->idx ? pl->layers[l->idx - 1].chain : NULL,
		.chain = l->chain,
		.diff_id = l->diff_id,
		.read = read_layer,
		.arg = &r,
		.progress = apply_progress,
	};
	set_progress(l, "unpacking", 0, NULL);
	rc = image_unpack_layer(pl->rq->env, snap, &lj, e);
	if (l->upipe)
		image_pipe_detach(l->upipe); /* whatever happened, read no more */
	berth_reader_free(&r.rd);
	xonce_end(pl->rq->env->unpacks, once_key, rc >= 0);
	if (rc < 0) {
		/* the download's error, if it failed, explains better */
		pthread_mutex_lock(&pl->mu);
		while (l->state == L_FETCHING)
			pthread_cond_wait(&pl->cv, &pl->mu);
		if (l->state == L_FAILED)
			*e = l->err;
		pthread_mutex_unlock(&pl->mu);
		set_progress(l, "error", -1, e->msg);
		return -1;
	}
	pthread_mutex_lock(&pl->mu);
	l->applied = true;
	set_progress(l, rc == 1 ? "exists" : "unpacked", l->d->size, NULL);
	pthread_mutex_unlock(&pl->mu);
	return 0;
}

/* --- the job -------------------------------------------------------------------------------- */

static int fetch_doc(puller *pl, berth_client *content, const char *kind, const char *digest, const char *mt,
		     int64_t size, size_t max, char **data, size_t *len, bt_err *e)
{
	/* one download per namespace and digest, as for layers; a document
	 * stored already (by an earlier pull, or by the one we waited for) is
	 * read from the content store, which verified it */
	_cleanup_free_ char *key = bt_xasprintf("%s\n%s", pl->rq->ns, digest);
	int mine = xonce_begin(pl->rq->env->fetches, key);
	int rc = -1;

	if (content_has(content, pl->rq->ns, digest)) {
		bt_err re = { 0 };
		if (image_read_blob(content, pl->rq->ns, digest, max, data, len, &re) == 0) {
			if (mine)
				xonce_end(pl->rq->env->fetches, key, true);
			xjob_progress(pl->job, kind, mt, digest, size, "exists", size, size, NULL);
			return 0;
		}
		/* unreadable (removed meanwhile, or over the bound): fetch it */
	}
	xjob_progress(pl->job, kind, mt, digest, size, "downloading", 0, size, NULL);
	rc = !strcmp(kind, "config") ? img_fetch_blob_mem(pl->repo, digest, max, data, len, e)
				     : img_fetch_manifest(pl->repo, digest, max, data, len, NULL, e);
	if (rc == 0)
		rc = store_doc(content, pl->rq->ns, kind, digest, *data, *len, &pl->blob_labels, e);
	if (rc < 0) {
		free(*data);
		*data = NULL;
	}
	if (mine)
		xonce_end(pl->rq->env->fetches, key, rc == 0);
	xjob_progress(pl->job, kind, mt, digest, size, rc == 0 ? "done" : "error", rc == 0 ? size : 0, size,
		      rc == 0 ? NULL : e->msg);
	return rc;
}

static img_cred *user_cred(const image_pull_req *rq)
{
	if (!rq->user || !*rq->user)
		return NULL;
	img_cred *c = bt_xzalloc(sizeof(*c));
	const char *colon = strchr(rq->user, ':');
	c->host = bt_xstrdup(rq->ref.domain);
	c->username = bt_xstrndup(rq->user, (size_t)(colon - rq->user));
	c->password = bt_xstrdup(colon + 1);
	return c;
}

static void cred_free(img_cred *c)
{
	if (!c)
		return;
	free(c->host);
	free(c->username);
	free(c->password);
	free(c->identity_token);
	free(c);
}

int image_pull_run(xjob *j, void *req, bt_err *e)
{
	image_pull_req *rq = req;
	puller pl = { .rq = rq, .job = j };
	berth_client *content = NULL, *snap = NULL;
	bt_oci_platform want = { 0 };
	bt_oci_manifest man = { 0 };
	bt_oci_config cfg = { 0 };
	bt_oci_index idx = { 0 };
	char *root_doc = NULL, *man_doc = NULL, *cfg_doc = NULL;
	size_t root_len = 0, man_len = 0, cfg_len = 0;
	img_resolved root;
	char man_digest[BT_DIGEST_STR_LEN], man_mt[IMG_MEDIA_TYPE_MAX];
	int64_t man_size;
	img_cred *cred = user_cred(rq);
	char *snap_type = NULL;
	int rc = -1;

	pthread_mutex_init(&pl.mu, NULL);
	pthread_cond_init(&pl.cv, NULL);
	if (bt_oci_platform_parse(rq->platform, &want, e) < 0)
		goto out;
	content = image_content_client(rq->env, e);
	if (!content)
		goto out;
	if (rq->unpack && !(snap = image_snap_client(rq->env, rq->snapshotter, e)))
		goto out;
	if (*rq->lease) {
		/* a lease that does not exist fails the pull before anything is fetched */
		berth_lease *found = NULL;
		size_t n_found = 0;
		berth_error err;
		_cleanup_free_ char *filter = NULL;
		if (bt_ident_validate("lease id", rq->lease, e) < 0)
			goto out;
		filter = bt_xasprintf("id==%s", rq->lease);
		const char *filters[] = { filter };
		if (!(pl.leases = image_gateway_client(rq->env, e)))
			goto out;
		if (berth_lease_list(pl.leases, rq->ns, filters, 1, &found, &n_found, &err) < 0) {
			bt_err_set(e, err.code, "%s", err.message);
			goto out;
		}
		berth_leases_free(found, n_found);
		if (n_found == 0) {
			bt_err_set(e, BT_NOT_FOUND, "lease %s: not found", rq->lease);
			goto out;
		}
	}
	snap_type = bt_xasprintf("snapshots/%s", rq->snapshotter);
	img_repo_opts ro = { .plain_http = rq->plain_http, .cred = cred };
	pl.repo = img_repo_open(rq->env->registry, &rq->ref, &ro, e);
	if (!pl.repo)
		goto out;
	{
		_cleanup_free_ char *key = bt_xasprintf("berth.io/distribution.source.%s", rq->ref.domain);
		bt_labels_set(&pl.blob_labels, key, img_ref_repository(&rq->ref));
	}

	/* the root: a manifest or an index */
	if (img_resolve(pl.repo, NULL, &root, e) < 0) {
		bt_err_wrap(e, "resolve %s", rq->name);
		goto out;
	}
	const char *root_kind = bt_oci_is_index(root.media_type) ? "index" : "manifest";
	if (!bt_oci_is_index(root.media_type) && !bt_oci_is_manifest(root.media_type)) {
		bt_err_set(e, BT_UNIMPLEMENTED, "%s: unsupported media type %s", rq->name, root.media_type);
		goto out;
	}
	if (hold(&pl, "content", root.digest, e) < 0 ||
	    fetch_doc(&pl, content, root_kind, root.digest, root.media_type, root.size, OCI_MAX_MANIFEST, &root_doc,
		      &root_len, e) < 0)
		goto out;
	snprintf(man_digest, sizeof(man_digest), "%s", root.digest);
	snprintf(man_mt, sizeof(man_mt), "%s", root.media_type);
	man_size = root.size;
	if (bt_oci_is_index(root.media_type)) {
		if (bt_oci_parse_index(root_doc, root_len, &idx, e) < 0)
			goto out;
		int i = bt_oci_index_choose(&idx, &want, e);
		if (i < 0) {
			bt_err_wrap(e, "%s", rq->name);
			goto out;
		}
		if (!bt_oci_is_manifest(idx.manifests[i].media_type)) {
			bt_err_set(e, BT_UNIMPLEMENTED, "%s: nested index %s is not supported", rq->name,
				   idx.manifests[i].digest);
			goto out;
		}
		snprintf(man_digest, sizeof(man_digest), "%s", idx.manifests[i].digest);
		snprintf(man_mt, sizeof(man_mt), "%s", idx.manifests[i].media_type);
		man_size = idx.manifests[i].size;
		if (hold(&pl, "content", man_digest, e) < 0 ||
		    fetch_doc(&pl, content, "manifest", man_digest, man_mt, man_size, OCI_MAX_MANIFEST, &man_doc, &man_len,
			      e) < 0)
			goto out;
	} else {
		man_doc = BT_STEAL(root_doc);
		man_len = root_len;
	}
	if (bt_oci_parse_manifest(man_doc, man_len, &man, e) < 0) {
		bt_err_wrap(e, "manifest %s", man_digest);
		goto out;
	}
	if (hold(&pl, "content", man.config.digest, e) < 0 ||
	    fetch_doc(&pl, content, "config", man.config.digest, man.config.media_type, man.config.size, OCI_MAX_CONFIG,
		      &cfg_doc, &cfg_len, e) < 0)
		goto out;
	if (bt_oci_parse_config(cfg_doc, cfg_len, &cfg, e) < 0) {
		bt_err_wrap(e, "config %s", man.config.digest);
		goto out;
	}
	if (cfg.n_diff_ids != man.n_layers) {
		bt_err_set(e, BT_INVALID_ARGUMENT, "%s: the config lists %zu diffIDs for %zu layers", rq->name,
			   cfg.n_diff_ids, man.n_layers);
		goto out;
	}

	/* the layers: what is there already, what to fetch, what to unpack */
	pl.n = man.n_layers;
	pl.layers = bt_xcalloc(pl.n ? pl.n : 1, sizeof(*pl.layers));
	char (*chain)[BT_DIGEST_STR_LEN] = bt_xcalloc(pl.n ? pl.n : 1, sizeof(*chain));
	bt_oci_chain_ids(cfg.diff_ids, pl.n, chain);
	for (size_t i = 0; i < pl.n; i++) {
		layer *l = &pl.layers[i];
		l->pl = &pl;
		l->idx = i;
		l->d = &man.layers[i];
		snprintf(l->chain, sizeof(l->chain), "%s", chain[i]);
		l->diff_id = cfg.diff_ids[i];
		if (hold(&pl, "content", l->d->digest, e) < 0 ||
		    (rq->unpack && hold(&pl, snap_type, l->chain, e) < 0)) {
			free(chain);
			goto out;
		}
		l->in_content = content_has(content, rq->ns, l->d->digest);
		if (rq->unpack) {
			berth_snapshot_info info;
			berth_error err;
			if (berth_snapshot_stat(snap, rq->ns, rq->snapshotter, l->chain, &info, &err) == 0) {
				l->chain_exists = info.kind == BERTH_SNAPSHOT_COMMITTED;
				berth_snapshot_info_clear(&info);
			}
		}
		l->need_unpack = rq->unpack && !l->chain_exists;
		l->tee = l->need_unpack && !l->in_content;
		xjob_progress(j, "layer", l->d->media_type, l->d->digest, l->d->size,
			      l->in_content ? (l->need_unpack ? "downloaded" : "exists") : "waiting",
			      l->in_content ? l->d->size : 0, l->d->size, NULL);
	}
	free(chain);
	if (pthread_create(&pl.manager, NULL, manager_main, &pl) != 0) {
		bt_err_set(e, BT_RESOURCE_EXHAUSTED, "cannot start a transfer thread");
		goto out;
	}
	pl.manager_started = true;

	/* apply in order while downloads go on */
	rc = 0;
	for (size_t i = 0; i < pl.n && rc == 0; i++) {
		if (pl.layers[i].need_unpack)
			rc = apply_layer(&pl, &pl.layers[i], snap, content, e);
	}
	if (rc < 0) {
		pthread_mutex_lock(&pl.mu);
		pl.stop = true;
		pthread_cond_broadcast(&pl.cv);
		pthread_mutex_unlock(&pl.mu);
	}
	/* every download must end: stored, failed or cancelled */
	pthread_join(pl.manager, NULL);
	pl.manager_started = false;
	for (size_t i = 0; i < pl.n; i++) {
		layer *l = &pl.layers[i];
		if (l->upipe)
			image_pipe_detach(l->upipe);
		if (rc < 0 && l->xfer)
			img_xfer_cancel(l->xfer);
		if (l->writer_started)
			pthread_join(l->writer, NULL);
		if (rc == 0 && l->state == L_FAILED) {
			*e = l->err;
			rc = -1;
		}
	}
	if (rc < 0)
		goto out;
	rc = -1;

	/* the collector's references, before the record that makes them reachable */
	if (bt_oci_is_index(root.media_type) && image_gc_label_index(content, rq->ns, root.digest, &idx, e) < 0)
		goto out;
	if (image_gc_label_manifest(content, rq->ns, man_digest, &man, e) < 0)
		goto out;
	if (rq->unpack && pl.n > 0 &&
	    image_gc_label_config(content, rq->ns, man.config.digest, image_snapshotter_name(rq->env, rq->snapshotter),
				  pl.layers[pl.n - 1].chain, e) < 0)
		goto out;

	/* the record */
	image_rec rec = { 0 };
	rec.name = rq->name;
	rec.media_type = root.media_type;
	snprintf(rec.digest, sizeof(rec.digest), "%s", root.digest);
	rec.size = root.size;
	bt_labels_copy(&rec.labels, &rq->labels);
	int prc = image_store_put(rq->store, rq->ns, &rec, NULL, e);
	bt_labels_clear(&rec.labels);
	if (prc < 0)
		goto out;
	xjob_set_result(j, rq->name);
	rc = 0;
out:
	if (pl.manager_started) {
		pthread_mutex_lock(&pl.mu);
		pl.stop = true;
		pthread_cond_broadcast(&pl.cv);
		pthread_mutex_unlock(&pl.mu);
		pthread_join(pl.manager, NULL);
	}
	for (size_t i = 0; i < pl.n; i++) {
		layer *l = &pl.layers[i];
		if (l->writer_started && pl.manager_started)
			pthread_join(l->writer, NULL);
		img_xfer_free(&l->xfer);
		free(l->once_key);
		image_pipe_free(&l->cpipe);
		image_pipe_free(&l->upipe);
	}
	free(pl.layers);
	bt_labels_clear(&pl.blob_labels);
	img_repo_free(&pl.repo);
	berth_client_free(&pl.leases);
	berth_client_free(&content);
	berth_client_free(&snap);
	bt_oci_platform_clear(&want);
	bt_oci_manifest_clear(&man);
	bt_oci_config_clear(&cfg);
	bt_oci_index_clear(&idx);
	free(root_doc);
	free(man_doc);
	free(cfg_doc);
	cred_free(cred);
	free(snap_type);
	pthread_mutex_destroy(&pl.mu);
	pthread_cond_destroy(&pl.cv);
	return rc;
}

/* --- push ----------------------------------------------------------------------------------- */

struct image_push_req {
	image_env *env;
	image_store *store;
	char *ns;
	char *name;
	img_ref dest;
	char dest_str[IMG_REF_STR_MAX];
	char *platform;
	bool plain_http;
	char *user;
};

image_push_req *image_push_req_new(image_env *env, image_store *store, const char *ns,
				   const Berth__Images__V1__PushRequest *r, bt_err *e)
{
	image_push_req *p = bt_xzalloc(sizeof(*p));

	if (image_name_validate(r->name, e) < 0 || img_ref_parse(r->ref[0] ? r->ref : r->name, &p->dest, e) < 0)
		goto fail;
	if (r->platform[0]) {
		bt_oci_platform plat;
		if (bt_oci_platform_parse(r->platform, &plat, e) < 0)
			goto fail;
		bt_oci_platform_clear(&plat);
	}
	if (r->user[0] && !strchr(r->user, ':')) {
		bt_err_set(e, BT_INVALID_ARGUMENT, "user \"%s\": expected USER:PASSWORD", r->user);
		goto fail;
	}
	img_ref_string(&p->dest, p->dest_str);
	p->env = env;
	p->store = store;
	p->ns = bt_xstrdup(ns);
	p->name = bt_xstrdup(r->name);
	p->platform = bt_xstrdup(r->platform);
	p->plain_http = r->plain_http;
	p->user = bt_xstrdup(r->user);
	return p;
fail:
	image_push_req_free(p);
	return NULL;
}

void image_push_req_free(void *req)
{
	image_push_req *p = req;
	if (!p)
		return;
	free(p->ns);
	free(p->name);
	free(p->platform);
	free(p->user);
	free(p);
}

char *image_push_key(const image_push_req *r)
{
	return bt_xasprintf("push\n%s\n%s\n%s\n%s", r->ns, r->name, r->dest_str, r->platform);
}

typedef struct pusher {
	image_push_req *rq;
	xjob *job;
	img_repo *repo;
	berth_client *content;
	char **done; /* blobs handled */
} pusher;

static int spool_write(void *arg, const void *data, size_t len)
{
	return bt_write_all(*(int *)arg, data, len);
}

static int spool_read(void *arg, int64_t off, void *buf, size_t len, size_t *got, bt_err *e)
{
	ssize_t n = bt_pread_all(*(int *)arg, buf, len, off);
	if (n < 0)
		return bt_err_errno(e, errno, "read the spooled blob");
	*got = (size_t)n;
	return 0;
}

/* The repository of the destination registry this blob came from, if any (for a cross-repo mount). */
static char *mount_source(pusher *ps, const char *digest)
{
	berth_content_info info;
	berth_error err;
	char *from = NULL;
	_cleanup_free_ char *key = bt_xasprintf("berth.io/distribution.source.%s", ps->rq->dest.domain);

	if (berth_content_get_info(ps->content, ps->rq->ns, digest, &info, &err) < 0)
		return NULL;
	for (size_t i = 0; i < info.n_labels; i++)
		if (!strcmp(info.labels[i].key, key) && strcmp(info.labels[i].value, img_ref_repository(&ps->rq->dest)))
			from = bt_xstrdup(info.labels[i].value);
	berth_content_info_clear(&info);
	return from;
}

static int push_blob(pusher *ps, const char *kind, const bt_oci_desc *d, bt_err *e)
{
	for (size_t i = 0; ps->done && ps->done[i]; i++)
		if (!strcmp(ps->done[i], d->digest))
			return 0;
	bt_strv_push(&ps->done, d->digest);
	int64_t have;
	int ex = img_blob_exists(ps->repo, d->digest, &have, e);
	if (ex < 0)
		return bt_err_wrap(e, "%s %s", kind, d->digest);
	if (ex == 1) {
		xjob_progress(ps->job, kind, d->media_type, d->digest, d->size, "exists", d->size, d->size, NULL);
		return 0;
	}
	/* spool the blob from the content store to a file: uploads may restart from 0 */
	_cleanup_free_ char *rnd = bt_random_hex(8);
	_cleanup_free_ char *path = bt_xasprintf("%s/push-%s", ps->rq->env->spool_dir, rnd);
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	berth_error err;
	if (fd < 0)
		return bt_err_errno(e, errno, "create %s", path);
	unlink(path);
	xjob_progress(ps->job, kind, d->media_type, d->digest, d->size, "uploading", 0, d->size, NULL);
	if (berth_content_read(ps->content, ps->rq->ns, d->digest, 0, 0, spool_write, &fd, &err) < 0) {
		if (err.code == BERTH_NOT_FOUND)
			return bt_err_set(e, BT_FAILED_PRECONDITION, "%s %s is not stored (pull the image again)", kind,
					  d->digest);
		return bt_err_set(e, err.code, "%s %s: %s", kind, d->digest, err.message);
	}
	_cleanup_free_ char *from = mount_source(ps, d->digest);
	img_push_opts po = {
		.digest = d->digest,
		.size = d->size,
		.mount_from = from,
		.on_read = spool_read,
		.arg = &fd,
	};
	bool mounted = false;
	if (img_push_blob(ps->repo, &po, &mounted, e) < 0) {
		xjob_progress(ps->job, kind, NULL, d->digest, -1, "error", -1, -1, e->msg);
		return bt_err_wrap(e, "push %s %s", kind, d->digest);
	}
	xjob_progress(ps->job, kind, NULL, d->digest, -1, mounted ? "mounted" : "done", d->size, d->size, NULL);
	return 0;
}

/* Pushes a manifest's blobs, then the manifest under tag (or its digest). */
static int push_manifest(pusher *ps, const bt_oci_desc *d, const char *tag, bt_err *e)
{
	_cleanup_free_ char *doc = NULL;
	size_t len;
	bt_oci_manifest m;

	if (image_read_blob(ps->content, ps->rq->ns, d->digest, OCI_MAX_MANIFEST, &doc, &len, e) < 0)
		return bt_err_wrap(e, "manifest");
	if (bt_oci_parse_manifest(doc, len, &m, e) < 0)
		return bt_err_wrap(e, "manifest %s", d->digest);
	int rc = push_blob(ps, "config", &m.config, e);
	for (size_t i = 0; rc == 0 && i < m.n_layers; i++)
		rc = push_blob(ps, "layer", &m.layers[i], e);
	bt_oci_manifest_clear(&m);
	if (rc < 0)
		return -1;
	if (img_push_manifest(ps->repo, tag ? tag : d->digest, d->media_type, doc, len, NULL, e) < 0)
		return bt_err_wrap(e, "push manifest %s", d->digest);
	xjob_progress(ps->job, "manifest", d->media_type, d->digest, d->size, "done", d->size, d->size, NULL);
	return 0;
}

int image_push_run(xjob *j, void *req, bt_err *e)
{
	image_push_req *rq = req;
	pusher ps = { .rq = rq, .job = j };
	image_rec rec = { 0 };
	bt_oci_desc root = { 0 };
	bt_oci_index idx = { 0 };
	_cleanup_free_ char *doc = NULL;
	size_t len;
	const char *tag = rq->dest.digest[0] ? NULL : rq->dest.tag;
	img_cred *cred = NULL;
	int rc = -1;

	if (rq->user && *rq->user) {
		const char *colon = strchr(rq->user, ':');
		cred = bt_xzalloc(sizeof(*cred));
		cred->host = bt_xstrdup(rq->dest.domain);
		cred->username = bt_xstrndup(rq->user, (size_t)(colon - rq->user));
		cred->password = bt_xstrdup(colon + 1);
	}
	if (image_store_get(rq->store, rq->ns, rq->name, &rec, e) < 0)
		goto out;
	if (!(ps.content = image_content_client(rq->env, e)))
		goto out;
	img_repo_opts ro = { .plain_http = rq->plain_http, .push = true, .cred = cred };
	if (!(ps.repo = img_repo_open(rq->env->registry, &rq->dest, &ro, e)))
		goto out;
	root.media_type = bt_xstrdup(rec.media_type);
	snprintf(root.digest, sizeof(root.digest), "%s", rec.digest);
	root.size = rec.size;
	if (bt_oci_is_manifest(root.media_type)) {
		if (push_manifest(&ps, &root, tag, e) < 0)
			goto out;
		xjob_set_result(j, root.digest);
		rc = 0;
		goto out;
	}
	if (!bt_oci_is_index(root.media_type)) {
		bt_err_set(e, BT_UNIMPLEMENTED, "image %s: cannot push media type %s", rq->name, root.media_type);
		goto out;
	}
	if (image_read_blob(ps.content, rq->ns, root.digest, OCI_MAX_MANIFEST, &doc, &len, e) < 0 ||
	    bt_oci_parse_index(doc, len, &idx, e) < 0)
		goto out;
	if (rq->platform[0]) {
		/* one platform: its manifest goes up under the tag */
		bt_oci_platform want;
		bt_oci_platform_parse(rq->platform, &want, e);
		int i = bt_oci_index_choose(&idx, &want, e);
		bt_oci_platform_clear(&want);
		if (i < 0 || push_manifest(&ps, &idx.manifests[i], tag, e) < 0)
			goto out;
		xjob_set_result(j, idx.manifests[i].digest);
		rc = 0;
		goto out;
	}
	for (size_t i = 0; i < idx.n; i++)
		if (bt_oci_is_manifest(idx.manifests[i].media_type) && push_manifest(&ps, &idx.manifests[i], NULL, e) < 0)
			goto out;
	if (img_push_manifest(ps.repo, tag ? tag : root.digest, root.media_type, doc, len, NULL, e) < 0) {
		bt_err_wrap(e, "push index %s", root.digest);
		goto out;
	}
	xjob_progress(j, "index", root.media_type, root.digest, root.size, "done", root.size, root.size, NULL);
	xjob_set_result(j, root.digest);
	rc = 0;
out:
	image_rec_clear(&rec);
	bt_oci_desc_clear(&root);
	bt_oci_index_clear(&idx);
	bt_strv_free(ps.done);
	img_repo_free(&ps.repo);
	berth_client_free(&ps.content);
	cred_free(cred);
	return rc;
}
