/*
 * test_wire — bt_wire, the envelope over a unix stream socket, over a
 * non-blocking socketpair: many messages at once, a large body arriving in
 * pieces, no body vs an empty body, the limits (a header or body too long
 * breaks the stream; a body over the soft limit is dropped and the stream
 * goes on), the end of the stream mid-message, and output to a peer that
 * reads nothing for a while; and bt_conn over a unix:// endpoint, whose
 * replies over the soft limit must fail their call, not arrive empty.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/rpc/v1/rpc.pb-c.h"
#include "bt_client.h"
#include "bt_err.h"
#include "bt_rpc.h"
#include "bt_seqrpc.h"
#include "bt_util.h"
#include "bt_wire.h"

typedef struct fixture {
	int fd[2]; /* fd[0] writes, fd[1] reads */
	bt_wire_in in;
	bt_wire_out out;
} fixture;

static int setup(void **state)
{
	fixture *f = bt_xzalloc(sizeof(*f));

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, f->fd), 0);
	bt_wire_in_init(&f->in);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;

	bt_wire_in_free(&f->in);
	bt_wire_out_free(&f->out);
	if (f->fd[0] >= 0)
		close(f->fd[0]);
	close(f->fd[1]);
	free(f);
	return 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* Writes all of buf (the reader keeps up in these tests; a full buffer is
 * a test bug). */
static void put_bytes(int fd, const void *buf, size_t n)
{
	ssize_t w = write(fd, buf, n);
	assert_true(w >= 0);
	assert_int_equal((size_t)w, n);
}

static void put_prefix(int fd, uint32_t hlen, uint32_t blen)
{
	uint8_t p[8];
	put_le32(p, hlen);
	put_le32(p + 4, blen);
	put_bytes(fd, p, sizeof(p));
}

/* A packed RequestHeader with this request id and method; caller frees. */
static uint8_t *pack_req(uint64_t id, const char *method, size_t *len)
{
	Berth__Rpc__V1__RequestHeader h = BERTH__RPC__V1__REQUEST_HEADER__INIT;
	h.version = 1;
	h.service = (char *)"svc";
	h.method = (char *)method;
	h.request_id = id;
	*len = berth__rpc__v1__request_header__get_packed_size(&h);
	uint8_t *buf = bt_xmalloc(*len);
	berth__rpc__v1__request_header__pack(&h, buf);
	return buf;
}

/* Checks m's header is a RequestHeader with this id and method. */
static void check_req(const bt_wire_msg *m, uint64_t id, const char *method)
{
	Berth__Rpc__V1__RequestHeader *h = berth__rpc__v1__request_header__unpack(NULL, m->hlen, m->hdr);
	assert_non_null(h);
	assert_int_equal(h->request_id, id);
	assert_string_equal(h->method, method);
	berth__rpc__v1__request_header__free_unpacked(h, NULL);
}

static int recv_one(fixture *f, bt_wire_msg *m, bt_err *e)
{
	return bt_wire_recv(&f->in, f->fd[1], m, e);
}

static void expect_again(fixture *f)
{
	bt_wire_msg m;
	bt_err e;
	errno = 0;
	assert_int_equal(recv_one(f, &m, &e), -1);
	assert_int_equal(errno, EAGAIN);
	zmq_msg_close(&m.body);
}

static void body_of(zmq_msg_t *b, const char *s)
{
	zmq_msg_init_size(b, strlen(s));
	memcpy(zmq_msg_data(b), s, strlen(s));
}

/* Many small messages queued at once arrive in one read and come out one
 * by one, each with its own header and body (or none). */
