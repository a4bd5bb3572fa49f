/*
 * snap_rpc — handlers of the "snapshots" service: check the snapshotter the
 * header names, decode, call the store, encode.  The logic lives in
 * snap_store.c.
 */
#define _GNU_SOURCE
#include "snap_rpc.h"

#include <string.h>

#include "berth/snapshots/v1/snapshots.pb-c.h"
#include "bt_batch.h"
#include "bt_events.h"
#include "bt_filter.h"
#include "bt_pbmap.h"
#include "bt_util.h"


typedef Berth__Snapshots__V1__Info pb_info;

_Static_assert((int)SNAP_VIEW == (int)BERTH__SNAPSHOTS__V1__KIND__VIEW, "kinds match the wire");
_Static_assert((int)SNAP_ACTIVE == (int)BERTH__SNAPSHOTS__V1__KIND__ACTIVE, "kinds match the wire");
_Static_assert((int)SNAP_COMMITTED == (int)BERTH__SNAPSHOTS__V1__KIND__COMMITTED, "kinds match the wire");

/* Answers NOT_FOUND and returns false when the header names another snapshotter. */
static bool for_me(bt_call *call, const snap_rpc *ctx)
{
	const char *want = bt_call_header(call)->snapshotter;

	if (want && *want && strcmp(want, ctx->name) != 0) {
		bt_call_errorf(call, BT_NOT_FOUND, "snapshotter \"%.100s\" not found (this is \"%s\")", want, ctx->name);
		return false;
	}
	return true;
}

/* A key from the wire (bytes, so a NUL shows): validated, as a C string.
 * optional: empty gives NULL. */
static int take_key(const ProtobufCBinaryData *b, const char *what, bool optional, char **out, bt_err *e)
{
	*out = NULL;
	if (optional && b->len == 0)
		return 0;
	if (snap_key_validate(what, (const char *)b->data, b->len, e) < 0)
		return -1;
	*out = bt_xstrndup((const char *)b->data, b->len);
	return 0;
}

static ProtobufCBinaryData bytes_of(const char *s)
{
	ProtobufCBinaryData b = { .len = s ? strlen(s) : 0, .data = (uint8_t *)s };
	return b;
}

/* Fills a pb Info borrowing from i; release with info_pb_release. */
static void info_to_pb(const snap_info *i, pb_info *out)
{
	berth__snapshots__v1__info__init(out);
	out->name = bytes_of(i->name);
	out->parent = bytes_of(i->parent);
	out->kind = (Berth__Snapshots__V1__Kind)i->kind;
	out->created_at = i->created;
	out->updated_at = i->updated;
	out->labels = (Berth__Snapshots__V1__Info__LabelsEntry **)bt_pbmap_from_labels(
		&i->labels, &berth__snapshots__v1__info__labels_entry__descriptor, &out->n_labels);
}

static void info_pb_release(pb_info *p)
{
	bt_pbmap_free((void **)p->labels, p->n_labels);
	p->labels = NULL;
	p->n_labels = 0;
}

