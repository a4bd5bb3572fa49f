/*
 * task_rpc_containers — the "containers" service: records over
 * task_store.c; Delete is refused while the container has a task.
 */
#define _GNU_SOURCE
#include <string.h>

#include "berth/tasks/v1/tasks.pb-c.h"
#include "bt_batch.h"
#include "bt_events.h"
#include "bt_filter.h"
#include "bt_pbmap.h"
#include "bt_util.h"
#include "task_rpc.h"


typedef Berth__Tasks__V1__Container pb_ctr;

typedef struct ctr_pb {
	pb_ctr c;
	Berth__Tasks__V1__Runtime rt;
} ctr_pb;

static void ctr_to_pb(const ctr_rec *r, ctr_pb *p)
{
	berth__tasks__v1__container__init(&p->c);
	berth__tasks__v1__runtime__init(&p->rt);
	p->c.id = r->id;
	p->c.image = r->image;
	p->c.spec = r->spec;
	p->c.snapshotter = r->snapshotter;
	p->c.snapshot_key = r->snapshot_key;
	p->rt.name = r->runtime;
	p->rt.binary = r->runtime_binary;
	p->rt.root = r->runtime_root;
	p->c.runtime = &p->rt;
	p->c.labels = (Berth__Tasks__V1__Container__LabelsEntry **)bt_pbmap_from_labels(
		&r->labels, &berth__tasks__v1__container__labels_entry__descriptor, &p->c.n_labels);
	p->c.created_at = r->created;
	p->c.updated_at = r->updated;
}

static void ctr_pb_release(ctr_pb *p)
{
	bt_pbmap_free((void **)p->c.labels, p->c.n_labels);
}

static void ctr_from_pb(const pb_ctr *p, ctr_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->id = bt_xstrdup(p->id);
	r->image = bt_xstrdup(p->image);
	r->spec = bt_xstrdup(p->spec);
	r->snapshotter = bt_xstrdup(p->snapshotter);
	r->snapshot_key = bt_xstrdup(p->snapshot_key);
	r->runtime = bt_xstrdup(p->runtime ? p->runtime->name : "");
	r->runtime_binary = bt_xstrdup(p->runtime ? p->runtime->binary : "");
	r->runtime_root = bt_xstrdup(p->runtime ? p->runtime->root : "");
	bt_pbmap_to_labels((void *const *)p->labels, p->n_labels, &r->labels);
}

static void reply_ctr(bt_call *call, const ProtobufCMessageDescriptor *d, const ctr_rec *r)
{
	struct {
		ProtobufCMessage base;
		pb_ctr *container;
	} resp;
	ctr_pb p;
	protobuf_c_message_init(d, &resp);
	ctr_to_pb(r, &p);
	resp.container = &p.c;
	bt_call_reply(call, &resp.base);
	ctr_pb_release(&p);
}

