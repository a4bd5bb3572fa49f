/*
 * berth_content — the content API of libberth: info, list, labels, delete,
 * read (resuming), ingest (pipelined, resuming) and ingest status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "berth/content/v1/content.pb-c.h"
#include "berth_internal.h"
#include "bt_digest.h"
#include "bt_pbmap.h"
#include "bt_pbwire.h"
#include "bt_rpc.h"
#include "bt_util.h"

#define WRITE_WINDOW 8 /* 1 MiB writes in flight */
#define DEFAULT_RETRY_MS 60000

static void info_from_pb(const Berth__Content__V1__Info *p, berth_content_info *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->digest, sizeof(out->digest), "%s", p->digest);
	out->size = p->size;
	out->created_at = p->created_at;
	out->updated_at = p->updated_at;
	out->n_labels = p->n_labels;
	out->labels = berth_labels_to_public((void *const *)p->labels, p->n_labels);
}

void berth_content_info_clear(berth_content_info *i)
{
	berth_labels_free(i->labels, i->n_labels);
	memset(i, 0, sizeof(*i));
}

void berth_content_infos_free(berth_content_info *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		berth_content_info_clear(&v[i]);
	free(v);
}

void berth_ingest_status_clear(berth_ingest_status *s)
{
	free(s->ref);
	memset(s, 0, sizeof(*s));
}

void berth_ingest_statuses_free(berth_ingest_status *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		berth_ingest_status_clear(&v[i]);
	free(v);
}

int berth_content_get_info(berth_client *c, const char *ns, const char *digest, berth_content_info *out,
		       berth_error *err)
{
	Berth__Content__V1__InfoRequest req = BERTH__CONTENT__V1__INFO_REQUEST__INIT;
	_cleanup_pb_ Berth__Content__V1__InfoResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "content", "Info", ns);
	bt_err e;

	req.digest = (char *)digest;
	if (bt_conn_call(c->conn, &cs, &req.base, &berth__content__v1__info_response__descriptor, (void **)&resp,
			 &e) < 0)
		return berth_fail(err, &e);
	if (!resp->info) {
		bt_err_set(&e, BT_INTERNAL, "content.Info: reply without info");
		return berth_fail(err, &e);
	}
	info_from_pb(resp->info, out);
	return 0;
}

typedef struct info_acc {
	berth_content_info *v;
	size_t n;
} info_acc;

static void info_batch(const void *msg, void *arg)
{
	const Berth__Content__V1__ListResponse *b = msg;
	info_acc *a = arg;

	a->v = bt_xrealloc(a->v, (a->n + b->n_infos + 1) * sizeof(*a->v));
	for (size_t i = 0; i < b->n_infos; i++)
		info_from_pb(b->infos[i], &a->v[a->n++]);
}

int berth_content_list(berth_client *c, const char *ns, const char *const *filters, size_t n_filters,
		       berth_content_info **out, size_t *n_out, berth_error *err)
{
	Berth__Content__V1__ListRequest req = BERTH__CONTENT__V1__LIST_REQUEST__INIT;
	bt_callspec cs = berth_spec(c, "content", "List", ns);
	info_acc a = { 0 };
	bt_err e;

	req.n_filters = n_filters;
	req.filters = (char **)filters;
	if (berth_stream_each(c, &cs, &req.base, &berth__content__v1__list_response__descriptor, info_batch, &a, &e) <
	    0) {
		berth_content_infos_free(a.v, a.n);
		return berth_fail(err, &e);
	}
	*out = a.v;
	*n_out = a.n;
	return 0;
}