/* Prepare and View share everything but the kind and the message types. */
static void create(bt_call *call, snap_rpc *ctx, snap_kind kind, const ProtobufCBinaryData *key_b,
		   const ProtobufCBinaryData *parent_b, void *const *labels_pb, size_t n_labels)
{
	Berth__Snapshots__V1__PrepareSnapshotResponse prep = BERTH__SNAPSHOTS__V1__PREPARE_SNAPSHOT_RESPONSE__INIT;
	Berth__Snapshots__V1__ViewSnapshotResponse view = BERTH__SNAPSHOTS__V1__VIEW_SNAPSHOT_RESPONSE__INIT;
	_cleanup_free_ char *key = NULL;
	_cleanup_free_ char *parent = NULL;
	bt_labels labels = { 0 };
	bt_mount *m = NULL;
	size_t n = 0;
	bt_err e;

	if (take_key(key_b, "key", false, &key, &e) < 0 || take_key(parent_b, "parent", true, &parent, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	bt_pbmap_to_labels(labels_pb, n_labels, &labels);
	int rc = snap_create(ctx->store, bt_call_namespace(call), kind, key, parent, &labels, &m, &n, &e);
	bt_labels_clear(&labels);
	if (rc < 0) {
		bt_call_error(call, &e);
		return;
	}
	/* (before the reply: the call is gone once it has its final answer) */
	bt_event(bt_call_namespace(call), kind == SNAP_VIEW ? "/snapshot/view" : "/snapshot/prepare", "key", key,
		 "parent", parent ? parent : "", "snapshotter", ctx->name, NULL);
	Berth__Types__V1__Mount **pm = bt_mounts_to_pb(m, n);
	if (kind == SNAP_VIEW) {
		view.n_mounts = n;
		view.mounts = pm;
		bt_call_reply(call, &view.base);
	} else {
		prep.n_mounts = n;
		prep.mounts = pm;
		bt_call_reply(call, &prep.base);
	}
	bt_mounts_pb_free(pm, n);
	bt_mounts_free(m, n);
}

static void h_prepare(bt_call *call, void *ctx)
{
	const Berth__Snapshots__V1__PrepareSnapshotRequest *r = bt_call_req(call);

	if (for_me(call, ctx))
		create(call, ctx, SNAP_ACTIVE, &r->key, &r->parent, (void *const *)r->labels, r->n_labels);
}

static void h_view(bt_call *call, void *ctx)
{
	const Berth__Snapshots__V1__ViewSnapshotRequest *r = bt_call_req(call);

	if (for_me(call, ctx))
		create(call, ctx, SNAP_VIEW, &r->key, &r->parent, (void *const *)r->labels, r->n_labels);
}

static void h_mounts(bt_call *call, void *ctx)
{
	const Berth__Snapshots__V1__MountsRequest *r = bt_call_req(call);
	Berth__Snapshots__V1__MountsResponse resp = BERTH__SNAPSHOTS__V1__MOUNTS_RESPONSE__INIT;
	snap_rpc *c = ctx;
	_cleanup_free_ char *key = NULL;
	bt_mount *m = NULL;
	size_t n = 0;
	bt_err e;

	if (!for_me(call, c))
		return;
	if (take_key(&r->key, "key", false, &key, &e) < 0 ||
	    snap_mounts(c->store, bt_call_namespace(call), key, &m, &n, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	resp.mounts = bt_mounts_to_pb(m, n);
	resp.n_mounts = n;
	bt_call_reply(call, &resp.base);
	bt_mounts_pb_free(resp.mounts, n);
	bt_mounts_free(m, n);
}

static void h_commit(bt_call *call, void *ctx)
{
	const Berth__Snapshots__V1__CommitSnapshotRequest *r = bt_call_req(call);
	Berth__Snapshots__V1__CommitSnapshotResponse resp = BERTH__SNAPSHOTS__V1__COMMIT_SNAPSHOT_RESPONSE__INIT;
	snap_rpc *c = ctx;
	_cleanup_free_ char *name = NULL;
	_cleanup_free_ char *key = NULL;
	bt_labels labels = { 0 };
	bt_err e;

	if (!for_me(call, c))
		return;
	if (take_key(&r->name, "name", false, &name, &e) < 0 || take_key(&r->key, "key", false, &key, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	bt_pbmap_to_labels((void *const *)r->labels, r->n_labels, &labels);
	int rc = snap_commit(c->store, bt_call_namespace(call), name, key, &labels, &e);
	bt_labels_clear(&labels);
	if (rc < 0) {
		bt_call_error(call, &e);
		return;
	}
	bt_event(bt_call_namespace(call), "/snapshot/commit", "key", key, "name", name, "snapshotter", c->name, NULL);
	bt_call_reply(call, &resp.base);
}

static void h_remove(bt_call *call, void *ctx)
{
	const Berth__Snapshots__V1__RemoveSnapshotRequest *r = bt_call_req(call);
	Berth__Snapshots__V1__RemoveSnapshotResponse resp = BERTH__SNAPSHOTS__V1__REMOVE_SNAPSHOT_RESPONSE__INIT;
	snap_rpc *c = ctx;
	_cleanup_free_ char *key = NULL;
	bt_err e;

	if (!for_me(call, c))
		return;
	if (take_key(&r->key, "key", false, &key, &e) < 0 || snap_remove(c->store, bt_call_namespace(call), key, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	bt_event(bt_call_namespace(call), "/snapshot/remove", "key", key, "snapshotter", c->name, NULL);
	bt_call_reply(call, &resp.base);
}

static void h_stat(bt_call *call, void *ctx)
{
	const Berth__Snapshots__V1__StatSnapshotRequest *r = bt_call_req(call);
	Berth__Snapshots__V1__StatSnapshotResponse resp = BERTH__SNAPSHOTS__V1__STAT_SNAPSHOT_RESPONSE__INIT;
	snap_rpc *c = ctx;
	_cleanup_free_ char *key = NULL;
	snap_info info = { 0 };
	pb_info pi;
	bt_err e;

	if (!for_me(call, c))
		return;
	if (take_key(&r->key, "key", false, &key, &e) < 0 ||
	    snap_stat(c->store, bt_call_namespace(call), key, &info, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	info_to_pb(&info, &pi);
	resp.info = &pi;
	bt_call_reply(call, &resp.base);
	info_pb_release(&pi);
	snap_info_clear(&info);
}

static void h_update(bt_call *call, void *ctx)
{
	const Berth__Snapshots__V1__UpdateSnapshotRequest *r = bt_call_req(call);
	Berth__Snapshots__V1__UpdateSnapshotResponse resp = BERTH__SNAPSHOTS__V1__UPDATE_SNAPSHOT_RESPONSE__INIT;
	snap_rpc *c = ctx;
	_cleanup_free_ char *key = NULL;
	snap_info info = { 0 };
	bt_labels want = { 0 };
	pb_info pi;
	bt_err e;

	if (!for_me(call, c))
		return;
	if (!r->info) {
		bt_call_errorf(call, BT_INVALID_ARGUMENT, "update: info is required");
		return;
	}
	if (take_key(&r->info->name, "key", false, &key, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	bt_pbmap_to_labels((void *const *)r->info->labels, r->info->n_labels, &want);
	int rc = snap_update(c->store, bt_call_namespace(call), key, &want, r->update_mask, r->n_update_mask, &info, &e);
	bt_labels_clear(&want);
	if (rc < 0) {
		bt_call_error(call, &e);
		return;
	}
	info_to_pb(&info, &pi);
	resp.info = &pi;
	bt_call_reply(call, &resp.base);
	info_pb_release(&pi);
	snap_info_clear(&info);
}

static void rec_copy(void *dst, const void *src)
{
	snap_info *c = dst;
	const snap_info *i = src;

	c->name = bt_xstrdup(i->name);
	c->parent = bt_xstrdup(i->parent);
	c->kind = i->kind;
	c->created = i->created;
	c->updated = i->updated;
	bt_labels_copy(&c->labels, &i->labels);
}

static void rec_clear(void *r)
{
	snap_info_clear(r);
}

static int send_batch(bt_call *call, const void *recs, size_t n, bt_err *e)
{
	Berth__Snapshots__V1__ListSnapshotsResponse r = BERTH__SNAPSHOTS__V1__LIST_SNAPSHOTS_RESPONSE__INIT;
	pb_info items[BT_BATCH];
	pb_info *ptrs[BT_BATCH];

	for (size_t i = 0; i < n; i++) {
		info_to_pb(&((const snap_info *)recs)[i], &items[i]);
		ptrs[i] = &items[i];
	}
	r.n_info = n;
	r.info = ptrs;
	int rc = bt_call_send(call, &r.base, e);
	for (size_t i = 0; i < n; i++)
		info_pb_release(&items[i]);
	return rc;
}

static const bt_batch_ops list_ops = { sizeof(snap_info), rec_copy, rec_clear, send_batch };

static int list_cb(const snap_info *i, void *arg)
{
	return bt_batch_add(arg, i);
}

static void h_list(bt_call *call, void *ctx)
{
	const Berth__Snapshots__V1__ListSnapshotsRequest *r = bt_call_req(call);
	snap_rpc *c = ctx;
	bt_filter *f = NULL;
	bt_batch b;
	bt_err e;

	if (!for_me(call, c))
		return;
	if (bt_filter_parse((const char *const *)r->filters, r->n_filters, &f, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	bt_batch_init(&b, call, &list_ops);
	int rc = snap_list(c->store, bt_call_namespace(call), f, list_cb, &b, &e);
	bt_filter_free(&f);
	bt_batch_end(&b, rc, &e);
}

static void h_usage(bt_call *call, void *ctx)
{
	const Berth__Snapshots__V1__UsageRequest *r = bt_call_req(call);
	Berth__Snapshots__V1__UsageResponse resp = BERTH__SNAPSHOTS__V1__USAGE_RESPONSE__INIT;
	snap_rpc *c = ctx;
	_cleanup_free_ char *key = NULL;
	snap_usage_info u = { 0 };
	bt_err e;

	if (!for_me(call, c))
		return;
	if (take_key(&r->key, "key", false, &key, &e) < 0 || snap_usage(c->store, bt_call_namespace(call), key, &u, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	resp.size = u.size;
	resp.inodes = u.inodes;
	bt_call_reply(call, &resp.base);
}

static void h_cleanup(bt_call *call, void *ctx)
{
	Berth__Snapshots__V1__CleanupResponse resp = BERTH__SNAPSHOTS__V1__CLEANUP_RESPONSE__INIT;
	snap_rpc *c = ctx;
	int64_t removed = 0;
	bt_err e;

	if (!for_me(call, c))
		return;
	if (snap_cleanup(c->store, &removed, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	resp.removed = removed;
	bt_call_reply(call, &resp.base);
}

static const bt_method methods[] = {
	{ "Prepare", h_prepare, 0 },
	{ "View", h_view, 0 },
	{ "Mounts", h_mounts, BT_M_INLINE },
	{ "Commit", h_commit, 0 },
	{ "Remove", h_remove, 0 },
	{ "Stat", h_stat, BT_M_INLINE },
	{ "Update", h_update, 0 },
	{ "List", h_list, 0 },
	{ "Usage", h_usage, 0 },
	{ "Cleanup", h_cleanup, 0 },
};

void snap_rpc_service(snap_rpc *ctx, bt_service *svc)
{
	svc->name = "snapshots";
	svc->desc = &berth__snapshots__v1__snapshots__descriptor;
	svc->methods = methods;
	svc->n_methods = BT_ARRAY_LEN(methods);
	svc->ctx = ctx;
}
