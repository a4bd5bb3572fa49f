/*
 * bt_client — DEALER connections with deadlines, pipelining, credit-paced
 * streams and disconnect detection (a socket monitor), plus a pool.
 *
 * A unix:// endpoint is the gateway's stream door (bt_wire.h) instead: one
 * plain socket, no ZeroMQ context and none of its threads; the same calls
 * work over it, a lost connection fails what was in flight at once, and
 * the next call connects again.
 */
#define _GNU_SOURCE
#include "bt_client.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bt_map.h"
#include "bt_seqrpc.h"
#include "bt_util.h"
#include "bt_wire.h"

#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_CONNECT_MS 3000
#define MAX_PENDING 4096
#define MONITOR_MS 50
#define RECONNECT_MS 10

typedef struct pending_reply {
	struct pending_reply *next;
	uint64_t id;
	bt_resphdr *hdr;
	zmq_msg_t body;
} pending_reply;

typedef struct inflight {
	int64_t deadline; /* monotonic ms; 0 none */
	bool stream;
	bool lost; /* the connection dropped while it was in flight */
} inflight;

struct bt_conn {
	char *endpoint;
	void *sock;
	void *monitor;
	int64_t timeout_ms;
	int64_t connect_ms;
	uint64_t next_id;
	int npipes; /* live connections as the monitor reports them */
	bool inproc; /* ZeroMQ reports no connection events for inproc */
	bool ever_connected;
	bt_map *inflight; /* id → inflight */
	pending_reply *pending;
	int npending;
	/* unix:// (path set): the stream socket, -1 while not connected */
	char *path;
	int fd;
	bt_wire_in win;
	bt_wire_out wout;
};

struct bt_stream {
	bt_conn *c;
	uint64_t id;
	const ProtobufCMessageDescriptor *item;
	uint32_t window;
	uint32_t unacked; /* consumed but not yet granted back */
	bool ended;
	char method[64];
};

const char *bt_conn_endpoint(const bt_conn *c)
{
	return c->endpoint;
}

bt_conn *bt_conn_new(const char *endpoint, const bt_conn_opts *o, bt_err *e)
{
	bt_conn *c = bt_xzalloc(sizeof(*c));
	int one = 1;

	c->endpoint = bt_xstrdup(endpoint);
	c->timeout_ms = o && o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
	c->connect_ms = o && o->connect_timeout_ms > 0 ? o->connect_timeout_ms : DEFAULT_CONNECT_MS;
	bt_random_bytes(&c->next_id, sizeof(c->next_id));
	c->next_id = (c->next_id >> 12) + 1;
	c->inflight = bt_map_new();
	c->inproc = bt_startswith(endpoint, "inproc://");
	c->fd = -1;
	bt_wire_in_init(&c->win);
	if (bt_startswith(endpoint, "unix://")) {
		if (o && o->server_key) {
			bt_err_set(e, BT_INVALID_ARGUMENT, "CURVE keys are for tcp:// endpoints, not %s", endpoint);
			goto fail;
		}
		if (endpoint[7] != '/') {
			bt_err_set(e, BT_INVALID_ARGUMENT, "%s: a unix:// endpoint names an absolute path", endpoint);
			goto fail;
		}
		c->path = bt_xstrdup(endpoint + 7);
		return c;
	}
	c->sock = bt_zmq_socket(ZMQ_DEALER, e);
	if (!c->sock)
		goto fail;
	/* Queue nothing for a peer that is not there: sends fail instead. */
	zmq_setsockopt(c->sock, ZMQ_IMMEDIATE, &one, sizeof(one));
	if (o && o->server_key) {
		if (!o->public_key || !o->secret_key) {
			bt_err_set(e, BT_INVALID_ARGUMENT, "a server key needs a client key pair");
			goto fail;
		}
		if (zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, o->server_key, strlen(o->server_key)) < 0 ||
		    zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, o->public_key, strlen(o->public_key)) < 0 ||
		    zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, o->secret_key, strlen(o->secret_key)) < 0) {
			bt_err_set(e, BT_INVALID_ARGUMENT, "CURVE keys: %s (keys are 40-character z85 strings)",
				   zmq_strerror(errno));
			goto fail;
		}
	}
	c->monitor = bt_zmq_monitor(c->sock, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED, e);
	if (!c->monitor)
		goto fail;
	if (zmq_connect(c->sock, endpoint) < 0) {
		bt_err_set(e, BT_INVALID_ARGUMENT, "connect %s: %s", endpoint, zmq_strerror(errno));
		goto fail;
	}
	return c;