int berth_content_update(berth_client *c, const char *ns, const char *digest, const berth_label *labels,
			 size_t n_labels, const char *const *mask, size_t n_mask, berth_content_info *out,
			 berth_error *err)
{
	Berth__Content__V1__UpdateRequest req = BERTH__CONTENT__V1__UPDATE_REQUEST__INIT;
	Berth__Content__V1__Info info = BERTH__CONTENT__V1__INFO__INIT;
	_cleanup_pb_ Berth__Content__V1__UpdateResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "content", "Update", ns);
	bt_labels l = { 0 };
	bt_err e;
	int rc;

	berth_labels_from_public(labels, n_labels, &l);
	info.digest = (char *)digest;
	info.labels = (Berth__Content__V1__Info__LabelsEntry **)bt_pbmap_from_labels(
		&l, &berth__content__v1__info__labels_entry__descriptor, &info.n_labels);
	req.info = &info;
	req.n_update_mask = n_mask;
	req.update_mask = (char **)mask;
	rc = bt_conn_call(c->conn, &cs, &req.base, &berth__content__v1__update_response__descriptor, (void **)&resp,
			  &e);
	bt_pbmap_free((void **)info.labels, info.n_labels);
	bt_labels_clear(&l);
	if (rc < 0)
		return berth_fail(err, &e);
	if (out && resp->info)
		info_from_pb(resp->info, out);
	return 0;
}

int berth_content_delete(berth_client *c, const char *ns, const char *digest, berth_error *err)
{
	Berth__Content__V1__DeleteRequest req = BERTH__CONTENT__V1__DELETE_REQUEST__INIT;
	bt_callspec cs = berth_spec(c, "content", "Delete", ns);
	bt_err e;

	req.digest = (char *)digest;
	if (bt_conn_call(c->conn, &cs, &req.base, NULL, NULL, &e) < 0)
		return berth_fail(err, &e);
	return 0;
}