static void test_many_small(void **state)
{
	fixture *f = *state;
	enum { N = 300 };
	char text[32];

	for (int i = 0; i < N; i++) {
		Berth__Rpc__V1__RequestHeader h = BERTH__RPC__V1__REQUEST_HEADER__INIT;
		h.request_id = (uint64_t)i + 1;
		h.method = (char *)(i % 3 == 0 ? "ctl" : "call");
		if (i % 3 == 0) {
			bt_wire_put(&f->out, &h.base, NULL);
		} else {
			zmq_msg_t b;
			snprintf(text, sizeof(text), "body %d", i);
			body_of(&b, text);
			bt_wire_put(&f->out, &h.base, &b);
		}
	}
	assert_true(f->out.bytes > 0);
	assert_int_equal(bt_wire_flush(&f->out, f->fd[0]), 0);
	assert_int_equal(f->out.bytes, 0);
	for (int i = 0; i < N; i++) {
		bt_wire_msg m;
		bt_err e;
		assert_int_equal(recv_one(f, &m, &e), 1);
		check_req(&m, (uint64_t)i + 1, i % 3 == 0 ? "ctl" : "call");
		assert_int_equal(m.too_big, 0);
		if (i % 3 == 0) {
			assert_false(m.has_body);
			assert_int_equal(zmq_msg_size(&m.body), 0);
		} else {
			snprintf(text, sizeof(text), "body %d", i);
			assert_true(m.has_body);
			assert_int_equal(zmq_msg_size(&m.body), strlen(text));
			assert_memory_equal(zmq_msg_data(&m.body), text, strlen(text));
		}
		zmq_msg_close(&m.body);
	}
	expect_again(f);
}

/* A body over 64 KiB arriving in pieces: the prefix byte by byte, the
 * header in two, the body in odd-sized chunks, the reader trying after
 * each; it is read into its message (the buffer does not grow to hold it)
 * and the message after it is parsed from where it ends. */
static void test_large_body_in_pieces(void **state)
{
	fixture *f = *state;
	const size_t blen = 300000;
	size_t hlen;
	uint8_t *hdr = pack_req(7, "Write", &hlen);
	uint8_t *body = bt_xmalloc(blen);
	uint8_t pre[8];
	bt_wire_msg m;
	bt_err e;

	for (size_t i = 0; i < blen; i++)
		body[i] = (uint8_t)(i * 31 + i / 251);
	put_le32(pre, (uint32_t)hlen);
	put_le32(pre + 4, (uint32_t)blen);
	for (size_t i = 0; i < sizeof(pre); i++) {
		put_bytes(f->fd[0], pre + i, 1);
		expect_again(f);
	}
	put_bytes(f->fd[0], hdr, hlen / 2);
	expect_again(f);
	put_bytes(f->fd[0], hdr + hlen / 2, hlen - hlen / 2);
	size_t off = 0;
	int got = 0;
	while (off < blen) {
		size_t k = BT_MIN((size_t)4093, blen - off);
		put_bytes(f->fd[0], body + off, k);
		off += k;
		int rc = recv_one(f, &m, &e);
		if (off < blen) {
			assert_int_equal(rc, -1);
			assert_int_equal(errno, EAGAIN);
			zmq_msg_close(&m.body);
		} else {
			assert_int_equal(rc, 1);
			got = 1;
		}
	}
	assert_true(got);
	assert_true(f->in.cap < blen);
	check_req(&m, 7, "Write");
	assert_true(m.has_body);
	assert_int_equal(m.too_big, 0);
	assert_int_equal(zmq_msg_size(&m.body), blen);
	assert_memory_equal(zmq_msg_data(&m.body), body, blen);
	zmq_msg_close(&m.body);

	/* the next message, its prefix in the same write as its whole self */
	put_prefix(f->fd[0], (uint32_t)hlen, 2);
	put_bytes(f->fd[0], hdr, hlen);
	put_bytes(f->fd[0], "ok", 2);
	assert_int_equal(recv_one(f, &m, &e), 1);
	check_req(&m, 7, "Write");
	assert_int_equal(zmq_msg_size(&m.body), 2);
	assert_memory_equal(zmq_msg_data(&m.body), "ok", 2);
	zmq_msg_close(&m.body);
	expect_again(f);
	free(hdr);
	free(body);
}

/* BT_WIRE_NOBODY is no body (a control message); length 0 is an empty
 * body.  The two are told apart on the way in and on the way out. */