fail:
	bt_conn_free(&c);
	return NULL;
}

static void pending_free(pending_reply *p)
{
	bt_resphdr_free(&p->hdr);
	zmq_msg_close(&p->body);
	free(p);
}

void bt_conn_free(bt_conn **cp)
{
	bt_conn *c = *cp;
	bt_map_iter it;
	void *v;

	if (!c)
		return;
	if (c->sock)
		zmq_socket_monitor(c->sock, NULL, 0);
	bt_zmq_close(&c->monitor);
	bt_zmq_close(&c->sock);
	if (c->fd >= 0)
		close(c->fd);
	bt_wire_in_free(&c->win);
	bt_wire_out_free(&c->wout);
	free(c->path);
	while (c->pending) {
		pending_reply *p = c->pending;
		c->pending = p->next;
		pending_free(p);
	}
	if (c->inflight) {
		bt_map_iter_init(&it, c->inflight);
		while (bt_map_iter_next(&it, NULL, NULL, &v))
			free(v);
		bt_map_free(&c->inflight);
	}
	free(c->endpoint);
	free(c);
	*cp = NULL;
}

static void mark_lost(bt_conn *c)
{
	bt_map_iter it;
	void *v;

	bt_map_iter_init(&it, c->inflight);
	while (bt_map_iter_next(&it, NULL, NULL, &v))
		((inflight *)v)->lost = true;
}

/* Reads monitor events; a disconnect marks everything in flight as lost. */
static void drain_monitor(bt_conn *c)
{
	for (;;) {
		zmq_msg_t ev, addr;
		zmq_msg_init(&ev);
		if (zmq_msg_recv(&ev, c->monitor, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&ev);
			return;
		}
		uint16_t event = 0;
		if (zmq_msg_size(&ev) >= 2)
			memcpy(&event, zmq_msg_data(&ev), 2);
		zmq_msg_close(&ev);
		zmq_msg_init(&addr);
		if (zmq_msg_recv(&addr, c->monitor, 0) >= 0)
			zmq_msg_close(&addr);
		if (event == ZMQ_EVENT_CONNECTED) {
			c->npipes++;
			c->ever_connected = true;
		} else if (event == ZMQ_EVENT_DISCONNECTED) {
			if (c->npipes > 0)
				c->npipes--;
			mark_lost(c);
		}
	}
}

static int unavailable(bt_conn *c, bt_err *e, const char *why)
{
	bt_err_set(e, BT_UNAVAILABLE, "%s: %s", c->endpoint, why);
	e->transport = 1;
	return -1;
}

/* --- unix:// ----------------------------------------------------------------- */

/* The stream broke (or a write was left half done): everything in flight
 * is lost, and the next call connects again. */
static void unix_drop(bt_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	bt_wire_in_free(&c->win);
	bt_wire_out_free(&c->wout);
	mark_lost(c);
}

/* Connects if not connected, retrying until the connect timeout (or the
 * deadline) while nobody listens, as ZeroMQ would. */
static int unix_connect(bt_conn *c, int64_t deadline, bt_err *e)
{
	int64_t until = bt_mono_ms() + c->connect_ms;

	if (c->fd >= 0)
		return 0;
	if (deadline && deadline < until)
		until = deadline;
	for (;;) {
		bt_err ce;
		int fd = bt_unix_connect(c->path, SOCK_STREAM, &ce);
		if (fd >= 0) {
			if (bt_set_nonblock(fd) < 0) {
				close(fd);
				return unavailable(c, e, strerror(errno));
			}
			bt_wire_tune(fd);
			c->fd = fd;
			c->ever_connected = true;
			return 0;
		}
		if (ce.code != BT_UNAVAILABLE)
			return unavailable(c, e, ce.msg);
		int64_t left = until - bt_mono_ms();
		if (left <= 0)
			return unavailable(c, e, c->ever_connected ? "connection lost and not re-established"
								    : "cannot connect (no server listening)");
		struct timespec ts = { 0, BT_MIN(left, RECONNECT_MS) * 1000000L };
		nanosleep(&ts, NULL);
	}
}

