/*
 * image_decompress — gzip (isa-l igzip), zstd (libzstd) and plain layer
 * streams behind one feed/produce call.
 *
 * gzip: members follow each other (each with its own header, CRC and size
 * check); after the last one only zero bytes may follow, which are skipped as
 * `gzip -d` skips tar padding.  Anything else after a member is corrupt: the
 * stream is a layer whose digest the caller checks, and bytes nobody
 * decompresses must not pass silently.
 */
#define _GNU_SOURCE
#include "image_decompress.h"

#include <inttypes.h>
#include <pthread.h>
#include <isa-l/igzip_lib.h>
#include <stdint.h>
#include <string.h>
#include <zstd.h>

#include "bt_util.h"

typedef enum {
	GZ_MEMBER,  /* inside a member: header, deflate data or trailer */
	GZ_BETWEEN, /* a member ended; another, zero padding or the end may follow */
	GZ_ZEROS,   /* in trailing zero padding: only zeros and the end may follow */
} gz_phase;

struct img_decomp {
	img_comp comp;
	uint64_t in_total; /* compressed bytes consumed, for messages */
	bool done;         /* eof reported */
	bool failed;
	bt_err err; /* the error repeated after a failure */
	/* gzip */
	struct inflate_state *gz;
	gz_phase phase;
	unsigned members;
	/* zstd */
	ZSTD_DStream *zs;
	size_t zlast; /* last ZSTD_decompressStream result: 0 at a frame boundary */
};

img_comp img_comp_detect(const void *p, size_t n)
{
	const unsigned char *b = p;

	if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
		return IMG_COMP_GZIP;
	if (n >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd)
		return IMG_COMP_ZSTD;
	return IMG_COMP_NONE;
}

const char *img_comp_name(img_comp c)
{
	switch (c) {
	case IMG_COMP_GZIP:
		return "gzip";
	case IMG_COMP_ZSTD:
		return "zstd";
	default:
		return "none";
	}
}

img_decomp *img_decomp_new(img_comp c, bt_err *e)
{
	img_decomp *d;

	if (c != IMG_COMP_NONE && c != IMG_COMP_GZIP && c != IMG_COMP_ZSTD) {
		bt_err_set(e, BT_INVALID_ARGUMENT, "unknown compression %d", (int)c);
		return NULL;
	}
	d = bt_xzalloc(sizeof(*d));
	d->comp = c;
	if (c == IMG_COMP_GZIP) {
		d->gz = bt_xmalloc(sizeof(*d->gz));
		isal_inflate_init(d->gz);
		d->gz->crc_flag = ISAL_GZIP;
		d->phase = GZ_MEMBER;
	} else if (c == IMG_COMP_ZSTD) {
		d->zs = ZSTD_createDStream();
		if (!d->zs)
			bt_oom();
		/* the default window bound (128 MiB) caps what a hostile frame can make us allocate */
		size_t r = ZSTD_initDStream(d->zs);
		if (ZSTD_isError(r)) {
			bt_err_set(e, BT_INTERNAL, "zstd: %s", ZSTD_getErrorName(r));
			img_decomp_free(&d);
			return NULL;
		}
		d->zlast = 1; /* a zstd stream holds at least one frame */
	}
	return d;
}

void img_decomp_free(img_decomp **dp)
{
	img_decomp *d = *dp;

	if (!d)
		return;
	free(d->gz);
	if (d->zs)
		ZSTD_freeDStream(d->zs);
	free(d);
	*dp = NULL;
}

/* Records the first failure so later calls repeat it; returns -1. */
__attribute__((format(printf, 3, 4))) static int fail(img_decomp *d, bt_err *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bt_err_setv(&d->err, BT_INVALID_ARGUMENT, fmt, ap);
	va_end(ap);
	d->failed = true;
	*e = d->err;
	return -1;
}

static const char *isal_error_name(int r)
{
	switch (r) {
	case ISAL_INVALID_BLOCK:
		return "invalid deflate block";
	case ISAL_INVALID_SYMBOL:
		return "invalid deflate symbol";
	case ISAL_INVALID_LOOKBACK:
		return "invalid lookback distance";
	case ISAL_INVALID_WRAPPER:
		return "invalid gzip header";
	case ISAL_UNSUPPORTED_METHOD:
		return "unsupported compression method";
	case ISAL_INCORRECT_CHECKSUM:
		return "checksum mismatch";
	case ISAL_NEED_DICT:
		return "preset dictionary required";
	default:
		return "decoder error";
	}
}

