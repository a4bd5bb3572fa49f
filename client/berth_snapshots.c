/*
 * berth_snapshots — the snapshots API of libberth: prepare, view, mounts,
 * commit, remove, stat, update, list, usage, cleanup, each naming its
 * snapshotter; and mounting what a snapshotter returns.
 */
#define _GNU_SOURCE
#include <string.h>

#include "berth/snapshots/v1/snapshots.pb-c.h"
#include "berth_internal.h"
#include "bt_mount.h"
#include "bt_pbmap.h"
#include "bt_rpc.h"
#include "bt_util.h"

_Static_assert((int)BERTH_SNAPSHOT_VIEW == (int)BERTH__SNAPSHOTS__V1__KIND__VIEW, "kinds match the wire");
_Static_assert((int)BERTH_SNAPSHOT_ACTIVE == (int)BERTH__SNAPSHOTS__V1__KIND__ACTIVE, "kinds match the wire");
_Static_assert((int)BERTH_SNAPSHOT_COMMITTED == (int)BERTH__SNAPSHOTS__V1__KIND__COMMITTED, "kinds match the wire");

static bt_callspec spec(const berth_client *c, const char *method, const char *ns, const char *snapshotter)
{
	bt_callspec cs = berth_spec(c, "snapshots", method, ns);
	cs.snapshotter = snapshotter && *snapshotter ? snapshotter : NULL;
	return cs;
}

static ProtobufCBinaryData bytes_of(const char *s)
{
	ProtobufCBinaryData b = { .len = s ? strlen(s) : 0, .data = (uint8_t *)s };
	return b;
}

static char *str_of(const ProtobufCBinaryData *b)
{
	return bt_xstrndup(b->data ? (const char *)b->data : "", b->len);
}

const char *berth_snapshot_kind_name(int kind)
{
	switch (kind) {
	case BERTH_SNAPSHOT_VIEW:
		return "view";
	case BERTH_SNAPSHOT_ACTIVE:
		return "active";
	case BERTH_SNAPSHOT_COMMITTED:
		return "committed";
	default:
		return "unknown";
	}
}

void berth_mounts_free(berth_mount *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].type);
		free(v[i].source);
		free(v[i].target);
		for (size_t k = 0; k < v[i].n_options; k++)
			free(v[i].options[k]);
		free(v[i].options);
	}
	free(v);
}

static void mounts_from_pb(Berth__Types__V1__Mount *const *pb, size_t n, berth_mount **out, size_t *n_out)
{
	berth_mount *v = n ? bt_xcalloc(n, sizeof(*v)) : NULL;

	for (size_t i = 0; i < n; i++) {
		v[i].type = bt_xstrdup(pb[i]->type ? pb[i]->type : "");
		v[i].source = bt_xstrdup(pb[i]->source ? pb[i]->source : "");
		v[i].target = bt_xstrdup(pb[i]->target ? pb[i]->target : "");
		v[i].n_options = pb[i]->n_options;
		v[i].options = bt_xcalloc(pb[i]->n_options + 1, sizeof(char *));
		for (size_t k = 0; k < pb[i]->n_options; k++)
			v[i].options[k] = bt_xstrdup(pb[i]->options[k] ? pb[i]->options[k] : "");
	}
	if (out) {
		*out = v;
		*n_out = n;
	} else {
		berth_mounts_free(v, n);
	}
}

static void info_from_pb(const Berth__Snapshots__V1__Info *p, berth_snapshot_info *out)
{
	memset(out, 0, sizeof(*out));
	out->name = str_of(&p->name);
	out->parent = str_of(&p->parent);
	out->kind = (int)p->kind;
	out->created_at = p->created_at;
	out->updated_at = p->updated_at;
	out->n_labels = p->n_labels;
	out->labels = berth_labels_to_public((void *const *)p->labels, p->n_labels);
}

void berth_snapshot_info_clear(berth_snapshot_info *i)
{
	free(i->name);
	free(i->parent);
	berth_labels_free(i->labels, i->n_labels);
	memset(i, 0, sizeof(*i));
}

void berth_snapshot_infos_free(berth_snapshot_info *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		berth_snapshot_info_clear(&v[i]);
	free(v);
}

