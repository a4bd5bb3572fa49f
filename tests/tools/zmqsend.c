/*
 * zmqsend — sends hand-made frames to a berth endpoint and prints each
 * reply's header, so tests can throw malformed input at the daemons.
 *
 *   zmqsend [-t MS] [-R] [-c] [-s] ENDPOINT FRAME... [+ FRAME...]...
 *
 * FRAME is one of
 *   hdr:KEY=VAL,...   a RequestHeader (keys: version, service, method, ns,
 *                     id, deadline, cancel, credit, window, order; and a
 *                     principal the client claims: principal=NAME,
 *                     pns=NAMESPACE-PATTERN, ro=1)
 *   raw:TEXT          the bytes of TEXT
 *   rand:N            N random bytes
 *   zero:N            N zero bytes
 *   empty             an empty frame
 *   prefix:HLEN,BLEN  the 8 bytes of a stream prefix (two u32 LE)
 *
 * A ZeroMQ ENDPOINT gets one multipart message of the FRAMEs.  A
 * unix:///PATH ENDPOINT is the gateway's stream door (bt_wire.h): one FRAME
 * is sent as a header without a body (BT_WIRE_NOBODY), two as header and
 * body; the stream has no third frame.  There "+" separates messages sent
 * one after the other on the one connection, and -R writes the FRAMEs'
 * bytes as they are, unframed, one after the other (a hand-made stream);
 * -s shuts the writing half once all is sent (the gateway sees the end of
 * the stream: what it has in flight for the connection is cancelled).
 *
 * Prints "code=NAME final=0|1 id=N message=..." per reply until a final one
 * (over the stream: one per message sent, one with -R) or the timeout (then
 * "timeout"); over the stream, "closed" when the gateway hangs up first,
 * and with -c, after the final replies, waits for the end of the stream
 * too.  Exits 0 if a reply came, 1 if none did, 2 on a usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "berth/rpc/v1/rpc.pb-c.h"
#include "bt_err.h"
#include "bt_seqrpc.h"
#include "bt_util.h"
#include "bt_wire.h"

static void usage(void)
{
	fprintf(stderr, "usage: zmqsend [-t MS] [-R] [-c] [-s] ENDPOINT FRAME... [+ FRAME...]...\n"
			"       (-R, -c, -s and + are for unix:///PATH endpoints)\n");
	exit(2);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* The bytes of one FRAME spec (malloc'd; *len set). */
static uint8_t *frame_bytes(const char *spec, size_t *len)
{
	if (strncmp(spec, "hdr:", 4) == 0) {
		Berth__Rpc__V1__RequestHeader h = BERTH__RPC__V1__REQUEST_HEADER__INIT;
		Berth__Rpc__V1__Principal pr = BERTH__RPC__V1__PRINCIPAL__INIT;
		char *pns[1];
		char *copy = bt_xstrdup(spec + 4), *save = NULL;
		for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(kv, '=');
			if (!eq)
				continue;
			*eq = '\0';
			const char *v = eq + 1;
			if (!strcmp(kv, "version"))
				h.version = (uint32_t)strtoul(v, NULL, 10);
			else if (!strcmp(kv, "service"))
				h.service = (char *)v;
			else if (!strcmp(kv, "method"))
				h.method = (char *)v;
			else if (!strcmp(kv, "ns"))
				h.namespace_ = (char *)v;
			else if (!strcmp(kv, "id"))
				h.request_id = strtoull(v, NULL, 10);
			else if (!strcmp(kv, "deadline"))
				h.deadline_ms = (uint32_t)strtoul(v, NULL, 10);
			else if (!strcmp(kv, "cancel"))
				h.cancel = atoi(v);
			else if (!strcmp(kv, "credit"))
				h.credit = (uint32_t)strtoul(v, NULL, 10);
			else if (!strcmp(kv, "window"))
				h.window = (uint32_t)strtoul(v, NULL, 10);
			else if (!strcmp(kv, "order"))
				h.order_key = (char *)v;
			else if (!strcmp(kv, "principal"))
				pr.name = (char *)v, h.principal = &pr;
			else if (!strcmp(kv, "pns"))
				pns[0] = (char *)v, pr.namespaces = pns, pr.n_namespaces = 1, h.principal = &pr;
			else if (!strcmp(kv, "ro"))
				pr.read_only = atoi(v), h.principal = &pr;
		}
		*len = berth__rpc__v1__request_header__get_packed_size(&h);
		uint8_t *buf = bt_xmalloc(BT_MAX(*len, 1));
		berth__rpc__v1__request_header__pack(&h, buf);
		free(copy);
		return buf;
	}
	if (strncmp(spec, "raw:", 4) == 0) {
		*len = strlen(spec + 4);
		return (uint8_t *)bt_xstrdup(spec + 4);
	}
	if (strncmp(spec, "rand:", 5) == 0 || strncmp(spec, "zero:", 5) == 0) {
		*len = strtoull(spec + 5, NULL, 10);
		uint8_t *buf = bt_xzalloc(BT_MAX(*len, 1));
		if (spec[0] == 'r')
			bt_random_bytes(buf, *len);
		return buf;
	}
	if (strcmp(spec, "empty") == 0) {
		*len = 0;
		return bt_xzalloc(1);
	}
	if (strncmp(spec, "prefix:", 7) == 0) {
		char *end;
		unsigned long long hl = strtoull(spec + 7, &end, 0), bl;
		if (*end != ',' || hl > UINT32_MAX)
			goto bad;
		bl = strtoull(end + 1, &end, 0);
		if (*end || bl > UINT32_MAX)
			goto bad;
		uint8_t *buf = bt_xmalloc(BT_WIRE_PREFIX);
		put_le32(buf, (uint32_t)hl);
		put_le32(buf + 4, (uint32_t)bl);
		*len = BT_WIRE_PREFIX;
		return buf;
	}
