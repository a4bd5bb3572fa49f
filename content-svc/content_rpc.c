/*
 * content_rpc — handlers of the "content" service: decode, call the store,
 * encode.  The logic lives in content_store.c.
 */
#define _GNU_SOURCE
#include "content_rpc.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "berth/content/v1/content.pb-c.h"
#include "bt_batch.h"
#include "bt_events.h"
#include "bt_filter.h"
#include "bt_log.h"
#include "bt_pbmap.h"
#include "bt_pbwire.h"
#include "bt_util.h"


typedef Berth__Content__V1__Info pb_info;

/* Fills a pb Info borrowing from i; release with info_pb_release. */
static void info_to_pb(const content_info *i, pb_info *out)
{
	berth__content__v1__info__init(out);
	out->digest = (char *)i->digest;
	out->size = i->size;
	out->created_at = i->created;
	out->updated_at = i->updated;
	out->labels = (Berth__Content__V1__Info__LabelsEntry **)bt_pbmap_from_labels(
		&i->labels, &berth__content__v1__info__labels_entry__descriptor, &out->n_labels);
}

static void info_pb_release(pb_info *p)
{
	bt_pbmap_free((void **)p->labels, p->n_labels);
	p->labels = NULL;
	p->n_labels = 0;
}

static void h_info(bt_call *call, void *ctx)
{
	const Berth__Content__V1__InfoRequest *r = bt_call_req(call);
	Berth__Content__V1__InfoResponse resp = BERTH__CONTENT__V1__INFO_RESPONSE__INIT;
	content_info info = { 0 };
	pb_info pi;
	bt_err e;

	if (content_info_get(ctx, bt_call_namespace(call), r->digest, &info, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	info_to_pb(&info, &pi);
	resp.info = &pi;
	bt_call_reply(call, &resp.base);
	info_pb_release(&pi);
	content_info_clear(&info);
}

static void h_update(bt_call *call, void *ctx)
{
	const Berth__Content__V1__UpdateRequest *r = bt_call_req(call);
	Berth__Content__V1__UpdateResponse resp = BERTH__CONTENT__V1__UPDATE_RESPONSE__INIT;
	content_info info = { 0 };
	bt_labels want = { 0 };
	pb_info pi;
	bt_err e;

	if (!r->info) {
		bt_call_errorf(call, BT_INVALID_ARGUMENT, "update: info is required");
		return;
	}
	bt_pbmap_to_labels((void *const *)r->info->labels, r->info->n_labels, &want);
	if (content_update(ctx, bt_call_namespace(call), r->info->digest, &want, r->update_mask, r->n_update_mask,
			   &info, &e) < 0) {
		bt_labels_clear(&want);
		bt_call_error(call, &e);
		return;
	}
	bt_labels_clear(&want);
	info_to_pb(&info, &pi);
	resp.info = &pi;
	bt_call_reply(call, &resp.base);
	info_pb_release(&pi);
	content_info_clear(&info);
}

static void rec_copy(void *dst, const void *src)
{
	content_info *c = dst;

	*c = *(const content_info *)src;
	memset(&c->labels, 0, sizeof(c->labels));
	bt_labels_copy(&c->labels, &((const content_info *)src)->labels);
}

static void rec_clear(void *r)
{
	content_info_clear(r);
}

static int send_batch(bt_call *call, const void *recs, size_t n, bt_err *e)
{
	Berth__Content__V1__ListResponse r = BERTH__CONTENT__V1__LIST_RESPONSE__INIT;
	pb_info items[BT_BATCH];
	pb_info *ptrs[BT_BATCH];

	for (size_t i = 0; i < n; i++) {
		info_to_pb(&((const content_info *)recs)[i], &items[i]);
		ptrs[i] = &items[i];
	}
	r.n_infos = n;
	r.infos = ptrs;
	int rc = bt_call_send(call, &r.base, e);
	for (size_t i = 0; i < n; i++)
		info_pb_release(&items[i]);
	return rc;
}

static const bt_batch_ops list_ops = { sizeof(content_info), rec_copy, rec_clear, send_batch };

static int list_cb(const content_info *i, void *arg)
{
	return bt_batch_add(arg, i);
}

static void h_list(bt_call *call, void *ctx)
{
	const Berth__Content__V1__ListRequest *r = bt_call_req(call);
	bt_filter *f = NULL;
	bt_batch b;
	bt_err e;

	if (bt_filter_parse((const char *const *)r->filters, r->n_filters, &f, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	bt_batch_init(&b, call, &list_ops);
	int rc = content_list(ctx, bt_call_namespace(call), f, list_cb, &b, &e);
	bt_filter_free(&f);
	bt_batch_end(&b, rc, &e);
}

static void h_delete(bt_call *call, void *ctx)
{
	const Berth__Content__V1__DeleteRequest *r = bt_call_req(call);
	Berth__Content__V1__DeleteResponse resp = BERTH__CONTENT__V1__DELETE_RESPONSE__INIT;
	bt_err e;

	if (content_delete(ctx, bt_call_namespace(call), r->digest, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	/* (before the reply: the call is gone once it has its final answer) */
	bt_event(bt_call_namespace(call), "/content/delete", "digest", r->digest, NULL);
	bt_call_reply(call, &resp.base);
}

/* A ReadResponse frame built by hand so the chunk is read from disk
 * straight into the outgoing frame (protobuf-c would copy it again):
 * field 1 (offset) then field 2 (data), as content.proto declares them. */
static int read_chunk(int fd, int64_t off, size_t want, zmq_msg_t *m, bt_err *e)
{
	size_t head = 1 + bt_pb_varint_size((uint64_t)off) + 1 + bt_pb_varint_size(want);
	uint8_t *p;
	ssize_t got;

	if (zmq_msg_init_size(m, head + want) < 0)
		bt_oom();
	p = zmq_msg_data(m);
	p = bt_pb_put_key(p, 1, BT_PB_VARINT);
	p = bt_pb_put_varint(p, (uint64_t)off);
	p = bt_pb_put_key(p, 2, BT_PB_LEN);
	p = bt_pb_put_varint(p, want);
	got = bt_pread_all(fd, p, want, off);
	if (got < 0 || (size_t)got != want) {
		zmq_msg_close(m);
		if (got < 0)
			return bt_err_errno(e, errno, "read");
		return bt_err_set(e, BT_DATA_LOSS, "blob shorter than recorded");
	}
	return 0;
}

static void h_read(bt_call *call, void *ctx)
{
	const Berth__Content__V1__ReadRequest *r = bt_call_req(call);
	_cleanup_close_ int fd = -1;
	int64_t size, off, end;
	bt_err e;

	if (r->offset < 0 || r->size < 0) {
		bt_call_errorf(call, BT_INVALID_ARGUMENT, "read %s: negative offset or size", r->digest);
		return;
	}
	if (content_open(ctx, bt_call_namespace(call), r->digest, &fd, &size, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	if (r->offset > size || (r->offset == size && size > 0 && r->size > 0)) {
		bt_call_errorf(call, BT_OUT_OF_RANGE, "read %s: offset %lld is past the end (size %lld)", r->digest,
			       (long long)r->offset, (long long)size);
		return;
	}
	end = r->size > 0 && r->size < size - r->offset ? r->offset + r->size : size;
	for (off = r->offset; off < end;) {
		zmq_msg_t chunk;
		size_t want = (size_t)BT_MIN((int64_t)BT_RPC_CHUNK, end - off);
		if (read_chunk(fd, off, want, &chunk, &e) < 0) {
			bt_err_wrap(&e, "read %s at %lld", r->digest, (long long)off);
			bt_call_error(call, &e);
			return;
		}
		if (bt_call_send_raw(call, &chunk, &e) < 0) {
			bt_call_error(call, &e);
			return;
		}
		off += (int64_t)want;
	}
	bt_call_reply(call, NULL);
}

static void status_to_pb(const content_status *s, Berth__Content__V1__Status *out)
{
	berth__content__v1__status__init(out);
	out->ref = s->ref;
	out->offset = s->offset;
	out->total = s->total;
	out->expected = (char *)s->expected;
	out->started_at = s->started;
	out->updated_at = s->updated;
}

static void h_status(bt_call *call, void *ctx)
{
	const Berth__Content__V1__StatusRequest *r = bt_call_req(call);
	Berth__Content__V1__StatusResponse resp = BERTH__CONTENT__V1__STATUS_RESPONSE__INIT;
	Berth__Content__V1__Status ps;
	content_status st = { 0 };
	bt_err e;

	if (content_status_get(ctx, bt_call_namespace(call), r->ref, &st, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	status_to_pb(&st, &ps);
	resp.status = &ps;
	bt_call_reply(call, &resp.base);
	content_status_clear(&st);
}

typedef struct statuses {
	content_status *v;
	size_t n;
} statuses;

static int statuses_cb(const content_status *st, void *arg)
{
	statuses *ss = arg;
	ss->v = bt_xrealloc(ss->v, (ss->n + 1) * sizeof(*ss->v));
	ss->v[ss->n] = *st;
	ss->v[ss->n].ref = bt_xstrdup(st->ref);
	ss->n++;
	return 0;
}

static void h_list_statuses(bt_call *call, void *ctx)
{
	const Berth__Content__V1__ListStatusesRequest *r = bt_call_req(call);
	Berth__Content__V1__ListStatusesResponse resp = BERTH__CONTENT__V1__LIST_STATUSES_RESPONSE__INIT;
	statuses ss = { 0 };
	bt_filter *f = NULL;
	bt_err e;

	if (bt_filter_parse((const char *const *)r->filters, r->n_filters, &f, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	if (content_list_statuses(ctx, bt_call_namespace(call), f, statuses_cb, &ss, &e) < 0) {
		bt_call_error(call, &e);
	} else {
		Berth__Content__V1__Status *ps = bt_xcalloc(ss.n, sizeof(*ps));
		Berth__Content__V1__Status **pp = bt_xcalloc(ss.n, sizeof(*pp));
		for (size_t i = 0; i < ss.n; i++) {
			status_to_pb(&ss.v[i], &ps[i]);
			pp[i] = &ps[i];
		}
		resp.n_statuses = ss.n;
		resp.statuses = pp;
		bt_call_reply(call, &resp.base);
		free(ps);
		free(pp);
	}
	for (size_t i = 0; i < ss.n; i++)
		content_status_clear(&ss.v[i]);
	free(ss.v);
	bt_filter_free(&f);
}

/* A WriteRequest decoded by hand (Write is BT_M_RAW): the data field is used
 * where it lies in the received frame instead of being copied. Field
 * numbers are content.proto's; unknown fields are skipped. */
static char *dup_field(const bt_pb_field *f)
{
	return bt_xstrndup((const char *)f->bytes, f->len);
}

void content_write_fields_clear(content_write_fields *w)
{
	free(w->ref);
	free(w->writer);
	free(w->expected);
	bt_labels_clear(&w->labels);
}

static int parse_label(const bt_pb_field *entry, bt_labels *out)
{
	const uint8_t *p = entry->bytes, *end = p + entry->len;
	_cleanup_free_ char *k = NULL, *v = NULL;
	bt_pb_field f;
	int rc;

	while ((rc = bt_pb_next(&p, end, &f)) == 1) {
		if (f.wiretype != BT_PB_LEN)
			continue;
		if (f.field == 1) {
			free(k);
			k = dup_field(&f);
		} else if (f.field == 2) {
			free(v);
			v = dup_field(&f);
		}
	}
	if (rc < 0)
		return -1;
	bt_labels_set(out, k ? k : "", v ? v : "");
	return 0;
}

int content_parse_write(const uint8_t *p, size_t n, content_write_fields *w, bt_err *e)
{
	const uint8_t *end = p + n;
	bt_pb_field f;
	int rc;

	while ((rc = bt_pb_next(&p, end, &f)) == 1) {
		bool len = f.wiretype == BT_PB_LEN, var = f.wiretype == BT_PB_VARINT;
		switch (f.field) {
		case 1:
			if (var)
				w->action = (int)f.varint;
			break;
		case 2:
			if (len) {
				free(w->ref);
				w->ref = dup_field(&f);
			}
			break;
		case 3:
			if (len) {
				free(w->writer);
				w->writer = dup_field(&f);
			}
			break;
		case 4:
			if (var)
				w->total = (int64_t)f.varint;
			break;
		case 5:
			if (len) {
				free(w->expected);
				w->expected = dup_field(&f);
			}
			break;
		case 6:
			if (var)
				w->offset = (int64_t)f.varint;
			break;
		case 7:
			if (len) {
				w->data = f.bytes;
				w->len = f.len;
			}
			break;
		case 8:
			if (len && parse_label(&f, &w->labels) < 0)
				rc = -1;
			break;
		}
		if (rc < 0)
			break;
	}
	if (rc < 0)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "content.Write: malformed WriteRequest body (%zu bytes)", n);
	return 0;
}

static void h_write(bt_call *call, void *ctx)
{
	Berth__Content__V1__WriteResponse resp = BERTH__CONTENT__V1__WRITE_RESPONSE__INIT;
	content_write_res res = { 0 };
	content_write_fields wf = { 0 };
	size_t n;
	const uint8_t *body = bt_call_body(call, &n);
	bt_err e;

	if (content_parse_write(body, n, &wf, &e) < 0) {
		content_write_fields_clear(&wf);
		bt_call_error(call, &e);
		return;
	}
	content_write_req w = {
		.ref = wf.ref ? wf.ref : "",
		.writer = wf.writer,
		.total = wf.total,
		.expected = wf.expected,
		.offset = wf.offset,
		.data = wf.data,
		.len = wf.len,
		.labels = &wf.labels,
	};
	switch (wf.action) {
	case BERTH__CONTENT__V1__WRITE_ACTION__STAT:
		w.action = CONTENT_STAT;
		break;
	case BERTH__CONTENT__V1__WRITE_ACTION__WRITE:
		w.action = CONTENT_WRITE;
		break;
	case BERTH__CONTENT__V1__WRITE_ACTION__COMMIT:
		w.action = CONTENT_COMMIT;
		break;
	default:
		bt_call_errorf(call, BT_INVALID_ARGUMENT, "write %s: unknown action %d", w.ref, wf.action);
		content_write_fields_clear(&wf);
		return;
	}
	if (content_write(ctx, bt_call_namespace(call), &w, &res, &e) < 0) {
		content_write_fields_clear(&wf);
		bt_call_error(call, &e);
		return;
	}
	resp.action = (Berth__Content__V1__WriteAction)wf.action;
	resp.started_at = res.started;
	resp.updated_at = res.updated;
	resp.offset = res.offset;
	resp.total = res.total;
	resp.digest = res.digest;
	resp.existed = res.existed;
	bt_call_reply(call, &resp.base);
	content_write_fields_clear(&wf);
}

static void h_abort(bt_call *call, void *ctx)
{
	const Berth__Content__V1__AbortRequest *r = bt_call_req(call);
	Berth__Content__V1__AbortResponse resp = BERTH__CONTENT__V1__ABORT_RESPONSE__INIT;
	bt_err e;

	if (content_abort(ctx, bt_call_namespace(call), r->ref, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	bt_call_reply(call, &resp.base);
}

static const bt_method methods[] = {
	{ "Info", h_info, BT_M_INLINE },
	{ "Update", h_update, 0 },
	{ "List", h_list, 0 },
	{ "Delete", h_delete, 0 },
	{ "Read", h_read, 0 },
	{ "Status", h_status, 0 },
	{ "ListStatuses", h_list_statuses, 0 },
	{ "Write", h_write, BT_M_RAW },
	{ "Abort", h_abort, 0 },
};

void content_rpc_service(content_store *store, bt_service *svc)
{
	svc->name = "content";
	svc->desc = &berth__content__v1__content__descriptor;
	svc->methods = methods;
	svc->n_methods = BT_ARRAY_LEN(methods);
	svc->ctx = store;
}
