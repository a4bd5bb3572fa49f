/*
 * berth_images — the images API of libberth: records, and the transfers
 * the service runs (pull, push, unpack) with their progress streamed back.
 */
#define _GNU_SOURCE
#include <string.h>

#include "berth/images/v1/images.pb-c.h"
#include "berth_internal.h"
#include "bt_pbmap.h"
#include "bt_rpc.h"
#include "bt_util.h"

void berth_descriptor_clear(berth_descriptor *d)
{
	free(d->media_type);
	berth_labels_free(d->annotations, d->n_annotations);
	memset(d, 0, sizeof(*d));
}

void berth_image_clear(berth_image *i)
{
	free(i->name);
	berth_labels_free(i->labels, i->n_labels);
	berth_descriptor_clear(&i->target);
	memset(i, 0, sizeof(*i));
}

void berth_images_free(berth_image *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		berth_image_clear(&v[i]);
	free(v);
}

static void desc_from_pb(const Berth__Types__V1__Descriptor *p, berth_descriptor *out)
{
	memset(out, 0, sizeof(*out));
	if (!p)
		return;
	out->media_type = bt_xstrdup(p->media_type);
	snprintf(out->digest, sizeof(out->digest), "%s", p->digest ? p->digest : "");
	out->size = p->size;
	out->n_annotations = p->n_annotations;
	out->annotations = berth_labels_to_public((void *const *)p->annotations, p->n_annotations);
}

static void image_from_pb(const Berth__Images__V1__Image *p, berth_image *out)
{
	memset(out, 0, sizeof(*out));
	out->name = bt_xstrdup(p->name);
	out->n_labels = p->n_labels;
	out->labels = berth_labels_to_public((void *const *)p->labels, p->n_labels);
	desc_from_pb(p->target, &out->target);
	out->created_at = p->created_at;
	out->updated_at = p->updated_at;
}

/* A pb Image borrowing from img (and from the bt_labels it fills); release with pb_release. */
typedef struct pb_img {
	Berth__Images__V1__Image img;
	Berth__Types__V1__Descriptor target;
	bt_labels labels, annotations;
} pb_img;

static void image_to_pb(const berth_image *i, pb_img *p)
{
	memset(p, 0, sizeof(*p));
	berth__images__v1__image__init(&p->img);
	berth__types__v1__descriptor__init(&p->target);
	berth_labels_from_public(i->labels, i->n_labels, &p->labels);
	berth_labels_from_public(i->target.annotations, i->target.n_annotations, &p->annotations);
	p->img.name = i->name;
	p->img.labels = (Berth__Images__V1__Image__LabelsEntry **)bt_pbmap_from_labels(
		&p->labels, &berth__images__v1__image__labels_entry__descriptor, &p->img.n_labels);
	p->target.media_type = i->target.media_type ? i->target.media_type : (char *)"";
	p->target.digest = (char *)i->target.digest;
	p->target.size = i->target.size;
	p->target.annotations = (Berth__Types__V1__Descriptor__AnnotationsEntry **)bt_pbmap_from_labels(
		&p->annotations, &berth__types__v1__descriptor__annotations_entry__descriptor, &p->target.n_annotations);
	p->img.target = &p->target;
}

static void pb_release(pb_img *p)
{
	bt_pbmap_free((void **)p->img.labels, p->img.n_labels);
	bt_pbmap_free((void **)p->target.annotations, p->target.n_annotations);
	bt_labels_clear(&p->labels);
	bt_labels_clear(&p->annotations);
}

int berth_image_get(berth_client *c, const char *ns, const char *name, berth_image *out, berth_error *err)
{
	Berth__Images__V1__GetImageRequest req = BERTH__IMAGES__V1__GET_IMAGE_REQUEST__INIT;
	_cleanup_pb_ Berth__Images__V1__GetImageResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "images", "Get", ns);
	bt_err e;

	req.name = (char *)name;
	if (bt_conn_call(c->conn, &cs, &req.base, &berth__images__v1__get_image_response__descriptor, (void **)&resp,
			 &e) < 0)
		return berth_fail(err, &e);
	if (!resp->image) {
		bt_err_set(&e, BT_INTERNAL, "images.Get: reply without image");
		return berth_fail(err, &e);
	}
	image_from_pb(resp->image, out);
	return 0;
}

typedef struct image_acc {
	berth_image *v;
	size_t n;
} image_acc;