/* One isal_inflate call over what is left of in and out. */
static int gz_step(img_decomp *d, const uint8_t *in, size_t in_len, size_t *used, uint8_t *out, size_t out_cap,
		   size_t *produced, bt_err *e)
{
	static uint8_t none;
	struct inflate_state *s = d->gz;
	size_t in_left = BT_MIN(in_len - *used, (size_t)UINT32_MAX);
	size_t out_left = BT_MIN(out_cap - *produced, (size_t)UINT32_MAX);

	s->next_in = in_left ? (uint8_t *)in + *used : &none;
	s->avail_in = (uint32_t)in_left;
	s->next_out = out + *produced;
	s->avail_out = (uint32_t)out_left;
	int r = isal_inflate(s);
	size_t took = in_left - s->avail_in, made = out_left - s->avail_out;
	*used += took;
	*produced += made;
	d->in_total += took;
	if (r != ISAL_DECOMP_OK)
		return fail(d, e, "corrupt gzip stream: %s in member %u (near byte %" PRIu64 ")", isal_error_name(r),
			    d->members + 1, d->in_total);
	if (s->block_state == ISAL_BLOCK_FINISH) {
		d->members++;
		d->phase = GZ_BETWEEN;
	}
	return (int)(took + made > 0);
}

static int gz_run(img_decomp *d, const uint8_t *in, size_t in_len, size_t *used, uint8_t *out, size_t out_cap,
		  size_t *produced, bool *eof, bt_err *e)
{
	if (in_len == 0) {
		/* the input has ended: flush what the member still holds */
		if (d->phase == GZ_MEMBER) {
			int r = gz_step(d, in, 0, used, out, out_cap, produced, e);
			if (r < 0)
				return -1;
			if (d->phase == GZ_MEMBER) {
				if (*produced < out_cap)
					return fail(d, e, "corrupt gzip stream: truncated (member %u ends early after %" PRIu64 " bytes)",
						    d->members + 1, d->in_total);
				return 0;
			}
		}
		*eof = true;
		return 0;
	}
	while (*used < in_len) {
		switch (d->phase) {
		case GZ_MEMBER: {
			if (*produced == out_cap)
				return 0;
			int r = gz_step(d, in, in_len, used, out, out_cap, produced, e);
			if (r < 0)
				return -1;
			if (r == 0)
				return fail(d, e, "corrupt gzip stream: decoder stalled near byte %" PRIu64, d->in_total);
			break;
		}
		case GZ_BETWEEN:
			if (in[*used] == 0x1f) {
				isal_inflate_reset(d->gz);
				d->gz->crc_flag = ISAL_GZIP;
				d->phase = GZ_MEMBER;
			} else if (in[*used] == 0) {
				d->phase = GZ_ZEROS;
			} else {
				return fail(d, e, "corrupt gzip stream: trailing garbage after member %u (byte %" PRIu64 ")",
					    d->members, d->in_total);
			}
			break;
		case GZ_ZEROS:
			while (*used < in_len && in[*used] == 0) {
				(*used)++;
				d->in_total++;
			}
			if (*used < in_len)
				return fail(d, e, "corrupt gzip stream: trailing garbage after zero padding (byte %" PRIu64 ")",
					    d->in_total);
			break;
		}
	}
	return 0;
}

static int zstd_run(img_decomp *d, const uint8_t *in, size_t in_len, size_t *used, uint8_t *out, size_t out_cap,
		    size_t *produced, bool *eof, bt_err *e)
{
	ZSTD_inBuffer ib = { in, in_len, 0 };
	ZSTD_outBuffer ob = { out, out_cap, 0 };

	for (;;) {
		size_t r = ZSTD_decompressStream(d->zs, &ob, &ib);
		bool progress = ib.pos != *used || ob.pos != *produced;
		d->in_total += ib.pos - *used;
		*used = ib.pos;
		*produced = ob.pos;
		if (ZSTD_isError(r))
			return fail(d, e, "corrupt zstd stream: %s (near byte %" PRIu64 ")", ZSTD_getErrorName(r),
				    d->in_total);
		/* a call without progress returns a hint for the next frame, not its state */
		if (progress)
			d->zlast = r;
		else if (in_len > 0 && ob.pos < ob.size)
			return fail(d, e, "corrupt zstd stream: decoder stalled near byte %" PRIu64, d->in_total);
		if (ob.pos == ob.size)
			return 0; /* out is full: more may be pending */
		if (in_len == 0) {
			/* the input has ended and the output was not filled: all is flushed */
			if (d->zlast != 0)
				return fail(d, e, "corrupt zstd stream: truncated (frame ends early after %" PRIu64 " bytes)",
					    d->in_total);
			*eof = true;
			return 0;
		}
		if (ib.pos == ib.size)
			return 0;
	}
}