static void test_nobody_vs_empty(void **state)
{
	fixture *f = *state;
	size_t hlen;
	uint8_t *hdr = pack_req(3, "Ctl", &hlen);
	bt_wire_msg m;
	bt_err e;

	put_prefix(f->fd[0], (uint32_t)hlen, BT_WIRE_NOBODY);
	put_bytes(f->fd[0], hdr, hlen);
	put_prefix(f->fd[0], (uint32_t)hlen, 0);
	put_bytes(f->fd[0], hdr, hlen);
	assert_int_equal(recv_one(f, &m, &e), 1);
	check_req(&m, 3, "Ctl");
	assert_false(m.has_body);
	zmq_msg_close(&m.body);
	assert_int_equal(recv_one(f, &m, &e), 1);
	check_req(&m, 3, "Ctl");
	assert_true(m.has_body);
	assert_int_equal(zmq_msg_size(&m.body), 0);
	zmq_msg_close(&m.body);
	expect_again(f);

	/* bt_wire_put writes the same two */
	Berth__Rpc__V1__ResponseHeader rh = BERTH__RPC__V1__RESPONSE_HEADER__INIT;
	zmq_msg_t empty;
	zmq_msg_init(&empty);
	bt_wire_put(&f->out, &rh.base, NULL);
	bt_wire_put(&f->out, &rh.base, &empty);
	assert_int_equal(bt_wire_flush(&f->out, f->fd[0]), 0);
	uint8_t raw[16];
	assert_int_equal(read(f->fd[1], raw, sizeof(raw)), 16); /* an empty header: prefixes only */
	const uint8_t want[16] = { 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0 };
	assert_memory_equal(raw, want, sizeof(want));
	free(hdr);
}

/* A header over the limit: the stream is broken, INVALID_ARGUMENT. */
static void test_header_too_long(void **state)
{
	fixture *f = *state;
	bt_wire_msg m;
	bt_err e;

	put_prefix(f->fd[0], BT_RPC_MAX_HEADER + 1, 0);
	errno = 0;
	assert_int_equal(recv_one(f, &m, &e), -1);
	assert_int_equal(errno, EPROTO);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_non_null(strstr(e.msg, "header"));
	zmq_msg_close(&m.body);
}

/* A header of exactly the limit is accepted. */
static void test_header_at_limit(void **state)
{
	fixture *f = *state;
	uint8_t *h = bt_xzalloc(BT_RPC_MAX_HEADER);
	bt_wire_msg m;
	bt_err e;

	h[0] = 0x42;
	h[BT_RPC_MAX_HEADER - 1] = 0x24;
	put_prefix(f->fd[0], BT_RPC_MAX_HEADER, BT_WIRE_NOBODY);
	size_t off = 0;
	int rc = -1;
	while (off < BT_RPC_MAX_HEADER) {
		size_t k = BT_MIN((size_t)8192, BT_RPC_MAX_HEADER - off);
		put_bytes(f->fd[0], h + off, k);
		off += k;
		rc = recv_one(f, &m, &e);
		if (rc != 1) {
			assert_int_equal(errno, EAGAIN);
			zmq_msg_close(&m.body);
		}
	}
	assert_int_equal(rc, 1);
	assert_int_equal(m.hlen, BT_RPC_MAX_HEADER);
	assert_int_equal(m.hdr[0], 0x42);
	assert_int_equal(m.hdr[BT_RPC_MAX_HEADER - 1], 0x24);
	assert_false(m.has_body);
	zmq_msg_close(&m.body);
	free(h);
}

/* A body over the hard limit: the stream is broken, RESOURCE_EXHAUSTED. */
static void test_body_over_hard_limit(void **state)
{
	fixture *f = *state;
	bt_wire_msg m;
	bt_err e;

	put_prefix(f->fd[0], 4, BT_RPC_HARD_MAX_MSG + 1);
	put_bytes(f->fd[0], "hdr!", 4);
	errno = 0;
	assert_int_equal(recv_one(f, &m, &e), -1);
	assert_int_equal(errno, EPROTO);
	assert_int_equal(e.code, BT_RESOURCE_EXHAUSTED);
	zmq_msg_close(&m.body);
}

/* Streams n zero bytes to the writer end while the reader reads, which
 * must have no complete message until the last byte. */
static void stream_zeros(fixture *f, size_t n, bt_wire_msg *m)
{
	const size_t chunk = 64 << 10;
	uint8_t *z = bt_xzalloc(chunk);
	bt_err e;
	int rc = -1;

	for (size_t off = 0; off < n;) {
		size_t k = BT_MIN(chunk, n - off);
		put_bytes(f->fd[0], z, k);
		off += k;
		rc = recv_one(f, m, &e);
		if (off < n) {
			assert_int_equal(rc, -1);
			assert_int_equal(errno, EAGAIN);
			zmq_msg_close(&m->body);
		}
	}
	assert_int_equal(rc, 1);
	free(z);
}

