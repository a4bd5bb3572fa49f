/*
 * bt_wire — the envelope over a unix stream socket (see bt_wire.h).
 *
 * Small messages are read many at a time into one buffer and copied out;
 * a body larger than DIRECT_MIN is read straight into its own message, so
 * a 1 MiB chunk costs no copy on the way in.  On the way out the header is
 * packed behind its prefix and the body goes out from its message, the two
 * and those of other queued messages in one sendmsg.
 */
#define _GNU_SOURCE
#include "bt_wire.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bt_rpc.h"
#include "bt_util.h"

#define BUF_MIN (64u << 10)
#define DIRECT_MIN (64u << 10)
#define MAX_IOV 64

enum { S_HEAD, S_BODY, S_SKIP };

struct bt_wire_chunk {
	bt_wire_chunk *next;
	size_t done; /* bytes of head + body written */
	size_t headlen;
	bool has_body;
	zmq_msg_t body;
	uint8_t head[];
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

void bt_wire_in_init(bt_wire_in *in)
{
	memset(in, 0, sizeof(*in));
	zmq_msg_init(&in->body);
}

void bt_wire_in_free(bt_wire_in *in)
{
	free(in->buf);
	free(in->hbuf);
	zmq_msg_close(&in->body);
	memset(in, 0, sizeof(*in));
	zmq_msg_init(&in->body);
}

static void keep_header(bt_wire_in *in, const uint8_t *h, size_t hlen)
{
	if (in->hcap < hlen || !in->hbuf) {
		in->hcap = BT_MAX(hlen, 256);
		in->hbuf = bt_xrealloc(in->hbuf, in->hcap);
	}
	memcpy(in->hbuf, h, hlen);
	in->hlen = hlen;
}

static void consume(bt_wire_in *in, size_t n)
{
	in->off += n;
	in->len -= n;
	if (in->len == 0)
		in->off = 0;
}

/* Reads more into the buffer, keeping room for need bytes in all. */
static ssize_t fill(bt_wire_in *in, int fd, size_t need)
{
	if (in->off > 0 && in->off + BT_MAX(need, in->len + 1) > in->cap) {
		memmove(in->buf, in->buf + in->off, in->len);
		in->off = 0;
	}
	size_t want = BT_MAX(BT_MAX(need, in->len + 1), BUF_MIN);
	if (in->cap < want) {
		in->buf = bt_xrealloc(in->buf, want);
		in->cap = want;
	}
	ssize_t r;
	do
		r = read(fd, in->buf + in->off + in->len, in->cap - in->off - in->len);
	while (r < 0 && errno == EINTR);
	if (r > 0)
		in->len += (size_t)r;
	return r;
}

int bt_wire_recv(bt_wire_in *in, int fd, bt_wire_msg *m, bt_err *e)
{
	memset(m, 0, sizeof(*m));
	zmq_msg_init(&m->body);
	for (;;) {
		ssize_t r;
		if (in->state == S_BODY) {
			size_t need = zmq_msg_size(&in->body) - in->have;
			if (need == 0) {
				m->hdr = in->hbuf;
				m->hlen = in->hlen;
				m->has_body = true;
				zmq_msg_move(&m->body, &in->body);
				in->state = S_HEAD;
				return 1;
			}
			do
				r = read(fd, (uint8_t *)zmq_msg_data(&in->body) + in->have, need);
			while (r < 0 && errno == EINTR);
			if (r <= 0)
				return (int)BT_MAX(r, -1);
			in->have += (size_t)r;
			continue;
		}
		if (in->state == S_SKIP) {
			size_t k = (size_t)BT_MIN((uint64_t)in->len, in->skip);
			consume(in, k);
			in->skip -= k;
			if (in->skip == 0) {
				m->hdr = in->hbuf;
				m->hlen = in->hlen;
				m->has_body = true;
				m->too_big = in->dropped;
				in->state = S_HEAD;
				return 1;
			}
			if ((r = fill(in, fd, 0)) <= 0)
				return (int)BT_MAX(r, -1);
			continue;
		}
		size_t need = BT_WIRE_PREFIX;
		if (in->len >= BT_WIRE_PREFIX) {
			const uint8_t *p = in->buf + in->off;
			uint32_t hlen = le32(p), blen = le32(p + 4);
			bool nobody = blen == BT_WIRE_NOBODY;
			if (hlen > BT_RPC_MAX_HEADER) {
				errno = EPROTO;
				return bt_err_set(e, BT_INVALID_ARGUMENT,
						  "malformed stream: a header of %u bytes (the limit is %u)", hlen,
						  BT_RPC_MAX_HEADER);
			}
			if (!nobody && blen > BT_RPC_HARD_MAX_MSG) {
				errno = EPROTO;
				return bt_err_set(e, BT_RESOURCE_EXHAUSTED,
						  "message of %u bytes exceeds the limit of %u bytes", blen,
						  BT_RPC_MAX_MSG);
			}
			size_t whole = BT_WIRE_PREFIX + hlen + (nobody ? 0 : blen);
			if (in->len >= whole) {
				m->hdr = p + BT_WIRE_PREFIX;
				m->hlen = hlen;
				m->has_body = !nobody;
				if (!nobody && blen > BT_RPC_MAX_MSG) {
					m->too_big = blen;
				} else if (!nobody) {
					zmq_msg_init_size(&m->body, blen);
					memcpy(zmq_msg_data(&m->body), p + BT_WIRE_PREFIX + hlen, blen);
				}
				consume(in, whole);
				return 1;
			}
			if (in->len >= BT_WIRE_PREFIX + hlen && !nobody && blen > DIRECT_MIN) {
				/* a large body: read it where it goes (or drop it) */
				keep_header(in, p + BT_WIRE_PREFIX, hlen);
				consume(in, BT_WIRE_PREFIX + hlen);
				if (blen > BT_RPC_MAX_MSG) {
					in->state = S_SKIP;
					in->skip = blen;
					in->dropped = blen;
					continue;
				}
				size_t part = BT_MIN(in->len, (size_t)blen);
				zmq_msg_close(&in->body);
				zmq_msg_init_size(&in->body, blen);
				memcpy(zmq_msg_data(&in->body), in->buf + in->off, part);
				consume(in, part);
				in->have = part;
				in->state = S_BODY;
				continue;
			}
			need = BT_WIRE_PREFIX + hlen + (nobody || blen > DIRECT_MIN ? 0 : blen);
		}
		if ((r = fill(in, fd, need)) <= 0)
			return (int)BT_MAX(r, -1);
	}
}

void bt_wire_tune(int fd)
{
	int size = BT_WIRE_SNDBUF;

	/* best effort: the default buffer works, only slower */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

void bt_wire_put(bt_wire_out *o, const ProtobufCMessage *hdr, zmq_msg_t *body)
{
	size_t hlen = protobuf_c_message_get_packed_size(hdr);
	bt_wire_chunk *c = bt_xmalloc(sizeof(*c) + BT_WIRE_PREFIX + hlen);

	c->next = NULL;
	c->done = 0;
	c->headlen = BT_WIRE_PREFIX + hlen;
	c->has_body = body != NULL;
	zmq_msg_init(&c->body);
	if (body)
		zmq_msg_move(&c->body, body);
	put_le32(c->head, (uint32_t)hlen);
	put_le32(c->head + 4, body ? (uint32_t)zmq_msg_size(&c->body) : BT_WIRE_NOBODY);
	protobuf_c_message_pack(hdr, c->head + BT_WIRE_PREFIX);
	if (o->tail)
		o->tail->next = c;
	else
		o->head = c;
	o->tail = c;
	o->bytes += c->headlen + zmq_msg_size(&c->body);
}

static void chunk_free(bt_wire_chunk *c)
{
	zmq_msg_close(&c->body);
	free(c);
}

int bt_wire_flush(bt_wire_out *o, int fd)
{
	while (o->head) {
		struct iovec iov[MAX_IOV];
		int n = 0;
		for (bt_wire_chunk *c = o->head; c && n + 2 <= MAX_IOV; c = c->next) {
			size_t done = c->done;
			if (done < c->headlen) {
				iov[n++] = (struct iovec){ c->head + done, c->headlen - done };
				done = c->headlen;
			}
			size_t blen = zmq_msg_size(&c->body);
			if (done - c->headlen < blen)
				iov[n++] = (struct iovec){ (uint8_t *)zmq_msg_data(&c->body) + (done - c->headlen),
							   blen - (done - c->headlen) };
		}
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t w;
		do
			w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (w < 0 && errno == EINTR);
		if (w < 0)
			return errno == EAGAIN ? 1 : -1;
		size_t left = (size_t)w;
		o->bytes -= left;
		while (o->head && left > 0) {
			bt_wire_chunk *c = o->head;
			size_t size = c->headlen + zmq_msg_size(&c->body);
			size_t k = BT_MIN(left, size - c->done);
			c->done += k;
			left -= k;
			if (c->done == size) {
				o->head = c->next;
				if (!o->head)
					o->tail = NULL;
				chunk_free(c);
			}
		}
	}
	return 0;
}

void bt_wire_out_free(bt_wire_out *o)
{
	while (o->head) {
		bt_wire_chunk *c = o->head;
		o->head = c->next;
		chunk_free(c);
	}
	o->tail = NULL;
	o->bytes = 0;
}