/* Writes everything queued, waiting for the socket up to deadline (0: none). */
static int unix_flush(bt_conn *c, int64_t deadline, bt_err *e)
{
	for (;;) {
		int rc = bt_wire_flush(&c->wout, c->fd);
		if (rc == 0)
			return 0;
		if (rc < 0) {
			int err = errno;
			unix_drop(c);
			return unavailable(c, e, strerror(err));
		}
		int wait = -1;
		if (deadline) {
			int64_t left = deadline - bt_mono_ms();
			if (left <= 0) {
				/* half a message may be out: the stream is unusable */
				unix_drop(c);
				bt_err_set(e, BT_DEADLINE_EXCEEDED, "%s: deadline exceeded sending", c->endpoint);
				e->transport = 1;
				return -1;
			}
			wait = (int)BT_MIN(left, INT32_MAX);
		}
		struct pollfd pf = { .fd = c->fd, .events = POLLOUT };
		if (poll(&pf, 1, wait) < 0 && errno != EINTR) {
			int err = errno;
			unix_drop(c);
			return unavailable(c, e, strerror(err));
		}
	}
}

static int unix_send(bt_conn *c, const bt_reqhdr *h, zmq_msg_t *bm, int64_t deadline, bt_err *e)
{
	if (unix_connect(c, deadline, e) < 0) {
		if (bm)
			zmq_msg_close(bm);
		return -1;
	}
	bt_wire_put(&c->wout, &h->base, bm);
	return unix_flush(c, deadline, e);
}

/* Receives one reply frame pair from the stream, waiting at most wait ms
 * (-1: no bound): 1 with it, 0 when the wait ran out, -1 when the
 * connection is gone (everything in flight marked lost) or on EINTR
 * (errno). */
static int unix_recv(bt_conn *c, int wait, bt_resphdr **hp, zmq_msg_t *body)
{
	for (;;) {
		if (c->fd < 0)
			return -1;
		bt_wire_msg m;
		bt_err ignore;
		int rc = bt_wire_recv(&c->win, c->fd, &m, &ignore);
		if (rc == 1) {
			*hp = bt_resphdr_decode(m.hdr, m.hlen, &ignore);
			if (*hp && m.too_big && (*hp)->code == BERTH__RPC__V1__CODE__OK) {
				/* its body, over the limit, was dropped on the way in:
				 * the call fails instead of decoding nothing */
				if ((*hp)->message != protobuf_c_empty_string)
					free((*hp)->message);
				(*hp)->code = BERTH__RPC__V1__CODE__RESOURCE_EXHAUSTED;
				(*hp)->message = bt_xasprintf("reply of %u bytes exceeds the limit of %u bytes",
							      m.too_big, BT_RPC_MAX_MSG);
			}
			zmq_msg_init(body);
			zmq_msg_move(body, &m.body);
			zmq_msg_close(&m.body);
			return 1;
		}
		zmq_msg_close(&m.body);
		if (rc == 0 || errno != EAGAIN) {
			unix_drop(c);
			return -1;
		}
		struct pollfd pf = { .fd = c->fd, .events = POLLIN | (c->wout.bytes ? POLLOUT : 0) };
		int n = poll(&pf, 1, wait);
		if (n < 0) {
			if (errno == EINTR)
				return -1;
			unix_drop(c);
			return -1;
		}
		if (n == 0)
			return 0;
		if ((pf.revents & POLLOUT) && bt_wire_flush(&c->wout, c->fd) < 0) {
			unix_drop(c);
			return -1;
		}
	}
}

/* Waits until the socket has a live connection, up to deadline (monotonic ms,
 * 0: connect timeout).  POLLOUT alone is not enough: after a disconnect the
 * dead pipe stays writable until the socket processes its termination, and a
 * message sent into it is lost; the monitor's count of live connections is
 * what tells. */
