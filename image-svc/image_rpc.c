/*
 * image_rpc — handlers of the "images" service: records (Get, List, Create,
 * Update, Delete) over image_store.c; transfers (Pull, Push, Unpack) over
 * image_xfer.c.
 */
#define _GNU_SOURCE
#include "image_rpc.h"

#include <string.h>

#include "berth/images/v1/images.pb-c.h"
#include "bt_batch.h"
#include "bt_filter.h"
#include "bt_pbmap.h"
#include "bt_util.h"
#include "image_gc.h"
#include "image_unpack.h"
#include "image_xfer.h"


typedef Berth__Images__V1__Image pb_image;
typedef Berth__Types__V1__Descriptor pb_desc;

/* A pb Image borrowing from r; release with image_pb_release. */
typedef struct image_pb {
	pb_image img;
	pb_desc target;
} image_pb;

static void image_to_pb(const image_rec *r, image_pb *out)
{
	berth__images__v1__image__init(&out->img);
	berth__types__v1__descriptor__init(&out->target);
	out->img.name = r->name;
	out->img.labels = (Berth__Images__V1__Image__LabelsEntry **)bt_pbmap_from_labels(
		&r->labels, &berth__images__v1__image__labels_entry__descriptor, &out->img.n_labels);
	out->target.media_type = r->media_type;
	out->target.digest = (char *)r->digest;
	out->target.size = r->size;
	out->target.annotations = (Berth__Types__V1__Descriptor__AnnotationsEntry **)bt_pbmap_from_labels(
		&r->annotations, &berth__types__v1__descriptor__annotations_entry__descriptor, &out->target.n_annotations);
	out->img.target = &out->target;
	out->img.created_at = r->created;
	out->img.updated_at = r->updated;
}

static void image_pb_release(image_pb *p)
{
	bt_pbmap_free((void **)p->img.labels, p->img.n_labels);
	bt_pbmap_free((void **)p->target.annotations, p->target.n_annotations);
}

/* A record from a pb Image a client sent (copies). */
static void image_from_pb(const pb_image *p, image_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->name = bt_xstrdup(p->name);
	bt_pbmap_to_labels((void *const *)p->labels, p->n_labels, &r->labels);
	if (p->target) {
		r->media_type = bt_xstrdup(p->target->media_type);
		snprintf(r->digest, sizeof(r->digest), "%s", p->target->digest ? p->target->digest : "");
		r->size = p->target->size;
		bt_pbmap_to_labels((void *const *)p->target->annotations, p->target->n_annotations, &r->annotations);
	} else {
		r->media_type = bt_xstrdup("");
	}
}

static void reply_image(bt_call *call, const ProtobufCMessageDescriptor *d, const image_rec *r)
{
	/* Get, Create and Update replies all hold one field: the image */
	struct {
		ProtobufCMessage base;
		pb_image *image;
	} resp;
	image_pb p;

	protobuf_c_message_init(d, &resp);
	image_to_pb(r, &p);
	resp.image = &p.img;
	bt_call_reply(call, &resp.base);
	image_pb_release(&p);
}