static void backoff_sleep(int attempt)
{
	int64_t ms = BT_MIN(50LL << BT_MIN(attempt, 5), 1000LL);
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* A ReadResponse frame: field 1 offset (varint), field 2 data (bytes). */
static int parse_chunk(zmq_msg_t *m, int64_t *offset, const uint8_t **data, size_t *len)
{
	const uint8_t *p = zmq_msg_data(m), *end = p + zmq_msg_size(m);
	bt_pb_field f;
	int rc;

	*offset = 0;
	*data = NULL;
	*len = 0;
	while ((rc = bt_pb_next(&p, end, &f)) == 1) {
		if (f.field == 1 && f.wiretype == BT_PB_VARINT)
			*offset = (int64_t)f.varint;
		else if (f.field == 2 && f.wiretype == BT_PB_LEN) {
			*data = f.bytes;
			*len = f.len;
		}
	}
	return rc;
}

int berth_content_read(berth_client *c, const char *ns, const char *digest, int64_t offset, int64_t size,
		       berth_sink_fn sink, void *arg, berth_error *err)
{
	int64_t done = 0, last_progress = bt_mono_ms();
	bool contacted = false;
	bt_err e;

	for (int attempt = 0;; attempt++) {
		Berth__Content__V1__ReadRequest req = BERTH__CONTENT__V1__READ_REQUEST__INIT;
		bt_callspec cs = berth_spec(c, "content", "Read", ns);
		bt_stream *s;
		int rc;

		req.digest = (char *)digest;
		req.offset = offset + done;
		req.size = size > 0 ? size - done : 0;
		if (size > 0 && req.size == 0)
			return 0;
		cs.timeout_ms = -1;
		s = bt_conn_stream(c->conn, &cs, &req.base, &berth__content__v1__read_response__descriptor, &e);
		rc = s ? 1 : -1;
		while (rc > 0) {
			zmq_msg_t frame;
			int64_t at;
			const uint8_t *data;
			size_t len;
			rc = bt_stream_next_raw(s, &frame, &e);
			if (rc <= 0)
				break;
			/* decoded by hand: the chunk is used where it lies */
			if (parse_chunk(&frame, &at, &data, &len) < 0 || at != offset + done) {
				bt_err_set(&e, BT_DATA_LOSS, "read %s: malformed or misplaced chunk (expected offset %lld)",
					   digest, (long long)(offset + done));
				zmq_msg_close(&frame);
				rc = -1;
				break;
			}
			int sr = sink(arg, data, len);
			contacted = true;
			done += (int64_t)len;
			last_progress = bt_mono_ms();
			zmq_msg_close(&frame);
			if (sr < 0) {
				bt_stream_free(&s);
				bt_err_set(&e, BT_CANCELLED, "read %s: stopped by the receiver", digest);
				return berth_fail(err, &e);
			}
		}
		bt_stream_free(&s);
		if (rc == 0)
			return 0;
		/* A lost path is retried from where the data stopped; one that
		 * never answered is not there. */
		if (!e.transport || !contacted || bt_mono_ms() - last_progress > DEFAULT_RETRY_MS)
			return berth_fail(err, &e);
		backoff_sleep(attempt);
	}
}

/* --- ingest ------------------------------------------------------------------ */

/* A chunk's bytes live in a buffer with room in front for the rest of the
 * WriteRequest, so the request is encoded around the data and sent without
 * copying it. ZeroMQ holds a reference while it sends. */
#define PREFIX_ROOM 1024

typedef struct cbuf {
	atomic_int refs;
	char bytes[];
} cbuf;

typedef struct chunk {
	int64_t offset;
	size_t len;
	cbuf *buf; /* data at buf->bytes + PREFIX_ROOM */
	uint64_t id; /* request in flight, 0 when not sent */
} chunk;

static cbuf *cbuf_new(size_t len)
{
	cbuf *b = bt_xmalloc(sizeof(*b) + PREFIX_ROOM + len);
	atomic_init(&b->refs, 1);
	return b;
}

/* A chunk buffer for the window: a spare one given back by an acknowledged
 * chunk, or a new one with its pages made present in one call. Memory
 * touched for the first time costs a page fault per 4 KiB, which under a
 * hypervisor with shadow page tables (this machine's) takes several times
 * as long as reading the chunk into it; the spares make it happen once per
 * window rather than whenever the allocator hands back fresh pages. */
static cbuf *cbuf_take(cbuf **spare, int *nspare)
{
	if (*nspare > 0)
		return spare[--*nspare];
	cbuf *b = cbuf_new(BT_RPC_CHUNK);
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t from = ((uintptr_t)b + page - 1) & ~(page - 1);
	uintptr_t to = ((uintptr_t)b->bytes + PREFIX_ROOM + BT_RPC_CHUNK) & ~(page - 1);
	if (to > from)
		(void)madvise((void *)from, to - from, MADV_POPULATE_WRITE); /* only an optimisation */
	return b;
}

static void cbuf_unref(void *data, void *hint)
{
	cbuf *b = hint;
	(void)data;
	if (b && atomic_fetch_sub(&b->refs, 1) == 1)
		free(b);
}

static char *chunk_data(chunk *ch)
{
	return ch->buf->bytes + PREFIX_ROOM;
}

static void chunk_drop(chunk *ch)
{
	cbuf_unref(NULL, ch->buf);
	ch->buf = NULL;
}

typedef struct ingest_run {
	berth_client *c;
	const char *ns;
	const berth_ingest_opts *o;
	char *writer;
	int64_t src_pos; /* next byte the source yields */
	bool eof;
	chunk win[WRITE_WINDOW]; /* unacknowledged chunks, oldest first */
	int nwin;
	cbuf *spare[WRITE_WINDOW]; /* buffers of acknowledged chunks, for reuse */
	int nspare;
	int64_t acked; /* server offset confirmed */
	bool contacted; /* the service answered at least once */
} ingest_run;

static void fill_write(ingest_run *r, Berth__Content__V1__WriteRequest *w, Berth__Content__V1__WriteAction a)
{
	berth__content__v1__write_request__init(w);
	w->action = a;
	w->ref = (char *)r->o->ref;
	w->writer = r->writer;
	w->total = r->o->expected_size;
	w->expected = (char *)(r->o->expected_digest ? r->o->expected_digest : "");
}

static int do_stat(ingest_run *r, int64_t *offset, bt_err *e)
{
	Berth__Content__V1__WriteRequest w;
	_cleanup_pb_ Berth__Content__V1__WriteResponse *resp = NULL;
	bt_callspec cs = berth_spec(r->c, "content", "Write", r->ns);

	fill_write(r, &w, BERTH__CONTENT__V1__WRITE_ACTION__STAT);
	cs.order_key = r->o->ref;
	if (bt_conn_call(r->c->conn, &cs, &w.base, &berth__content__v1__write_response__descriptor, (void **)&resp,
			 e) < 0)
		return -1;
	r->contacted = true;
	*offset = resp->offset;
	return 0;
}

/* Reads up to len bytes from the source (short only at its end). */
static int64_t source_read(ingest_run *r, char *buf, size_t len, bt_err *e)
{
	size_t got = 0;
	while (got < len && !r->eof) {
		int64_t n = r->o->source(r->o->arg, buf + got, len - got);
		if (n < 0)
			return bt_err_set(e, BT_INTERNAL, "ingest %s: reading the source failed", r->o->ref);
		if (n == 0)
			r->eof = true;
		got += (size_t)n;
	}
	r->src_pos += (int64_t)got;
	return (int64_t)got;
}

/* Brings the window and the source in line with the server's offset. */
static int realign(ingest_run *r, int64_t server, bt_err *e)
{
	/* drop chunks the server has */
	while (r->nwin > 0 && r->win[0].offset + (int64_t)r->win[0].len <= server) {
		chunk_drop(&r->win[0]);
		memmove(&r->win[0], &r->win[1], (size_t)(r->nwin - 1) * sizeof(chunk));
		r->nwin--;
	}
	for (int i = 0; i < r->nwin; i++)
		r->win[i].id = 0; /* to be (re)sent */
	r->acked = server;
	if (r->nwin > 0) {
		if (r->win[0].offset == server)
			return 0;
		if (r->win[0].offset < server) {
			/* the server holds part of the oldest chunk: keep the rest,
			 * in a new buffer (ZeroMQ may still hold the old one) */
			size_t cut = (size_t)(server - r->win[0].offset);
			cbuf *nb = cbuf_new(r->win[0].len - cut);
			memcpy(nb->bytes + PREFIX_ROOM, chunk_data(&r->win[0]) + cut, r->win[0].len - cut);
			chunk_drop(&r->win[0]);
			r->win[0].buf = nb;
			r->win[0].len -= cut;
			r->win[0].offset = server;
			return 0;
		}
	} else if (r->src_pos == server) {
		return 0;
	}
	int64_t want = server;
	int64_t have = r->nwin > 0 ? r->win[0].offset : r->src_pos;
	if (want < have) {
		/* the server has less than we dropped: rewind the source */
		if (!r->o->seek || r->o->seek(r->o->arg, want) < 0)
			return bt_err_set(e, BT_FAILED_PRECONDITION,
					  "ingest %s: the service holds %lld bytes but the source cannot rewind there",
					  r->o->ref, (long long)want);
		for (int i = 0; i < r->nwin; i++)
			chunk_drop(&r->win[i]);
		r->nwin = 0;
		r->src_pos = want;
		r->eof = false;
		return 0;
	}
	/* server ahead of the source (resuming an earlier ingest) */
	if (r->o->seek && r->o->seek(r->o->arg, want) == 0) {
		r->src_pos = want;
		return 0;
	}
	_cleanup_free_ char *skip = bt_xmalloc(BT_RPC_CHUNK);
	while (r->src_pos < want) {
		int64_t n = source_read(r, skip, (size_t)BT_MIN((int64_t)BT_RPC_CHUNK, want - r->src_pos), e);
		if (n < 0)
			return -1;
		if (n == 0)
			return bt_err_set(e, BT_FAILED_PRECONDITION,
					  "ingest %s: the service holds %lld bytes, more than the source has", r->o->ref,
					  (long long)want);
	}
	return 0;
}

static uint8_t *put_string(uint8_t *p, uint32_t field, const char *s)
{
	size_t n = strlen(s);
	if (n == 0)
		return p;
	p = bt_pb_put_key(p, field, BT_PB_LEN);
	p = bt_pb_put_varint(p, n);
	memcpy(p, s, n);
	return p + n;
}

static uint8_t *put_varint_field(uint8_t *p, uint32_t field, uint64_t v)
{
	if (v == 0)
		return p;
	p = bt_pb_put_key(p, field, BT_PB_VARINT);
	return bt_pb_put_varint(p, v);
}

/* Encodes a WRITE request (content.proto's WriteRequest field numbers) in
 * front of the chunk's data and sends it without copying the data. */
static int send_chunk(ingest_run *r, chunk *ch, bt_err *e)
{
	bt_callspec cs = berth_spec(r->c, "content", "Write", r->ns);
	uint8_t prefix[PREFIX_ROOM], *p = prefix;
	const char *expected = r->o->expected_digest ? r->o->expected_digest : "";
	zmq_msg_t m;

	if (strlen(r->o->ref) + strlen(r->writer) + strlen(expected) + 64 > PREFIX_ROOM)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "ingest: ref or expected digest too long");
	p = put_varint_field(p, 1, BERTH__CONTENT__V1__WRITE_ACTION__WRITE);
	p = put_string(p, 2, r->o->ref);
	p = put_string(p, 3, r->writer);
	p = put_varint_field(p, 4, (uint64_t)r->o->expected_size);
	p = put_string(p, 5, expected);
	p = put_varint_field(p, 6, (uint64_t)ch->offset);
	p = bt_pb_put_key(p, 7, BT_PB_LEN);
	p = bt_pb_put_varint(p, ch->len);
	size_t plen = (size_t)(p - prefix);
	char *start = chunk_data(ch) - plen;
	memcpy(start, prefix, plen);
	atomic_fetch_add(&ch->buf->refs, 1);
	if (zmq_msg_init_data(&m, start, plen + ch->len, cbuf_unref, ch->buf) < 0)
		bt_oom();
	cs.order_key = r->o->ref;
	return bt_conn_send_raw(r->c->conn, &cs, &m, &ch->id, e);
}