static int wait_connected(bt_conn *c, int64_t deadline, bt_err *e)
{
	int64_t until = bt_mono_ms() + c->connect_ms;
	if (deadline && deadline < until)
		until = deadline;
	/* Fast path: a connection is known. A disconnect not yet read from the
	 * monitor marks this call lost when it is read (recv_reply). */
	if (c->npipes > 0 || c->inproc)
		return 0;
	for (;;) {
		drain_monitor(c);
		int ev = 0;
		size_t len = sizeof(ev);
		zmq_getsockopt(c->sock, ZMQ_EVENTS, &ev, &len);
		if ((c->npipes > 0 || c->inproc) && (ev & ZMQ_POLLOUT))
			return 0;
		int64_t left = until - bt_mono_ms();
		if (left <= 0)
			return unavailable(c, e, c->ever_connected ? "connection lost and not re-established"
								    : "cannot connect (no server listening)");
		zmq_pollitem_t items[2] = { { .socket = c->sock, .events = ZMQ_POLLOUT },
					    { .socket = c->monitor, .events = ZMQ_POLLIN } };
		zmq_poll(items, 2, BT_MIN(left, 50));
	}
}

/* Sends the header and a body frame (taking ownership of bm). */
static int send_header_body(bt_conn *c, const bt_reqhdr *h, zmq_msg_t *bm, int64_t deadline, bt_err *e)
{
	zmq_msg_t hm;

	if (c->path)
		return unix_send(c, h, bm, deadline, e);
	if (wait_connected(c, deadline, e) < 0) {
		zmq_msg_close(bm);
		return -1;
	}
	bt_msg_pack(&hm, &h->base);
	int rc = zmq_msg_send(&hm, c->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT);
	int err = rc < 0 ? errno : 0;
	if (err == EAGAIN) {
		/* No pipe: the connection the monitor still counted is gone (the
		 * server restarted, say, and its DISCONNECTED event is yet to be
		 * read).  With ZMQ_IMMEDIATE a pipe becomes writable only once it
		 * is connected, so wait for the next one, within the deadline. */
		int64_t until = deadline ? deadline : bt_mono_ms() + c->connect_ms;
		for (;;) {
			drain_monitor(c);
			int64_t left = until - bt_mono_ms();
			if (left <= 0)
				break;
			zmq_pollitem_t it = { .socket = c->sock, .events = ZMQ_POLLOUT };
			zmq_poll(&it, 1, BT_MIN(left, 50));
			rc = zmq_msg_send(&hm, c->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT);
			err = rc < 0 ? errno : 0;
			if (err != EAGAIN)
				break;
		}
		if (err == EAGAIN) {
			zmq_msg_close(&hm);
			zmq_msg_close(bm);
			return unavailable(c, e, "connection lost and not re-established");
		}
	}
	if (rc < 0) {
		zmq_msg_close(&hm);
		zmq_msg_close(bm);
		return unavailable(c, e, zmq_strerror(err));
	}
	if (zmq_msg_send(bm, c->sock, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(bm);
		return unavailable(c, e, zmq_strerror(errno));
	}
	return 0;
}

static void fill_header(bt_reqhdr *h, const bt_callspec *cs, uint64_t id, int64_t timeout)
{
	h->version = BT_PROTOCOL_VERSION;
	h->service = (char *)cs->service;
	h->method = (char *)cs->method;
	h->namespace_ = (char *)(cs->ns ? cs->ns : "");
	h->request_id = id;
	h->deadline_ms = timeout > 0 ? (uint32_t)BT_MIN(timeout, (int64_t)UINT32_MAX) : 0;
	h->window = cs->window;
	h->snapshotter = (char *)(cs->snapshotter ? cs->snapshotter : "");
	h->lease = (char *)(cs->lease ? cs->lease : "");
	h->order_key = (char *)(cs->order_key ? cs->order_key : "");
}

static int send_control(bt_conn *c, uint64_t id, bool cancel, uint32_t credit)
{
	bt_reqhdr h = BERTH__RPC__V1__REQUEST_HEADER__INIT;

	h.version = BT_PROTOCOL_VERSION;
	h.request_id = id;
	h.cancel = cancel;
	h.credit = credit;
	if (c->path) {
		/* best effort, as on ZeroMQ: what the socket does not take now
		 * goes out with the next write or wait */
		if (c->fd < 0)
			return -1;
		bt_wire_put(&c->wout, &h.base, NULL);
		if (bt_wire_flush(&c->wout, c->fd) < 0) {
			unix_drop(c);
			return -1;
		}
		return 0;
	}
	return bt_send_pb(c->sock, &h.base, ZMQ_DONTWAIT);
}

/* Starts a call with an encoded body (taking ownership of bm). */
static int start_call_msg(bt_conn *c, const bt_callspec *cs, zmq_msg_t *bm, bool stream, uint64_t *idp, bt_err *e)
{
	bt_reqhdr h = BERTH__RPC__V1__REQUEST_HEADER__INIT;
	int64_t timeout = cs->timeout_ms == 0 ? (stream ? -1 : c->timeout_ms) : cs->timeout_ms;
	int64_t deadline = timeout > 0 ? bt_mono_ms() + timeout : 0;
	uint64_t id = c->next_id++;

	if (bt_map_len(c->inflight) >= MAX_PENDING) {
		zmq_msg_close(bm);
		return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "too many calls in flight on one connection");
	}
	fill_header(&h, cs, id, timeout);
	if (send_header_body(c, &h, bm, deadline, e) < 0)
		return bt_err_wrap(e, "%s.%s", cs->service, cs->method);
	inflight *f = bt_xzalloc(sizeof(*f));
	f->deadline = deadline;
	f->stream = stream;
	bt_map_put(c->inflight, &id, sizeof(id), f);
	*idp = id;
	return 0;
}