/* A body between the limits is read and dropped: the message comes out
 * with too_big set and no body, and the stream goes on.  One of exactly
 * the soft limit is delivered. */
static void test_body_too_big_dropped(void **state)
{
	fixture *f = *state;
	const uint32_t big = BT_RPC_MAX_MSG + (1u << 20);
	size_t hlen;
	uint8_t *hdr = pack_req(11, "Big", &hlen);
	bt_wire_msg m;
	bt_err e;

	put_prefix(f->fd[0], (uint32_t)hlen, big);
	put_bytes(f->fd[0], hdr, hlen);
	stream_zeros(f, big, &m);
	check_req(&m, 11, "Big");
	assert_true(m.has_body);
	assert_int_equal(m.too_big, big);
	assert_int_equal(zmq_msg_size(&m.body), 0);
	zmq_msg_close(&m.body);
	assert_true(f->in.cap < (size_t)big);

	/* the next message right behind it */
	free(hdr);
	hdr = pack_req(12, "After", &hlen);
	put_prefix(f->fd[0], (uint32_t)hlen, 5);
	put_bytes(f->fd[0], hdr, hlen);
	put_bytes(f->fd[0], "after", 5);
	assert_int_equal(recv_one(f, &m, &e), 1);
	check_req(&m, 12, "After");
	assert_int_equal(m.too_big, 0);
	assert_int_equal(zmq_msg_size(&m.body), 5);
	assert_memory_equal(zmq_msg_data(&m.body), "after", 5);
	zmq_msg_close(&m.body);

	/* exactly the limit */
	put_prefix(f->fd[0], (uint32_t)hlen, BT_RPC_MAX_MSG);
	put_bytes(f->fd[0], hdr, hlen);
	stream_zeros(f, BT_RPC_MAX_MSG, &m);
	assert_int_equal(m.too_big, 0);
	assert_true(m.has_body);
	assert_int_equal(zmq_msg_size(&m.body), BT_RPC_MAX_MSG);
	zmq_msg_close(&m.body);
	expect_again(f);
	free(hdr);
}

static void expect_eof(fixture *f)
{
	bt_wire_msg m;
	bt_err e;
	close(f->fd[0]);
	f->fd[0] = -1;
	assert_int_equal(recv_one(f, &m, &e), 0);
	zmq_msg_close(&m.body);
}

/* The end of the stream: at a message boundary, mid-prefix, mid-header,
 * mid-body (small, large, dropped): 0 each time. */
static void test_eof_boundary(void **state)
{
	expect_eof(*state);
}

static void test_eof_mid_prefix(void **state)
{
	fixture *f = *state;
	put_bytes(f->fd[0], "\x05\0\0", 3);
	expect_again(f);
	expect_eof(f);
}

static void test_eof_mid_header(void **state)
{
	fixture *f = *state;
	put_prefix(f->fd[0], 10, 3);
	put_bytes(f->fd[0], "abcd", 4);
	expect_again(f);
	expect_eof(f);
}

static void test_eof_mid_small_body(void **state)
{
	fixture *f = *state;
	put_prefix(f->fd[0], 2, 10);
	put_bytes(f->fd[0], "hhbody", 6);
	expect_again(f);
	expect_eof(f);
}

static void test_eof_mid_large_body(void **state)
{
	fixture *f = *state;
	uint8_t *b = bt_xzalloc(100000);
	put_prefix(f->fd[0], 2, 200000);
	put_bytes(f->fd[0], "hh", 2);
	put_bytes(f->fd[0], b, 100000);
	expect_again(f);
	expect_eof(f);
	free(b);
}

static void test_eof_mid_dropped_body(void **state)
{
	fixture *f = *state;
	uint8_t *b = bt_xzalloc(100000);
	put_prefix(f->fd[0], 2, BT_RPC_MAX_MSG + 1);
	put_bytes(f->fd[0], "hh", 2);
	put_bytes(f->fd[0], b, 100000);
	expect_again(f);
	expect_eof(f);
	free(b);
}

/* Output to a peer that reads nothing: flush writes what the socket takes
 * and says 1; as the peer drains, later flushes finish (0), and the peer
 * gets every message whole and in order. */
