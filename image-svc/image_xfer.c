/*
 * image_xfer — the transfer handlers: each request finds or starts its job
 * (image_job.c) and streams the job's progress until it ends.  The work is
 * in image_pull.c, image_push.c and image_unpack.c.
 */
#define _GNU_SOURCE
#include "image_xfer.h"

#include <string.h>

#include "berth/images/v1/images.pb-c.h"
#include "bt_gc.h"
#include "bt_log.h"
#include "bt_oci.h"
#include "bt_pbmap.h"
#include "bt_util.h"
#include "image_job.h"
#include "image_pull.h"
#include "image_unpack.h"

struct image_xfer {
	image_env env;
	image_store *store;
	xjobs *jobs;
	int max_parallel;
};

image_xfer *image_xfer_new(const image_xfer_opts *o, bt_err *e)
{
	image_xfer *x = bt_xzalloc(sizeof(*x));

	if (image_env_init(&x->env, o->cfg, o->state_dir, e) < 0) {
		free(x);
		return NULL;
	}
	x->store = o->store;
	x->jobs = xjobs_new();
	x->max_parallel = o->max_parallel_layers > 0 ? o->max_parallel_layers : 4;
	return x;
}

void image_xfer_free(image_xfer **xp)
{
	image_xfer *x = *xp;
	if (!x)
		return;
	xjobs_free(&x->jobs, 5000);
	if (!x->jobs) {
		image_env_clear(&x->env);
		free(x);
	}
	*xp = NULL;
}

image_env *image_xfer_env(image_xfer *x)
{
	return &x->env;
}

int image_xfer_ns_usage(void *arg, const char *ns, char ***holds, bt_err *e)
{
	image_xfer *x = arg;
	if (image_store_ns_usage(x->store, ns, holds, e) < 0)
		return -1;
	size_t n = xjobs_running_in(x->jobs, ns);
	if (n) {
		_cleanup_free_ char *line = bt_xasprintf("%zu transfer%s " BT_GC_BUSY, n, n == 1 ? "" : "s");
		bt_strv_push(holds, line);
	}
	return 0;
}

int image_xfer_recover(image_xfer *x, bt_err *e)
{
	return image_env_recover(&x->env, e);
}

/* --- progress messages ---------------------------------------------------------- */

/* The protobuf Progress entries for items (borrowing their strings). */
typedef struct pb_progress {
	Berth__Images__V1__Progress *p;
	Berth__Types__V1__Descriptor *d;
	Berth__Images__V1__Progress **ptrs;
	size_t n;
} pb_progress;

static void progress_to_pb(const xprog *items, size_t n, pb_progress *out)
{
	out->n = n;
	out->p = bt_xcalloc(n ? n : 1, sizeof(*out->p));
	out->d = bt_xcalloc(n ? n : 1, sizeof(*out->d));
	out->ptrs = bt_xcalloc(n ? n : 1, sizeof(*out->ptrs));
	for (size_t i = 0; i < n; i++) {
		berth__images__v1__progress__init(&out->p[i]);
		berth__types__v1__descriptor__init(&out->d[i]);
		out->d[i].media_type = items[i].media_type ? items[i].media_type : (char *)"";
		out->d[i].digest = (char *)items[i].digest;
		out->d[i].size = items[i].size;
		out->p[i].kind = (char *)items[i].kind;
		out->p[i].desc = &out->d[i];
		out->p[i].state = (char *)items[i].state;
		out->p[i].offset = items[i].offset;
		out->p[i].total = items[i].total;
		out->p[i].message = items[i].message ? items[i].message : (char *)"";
		out->ptrs[i] = &out->p[i];
	}
}

static void progress_pb_free(pb_progress *p)
{
	free(p->p);
	free(p->d);
	free(p->ptrs);
}

/* --- Unpack ---------------------------------------------------------------------- */

typedef struct unpack_arg {
	image_xfer *x;
	char *ns;
	char *name;
	char *platform;
	char *snapshotter;
} unpack_arg;

static void unpack_arg_free(void *p)
{
	unpack_arg *a = p;
	free(a->ns);
	free(a->name);
	free(a->platform);
	free(a->snapshotter);
	free(a);
}

static int unpack_run(xjob *j, void *arg, bt_err *e)
{
	unpack_arg *a = arg;
	image_rec rec = { 0 };
	bt_oci_platform want = { 0 };
	bt_oci_desc root = { 0 };
	char chain[BT_DIGEST_STR_LEN];
	int rc = -1;

	if (image_store_get(a->x->store, a->ns, a->name, &rec, e) < 0 ||
	    bt_oci_platform_parse(a->platform, &want, e) < 0)
		goto out;
	root.media_type = bt_xstrdup(rec.media_type);
	snprintf(root.digest, sizeof(root.digest), "%s", rec.digest);
	root.size = rec.size;
	if (image_unpack_stored(&a->x->env, j, a->ns, &root, &want, a->snapshotter, chain, e) < 0) {
		bt_err_wrap(e, "unpack %s", a->name);
		goto out;
	}
	xjob_set_result(j, chain);
	rc = 0;
out:
	image_rec_clear(&rec);
	bt_oci_platform_clear(&want);
	bt_oci_desc_clear(&root);
	return rc;
}