static int start_call(bt_conn *c, const bt_callspec *cs, const ProtobufCMessage *req, bool stream, uint64_t *idp,
		      bt_err *e)
{
	zmq_msg_t bm;

	bt_msg_pack(&bm, req);
	return start_call_msg(c, cs, &bm, stream, idp, e);
}

int bt_conn_send_raw(bt_conn *c, const bt_callspec *cs, zmq_msg_t *body, uint64_t *id, bt_err *e)
{
	return start_call_msg(c, cs, body, false, id, e);
}

static pending_reply *take_pending(bt_conn *c, uint64_t id)
{
	for (pending_reply **pp = &c->pending; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			pending_reply *p = *pp;
			*pp = p->next;
			c->npending--;
			return p;
		}
	}
	return NULL;
}

/* Receives the next reply to id (waiting up to its deadline). */
static pending_reply *recv_reply(bt_conn *c, uint64_t id, const char *what, bt_err *e)
{
	inflight *f = bt_map_get(c->inflight, &id, sizeof(id));
	pending_reply *p = take_pending(c, id);

	if (p)
		return p;
	for (;;) {
		if (f->lost) {
			unavailable(c, e, "connection lost while waiting for the reply");
			bt_err_wrap(e, "%s", what);
			return NULL;
		}
		int64_t left = -1;
		if (f->deadline) {
			left = f->deadline - bt_mono_ms();
			if (left <= 0) {
				bt_err_set(e, BT_DEADLINE_EXCEEDED, "%s: deadline exceeded waiting for %s", what,
					   c->endpoint);
				e->transport = 1;
				return NULL;
			}
		}
		/* A blocking receive bounded by ZMQ_RCVTIMEO, not zmq_poll and
		 * then a receive: the poll asks the socket's state twice, each a
		 * system call or two, before the receive asks again. Only the
		 * socket is waited on; the monitor is read when a wait times out,
		 * so a lost connection is noticed within MONITOR_MS. */
		bt_resphdr *h;
		zmq_msg_t body;
		if (c->path) {
			int rc = unix_recv(c, left < 0 ? -1 : (int)BT_MIN(left, INT32_MAX), &h, &body);
			if (rc < 0 && errno == EINTR && c->fd >= 0) {
				bt_err_set(e, BT_CANCELLED, "%s: interrupted", what);
				return NULL;
			}
			if (rc <= 0)
				continue; /* deadline (checked above) or lost (f->lost) */
			goto got;
		}
		int wait = left < 0 ? MONITOR_MS : (int)BT_MIN(left, MONITOR_MS);
		zmq_setsockopt(c->sock, ZMQ_RCVTIMEO, &wait, sizeof(wait));
		zmq_msg_t fr[2];
		int n;
		bool overflow;
		if (bt_recv_frames(c->sock, fr, 2, &n, &overflow, 0) < 0) {
			if (errno == EAGAIN) {
				drain_monitor(c);
				continue;
			}
			if (errno == EINTR) {
				bt_err_set(e, BT_CANCELLED, "%s: interrupted", what);
				return NULL;
			}
			bt_err_set(e, BT_INTERNAL, "%s: receive: %s", what, zmq_strerror(errno));
			return NULL;
		}
		if (n != 2 || overflow) {
			bt_close_frames(fr, n);
			continue;
		}
		bt_err ignore;
		h = bt_resphdr_decode(zmq_msg_data(&fr[0]), zmq_msg_size(&fr[0]), &ignore);
		zmq_msg_close(&fr[0]);
		zmq_msg_init(&body);
		zmq_msg_move(&body, &fr[1]);
		zmq_msg_close(&fr[1]);
	got:
		if (!h || !bt_map_get(c->inflight, &h->request_id, sizeof(h->request_id)) ||
		    (h->request_id != id && c->npending >= MAX_PENDING)) {
			/* a stale reply to something we gave up on */
			bt_resphdr_free(&h);
			zmq_msg_close(&body);
			continue;
		}
		p = bt_xzalloc(sizeof(*p));
		p->id = h->request_id;
		p->hdr = h;
		zmq_msg_init(&p->body);
		zmq_msg_move(&p->body, &body);
		zmq_msg_close(&body);
		if (p->id == id)
			return p;
		/* keep replies to other pipelined calls, in order */
		pending_reply **pp = &c->pending;
		while (*pp)
			pp = &(*pp)->next;
		*pp = p;
		c->npending++;
	}
}