static void test_flush_backpressure(void **state)
{
	fixture *f = *state;
	enum { N = 8 };
	const size_t blen = 1u << 20;

	for (int i = 0; i < N; i++) {
		Berth__Rpc__V1__ResponseHeader h = BERTH__RPC__V1__RESPONSE_HEADER__INIT;
		h.request_id = (uint64_t)i + 100;
		h.final = i == N - 1;
		zmq_msg_t b;
		zmq_msg_init_size(&b, blen);
		memset(zmq_msg_data(&b), 'a' + i, blen);
		bt_wire_put(&f->out, &h.base, &b);
		/* a control message between the large ones */
		h.request_id = (uint64_t)i + 1000;
		bt_wire_put(&f->out, &h.base, NULL);
	}
	size_t total = f->out.bytes;
	assert_true(total > (size_t)N * blen);
	assert_int_equal(bt_wire_flush(&f->out, f->fd[0]), 1);
	assert_true(f->out.bytes > 0 && f->out.bytes < total);
	/* nothing read: nothing more goes */
	size_t left = f->out.bytes;
	assert_int_equal(bt_wire_flush(&f->out, f->fd[0]), 1);
	assert_int_equal(f->out.bytes, left);

	int got = 0, rc = 1, rounds = 0;
	while (got < 2 * N) {
		bt_wire_msg m;
		bt_err e;
		int r = recv_one(f, &m, &e);
		if (r == 1) {
			Berth__Rpc__V1__ResponseHeader *h = berth__rpc__v1__response_header__unpack(NULL, m.hlen, m.hdr);
			assert_non_null(h);
			int i = got / 2;
			if (got % 2 == 0) {
				assert_int_equal(h->request_id, (uint64_t)i + 100);
				assert_int_equal(h->final, i == N - 1);
				assert_true(m.has_body);
				assert_int_equal(zmq_msg_size(&m.body), blen);
				const uint8_t *d = zmq_msg_data(&m.body);
				for (size_t k = 0; k < blen; k++)
					if (d[k] != 'a' + i)
						fail_msg("message %d: byte %zu is %d", i, k, d[k]);
			} else {
				assert_int_equal(h->request_id, (uint64_t)i + 1000);
				assert_false(m.has_body);
			}
			berth__rpc__v1__response_header__free_unpacked(h, NULL);
			zmq_msg_close(&m.body);
			got++;
			continue;
		}
		zmq_msg_close(&m.body);
		assert_int_equal(r, -1);
		assert_int_equal(errno, EAGAIN);
		/* the peer drained what there was: more goes */
		assert_int_not_equal(rc, 0);
		rc = bt_wire_flush(&f->out, f->fd[0]);
		assert_true(rc == 0 || rc == 1);
		rounds++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(f->out.bytes, 0);
	assert_null(f->out.head);
	assert_true(rounds > 1);
	expect_again(f);
}

/* A peer that is gone: flush fails with EPIPE, no SIGPIPE. */
static void test_flush_peer_gone(void **state)
{
	fixture *f = *state;
	Berth__Rpc__V1__ResponseHeader h = BERTH__RPC__V1__RESPONSE_HEADER__INIT;
	zmq_msg_t b;

	close(f->fd[1]);
	f->fd[1] = socket(AF_UNIX, SOCK_STREAM, 0); /* for teardown */
	body_of(&b, "lost");
	bt_wire_put(&f->out, &h.base, &b);
	errno = 0;
	assert_int_equal(bt_wire_flush(&f->out, f->fd[0]), -1);
	assert_int_equal(errno, EPIPE);
}

/* A peer on the gateway's side of a unix:// endpoint: answers each request
 * on its one connection with a Principal whose name has the next length of
 * names[], then waits for the client to hang up. */
typedef struct peer {
	int lfd;
	size_t names[2];
	int served;
} peer;

static void *peer_main(void *arg)
{
	peer *pr = arg;
	bt_wire_in in;
	bt_wire_out out = { 0 };
	int fd = accept4(pr->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	bt_wire_in_init(&in);
	for (;;) {
		bt_wire_msg m;
		bt_err e;
		int rc = bt_wire_recv(&in, fd, &m, &e);
		if (rc < 0 && errno == EAGAIN) {
			zmq_msg_close(&m.body);
			struct pollfd pf = { .fd = fd, .events = POLLIN };
			poll(&pf, 1, 10000);
			continue;
		}
		if (rc <= 0) {
			zmq_msg_close(&m.body);
			break;
		}
		Berth__Rpc__V1__RequestHeader *rq = berth__rpc__v1__request_header__unpack(NULL, m.hlen, m.hdr);
		zmq_msg_close(&m.body);
		if (!rq || pr->served >= 2)
			break;
		Berth__Rpc__V1__ResponseHeader rh = BERTH__RPC__V1__RESPONSE_HEADER__INIT;
		Berth__Rpc__V1__Principal resp = BERTH__RPC__V1__PRINCIPAL__INIT;
		size_t n = pr->names[pr->served++];
		char *name = bt_xmalloc(n + 1);
		memset(name, 'n', n);
		name[n] = '\0';
		resp.name = name;
		rh.request_id = rq->request_id;
		rh.final = 1;
		berth__rpc__v1__request_header__free_unpacked(rq, NULL);
		zmq_msg_t b;
		zmq_msg_init_size(&b, berth__rpc__v1__principal__get_packed_size(&resp));
		berth__rpc__v1__principal__pack(&resp, zmq_msg_data(&b));
		free(name);
		bt_wire_put(&out, &rh.base, &b);
		while ((rc = bt_wire_flush(&out, fd)) == 1) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };
			poll(&pf, 1, 10000);
		}
		if (rc < 0)
			break;
	}
	bt_wire_in_free(&in);
	bt_wire_out_free(&out);
	close(fd);
	return NULL;
}