int img_decomp_run(img_decomp *d, const void *in, size_t in_len, size_t *in_used, void *out, size_t out_cap,
		   size_t *out_len, bool *eof, bt_err *e)
{
	size_t used = 0, produced = 0;
	int r = 0;

	*in_used = 0;
	*out_len = 0;
	*eof = false;
	if (d->failed) {
		*e = d->err;
		return -1;
	}
	if (d->done) {
		if (in_len > 0)
			return fail(d, e, "%s stream: data after the end of the stream", img_comp_name(d->comp));
		*eof = true;
		return 0;
	}
	switch (d->comp) {
	case IMG_COMP_GZIP:
		r = gz_run(d, in, in_len, &used, out, out_cap, &produced, eof, e);
		break;
	case IMG_COMP_ZSTD:
		r = zstd_run(d, in, in_len, &used, out, out_cap, &produced, eof, e);
		break;
	case IMG_COMP_NONE:
		used = produced = BT_MIN(in_len, out_cap);
		if (produced)
			memcpy(out, in, produced);
		d->in_total += used;
		*eof = in_len == 0;
		break;
	}
	*in_used = used;
	*out_len = produced;
	if (r == 0 && *eof)
		d->done = true;
	return r;
}

/* ---- the layer stream ------------------------------------------------------ */

#define STREAM_CHUNK (1u << 20)
#define STREAM_SLOTS 4u

typedef struct stream_slot {
	uint8_t *buf;
	size_t len;
} stream_slot;

struct img_stream {
	img_stream_opts o;
	img_comp comp;
	img_decomp *dec;
	bt_digest *cdig; /* bytes read */
	bt_digest *pdig; /* bytes produced; NULL for plain streams, whose two digests are one */
	int64_t csize, psize;
	bool failed;
	bt_err err;

	/* single-threaded: one input and one output buffer */
	uint8_t *in, *out;
	size_t in_pos, in_len;
	bool in_eof, out_eof;

	/* threaded: rings of compressed (caller → worker) and plain (worker → caller) chunks */
	bool started;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	stream_slot cin[STREAM_SLOTS], cout[STREAM_SLOTS];
	unsigned cin_head, cin_tail, cout_head, cout_tail;
	bool in_done;  /* the empty chunk that ends the input is queued */
	bool w_done;   /* the worker produced the whole stream */
	bool w_failed; /* the worker stopped on an error (werr) */
	bool stop;     /* the caller tells the worker to quit */
	bool holding;  /* the caller holds cout[cout_tail] */
	bt_err werr;
};

img_comp img_stream_comp(const img_stream *s)
{
	return s->comp;
}

/* Calls the reader (caller's thread); counts and reports progress. */
static ssize_t stream_read(img_stream *s, void *buf, size_t len, bt_err *e)
{
	bt_err re = { 0 };
	ssize_t n = s->o.read(s->o.arg, buf, len, &re);

	if (n < 0) {
		if (re.code == BT_OK)
			bt_err_set(&re, BT_UNKNOWN, "reading the layer failed");
		*e = re;
		return -1;
	}
	if ((size_t)n > len) {
		bt_err_set(e, BT_INTERNAL, "layer reader returned %zd bytes for a buffer of %zu", n, len);
		return -1;
	}
	s->csize += n;
	if (n > 0 && s->o.progress)
		s->o.progress(s->o.arg, s->csize);
	return n;
}

/* Hashes and counts produced bytes; fails past the bound. */
static int stream_produced(img_stream *s, const void *p, size_t n, bt_err *e)
{
	if (s->pdig)
		bt_digest_update(s->pdig, p, n);
	s->psize += (int64_t)n;
	if (s->psize > s->o.max_total)
		return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "layer expands beyond the bound of %" PRId64 " bytes",
				  s->o.max_total);
	return 0;
}

static void *stream_worker(void *arg);