static int unpack_send(bt_call *call, const xprog *items, size_t n, bool final, const char *result, void *ctx,
		       bt_err *e)
{
	Berth__Images__V1__UnpackResponse r = BERTH__IMAGES__V1__UNPACK_RESPONSE__INIT;
	pb_progress p;
	int rc;

	(void)ctx;
	progress_to_pb(items, n, &p);
	r.n_progress = p.n;
	r.progress = p.ptrs;
	if (final && result)
		r.chain_id = (char *)result;
	rc = bt_call_send(call, &r.base, e);
	progress_pb_free(&p);
	return rc;
}

void image_xfer_unpack(image_xfer *x, bt_call *call)
{
	const Berth__Images__V1__UnpackRequest *r = bt_call_req(call);
	const char *ns = bt_call_namespace(call);
	const char *sn = image_snapshotter_name(&x->env, r->snapshotter);
	unpack_arg *a;
	xjob *j;
	bt_err e;

	if (image_name_validate(r->name, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	a = bt_xzalloc(sizeof(*a));
	a->x = x;
	a->ns = bt_xstrdup(ns);
	a->name = bt_xstrdup(r->name);
	a->platform = bt_xstrdup(r->platform);
	a->snapshotter = bt_xstrdup(sn);
	_cleanup_free_ char *key = bt_xasprintf("unpack\n%s\n%s\n%s\n%s", ns, r->name, r->platform, sn);
	j = xjob_get(x->jobs, key, unpack_run, a, unpack_arg_free, &e);
	if (!j) {
		bt_call_error(call, &e);
		return;
	}
	xjob_watch(j, call, unpack_send, NULL);
	xjob_put(x->jobs, j);
}

/* --- Pull -------------------------------------------------------------------------- */

static int pull_send(bt_call *call, const xprog *items, size_t n, bool final, const char *result, void *ctx,
		     bt_err *e)
{
	image_xfer *x = ctx;
	Berth__Images__V1__PullResponse r = BERTH__IMAGES__V1__PULL_RESPONSE__INIT;
	Berth__Images__V1__Image img = BERTH__IMAGES__V1__IMAGE__INIT;
	Berth__Types__V1__Descriptor target = BERTH__TYPES__V1__DESCRIPTOR__INIT;
	image_rec rec = { 0 };
	pb_progress p;
	int rc;

	progress_to_pb(items, n, &p);
	r.n_progress = p.n;
	r.progress = p.ptrs;
	/* the job's result is the image's name: send the record it made */
	if (final && result && image_store_get(x->store, bt_call_namespace(call), result, &rec, e) == 0) {
		img.name = rec.name;
		img.labels = (Berth__Images__V1__Image__LabelsEntry **)bt_pbmap_from_labels(
			&rec.labels, &berth__images__v1__image__labels_entry__descriptor, &img.n_labels);
		target.media_type = rec.media_type;
		target.digest = rec.digest;
		target.size = rec.size;
		img.target = &target;
		img.created_at = rec.created;
		img.updated_at = rec.updated;
		r.image = &img;
	}
	rc = bt_call_send(call, &r.base, e);
	bt_pbmap_free((void **)img.labels, img.n_labels);
	image_rec_clear(&rec);
	progress_pb_free(&p);
	return rc;
}

void image_xfer_pull(image_xfer *x, bt_call *call)
{
	const Berth__Images__V1__PullRequest *r = bt_call_req(call);
	const char *ns = bt_call_namespace(call);
	image_pull_req *pr;
	xjob *j;
	bt_err e;

	pr = image_pull_req_new(&x->env, x->store, ns, r, x->max_parallel, &e);
	if (!pr) {
		bt_call_error(call, &e);
		return;
	}
	_cleanup_free_ char *key = image_pull_key(pr);
	j = xjob_get(x->jobs, key, image_pull_run, pr, image_pull_req_free, &e);
	if (!j) {
		bt_call_error(call, &e);
		return;
	}
	xjob_watch(j, call, pull_send, x);
	xjob_put(x->jobs, j);
}

/* --- Push ------------------------------------------------------------------------------ */

static int push_send(bt_call *call, const xprog *items, size_t n, bool final, const char *result, void *ctx,
		     bt_err *e)
{
	Berth__Images__V1__PushResponse r = BERTH__IMAGES__V1__PUSH_RESPONSE__INIT;
	pb_progress p;
	int rc;

	(void)ctx;
	progress_to_pb(items, n, &p);
	r.n_progress = p.n;
	r.progress = p.ptrs;
	if (final && result)
		r.digest = (char *)result;
	rc = bt_call_send(call, &r.base, e);
	progress_pb_free(&p);
	return rc;
}

void image_xfer_push(image_xfer *x, bt_call *call)
{
	const Berth__Images__V1__PushRequest *r = bt_call_req(call);
	const char *ns = bt_call_namespace(call);
	image_push_req *pr;
	xjob *j;
	bt_err e;

	pr = image_push_req_new(&x->env, x->store, ns, r, &e);
	if (!pr) {
		bt_call_error(call, &e);
		return;
	}
	_cleanup_free_ char *key = image_push_key(pr);
	j = xjob_get(x->jobs, key, image_push_run, pr, image_push_req_free, &e);
	if (!j) {
		bt_call_error(call, &e);
		return;
	}
	xjob_watch(j, call, push_send, NULL);
	xjob_put(x->jobs, j);
}
