/*
 * rpc_bench — round-trip latency and throughput of berth's RPC path beside
 * the floors it is judged against, all with the same frame sizes:
 *
 *   rpc_bench unix  N             unix SEQPACKET ping-pong with a forked echo process
 *   rpc_bench zmq   N CLIENTS     DEALER → ROUTER/DEALER proxy process → ROUTER echo process
 *   rpc_bench berth N CLIENTS ADDR DIGEST NS
 *                                 content.Info through berth's client library and
 *                                 whatever ADDR is (the gateway's ipc:// or unix://
 *                                 door, or a service socket)
 *
 * Prints one line: "median_us=… p99_us=… rps1=… rpsN=… pipeN=…": latency
 * and throughput of one client, throughput of CLIENTS connections each with
 * one request in flight, driven from one thread, and throughput of one
 * connection keeping CLIENTS requests in flight (pipelined, as libberth's
 * bt_conn_send/bt_conn_collect do).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "berth/content/v1/content.pb-c.h"
#include "bt_client.h"
#include "bt_rpc.h"
#include "bt_seqrpc.h"
#include "bt_util.h"
#include "bt_wire.h"

/* Frame sizes of a content.Info round trip: header ≈ 60 B, body ≈ 80 B. */
#define HDR_SIZE 60
#define BODY_SIZE 80

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void report(int64_t *lat_ns, int n, double rps)
{
	qsort(lat_ns, (size_t)n, sizeof(int64_t), cmp64);
	printf("median_us=%.1f p99_us=%.1f rps=%.0f\n", lat_ns[n / 2] / 1000.0, lat_ns[(n * 99) / 100] / 1000.0, rps);
}

/* --- unix socket floor -------------------------------------------------------- */

static int bench_unix(int n)
{
	int sv[2];
	char buf[HDR_SIZE + BODY_SIZE];
	int64_t *lat = bt_xcalloc((size_t)n, sizeof(int64_t));

	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		for (;;) {
			ssize_t r = read(sv[1], buf, sizeof(buf));
			if (r <= 0)
				_exit(0);
			if (write(sv[1], buf, (size_t)r) != r)
				_exit(1);
		}
	}
	close(sv[1]);
	memset(buf, 'x', sizeof(buf));
	int64_t t0 = bt_mono_ns();
	for (int i = 0; i < n; i++) {
		int64_t s = bt_mono_ns();
		if (write(sv[0], buf, sizeof(buf)) < 0 || read(sv[0], buf, sizeof(buf)) <= 0)
			return 1;
		lat[i] = bt_mono_ns() - s;
	}
	double rps = n / ((bt_mono_ns() - t0) / 1e9);
	close(sv[0]);
	waitpid(pid, NULL, 0);
	report(lat, n, rps);
	free(lat);
	return 0;
}

/* --- throughput: many connections, one request in flight each, one thread -------------- */

/* Drives `conns` DEALER connections to endpoint from this thread, each with
 * one request in flight, until `total` replies came back; frames are built
 * by make(i, id) into hdr/body. Returns requests per second. Client-side
 * threads would cost a context switch per request, which on a small machine
 * measures the client rather than the server. */
typedef void (*make_fn)(void *arg, uint64_t id, zmq_msg_t *hdr, zmq_msg_t *body);

static double drive(const char *endpoint, int conns, int total, make_fn make, void *arg)
{
	void **socks = bt_xcalloc((size_t)conns, sizeof(void *));
	zmq_pollitem_t *items = bt_xcalloc((size_t)conns, sizeof(zmq_pollitem_t));
	uint64_t id = 1;
	int sent = 0, done = 0;

	for (int i = 0; i < conns; i++) {
		socks[i] = zmq_socket(bt_zmq_ctx(), ZMQ_DEALER);
		int zero = 0;
		zmq_setsockopt(socks[i], ZMQ_LINGER, &zero, sizeof(zero));
		zmq_connect(socks[i], endpoint);
		items[i].socket = socks[i];
		items[i].events = ZMQ_POLLIN;
	}
	usleep(100000);
	int64_t t0 = bt_mono_ns();
	for (int i = 0; i < conns && sent < total; i++, sent++) {
		zmq_msg_t h, b;
		make(arg, id++, &h, &b);
		zmq_msg_send(&h, socks[i], ZMQ_SNDMORE);
		zmq_msg_send(&b, socks[i], 0);
	}
	while (done < total) {
		if (zmq_poll(items, conns, 5000) <= 0)
			break;
		for (int i = 0; i < conns; i++) {
			if (!(items[i].revents & ZMQ_POLLIN))
				continue;
			zmq_msg_t m;
			int more = 1;
			size_t len = sizeof(more);
			while (more) {
				zmq_msg_init(&m);
				zmq_msg_recv(&m, socks[i], 0);
				zmq_msg_close(&m);
				zmq_getsockopt(socks[i], ZMQ_RCVMORE, &more, &len);
			}
			done++;
			if (sent < total) {
				zmq_msg_t h, b;
				make(arg, id++, &h, &b);
				zmq_msg_send(&h, socks[i], ZMQ_SNDMORE);
				zmq_msg_send(&b, socks[i], 0);
				sent++;
			}
		}
	}
	double rps = done / ((bt_mono_ns() - t0) / 1e9);
	for (int i = 0; i < conns; i++)
		zmq_close(socks[i]);
	free(socks);
	free(items);
	return rps;
}