bad:
	fprintf(stderr, "zmqsend: bad frame spec %s\n", spec);
	exit(2);
}

static void send_frame(void *s, const char *spec, int more)
{
	size_t n;
	uint8_t *buf = frame_bytes(spec, &n);
	zmq_send(s, buf, n, more ? ZMQ_SNDMORE : 0);
	free(buf);
}

/* Prints a reply header; returns 1 if it is final, 0 if not, -1 if it is
 * not a ResponseHeader. */
static int print_reply(const void *data, size_t len)
{
	Berth__Rpc__V1__ResponseHeader *h = berth__rpc__v1__response_header__unpack(NULL, len, data);
	if (!h) {
		printf("malformed reply\n");
		return -1;
	}
	printf("code=%s final=%d id=%llu message=%s\n", bt_code_name((int)h->code), h->final,
	       (unsigned long long)h->request_id, h->message);
	int final = h->final;
	berth__rpc__v1__response_header__free_unpacked(h, NULL);
	return final;
}

static int run_zmq(const char *endpoint, int timeout, char **frames, int nframes)
{
	int got = 0;
	void *ctx = zmq_ctx_new();
	void *s = zmq_socket(ctx, ZMQ_DEALER);
	int zero = 0;
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
	if (zmq_connect(s, endpoint) < 0) {
		fprintf(stderr, "zmqsend: connect %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
		return 2;
	}
	for (int k = 0; k < nframes; k++)
		send_frame(s, frames[k], k + 1 < nframes);
	for (;;) {
		zmq_msg_t hm, bm;
		int more = 0;
		size_t len = sizeof(more);
		zmq_msg_init(&hm);
		if (zmq_msg_recv(&hm, s, 0) < 0) {
			printf("timeout\n");
			break;
		}
		zmq_getsockopt(s, ZMQ_RCVMORE, &more, &len);
		while (more) {
			zmq_msg_init(&bm);
			zmq_msg_recv(&bm, s, 0);
			zmq_msg_close(&bm);
			zmq_getsockopt(s, ZMQ_RCVMORE, &more, &len);
		}
		got = 1;
		int final = print_reply(zmq_msg_data(&hm), zmq_msg_size(&hm));
		zmq_msg_close(&hm);
		if (final != 0)
			break;
	}
	zmq_close(s);
	zmq_ctx_term(ctx);
	return got ? 0 : 1;
}

/* Writes all of buf to the (blocking) fd; -1 when the peer is gone. */
static int write_all(int fd, const uint8_t *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Appends one message of frames[0, n) to the stream's bytes (framed
 * unless raw). */
static void add_stream_msg(bt_buf *out, char **frames, int n, int raw)
{
	uint8_t *b[2] = { NULL, NULL };
	size_t l[2] = { 0, 0 };

	if (raw) {
		for (int k = 0; k < n; k++) {
			size_t len;
			uint8_t *buf = frame_bytes(frames[k], &len);
			bt_buf_append(out, buf, len);
			free(buf);
		}
		return;
	}
	for (int k = 0; k < n; k++)
		b[k] = frame_bytes(frames[k], &l[k]);
	uint8_t pre[BT_WIRE_PREFIX];
	put_le32(pre, (uint32_t)l[0]);
	put_le32(pre + 4, n == 2 ? (uint32_t)l[1] : BT_WIRE_NOBODY);
	bt_buf_append(out, pre, sizeof(pre));
	bt_buf_append(out, b[0], l[0]);
	if (n == 2)
		bt_buf_append(out, b[1], l[1]);
	free(b[0]);
	free(b[1]);
}

static int run_stream(const char *endpoint, int timeout, char **frames, int nframes, int raw, int wait_close,
		      int shut)
{
	bt_err e;
	int got = 0, msgs = 0;

	/* messages are runs of one or two frames between "+" */
	for (int k = 0, run = 0; k <= nframes; k++) {
		if (k == nframes || !strcmp(frames[k], "+")) {
			if (raw && k < nframes) {
				fprintf(stderr, "zmqsend: -R writes one stream of bytes: no \"+\"\n");
				usage();
			}
			if (run == 0 || (!raw && run > 2)) {
				fprintf(stderr, "zmqsend: a stream message is a header and at most one body (%d frames)\n",
					run);
				usage();
			}
			msgs++;
			run = 0;
		} else {
			run++;
		}
	}
	int fd = bt_unix_connect(endpoint + 7, SOCK_STREAM, &e);
	if (fd < 0) {
		fprintf(stderr, "zmqsend: connect %s: %s\n", endpoint, e.msg);
		return 2;
	}
	/* all of it in one write: the gateway finds many messages in one read */
	bt_buf out = { 0 };
	for (int k = 0; k < nframes;) {
		int end = k;
		while (end < nframes && strcmp(frames[end], "+"))
			end++;
		add_stream_msg(&out, frames + k, end - k, raw);
		k = end + 1;
	}
	if (write_all(fd, (const uint8_t *)out.data, out.len) < 0) /* the gateway may have hung up having said why: read on */
		fprintf(stderr, "zmqsend: write: %s\n", strerror(errno));
	bt_buf_free(&out);
	if (shut)
		shutdown(fd, SHUT_WR);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		fprintf(stderr, "zmqsend: fcntl: %s\n", strerror(errno));
		close(fd);
		return 2;
	}
	bt_wire_in in;
	bt_wire_in_init(&in);
	int64_t until = bt_mono_ms() + timeout;
	int finals = 0;
	for (;;) {
		bt_wire_msg m;
		int rc = bt_wire_recv(&in, fd, &m, &e);
		if (rc == 1) {
			got = 1;
			int final = print_reply(m.hdr, m.hlen);
			zmq_msg_close(&m.body);
			if (final < 0)
				break;
			finals += final;
			if (finals >= msgs && !wait_close)
				break;
			continue;
		}
		zmq_msg_close(&m.body);
		if (rc == 0 || (rc < 0 && errno == ECONNRESET)) {
			printf("closed\n");
			break;
		}
		if (errno == EPROTO) {
			printf("malformed stream: %s\n", e.msg);
			break;
		}
		if (errno != EAGAIN) {
			printf("error: %s\n", strerror(errno));
			break;
		}
		int64_t left = until - bt_mono_ms();
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (left <= 0 || (poll(&pf, 1, (int)left) == 0)) {
			printf("timeout\n");
			break;
		}
	}
	bt_wire_in_free(&in);
	close(fd);
	return got ? 0 : 1;
}