static void image_batch(const void *msg, void *arg)
{
	const Berth__Images__V1__ListImagesResponse *b = msg;
	image_acc *a = arg;

	a->v = bt_xrealloc(a->v, (a->n + b->n_images + 1) * sizeof(*a->v));
	for (size_t i = 0; i < b->n_images; i++)
		image_from_pb(b->images[i], &a->v[a->n++]);
}

int berth_image_list(berth_client *c, const char *ns, const char *const *filters, size_t n_filters,
		     berth_image **out, size_t *n_out, berth_error *err)
{
	Berth__Images__V1__ListImagesRequest req = BERTH__IMAGES__V1__LIST_IMAGES_REQUEST__INIT;
	bt_callspec cs = berth_spec(c, "images", "List", ns);
	image_acc a = { 0 };
	bt_err e;

	req.n_filters = n_filters;
	req.filters = (char **)filters;
	if (berth_stream_each(c, &cs, &req.base, &berth__images__v1__list_images_response__descriptor, image_batch, &a,
			      &e) < 0) {
		berth_images_free(a.v, a.n);
		return berth_fail(err, &e);
	}
	*out = a.v;
	*n_out = a.n;
	return 0;
}

int berth_image_create(berth_client *c, const char *ns, const berth_image *img, berth_image *out, berth_error *err)
{
	Berth__Images__V1__CreateImageRequest req = BERTH__IMAGES__V1__CREATE_IMAGE_REQUEST__INIT;
	_cleanup_pb_ Berth__Images__V1__CreateImageResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "images", "Create", ns);
	pb_img p;
	bt_err e;
	int rc;

	image_to_pb(img, &p);
	req.image = &p.img;
	rc = bt_conn_call(c->conn, &cs, &req.base, &berth__images__v1__create_image_response__descriptor,
			  (void **)&resp, &e);
	pb_release(&p);
	if (rc < 0)
		return berth_fail(err, &e);
	if (out && resp->image)
		image_from_pb(resp->image, out);
	return 0;
}

int berth_image_update(berth_client *c, const char *ns, const berth_image *img, const char *const *mask,
		       size_t n_mask, berth_image *out, berth_error *err)
{
	Berth__Images__V1__UpdateImageRequest req = BERTH__IMAGES__V1__UPDATE_IMAGE_REQUEST__INIT;
	_cleanup_pb_ Berth__Images__V1__UpdateImageResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "images", "Update", ns);
	pb_img p;
	bt_err e;
	int rc;

	image_to_pb(img, &p);
	req.image = &p.img;
	req.n_update_mask = n_mask;
	req.update_mask = (char **)mask;
	rc = bt_conn_call(c->conn, &cs, &req.base, &berth__images__v1__update_image_response__descriptor,
			  (void **)&resp, &e);
	pb_release(&p);
	if (rc < 0)
		return berth_fail(err, &e);
	if (out && resp->image)
		image_from_pb(resp->image, out);
	return 0;
}

int berth_image_delete(berth_client *c, const char *ns, const char *name, berth_error *err)
{
	Berth__Images__V1__DeleteImageRequest req = BERTH__IMAGES__V1__DELETE_IMAGE_REQUEST__INIT;
	bt_callspec cs = berth_spec(c, "images", "Delete", ns);
	bt_err e;

	req.name = (char *)name;
	if (bt_conn_call(c->conn, &cs, &req.base, NULL, NULL, &e) < 0)
		return berth_fail(err, &e);
	return 0;
}

/* --- transfers -------------------------------------------------------------- */

/* Hands a batch of progress entries to the caller's callback. */
static void report(berth_progress_fn_t fn, void *arg, Berth__Images__V1__Progress *const *p, size_t n)
{
	if (!fn || n == 0)
		return;
	berth_progress *v = bt_xcalloc(n, sizeof(*v));
	berth_descriptor *d = bt_xcalloc(n, sizeof(*d));
	for (size_t i = 0; i < n; i++) {
		desc_from_pb(p[i]->desc, &d[i]);
		v[i].kind = p[i]->kind;
		v[i].desc = &d[i];
		v[i].state = p[i]->state;
		v[i].offset = p[i]->offset;
		v[i].total = p[i]->total;
		v[i].message = p[i]->message;
	}
	fn(arg, v, n);
	for (size_t i = 0; i < n; i++)
		berth_descriptor_clear(&d[i]);
	free(d);
	free(v);
}

typedef struct xfer_acc {
	berth_progress_fn_t progress;
	void *arg;
	berth_image *image; /* pull */
	bool got;
	char *out;          /* push digest / unpack chain */
} xfer_acc;