static void forget(bt_conn *c, uint64_t id, bool cancel)
{
	inflight *f = bt_map_del(c->inflight, &id, sizeof(id));
	pending_reply *p;

	if (cancel && f && !f->lost)
		send_control(c, id, true, 0);
	free(f);
	while ((p = take_pending(c, id)))
		pending_free(p);
}

/* Turns a final reply into a result: error code, or the decoded body. */
static int finish(pending_reply *p, const ProtobufCMessageDescriptor *rdesc, void **resp, const char *what, bt_err *e)
{
	if ((int)p->hdr->code != BT_OK) {
		bt_err_set(e, (int)p->hdr->code, "%s", p->hdr->message[0] ? p->hdr->message : bt_code_name((int)p->hdr->code));
		e->transport = p->hdr->transport;
		return -1;
	}
	if (!rdesc) {
		if (resp)
			*resp = NULL;
		return 0;
	}
	void *m = protobuf_c_message_unpack(rdesc, NULL, zmq_msg_size(&p->body), zmq_msg_data(&p->body));
	if (!m)
		return bt_err_set(e, BT_INTERNAL, "%s: malformed %s in the reply", what, rdesc->name);
	*resp = m;
	return 0;
}

int bt_conn_send(bt_conn *c, const bt_callspec *cs, const ProtobufCMessage *req, uint64_t *id, bt_err *e)
{
	return start_call(c, cs, req, false, id, e);
}

int bt_conn_collect(bt_conn *c, uint64_t id, const ProtobufCMessageDescriptor *rdesc, void **resp, bt_err *e)
{
	char what[64];
	pending_reply *p;
	int rc;

	snprintf(what, sizeof(what), "request %" PRIu64, id);
	if (!bt_map_get(c->inflight, &id, sizeof(id)))
		return bt_err_set(e, BT_INTERNAL, "%s is not in flight", what);
	p = recv_reply(c, id, what, e);
	if (!p) {
		forget(c, id, true);
		return -1;
	}
	rc = finish(p, rdesc, resp, what, e);
	pending_free(p);
	forget(c, id, false);
	return rc;
}

int bt_conn_call(bt_conn *c, const bt_callspec *cs, const ProtobufCMessage *req,
		 const ProtobufCMessageDescriptor *rdesc, void **resp, bt_err *e)
{
	uint64_t id;
	pending_reply *p;
	int rc;
	char what[160];

	snprintf(what, sizeof(what), "%s.%s", cs->service, cs->method);
	if (start_call(c, cs, req, false, &id, e) < 0)
		return -1;
	p = recv_reply(c, id, what, e);
	if (!p) {
		forget(c, id, true);
		return -1;
	}
	rc = finish(p, rdesc, resp, what, e);
	pending_free(p);
	forget(c, id, false);
	return rc;
}

bt_stream *bt_conn_stream(bt_conn *c, const bt_callspec *cs, const ProtobufCMessage *req,
			  const ProtobufCMessageDescriptor *item, bt_err *e)
{
	bt_stream *s;
	uint64_t id;

	if (start_call(c, cs, req, true, &id, e) < 0)
		return NULL;
	s = bt_xzalloc(sizeof(*s));
	s->c = c;
	s->id = id;
	s->item = item;
	s->window = cs->window ? BT_MIN(cs->window, BT_RPC_MAX_WINDOW) : BT_RPC_DEFAULT_WINDOW;
	snprintf(s->method, sizeof(s->method), "%s.%s", cs->service, cs->method);
	return s;
}