int main(int argc, char **argv)
{
	int timeout = 3000, i = 1, raw = 0, wait_close = 0, shut = 0;

	while (i < argc && argv[i][0] == '-' && argv[i][1]) {
		if (!strcmp(argv[i], "-t") && i + 1 < argc) {
			timeout = atoi(argv[i + 1]);
			i += 2;
		} else if (!strcmp(argv[i], "-R")) {
			raw = 1;
			i++;
		} else if (!strcmp(argv[i], "-c")) {
			wait_close = 1;
			i++;
		} else if (!strcmp(argv[i], "-s")) {
			shut = 1;
			i++;
		} else {
			usage();
		}
	}
	if (argc - i < 2)
		usage();
	if (bt_startswith(argv[i], "unix://")) {
		if (argv[i][7] != '/') {
			fprintf(stderr, "zmqsend: %s: a unix:// endpoint names an absolute path\n", argv[i]);
			usage();
		}
		return run_stream(argv[i], timeout, argv + i + 1, argc - i - 1, raw, wait_close, shut);
	}
	if (raw || wait_close || shut) {
		fprintf(stderr, "zmqsend: -R, -c and -s are for unix:// endpoints\n");
		usage();
	}
	return run_zmq(argv[i], timeout, argv + i + 1, argc - i - 1);
}