/* Prepare and View: the same request shape, different messages. */
static int create(berth_client *c, bool view, const char *ns, const char *snapshotter, const char *key,
		  const char *parent, const berth_label *labels, size_t n_labels, berth_mount **mounts,
		  size_t *n_mounts, berth_error *err)
{
	Berth__Snapshots__V1__PrepareSnapshotRequest preq = BERTH__SNAPSHOTS__V1__PREPARE_SNAPSHOT_REQUEST__INIT;
	Berth__Snapshots__V1__ViewSnapshotRequest vreq = BERTH__SNAPSHOTS__V1__VIEW_SNAPSHOT_REQUEST__INIT;
	bt_callspec cs = spec(c, view ? "View" : "Prepare", ns, snapshotter);
	void *resp = NULL;
	void **pl;
	size_t npl = 0;
	bt_labels l = { 0 };
	bt_err e;
	int rc;

	berth_labels_from_public(labels, n_labels, &l);
	if (view) {
		pl = bt_pbmap_from_labels(&l, &berth__snapshots__v1__view_snapshot_request__labels_entry__descriptor, &npl);
		vreq.key = bytes_of(key);
		vreq.parent = bytes_of(parent);
		vreq.labels = (Berth__Snapshots__V1__ViewSnapshotRequest__LabelsEntry **)pl;
		vreq.n_labels = npl;
		rc = bt_conn_call(c->conn, &cs, &vreq.base, &berth__snapshots__v1__view_snapshot_response__descriptor,
				  &resp, &e);
	} else {
		pl = bt_pbmap_from_labels(&l, &berth__snapshots__v1__prepare_snapshot_request__labels_entry__descriptor,
					  &npl);
		preq.key = bytes_of(key);
		preq.parent = bytes_of(parent);
		preq.labels = (Berth__Snapshots__V1__PrepareSnapshotRequest__LabelsEntry **)pl;
		preq.n_labels = npl;
		rc = bt_conn_call(c->conn, &cs, &preq.base, &berth__snapshots__v1__prepare_snapshot_response__descriptor,
				  &resp, &e);
	}
	bt_pbmap_free(pl, npl);
	bt_labels_clear(&l);
	if (rc < 0)
		return berth_fail(err, &e);
	if (view) {
		Berth__Snapshots__V1__ViewSnapshotResponse *r = resp;
		mounts_from_pb(r->mounts, r->n_mounts, mounts, n_mounts);
	} else {
		Berth__Snapshots__V1__PrepareSnapshotResponse *r = resp;
		mounts_from_pb(r->mounts, r->n_mounts, mounts, n_mounts);
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

int berth_snapshot_prepare(berth_client *c, const char *ns, const char *snapshotter, const char *key,
			   const char *parent, const berth_label *labels, size_t n_labels, berth_mount **mounts,
			   size_t *n_mounts, berth_error *err)
{
	return create(c, false, ns, snapshotter, key, parent, labels, n_labels, mounts, n_mounts, err);
}

int berth_snapshot_view(berth_client *c, const char *ns, const char *snapshotter, const char *key,
			const char *parent, const berth_label *labels, size_t n_labels, berth_mount **mounts,
			size_t *n_mounts, berth_error *err)
{
	return create(c, true, ns, snapshotter, key, parent, labels, n_labels, mounts, n_mounts, err);
}

int berth_snapshot_mounts(berth_client *c, const char *ns, const char *snapshotter, const char *key,
			  berth_mount **mounts, size_t *n_mounts, berth_error *err)
{
	Berth__Snapshots__V1__MountsRequest req = BERTH__SNAPSHOTS__V1__MOUNTS_REQUEST__INIT;
	_cleanup_pb_ Berth__Snapshots__V1__MountsResponse *resp = NULL;
	bt_callspec cs = spec(c, "Mounts", ns, snapshotter);
	bt_err e;

	req.key = bytes_of(key);
	if (bt_conn_call(c->conn, &cs, &req.base, &berth__snapshots__v1__mounts_response__descriptor, (void **)&resp,
			 &e) < 0)
		return berth_fail(err, &e);
	mounts_from_pb(resp->mounts, resp->n_mounts, mounts, n_mounts);
	return 0;
}

int berth_snapshot_commit(berth_client *c, const char *ns, const char *snapshotter, const char *name,
			  const char *key, const berth_label *labels, size_t n_labels, berth_error *err)
{
	Berth__Snapshots__V1__CommitSnapshotRequest req = BERTH__SNAPSHOTS__V1__COMMIT_SNAPSHOT_REQUEST__INIT;
	bt_callspec cs = spec(c, "Commit", ns, snapshotter);
	bt_labels l = { 0 };
	bt_err e;
	int rc;

	berth_labels_from_public(labels, n_labels, &l);
	req.name = bytes_of(name);
	req.key = bytes_of(key);
	req.labels = (Berth__Snapshots__V1__CommitSnapshotRequest__LabelsEntry **)bt_pbmap_from_labels(
		&l, &berth__snapshots__v1__commit_snapshot_request__labels_entry__descriptor, &req.n_labels);
	rc = bt_conn_call(c->conn, &cs, &req.base, NULL, NULL, &e);
	bt_pbmap_free((void **)req.labels, req.n_labels);
	bt_labels_clear(&l);
	if (rc < 0)
		return berth_fail(err, &e);
	return 0;
}

int berth_snapshot_remove(berth_client *c, const char *ns, const char *snapshotter, const char *key,
			  berth_error *err)
{
	Berth__Snapshots__V1__RemoveSnapshotRequest req = BERTH__SNAPSHOTS__V1__REMOVE_SNAPSHOT_REQUEST__INIT;
	bt_callspec cs = spec(c, "Remove", ns, snapshotter);
	bt_err e;

	req.key = bytes_of(key);
	if (bt_conn_call(c->conn, &cs, &req.base, NULL, NULL, &e) < 0)
		return berth_fail(err, &e);
	return 0;
}

int berth_snapshot_stat(berth_client *c, const char *ns, const char *snapshotter, const char *key,
			berth_snapshot_info *out, berth_error *err)
{
	Berth__Snapshots__V1__StatSnapshotRequest req = BERTH__SNAPSHOTS__V1__STAT_SNAPSHOT_REQUEST__INIT;
	_cleanup_pb_ Berth__Snapshots__V1__StatSnapshotResponse *resp = NULL;
	bt_callspec cs = spec(c, "Stat", ns, snapshotter);
	bt_err e;

	req.key = bytes_of(key);
	if (bt_conn_call(c->conn, &cs, &req.base, &berth__snapshots__v1__stat_snapshot_response__descriptor,
			 (void **)&resp, &e) < 0)
		return berth_fail(err, &e);
	if (!resp->info) {
		bt_err_set(&e, BT_INTERNAL, "snapshots.Stat: reply without info");
		return berth_fail(err, &e);
	}
	info_from_pb(resp->info, out);
	return 0;
}

int berth_snapshot_update(berth_client *c, const char *ns, const char *snapshotter, const char *key,
			  const berth_label *labels, size_t n_labels, const char *const *mask, size_t n_mask,
			  berth_snapshot_info *out, berth_error *err)
{
	Berth__Snapshots__V1__UpdateSnapshotRequest req = BERTH__SNAPSHOTS__V1__UPDATE_SNAPSHOT_REQUEST__INIT;
	Berth__Snapshots__V1__Info info = BERTH__SNAPSHOTS__V1__INFO__INIT;
	_cleanup_pb_ Berth__Snapshots__V1__UpdateSnapshotResponse *resp = NULL;
	bt_callspec cs = spec(c, "Update", ns, snapshotter);
	bt_labels l = { 0 };
	bt_err e;
	int rc;

	berth_labels_from_public(labels, n_labels, &l);
	info.name = bytes_of(key);
	info.labels = (Berth__Snapshots__V1__Info__LabelsEntry **)bt_pbmap_from_labels(
		&l, &berth__snapshots__v1__info__labels_entry__descriptor, &info.n_labels);
	req.info = &info;
	req.n_update_mask = n_mask;
	req.update_mask = (char **)mask;
	rc = bt_conn_call(c->conn, &cs, &req.base, &berth__snapshots__v1__update_snapshot_response__descriptor,
			  (void **)&resp, &e);
	bt_pbmap_free((void **)info.labels, info.n_labels);
	bt_labels_clear(&l);
	if (rc < 0)
		return berth_fail(err, &e);
	if (out && resp->info)
		info_from_pb(resp->info, out);
	return 0;
}

typedef struct snap_acc {
	berth_snapshot_info *v;
	size_t n;
} snap_acc;

static void snap_batch(const void *msg, void *arg)
{
	const Berth__Snapshots__V1__ListSnapshotsResponse *b = msg;
	snap_acc *a = arg;

	a->v = bt_xrealloc(a->v, (a->n + b->n_info + 1) * sizeof(*a->v));
	for (size_t i = 0; i < b->n_info; i++)
		info_from_pb(b->info[i], &a->v[a->n++]);
}

int berth_snapshot_list(berth_client *c, const char *ns, const char *snapshotter, const char *const *filters,
			size_t n_filters, berth_snapshot_info **out, size_t *n_out, berth_error *err)
{
	Berth__Snapshots__V1__ListSnapshotsRequest req = BERTH__SNAPSHOTS__V1__LIST_SNAPSHOTS_REQUEST__INIT;
	bt_callspec cs = spec(c, "List", ns, snapshotter);
	snap_acc a = { 0 };
	bt_err e;

	req.n_filters = n_filters;
	req.filters = (char **)filters;
	if (berth_stream_each(c, &cs, &req.base, &berth__snapshots__v1__list_snapshots_response__descriptor,
			      snap_batch, &a, &e) < 0) {
		berth_snapshot_infos_free(a.v, a.n);
		return berth_fail(err, &e);
	}
	*out = a.v;
	*n_out = a.n;
	return 0;
}

int berth_snapshot_get_usage(berth_client *c, const char *ns, const char *snapshotter, const char *key,
			 berth_snapshot_usage *out, berth_error *err)
{
	Berth__Snapshots__V1__UsageRequest req = BERTH__SNAPSHOTS__V1__USAGE_REQUEST__INIT;
	_cleanup_pb_ Berth__Snapshots__V1__UsageResponse *resp = NULL;
	bt_callspec cs = spec(c, "Usage", ns, snapshotter);
	bt_err e;

	req.key = bytes_of(key);
	if (bt_conn_call(c->conn, &cs, &req.base, &berth__snapshots__v1__usage_response__descriptor, (void **)&resp,
			 &e) < 0)
		return berth_fail(err, &e);
	out->size = resp->size;
	out->inodes = resp->inodes;
	return 0;
}

int berth_snapshot_cleanup(berth_client *c, const char *ns, const char *snapshotter, int64_t *removed,
			   berth_error *err)
{
	Berth__Snapshots__V1__CleanupRequest req = BERTH__SNAPSHOTS__V1__CLEANUP_REQUEST__INIT;
	_cleanup_pb_ Berth__Snapshots__V1__CleanupResponse *resp = NULL;
	bt_callspec cs = spec(c, "Cleanup", ns, snapshotter);
	bt_err e;

	if (bt_conn_call(c->conn, &cs, &req.base, &berth__snapshots__v1__cleanup_response__descriptor, (void **)&resp,
			 &e) < 0)
		return berth_fail(err, &e);
	if (removed)
		*removed = resp->removed;
	return 0;
}

/* --- mounting -------------------------------------------------------------------- */

int berth_mount_all(const berth_mount *mounts, size_t n, const char *target, berth_error *err)
{
	bt_mount *v = n ? bt_xcalloc(n, sizeof(*v)) : NULL;
	bt_err e;
	int rc;

	/* borrowed: the public and internal shapes differ only in order */
	for (size_t i = 0; i < n; i++) {
		v[i].type = mounts[i].type;
		v[i].source = mounts[i].source;
		v[i].target = mounts[i].target;
		v[i].options = mounts[i].options;
		v[i].n_options = mounts[i].n_options;
	}
	rc = bt_mount_all(v, n, target, &e);
	free(v);
	return rc < 0 ? berth_fail(err, &e) : 0;
}

int berth_unmount(const char *target, berth_error *err)
{
	bt_err e;

	if (bt_unmount_all(target, &e) < 0)
		return berth_fail(err, &e);
	return 0;
}