static void pull_msg(const void *msg, void *arg)
{
	const Berth__Images__V1__PullResponse *m = msg;
	xfer_acc *a = arg;

	report(a->progress, a->arg, m->progress, m->n_progress);
	if (m->image && a->image && !a->got) {
		image_from_pb(m->image, a->image);
		a->got = true;
	}
}

int berth_image_pull(berth_client *c, const char *ns, const berth_pull_opts *o, berth_image *out, berth_error *err)
{
	Berth__Images__V1__PullRequest req = BERTH__IMAGES__V1__PULL_REQUEST__INIT;
	bt_callspec cs = berth_spec(c, "images", "Pull", ns);
	xfer_acc a = { .progress = o->progress, .arg = o->arg, .image = out };
	bt_labels labels = { 0 };
	bt_err e;
	int rc;

	req.ref = (char *)(o->ref ? o->ref : "");
	req.platform = (char *)(o->platform ? o->platform : "");
	req.snapshotter = (char *)(o->snapshotter ? o->snapshotter : "");
	req.unpack = o->unpack;
	req.plain_http = o->plain_http;
	req.user = (char *)(o->user ? o->user : "");
	req.lease = (char *)(o->lease ? o->lease : "");
	berth_labels_from_public(o->labels, o->n_labels, &labels);
	req.labels = (Berth__Images__V1__PullRequest__LabelsEntry **)bt_pbmap_from_labels(
		&labels, &berth__images__v1__pull_request__labels_entry__descriptor, &req.n_labels);
	rc = berth_stream_each(c, &cs, &req.base, &berth__images__v1__pull_response__descriptor, pull_msg, &a, &e);
	bt_pbmap_free((void **)req.labels, req.n_labels);
	bt_labels_clear(&labels);
	if (rc < 0) {
		if (a.got)
			berth_image_clear(out);
		return berth_fail(err, &e);
	}
	return 0;
}

static void push_msg(const void *msg, void *arg)
{
	const Berth__Images__V1__PushResponse *m = msg;
	xfer_acc *a = arg;

	report(a->progress, a->arg, m->progress, m->n_progress);
	if (m->digest && *m->digest)
		snprintf(a->out, 72, "%s", m->digest);
}

int berth_image_push(berth_client *c, const char *ns, const berth_push_opts *o, char digest_out[72],
		     berth_error *err)
{
	Berth__Images__V1__PushRequest req = BERTH__IMAGES__V1__PUSH_REQUEST__INIT;
	bt_callspec cs = berth_spec(c, "images", "Push", ns);
	xfer_acc a = { .progress = o->progress, .arg = o->arg, .out = digest_out };
	bt_err e;

	req.name = (char *)(o->name ? o->name : "");
	req.ref = (char *)(o->ref ? o->ref : "");
	req.platform = (char *)(o->platform ? o->platform : "");
	req.plain_http = o->plain_http;
	req.user = (char *)(o->user ? o->user : "");
	digest_out[0] = '\0';
	if (berth_stream_each(c, &cs, &req.base, &berth__images__v1__push_response__descriptor, push_msg, &a, &e) < 0)
		return berth_fail(err, &e);
	return 0;
}

static void unpack_msg(const void *msg, void *arg)
{
	const Berth__Images__V1__UnpackResponse *m = msg;
	xfer_acc *a = arg;

	report(a->progress, a->arg, m->progress, m->n_progress);
	if (a->out && m->chain_id && *m->chain_id)
		snprintf(a->out, 72, "%s", m->chain_id);
}

int berth_image_unpack(berth_client *c, const char *ns, const char *name, const char *platform,
		       const char *snapshotter, berth_progress_fn_t progress, void *arg, char chain_out[72],
		       berth_error *err)
{
	Berth__Images__V1__UnpackRequest req = BERTH__IMAGES__V1__UNPACK_REQUEST__INIT;
	bt_callspec cs = berth_spec(c, "images", "Unpack", ns);
	xfer_acc a = { .progress = progress, .arg = arg, .out = chain_out };
	bt_err e;

	req.name = (char *)name;
	req.platform = (char *)(platform ? platform : "");
	req.snapshotter = (char *)(snapshotter ? snapshotter : "");
	if (chain_out)
		chain_out[0] = '\0';
	if (berth_stream_each(c, &cs, &req.base, &berth__images__v1__unpack_response__descriptor, unpack_msg, &a, &e) <
	    0)
		return berth_fail(err, &e);
	return 0;
}