img_stream *img_stream_new(const img_stream_opts *o, bt_err *e)
{
	_cleanup_stream_ img_stream *s = bt_xzalloc(sizeof(*s));
	_cleanup_free_ uint8_t *first = bt_xmalloc(STREAM_CHUNK);
	size_t have = 0;
	bool eof = false;

	s->o = *o;
	if (s->o.max_total <= 0)
		s->o.max_total = INT64_MAX;
	s->cdig = bt_digest_new();
	/* the first 4 bytes choose the decompressor */
	while (have < 4) {
		ssize_t n = stream_read(s, first + have, STREAM_CHUNK - have, e);
		if (n < 0)
			return NULL;
		if (n == 0) {
			eof = true;
			break;
		}
		have += (size_t)n;
	}
	s->comp = img_comp_detect(first, have);
	if (s->comp != IMG_COMP_NONE)
		s->pdig = bt_digest_new();
	s->dec = img_decomp_new(s->comp, e);
	if (!s->dec)
		return NULL;
	if (!o->threaded) {
		bt_digest_update(s->cdig, first, have);
		s->in = BT_STEAL(first);
		s->in_len = have;
		s->in_eof = eof;
		if (s->comp != IMG_COMP_NONE)
			s->out = bt_xmalloc(STREAM_CHUNK);
		return BT_STEAL(s);
	}
	for (unsigned i = 0; i < STREAM_SLOTS; i++) {
		s->cin[i].buf = i == 0 ? BT_STEAL(first) : bt_xmalloc(STREAM_CHUNK);
		s->cout[i].buf = bt_xmalloc(STREAM_CHUNK);
	}
	s->cin[0].len = have;
	s->cin_head = 1;
	if (eof) {
		s->cin[1].len = 0;
		s->cin_head = 2;
		s->in_done = true;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	int r = pthread_create(&s->th, NULL, stream_worker, s);
	if (r != 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		bt_err_errno(e, r, "start the layer decompression thread");
		return NULL;
	}
	s->started = true;
	return BT_STEAL(s);
}

void img_stream_free(img_stream **sp)
{
	img_stream *s = *sp;

	if (!s)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->th, NULL);
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
	}
	for (unsigned i = 0; i < STREAM_SLOTS; i++) {
		free(s->cin[i].buf);
		free(s->cout[i].buf);
	}
	free(s->in);
	free(s->out);
	img_decomp_free(&s->dec);
	bt_digest_free(&s->cdig);
	bt_digest_free(&s->pdig);
	free(s);
	*sp = NULL;
}

void img_stream_result(const img_stream *s, char compressed[BT_DIGEST_STR_LEN], int64_t *compressed_size,
		       char plain[BT_DIGEST_STR_LEN], int64_t *plain_size)
{
	bt_digest_peek(s->cdig, compressed);
	if (s->pdig)
		bt_digest_peek(s->pdig, plain);
	else
		memcpy(plain, compressed, BT_DIGEST_STR_LEN);
	*compressed_size = s->csize;
	*plain_size = s->psize;
}

/* Single-threaded: read, hash and decompress on the caller's thread. */
static ssize_t stream_next_inline(img_stream *s, const void **buf, bt_err *e)
{
	for (;;) {
		size_t avail = s->in_len - s->in_pos, used = 0, made = 0;
		bool eof = false;

		if (s->out_eof)
			return 0;
		if (avail == 0 && !s->in_eof) {
			ssize_t n = stream_read(s, s->in, STREAM_CHUNK, e);
			if (n < 0)
				return -1;
			bt_digest_update(s->cdig, s->in, (size_t)n);
			s->in_pos = 0;
			s->in_len = (size_t)n;
			s->in_eof = n == 0;
			continue;
		}
		if (s->comp == IMG_COMP_NONE) {
			/* plain: hand the input over as it is */
			if (avail == 0) {
				s->out_eof = true;
				return 0;
			}
			*buf = s->in + s->in_pos;
			s->in_pos = s->in_len;
			if (stream_produced(s, *buf, avail, e) < 0)
				return -1;
			return (ssize_t)avail;
		}
		if (img_decomp_run(s->dec, s->in + s->in_pos, avail, &used, s->out, STREAM_CHUNK, &made, &eof, e) < 0)
			return -1;
		s->in_pos += used;
		if (made > 0) {
			if (stream_produced(s, s->out, made, e) < 0)
				return -1;
			*buf = s->out;
			return (ssize_t)made;
		}
		if (eof) {
			s->out_eof = true;
			return 0;
		}
		if (used == 0)
			return bt_err_set(e, BT_INTERNAL, "%s decoder made no progress", img_comp_name(s->comp));
	}
}

/* Waits for a slot of a ring (or a stop); returns false when told to stop. Called locked. */
static bool stream_wait(img_stream *s, const unsigned *head, const unsigned *tail, bool for_data)
{
	while (!s->stop && (for_data ? *head == *tail : *head - *tail == STREAM_SLOTS))
		pthread_cond_wait(&s->cv, &s->mu);
	return !s->stop;
}