/* Collects the oldest chunk's reply. */
static int collect_oldest(ingest_run *r, bt_err *e)
{
	_cleanup_pb_ Berth__Content__V1__WriteResponse *resp = NULL;
	chunk *ch = &r->win[0];
	int rc = bt_conn_collect(r->c->conn, ch->id, &berth__content__v1__write_response__descriptor, (void **)&resp, e);

	ch->id = 0;
	if (rc < 0)
		return -1;
	r->acked = resp->offset;
	/* keep the buffer for the next chunk unless ZeroMQ still holds it */
	if (atomic_load(&ch->buf->refs) == 1 && r->nspare < WRITE_WINDOW) {
		r->spare[r->nspare++] = ch->buf;
		ch->buf = NULL;
	} else {
		chunk_drop(ch);
	}
	memmove(&r->win[0], &r->win[1], (size_t)(r->nwin - 1) * sizeof(chunk));
	r->nwin--;
	if (r->o->progress)
		r->o->progress(r->o->progress_arg, r->acked, r->o->expected_size);
	return 0;
}

/* Abandons every reply still owed (after an error). */
static void drain(ingest_run *r)
{
	for (int i = 0; i < r->nwin; i++) {
		if (r->win[i].id) {
			bt_err ignore;
			bt_conn_collect(r->c->conn, r->win[i].id, NULL, NULL, &ignore);
			r->win[i].id = 0;
		}
	}
}