/* A directory for the socket, removed whatever the test's outcome. */
static int setup_dir(void **state)
{
	char *dir = bt_xstrdup("/tmp/btwire.XXXXXX");
	if (!mkdtemp(dir)) {
		free(dir);
		return -1;
	}
	*state = dir;
	return 0;
}

static int teardown_dir(void **state)
{
	char *dir = *state;
	char path[64];
	snprintf(path, sizeof(path), "%s/s", dir);
	unlink(path);
	rmdir(dir);
	free(dir);
	return 0;
}

static void test_conn_reply_over_limit(void **state)
{
	const char *dir = *state;
	char path[64], ep[80];
	peer pr = { .names = { 1u << 20, BT_RPC_MAX_MSG + (1u << 20) } };
	pthread_t th;
	bt_err e;

	snprintf(path, sizeof(path), "%s/s", dir);
	snprintf(ep, sizeof(ep), "unix://%s", path);
	pr.lfd = bt_unix_listen(path, SOCK_STREAM, &e);
	assert_true(pr.lfd >= 0);
	assert_int_equal(pthread_create(&th, NULL, peer_main, &pr), 0);

	bt_conn *c = bt_conn_new(ep, NULL, &e);
	assert_non_null(c);
	Berth__Rpc__V1__Principal req = BERTH__RPC__V1__PRINCIPAL__INIT;
	bt_callspec cs = { .service = "svc", .method = "Get", .ns = "ns" };
	Berth__Rpc__V1__Principal *resp = NULL;
	/* 1 MiB: delivered whole */
	assert_int_equal(bt_conn_call(c, &cs, &req.base, &berth__rpc__v1__principal__descriptor, (void **)&resp, &e), 0);
	assert_non_null(resp);
	assert_int_equal(strlen(resp->name), pr.names[0]);
	berth__rpc__v1__principal__free_unpacked(resp, NULL);
	resp = NULL;
	/* 17 MiB: the body is dropped on the way in; the call fails, it does
	 * not succeed with an empty message */
	assert_int_equal(bt_conn_call(c, &cs, &req.base, &berth__rpc__v1__principal__descriptor, (void **)&resp, &e), -1);
	assert_null(resp);
	assert_int_equal(e.code, BT_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(e.msg, "exceeds"));
	bt_conn_free(&c);
	pthread_join(th, NULL);
	assert_int_equal(pr.served, 2);
	close(pr.lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_many_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_body_in_pieces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nobody_vs_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_too_long, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_at_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_over_hard_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_too_big_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof_boundary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof_mid_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof_mid_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof_mid_small_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof_mid_large_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof_mid_dropped_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_peer_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conn_reply_over_limit, setup_dir, teardown_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