/* The worker: hash compressed chunks, decompress them into plain chunks, hash those. */
static void *stream_worker(void *arg)
{
	img_stream *s = arg;
	bt_err e = { 0 };
	bool eof = false;

	while (!eof) {
		pthread_mutex_lock(&s->mu);
		if (!stream_wait(s, &s->cin_head, &s->cin_tail, true)) {
			pthread_mutex_unlock(&s->mu);
			return NULL;
		}
		stream_slot *in = &s->cin[s->cin_tail % STREAM_SLOTS];
		pthread_mutex_unlock(&s->mu);

		bt_digest_update(s->cdig, in->buf, in->len);
		size_t pos = 0;
		do {
			pthread_mutex_lock(&s->mu);
			if (!stream_wait(s, &s->cout_head, &s->cout_tail, false)) {
				pthread_mutex_unlock(&s->mu);
				return NULL;
			}
			stream_slot *out = &s->cout[s->cout_head % STREAM_SLOTS];
			pthread_mutex_unlock(&s->mu);

			size_t used = 0, made = 0;
			if (img_decomp_run(s->dec, in->buf + pos, in->len - pos, &used, out->buf, STREAM_CHUNK, &made,
					   &eof, &e) < 0)
				goto failed;
			pos += used;
			if (made > 0) {
				if (stream_produced(s, out->buf, made, &e) < 0)
					goto failed;
				out->len = made;
				pthread_mutex_lock(&s->mu);
				s->cout_head++;
				pthread_cond_broadcast(&s->cv);
				pthread_mutex_unlock(&s->mu);
			} else if (used == 0 && !eof) {
				bt_err_set(&e, BT_INTERNAL, "%s decoder made no progress", img_comp_name(s->comp));
				goto failed;
			}
			/* a chunk consumed: pending output comes out with the next one; the empty
			 * chunk at the end is flushed until the decoder reports the end */
		} while (!eof && (pos < in->len || in->len == 0));

		pthread_mutex_lock(&s->mu);
		s->cin_tail++;
		if (eof)
			s->w_done = true;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;

failed:
	pthread_mutex_lock(&s->mu);
	s->werr = e;
	s->w_failed = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Threaded: keep the worker fed with compressed chunks, hand out its plain chunks. */
static ssize_t stream_next_threaded(img_stream *s, const void **buf, bt_err *e)
{
	bool topped = false;

	pthread_mutex_lock(&s->mu);
	if (s->holding) {
		s->cout_tail++;
		s->holding = false;
		pthread_cond_broadcast(&s->cv);
	}
	for (;;) {
		bool have_out = s->cout_head != s->cout_tail;

		if (s->w_failed) {
			*e = s->werr;
			pthread_mutex_unlock(&s->mu);
			return -1;
		}
		/* read while nothing is ready; with output ready, read one chunk only when the worker has
		 * no more than the chunk it is on (the reader may block: do not keep output waiting for it) */
		unsigned queued = s->cin_head - s->cin_tail;
		if (!s->in_done && queued < STREAM_SLOTS && (!have_out || (!topped && queued <= 1))) {
			stream_slot *in = &s->cin[s->cin_head % STREAM_SLOTS];
			pthread_mutex_unlock(&s->mu);
			ssize_t n = stream_read(s, in->buf, STREAM_CHUNK, e);
			pthread_mutex_lock(&s->mu);
			if (n < 0) {
				s->stop = true;
				pthread_cond_broadcast(&s->cv);
				pthread_mutex_unlock(&s->mu);
				return -1;
			}
			in->len = (size_t)n;
			s->in_done = n == 0;
			s->cin_head++;
			pthread_cond_broadcast(&s->cv);
			topped = true;
			continue;
		}
		if (have_out) {
			stream_slot *out = &s->cout[s->cout_tail % STREAM_SLOTS];
			s->holding = true;
			*buf = out->buf;
			pthread_mutex_unlock(&s->mu);
			return (ssize_t)out->len;
		}
		if (s->w_done) {
			pthread_mutex_unlock(&s->mu);
			return 0;
		}
		pthread_cond_wait(&s->cv, &s->mu);
	}
}

ssize_t img_stream_next(img_stream *s, const void **buf, bt_err *e)
{
	ssize_t n;

	if (s->failed) {
		*e = s->err;
		return -1;
	}
	n = s->started ? stream_next_threaded(s, buf, e) : stream_next_inline(s, buf, e);
	if (n < 0) {
		s->failed = true;
		s->err = *e;
	}
	return n;
}