/* The next reply of the stream: 1 with p (caller frees), 0 at the end, -1 on error. */
static int stream_reply(bt_stream *s, pending_reply **pp, bt_err *e)
{
	pending_reply *p;
	int rc;

	*pp = NULL;
	if (s->ended)
		return 0;
	p = recv_reply(s->c, s->id, s->method, e);
	if (!p) {
		s->ended = true;
		forget(s->c, s->id, true);
		return -1;
	}
	if (p->hdr->final) {
		s->ended = true;
		rc = finish(p, NULL, NULL, s->method, e);
		pending_free(p);
		forget(s->c, s->id, false);
		return rc < 0 ? -1 : 0;
	}
	if (p->hdr->code != BERTH__RPC__V1__CODE__OK) {
		rc = finish(p, NULL, NULL, s->method, e);
		pending_free(p);
		s->ended = true;
		forget(s->c, s->id, true);
		return -1;
	}
	/* Grant credit back in batches of half a window. */
	if (++s->unacked >= (s->window + 1) / 2) {
		send_control(s->c, s->id, false, s->unacked);
		s->unacked = 0;
	}
	*pp = p;
	return 1;
}

int bt_stream_next(bt_stream *s, void **item, bt_err *e)
{
	pending_reply *p;
	int rc = stream_reply(s, &p, e);

	*item = NULL;
	if (rc <= 0)
		return rc;
	rc = finish(p, s->item, item, s->method, e);
	pending_free(p);
	if (rc < 0) {
		s->ended = true;
		forget(s->c, s->id, true);
		return -1;
	}
	return 1;
}

int bt_stream_next_raw(bt_stream *s, zmq_msg_t *body, bt_err *e)
{
	pending_reply *p;
	int rc = stream_reply(s, &p, e);

	zmq_msg_init(body);
	if (rc <= 0)
		return rc;
	zmq_msg_move(body, &p->body);
	pending_free(p);
	return 1;
}

void bt_stream_free(bt_stream **sp)
{
	bt_stream *s = *sp;
	if (!s)
		return;
	if (!s->ended)
		forget(s->c, s->id, true);
	free(s);
	*sp = NULL;
}

/* --- pool ------------------------------------------------------------------ */

#define POOL_MAX_IDLE 32

struct bt_pool {
	char *endpoint;
	bt_conn_opts opts;
	pthread_mutex_t mu;
	bt_conn *idle[POOL_MAX_IDLE];
	int nidle;
};

bt_pool *bt_pool_new(const char *endpoint, const bt_conn_opts *o)
{
	bt_pool *p = bt_xzalloc(sizeof(*p));
	p->endpoint = bt_xstrdup(endpoint);
	if (o)
		p->opts = *o;
	p->opts.server_key = p->opts.public_key = p->opts.secret_key = NULL;
	pthread_mutex_init(&p->mu, NULL);
	return p;
}

void bt_pool_free(bt_pool **pp)
{
	bt_pool *p = *pp;
	if (!p)
		return;
	for (int i = 0; i < p->nidle; i++)
		bt_conn_free(&p->idle[i]);
	pthread_mutex_destroy(&p->mu);
	free(p->endpoint);
	free(p);
	*pp = NULL;
}

const char *bt_pool_endpoint(const bt_pool *p)
{
	return p->endpoint;
}

bt_conn *bt_pool_get(bt_pool *p, bt_err *e)
{
	bt_conn *c = NULL;

	pthread_mutex_lock(&p->mu);
	if (p->nidle > 0)
		c = p->idle[--p->nidle];
	pthread_mutex_unlock(&p->mu);
	if (c)
		return c;
	return bt_conn_new(p->endpoint, &p->opts, e);
}

void bt_pool_put(bt_pool *p, bt_conn *c)
{
	if (!c)
		return;
	/* A connection with calls still in flight would hand their replies to
	 * the next user: close it instead. */
	if (bt_map_len(c->inflight) > 0 || c->npending > 0) {
		bt_conn_free(&c);
		return;
	}
	pthread_mutex_lock(&p->mu);
	if (p->nidle < POOL_MAX_IDLE) {
		p->idle[p->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&p->mu);
	bt_conn_free(&c);
}