static void h_get(bt_call *call, void *ctx)
{
	image_rpc *rpc = ctx;
	const Berth__Images__V1__GetImageRequest *r = bt_call_req(call);
	image_rec rec = { 0 };
	bt_err e;

	if (image_store_get(rpc->store, bt_call_namespace(call), r->name, &rec, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	reply_image(call, &berth__images__v1__get_image_response__descriptor, &rec);
	image_rec_clear(&rec);
}

static void rec_copy(void *dst, const void *src)
{
	image_rec_copy(dst, src);
}

static void rec_clear(void *r)
{
	image_rec_clear(r);
}

static int send_batch(bt_call *call, const void *recs, size_t n, bt_err *e)
{
	Berth__Images__V1__ListImagesResponse r = BERTH__IMAGES__V1__LIST_IMAGES_RESPONSE__INIT;
	image_pb pb[BT_BATCH];
	pb_image *ptrs[BT_BATCH];

	for (size_t i = 0; i < n; i++) {
		image_to_pb(&((const image_rec *)recs)[i], &pb[i]);
		ptrs[i] = &pb[i].img;
	}
	r.n_images = n;
	r.images = ptrs;
	int rc = bt_call_send(call, &r.base, e);
	for (size_t i = 0; i < n; i++)
		image_pb_release(&pb[i]);
	return rc;
}

static const bt_batch_ops list_ops = { sizeof(image_rec), rec_copy, rec_clear, send_batch };

static int list_cb(const image_rec *r, void *arg)
{
	return bt_batch_add(arg, r);
}

static void h_list(bt_call *call, void *ctx)
{
	image_rpc *rpc = ctx;
	const Berth__Images__V1__ListImagesRequest *r = bt_call_req(call);
	bt_filter *f = NULL;
	bt_batch b;
	bt_err e;

	if (bt_filter_parse((const char *const *)r->filters, r->n_filters, &f, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	bt_batch_init(&b, call, &list_ops);
	int rc = image_store_list(rpc->store, bt_call_namespace(call), f, list_cb, &b, &e);
	bt_filter_free(&f);
	bt_batch_end(&b, rc, &e);
}

/* The collector's references under a record's target, before the record
 * makes them reachable (what is not stored yet is skipped). */
static int gc_label(image_rpc *rpc, const char *ns, const image_rec *r, bt_err *e)
{
	berth_client *content = image_content_client(image_xfer_env(rpc->xfer), e);
	if (!content)
		return -1;
	int rc = image_gc_label_graph(content, ns, r->media_type, r->digest, e);
	berth_client_free(&content);
	if (rc < 0)
		bt_err_wrap(e, "image %s: cannot record its references for garbage collection", r->name);
	return rc;
}

static void h_create(bt_call *call, void *ctx)
{
	image_rpc *rpc = ctx;
	const Berth__Images__V1__CreateImageRequest *r = bt_call_req(call);
	image_rec in, out = { 0 };
	bt_err e;

	if (!r->image) {
		bt_call_errorf(call, BT_INVALID_ARGUMENT, "create: image is required");
		return;
	}
	image_from_pb(r->image, &in);
	if (gc_label(rpc, bt_call_namespace(call), &in, &e) < 0 ||
	    image_store_create(rpc->store, bt_call_namespace(call), &in, &out, &e) < 0) {
		image_rec_clear(&in);
		bt_call_error(call, &e);
		return;
	}
	image_rec_clear(&in);
	reply_image(call, &berth__images__v1__create_image_response__descriptor, &out);
	image_rec_clear(&out);
}

static void h_update(bt_call *call, void *ctx)
{
	image_rpc *rpc = ctx;
	const Berth__Images__V1__UpdateImageRequest *r = bt_call_req(call);
	image_rec in, out = { 0 };
	bt_err e;

	if (!r->image) {
		bt_call_errorf(call, BT_INVALID_ARGUMENT, "update: image is required");
		return;
	}
	image_from_pb(r->image, &in);
	if ((in.digest[0] && gc_label(rpc, bt_call_namespace(call), &in, &e) < 0) ||
	    image_store_update(rpc->store, bt_call_namespace(call), &in, r->update_mask, r->n_update_mask, &out, &e) <
		    0) {
		image_rec_clear(&in);
		bt_call_error(call, &e);
		return;
	}
	image_rec_clear(&in);
	reply_image(call, &berth__images__v1__update_image_response__descriptor, &out);
	image_rec_clear(&out);
}

static void h_delete(bt_call *call, void *ctx)
{
	image_rpc *rpc = ctx;
	const Berth__Images__V1__DeleteImageRequest *r = bt_call_req(call);
	Berth__Images__V1__DeleteImageResponse resp = BERTH__IMAGES__V1__DELETE_IMAGE_RESPONSE__INIT;
	bt_err e;

	if (image_store_delete(rpc->store, bt_call_namespace(call), r->name, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	bt_call_reply(call, &resp.base);
}

static void h_pull(bt_call *call, void *ctx)
{
	image_xfer_pull(((image_rpc *)ctx)->xfer, call);
}

static void h_push(bt_call *call, void *ctx)
{
	image_xfer_push(((image_rpc *)ctx)->xfer, call);
}

static void h_unpack(bt_call *call, void *ctx)
{
	image_xfer_unpack(((image_rpc *)ctx)->xfer, call);
}

static const bt_method methods[] = {
	{ "Get", h_get, BT_M_INLINE },
	{ "List", h_list, 0 },
	{ "Create", h_create, 0 },
	{ "Update", h_update, 0 },
	{ "Delete", h_delete, 0 },
	{ "Pull", h_pull, 0 },
	{ "Push", h_push, 0 },
	{ "Unpack", h_unpack, 0 },
};

void image_rpc_service(image_rpc *rpc, bt_service *svc)
{
	svc->name = "images";
	svc->desc = &berth__images__v1__images__descriptor;
	svc->methods = methods;
	svc->n_methods = BT_ARRAY_LEN(methods);
	svc->ctx = rpc;
}