/* One DEALER connection to endpoint with `depth` requests in flight until
 * `total` replies came back. Returns requests per second. */
static double drive_pipelined(const char *endpoint, int depth, int total, make_fn make, void *arg)
{
	void *s = zmq_socket(bt_zmq_ctx(), ZMQ_DEALER);
	uint64_t id = 1;
	int sent = 0, done = 0, zero = 0;

	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_connect(s, endpoint);
	usleep(100000);
	int64_t t0 = bt_mono_ns();
	while (done < total) {
		while (sent < total && sent - done < depth) {
			zmq_msg_t h, b;
			make(arg, id++, &h, &b);
			zmq_msg_send(&h, s, ZMQ_SNDMORE);
			zmq_msg_send(&b, s, 0);
			sent++;
		}
		zmq_msg_t m;
		int more = 1;
		while (more) {
			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, s, 0) < 0) {
				zmq_msg_close(&m);
				goto out;
			}
			more = zmq_msg_more(&m);
			zmq_msg_close(&m);
		}
		done++;
	}
out:;
	double rps = done / ((bt_mono_ns() - t0) / 1e9);
	zmq_close(s);
	return rps;
}

/* --- the same two over the gateway's unix stream door (bt_wire.h) ----------------- */

static int unix_dial(const char *endpoint)
{
	bt_err e;
	int fd = bt_unix_connect(endpoint + 7, SOCK_STREAM, &e);
	if (fd < 0) {
		fprintf(stderr, "rpc_bench: %s\n", e.msg);
		exit(1);
	}
	return fd;
}

/* Writes one request frame: [hlen][blen][header][body], as libberth does. */
static void unix_put(int fd, make_fn make, void *arg, uint64_t id)
{
	zmq_msg_t h, b;
	make(arg, id, &h, &b);
	uint32_t pre[2] = { (uint32_t)zmq_msg_size(&h), (uint32_t)zmq_msg_size(&b) };
	struct iovec iov[3] = { { pre, sizeof(pre) },
				{ zmq_msg_data(&h), zmq_msg_size(&h) },
				{ zmq_msg_data(&b), zmq_msg_size(&b) } };
	if (writev(fd, iov, 3) < 0)
		perror("rpc_bench: writev");
	zmq_msg_close(&h);
	zmq_msg_close(&b);
}

/* Takes every complete reply the connection has; returns how many. */
static int unix_take(bt_wire_in *in, int fd)
{
	int k = 0;
	for (;;) {
		bt_wire_msg m;
		bt_err e;
		int rc = bt_wire_recv(in, fd, &m, &e);
		zmq_msg_close(&m.body);
		if (rc != 1)
			return rc < 0 && errno == EAGAIN ? k : (k ? k : -1);
		k++;
	}
}

static double drive_unix(const char *endpoint, int conns, int total, make_fn make, void *arg)
{
	struct pollfd *pf = bt_xcalloc((size_t)conns, sizeof(*pf));
	bt_wire_in *in = bt_xcalloc((size_t)conns, sizeof(*in));
	uint64_t id = 1;
	int sent = 0, done = 0;

	for (int i = 0; i < conns; i++) {
		pf[i].fd = unix_dial(endpoint);
		pf[i].events = POLLIN;
		fcntl(pf[i].fd, F_SETFL, O_NONBLOCK);
		bt_wire_in_init(&in[i]);
	}
	int64_t t0 = bt_mono_ns();
	for (int i = 0; i < conns && sent < total; i++, sent++)
		unix_put(pf[i].fd, make, arg, id++);
	while (done < total) {
		if (poll(pf, (nfds_t)conns, 5000) <= 0)
			break;
		for (int i = 0; i < conns; i++) {
			if (!pf[i].revents)
				continue;
			int k = unix_take(&in[i], pf[i].fd);
			if (k < 0)
				goto out;
			for (; k > 0; k--) {
				done++;
				if (sent < total) {
					unix_put(pf[i].fd, make, arg, id++);
					sent++;
				}
			}
		}
	}
out:;
	double rps = done / ((bt_mono_ns() - t0) / 1e9);
	for (int i = 0; i < conns; i++) {
		close(pf[i].fd);
		bt_wire_in_free(&in[i]);
	}
	free(pf);
	free(in);
	return rps;
}