/* One pass: send what the source has, pipelined; 0 when all is acknowledged. */
static int pump(ingest_run *r, bt_err *e)
{
	for (;;) {
		/* resend what realign left unsent */
		for (int i = 0; i < r->nwin; i++)
			if (!r->win[i].id && send_chunk(r, &r->win[i], e) < 0)
				return -1;
		if (r->nwin == WRITE_WINDOW || (r->eof && r->nwin > 0)) {
			if (collect_oldest(r, e) < 0)
				return -1;
			continue;
		}
		if (r->eof)
			return 0;
		chunk *ch = &r->win[r->nwin];
		ch->buf = cbuf_take(r->spare, &r->nspare);
		ch->offset = r->src_pos;
		int64_t n = source_read(r, chunk_data(ch), BT_RPC_CHUNK, e);
		if (n <= 0) {
			chunk_drop(ch);
			if (n < 0)
				return -1;
			continue;
		}
		ch->len = (size_t)n;
		ch->id = 0;
		r->nwin++;
		if (send_chunk(r, ch, e) < 0)
			return -1;
	}
}

static int do_commit(ingest_run *r, char digest_out[72], bt_err *e)
{
	Berth__Content__V1__WriteRequest w;
	_cleanup_pb_ Berth__Content__V1__WriteResponse *resp = NULL;
	bt_callspec cs = berth_spec(r->c, "content", "Write", r->ns);
	bt_labels l = { 0 };
	int rc;

	fill_write(r, &w, BERTH__CONTENT__V1__WRITE_ACTION__COMMIT);
	w.offset = r->acked;
	berth_labels_from_public(r->o->labels, r->o->n_labels, &l);
	w.labels = (Berth__Content__V1__WriteRequest__LabelsEntry **)bt_pbmap_from_labels(
		&l, &berth__content__v1__write_request__labels_entry__descriptor, &w.n_labels);
	cs.order_key = r->o->ref;
	rc = bt_conn_call(r->c->conn, &cs, &w.base, &berth__content__v1__write_response__descriptor, (void **)&resp, e);
	bt_pbmap_free((void **)w.labels, w.n_labels);
	bt_labels_clear(&l);
	if (rc < 0)
		return -1;
	snprintf(digest_out, 72, "%s", resp->digest);
	return 0;
}