static void h_get(bt_call *call, void *ctx)
{
	task_rpc *rpc = ctx;
	const Berth__Tasks__V1__GetContainerRequest *r = bt_call_req(call);
	ctr_rec rec = { 0 };
	bt_err e;
	if (task_store_get(rpc->store, bt_call_namespace(call), r->id, &rec, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	reply_ctr(call, &berth__tasks__v1__get_container_response__descriptor, &rec);
	ctr_rec_clear(&rec);
}

static void rec_copy(void *dst, const void *src)
{
	ctr_rec_copy(dst, src);
}

static void rec_clear(void *r)
{
	ctr_rec_clear(r);
}

static int send_batch(bt_call *call, const void *recs, size_t n, bt_err *e)
{
	Berth__Tasks__V1__ListContainersResponse r = BERTH__TASKS__V1__LIST_CONTAINERS_RESPONSE__INIT;
	ctr_pb pb[BT_BATCH];
	pb_ctr *ptrs[BT_BATCH];
	for (size_t i = 0; i < n; i++) {
		ctr_to_pb(&((const ctr_rec *)recs)[i], &pb[i]);
		ptrs[i] = &pb[i].c;
	}
	r.n_containers = n;
	r.containers = ptrs;
	int rc = bt_call_send(call, &r.base, e);
	for (size_t i = 0; i < n; i++)
		ctr_pb_release(&pb[i]);
	return rc;
}

static const bt_batch_ops list_ops = { sizeof(ctr_rec), rec_copy, rec_clear, send_batch };

static int list_cb(const ctr_rec *r, void *arg)
{
	return bt_batch_add(arg, r);
}

static void h_list(bt_call *call, void *ctx)
{
	task_rpc *rpc = ctx;
	const Berth__Tasks__V1__ListContainersRequest *r = bt_call_req(call);
	bt_filter *f = NULL;
	bt_batch b;
	bt_err e;
	if (bt_filter_parse((const char *const *)r->filters, r->n_filters, &f, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	bt_batch_init(&b, call, &list_ops);
	int rc = task_store_list(rpc->store, bt_call_namespace(call), f, list_cb, &b, &e);
	bt_filter_free(&f);
	bt_batch_end(&b, rc, &e);
}

static void h_create(bt_call *call, void *ctx)
{
	task_rpc *rpc = ctx;
	const Berth__Tasks__V1__CreateContainerRequest *r = bt_call_req(call);
	ctr_rec in, out = { 0 };
	bt_err e;
	if (!r->container) {
		bt_call_errorf(call, BT_INVALID_ARGUMENT, "create: container is required");
		return;
	}
	ctr_from_pb(r->container, &in);
	if (task_store_create(rpc->store, bt_call_namespace(call), &in, &out, &e) < 0) {
		ctr_rec_clear(&in);
		bt_call_error(call, &e);
		return;
	}
	ctr_rec_clear(&in);
	bt_event(bt_call_namespace(call), "/containers/create", "id", out.id, "image", out.image, "runtime", out.runtime,
		 NULL);
	reply_ctr(call, &berth__tasks__v1__create_container_response__descriptor, &out);
	ctr_rec_clear(&out);
}

static void h_update(bt_call *call, void *ctx)
{
	task_rpc *rpc = ctx;
	const Berth__Tasks__V1__UpdateContainerRequest *r = bt_call_req(call);
	ctr_rec in, out = { 0 };
	bt_err e;
	if (!r->container) {
		bt_call_errorf(call, BT_INVALID_ARGUMENT, "update: container is required");
		return;
	}
	ctr_from_pb(r->container, &in);
	if (task_store_update(rpc->store, bt_call_namespace(call), &in, r->update_mask, r->n_update_mask, &out, &e) <
	    0) {
		ctr_rec_clear(&in);
		bt_call_error(call, &e);
		return;
	}
	ctr_rec_clear(&in);
	bt_event(bt_call_namespace(call), "/containers/update", "id", out.id, NULL);
	reply_ctr(call, &berth__tasks__v1__update_container_response__descriptor, &out);
	ctr_rec_clear(&out);
}

static void h_delete(bt_call *call, void *ctx)
{
	task_rpc *rpc = ctx;
	const Berth__Tasks__V1__DeleteContainerRequest *r = bt_call_req(call);
	Berth__Tasks__V1__DeleteContainerResponse resp = BERTH__TASKS__V1__DELETE_CONTAINER_RESPONSE__INIT;
	bt_err e;
	if (r->id && task_exists(rpc->env, bt_call_namespace(call), r->id)) {
		bt_call_errorf(call, BT_FAILED_PRECONDITION,
			       "container \"%s\": has a task: delete the task first (berth tasks rm)", r->id);
		return;
	}
	if (task_store_delete(rpc->store, bt_call_namespace(call), r->id, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	bt_event(bt_call_namespace(call), "/containers/delete", "id", r->id, NULL);
	bt_call_reply(call, &resp.base);
}

static const bt_method methods[] = {
	{ "Get", h_get, BT_M_INLINE }, { "List", h_list, 0 },	  { "Create", h_create, 0 },
	{ "Update", h_update, 0 },     { "Delete", h_delete, 0 },
};

void task_rpc_containers(task_rpc *rpc, bt_service *svc)
{
	svc->name = "containers";
	svc->desc = &berth__tasks__v1__containers__descriptor;
	svc->methods = methods;
	svc->n_methods = BT_ARRAY_LEN(methods);
	svc->ctx = rpc;
}