static double drive_pipelined_unix(const char *endpoint, int depth, int total, make_fn make, void *arg)
{
	int fd = unix_dial(endpoint);
	bt_wire_in in;
	uint64_t id = 1;
	int sent = 0, done = 0;

	bt_wire_in_init(&in);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	int64_t t0 = bt_mono_ns();
	while (done < total) {
		while (sent < total && sent - done < depth) {
			unix_put(fd, make, arg, id++);
			sent++;
		}
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, 5000) <= 0)
			break;
		int k = unix_take(&in, fd);
		if (k < 0)
			break;
		done += k;
	}
	double rps = done / ((bt_mono_ns() - t0) / 1e9);
	close(fd);
	bt_wire_in_free(&in);
	return rps;
}

static void make_raw(void *arg, uint64_t id, zmq_msg_t *hdr, zmq_msg_t *body)
{
	(void)arg;
	(void)id;
	zmq_msg_init_size(hdr, HDR_SIZE);
	memset(zmq_msg_data(hdr), 'h', HDR_SIZE);
	zmq_msg_init_size(body, BODY_SIZE);
	memset(zmq_msg_data(body), 'b', BODY_SIZE);
}

typedef struct info_req {
	const char *digest;
	const char *ns;
} info_req;

static void make_info(void *arg, uint64_t id, zmq_msg_t *hdr, zmq_msg_t *body)
{
	info_req *r = arg;
	bt_reqhdr h = BERTH__RPC__V1__REQUEST_HEADER__INIT;
	Berth__Content__V1__InfoRequest req = BERTH__CONTENT__V1__INFO_REQUEST__INIT;

	h.version = BT_PROTOCOL_VERSION;
	h.service = (char *)"content";
	h.method = (char *)"Info";
	h.namespace_ = (char *)r->ns;
	h.request_id = id;
	h.deadline_ms = 30000;
	req.digest = (char *)r->digest;
	bt_msg_pack(hdr, &h.base);
	bt_msg_pack(body, &req.base);
}

/* --- libzmq proxy floor ------------------------------------------------------------ */

static void run_proxy(const char *front, const char *back)
{
	void *ctx = zmq_ctx_new();
	void *f = zmq_socket(ctx, ZMQ_ROUTER), *b = zmq_socket(ctx, ZMQ_DEALER);
	zmq_bind(f, front);
	zmq_bind(b, back);
	zmq_proxy(f, b, NULL);
	_exit(0);
}

static void run_echo(const char *back)
{
	void *ctx = zmq_ctx_new();
	void *s = zmq_socket(ctx, ZMQ_ROUTER);
	zmq_connect(s, back);
	for (;;) {
		zmq_msg_t m[4];
		int k = 0, more = 1;
		size_t len = sizeof(more);
		while (more && k < 4) {
			zmq_msg_init(&m[k]);
			if (zmq_msg_recv(&m[k], s, 0) < 0)
				_exit(0);
			zmq_getsockopt(s, ZMQ_RCVMORE, &more, &len);
			k++;
		}
		for (int i = 0; i < k; i++)
			zmq_msg_send(&m[i], s, i + 1 < k ? ZMQ_SNDMORE : 0);
	}
}

typedef struct zarg {
	const char *front;
	int n;
	int64_t *lat;
} zarg;

static void *zmq_client(void *p)
{
	zarg *a = p;
	void *ctx = bt_zmq_ctx();
	void *s = zmq_socket(ctx, ZMQ_DEALER);
	char hdr[HDR_SIZE], body[BODY_SIZE], in[256];

	memset(hdr, 'h', sizeof(hdr));
	memset(body, 'b', sizeof(body));
	zmq_connect(s, a->front);
	for (int i = 0; i < a->n; i++) {
		int64_t t = bt_mono_ns();
		zmq_send(s, hdr, sizeof(hdr), ZMQ_SNDMORE);
		zmq_send(s, body, sizeof(body), 0);
		zmq_recv(s, in, sizeof(in), 0);
		zmq_recv(s, in, sizeof(in), 0);
		if (a->lat)
			a->lat[i] = bt_mono_ns() - t;
	}
	zmq_close(s);
	return NULL;
}