int berth_content_ingest(berth_client *c, const char *ns, const berth_ingest_opts *o, char digest_out[72],
			 berth_error *err)
{
	ingest_run r = { .c = c, .ns = berth_ns(c, ns), .o = o };
	int64_t retry_ms = o->retry_ms == 0 ? DEFAULT_RETRY_MS : o->retry_ms;
	int64_t last_progress = bt_mono_ms(), last_acked = -1;
	bt_err e = { 0 };
	int rc = -1;

	if (!o->ref || !*o->ref || !o->source) {
		bt_err_set(&e, BT_INVALID_ARGUMENT, "ingest: a ref and a source are required");
		return berth_fail(err, &e);
	}
	r.writer = bt_random_hex(16);
	for (int attempt = 0;; attempt++) {
		int64_t server;
		if (do_stat(&r, &server, &e) == 0 && realign(&r, server, &e) == 0 && pump(&r, &e) == 0 &&
		    do_commit(&r, digest_out, &e) == 0) {
			rc = 0;
			break;
		}
		drain(&r);
		if (e.code == BT_ALREADY_EXISTS && o->expected_digest) {
			/* held already in this namespace: nothing to write */
			snprintf(digest_out, 72, "%s", o->expected_digest);
			rc = 0;
			break;
		}
		if (r.acked != last_acked) {
			last_acked = r.acked;
			last_progress = bt_mono_ms();
		}
		/* Retry a path that was lost, not one that never was: with no
		 * answer ever, the service is simply not there. */
		if (!e.transport || !r.contacted || retry_ms < 0 || bt_mono_ms() - last_progress > retry_ms)
			break;
		backoff_sleep(attempt);
	}
	for (int i = 0; i < r.nwin; i++)
		chunk_drop(&r.win[i]);
	for (int i = 0; i < r.nspare; i++)
		cbuf_unref(NULL, r.spare[i]);
	free(r.writer);
	if (rc < 0)
		return berth_fail(err, &e);
	return 0;
}