static int bench_zmq(int n, int clients)
{
	char front[64], back[64];
	snprintf(front, sizeof(front), "ipc:///tmp/bt-bench-f-%d", (int)getpid());
	snprintf(back, sizeof(back), "ipc:///tmp/bt-bench-b-%d", (int)getpid());
	pid_t proxy = fork();
	if (proxy == 0)
		run_proxy(front, back);
	usleep(100000);
	pid_t echo = fork();
	if (echo == 0)
		run_echo(back);
	usleep(200000);

	zarg one = { front, 200, NULL };
	zmq_client(&one); /* warm up */
	one.n = n;
	one.lat = bt_xcalloc((size_t)n, sizeof(int64_t));
	int64_t t0 = bt_mono_ns();
	zmq_client(&one);
	double rps1 = n / ((bt_mono_ns() - t0) / 1e9);
	double rpsn = drive(front, clients, n, make_raw, NULL);
	double pipen = drive_pipelined(front, clients, n, make_raw, NULL);
	kill(proxy, SIGKILL);
	kill(echo, SIGKILL);
	waitpid(proxy, NULL, 0);
	waitpid(echo, NULL, 0);
	unlink(front + 6);
	unlink(back + 6);
	qsort(one.lat, (size_t)n, sizeof(int64_t), cmp64);
	printf("median_us=%.1f p99_us=%.1f rps1=%.0f rps%d=%.0f pipe%d=%.0f\n", one.lat[n / 2] / 1000.0,
	       one.lat[(n * 99) / 100] / 1000.0, rps1, clients, rpsn, clients, pipen);
	free(one.lat);
	return 0;
}

/* --- berth ------------------------------------------------------------------------- */

typedef struct barg {
	const char *front; /* must stay first: run_clients reads n via zarg's layout */
	int n;
	int64_t *lat;
	const char *digest;
	const char *ns;
	int errors;
} barg;

static void *berth_client(void *p)
{
	barg *a = p;
	bt_err e;
	bt_conn *c = bt_conn_new(a->front, NULL, &e);
	Berth__Content__V1__InfoRequest req = BERTH__CONTENT__V1__INFO_REQUEST__INIT;
	bt_callspec cs = { .service = "content", .method = "Info", .ns = a->ns };

	if (!c) {
		a->errors = a->n;
		return NULL;
	}
	req.digest = (char *)a->digest;
	for (int i = 0; i < a->n; i++) {
		void *resp = NULL;
		int64_t t = bt_mono_ns();
		if (bt_conn_call(c, &cs, &req.base, &berth__content__v1__info_response__descriptor, &resp, &e) < 0) {
			a->errors++;
			if (a->errors == 1)
				fprintf(stderr, "rpc_bench: %s\n", e.msg);
		}
		if (a->lat)
			a->lat[i] = bt_mono_ns() - t;
		if (resp)
			protobuf_c_message_free_unpacked(resp, NULL);
	}
	bt_conn_free(&c);
	return NULL;
}

static int bench_berth(int n, int clients, const char *addr, const char *digest, const char *ns)
{
	barg one = { addr, 200, NULL, digest, ns, 0 };
	berth_client(&one); /* warm up */
	one.n = n;
	one.lat = bt_xcalloc((size_t)n, sizeof(int64_t));
	int64_t t0 = bt_mono_ns();
	berth_client(&one);
	double rps1 = n / ((bt_mono_ns() - t0) / 1e9);
	info_req ir = { digest, ns };
	bool un = bt_startswith(addr, "unix://");
	double rpsn = (un ? drive_unix : drive)(addr, clients, n, make_info, &ir);
	double pipen = (un ? drive_pipelined_unix : drive_pipelined)(addr, clients, n, make_info, &ir);
	int errors = one.errors;
	qsort(one.lat, (size_t)n, sizeof(int64_t), cmp64);
	printf("median_us=%.1f p99_us=%.1f rps1=%.0f rps%d=%.0f pipe%d=%.0f errors=%d\n", one.lat[n / 2] / 1000.0,
	       one.lat[(n * 99) / 100] / 1000.0, rps1, clients, rpsn, clients, pipen, errors);
	free(one.lat);
	return errors ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "unix") == 0)
		return bench_unix(atoi(argv[2]));
	if (argc >= 4 && strcmp(argv[1], "zmq") == 0)
		return bench_zmq(atoi(argv[2]), atoi(argv[3]));
	if (argc >= 7 && strcmp(argv[1], "berth") == 0)
		return bench_berth(atoi(argv[2]), atoi(argv[3]), argv[4], argv[5], argv[6]);
	fprintf(stderr, "usage: rpc_bench unix N | zmq N CLIENTS | berth N CLIENTS ADDR DIGEST NS\n");
	return 2;
}