static void status_from_pb(const Berth__Content__V1__Status *p, berth_ingest_status *out)
{
	memset(out, 0, sizeof(*out));
	out->ref = bt_xstrdup(p->ref);
	out->offset = p->offset;
	out->total = p->total;
	snprintf(out->expected, sizeof(out->expected), "%s", p->expected);
	out->started_at = p->started_at;
	out->updated_at = p->updated_at;
}

int berth_content_status(berth_client *c, const char *ns, const char *ref, berth_ingest_status *out,
			 berth_error *err)
{
	Berth__Content__V1__StatusRequest req = BERTH__CONTENT__V1__STATUS_REQUEST__INIT;
	_cleanup_pb_ Berth__Content__V1__StatusResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "content", "Status", ns);
	bt_err e;

	req.ref = (char *)ref;
	if (bt_conn_call(c->conn, &cs, &req.base, &berth__content__v1__status_response__descriptor, (void **)&resp,
			 &e) < 0)
		return berth_fail(err, &e);
	if (!resp->status) {
		bt_err_set(&e, BT_INTERNAL, "content.Status: reply without status");
		return berth_fail(err, &e);
	}
	status_from_pb(resp->status, out);
	return 0;
}

int berth_content_list_statuses(berth_client *c, const char *ns, const char *const *filters, size_t n_filters,
				berth_ingest_status **out, size_t *n_out, berth_error *err)
{
	Berth__Content__V1__ListStatusesRequest req = BERTH__CONTENT__V1__LIST_STATUSES_REQUEST__INIT;
	_cleanup_pb_ Berth__Content__V1__ListStatusesResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "content", "ListStatuses", ns);
	berth_ingest_status *v;
	bt_err e;

	req.n_filters = n_filters;
	req.filters = (char **)filters;
	if (bt_conn_call(c->conn, &cs, &req.base, &berth__content__v1__list_statuses_response__descriptor,
			 (void **)&resp, &e) < 0)
		return berth_fail(err, &e);
	v = bt_xcalloc(resp->n_statuses, sizeof(*v));
	for (size_t i = 0; i < resp->n_statuses; i++)
		status_from_pb(resp->statuses[i], &v[i]);
	*out = v;
	*n_out = resp->n_statuses;
	return 0;
}

int berth_content_abort(berth_client *c, const char *ns, const char *ref, berth_error *err)
{
	Berth__Content__V1__AbortRequest req = BERTH__CONTENT__V1__ABORT_REQUEST__INIT;
	bt_callspec cs = berth_spec(c, "content", "Abort", ns);
	bt_err e;

	req.ref = (char *)ref;
	if (bt_conn_call(c->conn, &cs, &req.base, NULL, NULL, &e) < 0)
		return berth_fail(err, &e);
	return 0;
}

/* --- pull-style reader ----------------------------------------------------------- */

struct berth_reader {
	berth_client *c;
	char *ns;
	char digest[72];
	int64_t offset;   /* next byte the caller gets */
	bt_stream *s;
	zmq_msg_t frame;  /* the chunk being handed out */
	const uint8_t *p; /* its unread part */
	size_t left;
	bool eof;
	bool contacted;
	int64_t last_progress;
};

berth_reader *berth_content_reader(berth_client *c, const char *ns, const char *digest, int64_t offset,
				   berth_error *err)
{
	berth_reader *r;
	bt_err e;

	if (bt_digest_validate(digest, NULL, &e) < 0) {
		berth_fail(err, &e);
		return NULL;
	}
	r = bt_xzalloc(sizeof(*r));
	r->c = c;
	r->ns = bt_xstrdup(berth_ns(c, ns));
	snprintf(r->digest, sizeof(r->digest), "%s", digest);
	r->offset = offset;
	r->last_progress = bt_mono_ms();
	zmq_msg_init(&r->frame);
	return r;
}

static int reader_open(berth_reader *r, bt_err *e)
{
	Berth__Content__V1__ReadRequest req = BERTH__CONTENT__V1__READ_REQUEST__INIT;
	bt_callspec cs = berth_spec(r->c, "content", "Read", r->ns);

	req.digest = r->digest;
	req.offset = r->offset;
	cs.timeout_ms = -1;
	r->s = bt_conn_stream(r->c->conn, &cs, &req.base, &berth__content__v1__read_response__descriptor, e);
	return r->s ? 0 : -1;
}

int64_t berth_reader_read(berth_reader *r, void *buf, size_t len, berth_error *err)
{
	bt_err e;

	for (int attempt = 0;;) {
		if (r->left > 0) {
			size_t n = BT_MIN(len, r->left);
			memcpy(buf, r->p, n);
			r->p += n;
			r->left -= n;
			r->offset += (int64_t)n;
			return (int64_t)n;
		}
		if (r->eof)
			return 0;
		if (!r->s && reader_open(r, &e) < 0)
			goto fail;
		zmq_msg_close(&r->frame);
		int rc = bt_stream_next_raw(r->s, &r->frame, &e);
		if (rc == 0) {
			r->eof = true;
			bt_stream_free(&r->s);
			return 0;
		}
		if (rc < 0)
			goto fail;
		int64_t at;
		if (parse_chunk(&r->frame, &at, &r->p, &r->left) < 0 || at != r->offset) {
			bt_err_set(&e, BT_DATA_LOSS, "read %s: malformed or misplaced chunk", r->digest);
			return berth_fail(err, &e);
		}
		r->contacted = true;
		r->last_progress = bt_mono_ms();
		continue;
fail:
		bt_stream_free(&r->s);
		if (e.code == BT_OUT_OF_RANGE && r->contacted) {
			r->eof = true;
			return 0;
		}
		if (!e.transport || !r->contacted || bt_mono_ms() - r->last_progress > DEFAULT_RETRY_MS)
			return berth_fail(err, &e);
		backoff_sleep(attempt++);
	}
}

void berth_reader_free(berth_reader **rp)
{
	berth_reader *r = *rp;
	if (!r)
		return;
	bt_stream_free(&r->s);
	zmq_msg_close(&r->frame);
	free(r->ns);
	free(r);
	*rp = NULL;
}

typedef struct doc_sink {
	bt_buf *b;
	size_t max;
} doc_sink;

static int doc_collect(void *arg, const void *data, size_t len)
{
	doc_sink *d = arg;
	if (d->b->len + len > d->max)
		return -1;
	bt_buf_append(d->b, data, len);
	return 0;
}

int berth_read_doc(berth_client *c, const char *ns, const char *what, const char *digest, size_t max, bt_buf *out,
		   bt_err *e)
{
	doc_sink d = { .b = out, .max = max };
	berth_error err;

	if (berth_content_read(c, ns, digest, 0, 0, doc_collect, &d, &err) == 0)
		return 0;
	bt_buf_free(out);
	if (err.code == BERTH_NOT_FOUND)
		return bt_err_set(e, BT_NOT_FOUND, "%s %s is not stored (pull the image again)", what, digest);
	if (err.code == BERTH_CANCELLED)
		return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "%s %s is larger than %zu bytes", what, digest, max);
	return bt_err_set(e, err.code, "%s %s: %s", what, digest, err.message);
}
