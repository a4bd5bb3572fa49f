/*
 * gw_proxy — the gateway's single-threaded forwarding loop.
 *
 * Frames are moved, not copied: only the header is decoded and re-encoded
 * (to renumber the request and set the principal); bodies pass through.
 */
#define _GNU_SOURCE
#include "gw_proxy.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bt_log.h"
#include "bt_map.h"
#include "bt_rpc.h"
#include "bt_util.h"

#define MAX_IDENTITY 256
#define MAX_ROUTES 32
#define TICK_MS 50

typedef struct pending pending;

typedef struct backend {
	gw_route r;
	char *service;
	char *address;
	char *snapshotter;
	void *sock;
	void *monitor;
	int npipes;     /* live connections as the monitor reports them */
	bool inproc;    /* ZeroMQ reports no connection events for inproc */
	pending *held_head, *held_tail; /* requests waiting for a connection */
} backend;

typedef struct client {
	int in_flight;
} client;

struct pending {
	uint64_t gw_id;
	backend *be;
	unsigned char cid[MAX_IDENTITY];
	size_t cidlen;
	uint64_t creq;
	int64_t deadline; /* monotonic ms; 0: none */
	/* Held while its backend has no connection (it may be restarting):
	 * the renumbered header and the body, sent when the backend connects. */
	bool held;
	int64_t held_until; /* monotonic ms */
	zmq_msg_t hdr;
	zmq_msg_t body;
	struct pending *next_held;
};

struct gw_proxy {
	void *pub;
	int lock_fd;
	int wake_fd;
	char *public_address;
	int max_in_flight;
	int64_t connect_grace_ms;
	backend routes[MAX_ROUTES];
	int nroutes;
	bt_map *by_gw;     /* gw_id → pending */
	bt_map *by_client; /* cid + creq → pending */
	bt_map *clients;   /* cid → client */
	uint64_t next_id;
	atomic_int stop;
	_Atomic int64_t last_tick;
};

static size_t client_key(unsigned char *buf, const void *cid, size_t cidlen, uint64_t creq)
{
	memcpy(buf, cid, cidlen);
	memcpy(buf + cidlen, &creq, sizeof(creq));
	return cidlen + sizeof(creq);
}

gw_proxy *gw_proxy_new(const gw_proxy_opts *o, bt_err *e)
{
	gw_proxy *p = bt_xzalloc(sizeof(*p));
	int one = 1;

	p->lock_fd = -1;
	p->public_address = bt_xstrdup(o->public_address);
	p->max_in_flight = o->max_in_flight > 0 ? o->max_in_flight : 1024;
	p->connect_grace_ms = o->connect_grace_ms >= 0 ? o->connect_grace_ms : 2000;
	p->by_gw = bt_map_new();
	p->by_client = bt_map_new();
	p->clients = bt_map_new();
	p->next_id = 1;
	atomic_init(&p->stop, 0);
	atomic_init(&p->last_tick, bt_mono_ms());
	p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->wake_fd < 0) {
		bt_err_errno(e, errno, "eventfd");
		goto fail;
	}
	p->pub = bt_zmq_socket(ZMQ_ROUTER, e);
	if (!p->pub)
		goto fail;
	zmq_setsockopt(p->pub, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
	if (bt_zmq_bind(p->pub, o->public_address, o->socket_mode ? o->socket_mode : 0660, &p->lock_fd, e) < 0)
		goto fail;
	if (o->socket_group && *o->socket_group && bt_startswith(o->public_address, "ipc://")) {
		struct group *g = getgrnam(o->socket_group);
		if (!g) {
			bt_err_set(e, BT_INVALID_ARGUMENT, "gateway.socket_group: no group \"%s\"", o->socket_group);
			goto fail;
		}
		if (chown(o->public_address + 6, (uid_t)-1, g->gr_gid) < 0) {
			bt_err_errno(e, errno, "chown %s", o->public_address + 6);
			goto fail;
		}
	}
	return p;
fail:
	gw_proxy_free(&p);
	return NULL;
}

int gw_proxy_add_route(gw_proxy *p, const gw_route *r, bt_err *e)
{
	backend *b;
	char monep[96];
	int one = 1;

	if (p->nroutes == MAX_ROUTES)
		return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "too many routes");
	b = &p->routes[p->nroutes++];
	memset(b, 0, sizeof(*b));
	b->service = bt_xstrdup(r->service);
	b->address = bt_xstrdup(r->address);
	b->snapshotter = r->snapshotter ? bt_xstrdup(r->snapshotter) : NULL;
	b->r = *r;
	b->r.service = b->service;
	b->r.address = b->address;
	b->r.snapshotter = b->snapshotter;
	b->inproc = bt_startswith(r->address, "inproc://");
	b->sock = bt_zmq_socket(ZMQ_DEALER, e);
	if (!b->sock)
		return -1;
	zmq_setsockopt(b->sock, ZMQ_IMMEDIATE, &one, sizeof(one));
	bt_inproc_name(monep, sizeof(monep), "gw-mon");
	if (zmq_socket_monitor(b->sock, monep, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) < 0)
		return bt_err_set(e, BT_INTERNAL, "monitor %s: %s", r->service, zmq_strerror(errno));
	b->monitor = zmq_socket(bt_zmq_ctx(), ZMQ_PAIR);
	if (!b->monitor || zmq_connect(b->monitor, monep) < 0)
		return bt_err_set(e, BT_INTERNAL, "monitor %s: %s", r->service, zmq_strerror(errno));
	if (zmq_connect(b->sock, r->address) < 0)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "route %s: connect %s: %s", r->service, r->address,
				  zmq_strerror(errno));
	return 0;
}

/* The backend for service; for services routed by snapshotter, the one
 * named (or the default when the name is empty).  Sets *known_service. */
static backend *find_backend(gw_proxy *p, const char *service, const char *snapshotter, bool *known_service)
{
	*known_service = false;
	for (int i = 0; i < p->nroutes; i++) {
		backend *b = &p->routes[i];
		if (strcmp(b->service, service) != 0)
			continue;
		*known_service = true;
		if (!b->snapshotter)
			return b;
		if (snapshotter && *snapshotter ? strcmp(b->snapshotter, snapshotter) == 0 : b->r.is_default)
			return b;
	}
	return NULL;
}

static bool has_method(const backend *b, const char *method)
{
	for (unsigned i = 0; i < b->r.desc->n_methods; i++)
		if (strcmp(b->r.desc->methods[i].name, method) == 0)
			return true;
	return false;
}

/* --- replies to clients --------------------------------------------------- */

static void reply_status(gw_proxy *p, const void *cid, size_t cidlen, uint64_t creq, int code, bool transport,
			 const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* A final error reply made by the gateway; transport marks errors of the path, not of the service. */
static void reply_status(gw_proxy *p, const void *cid, size_t cidlen, uint64_t creq, int code, bool transport,
			 const char *fmt, ...)
{
	bt_resphdr h = BERTH__RPC__V1__RESPONSE_HEADER__INIT;
	char msg[BT_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	h.version = BT_PROTOCOL_VERSION;
	h.request_id = creq;
	h.code = (Berth__Rpc__V1__Code)code;
	h.message = msg;
	h.final = true;
	h.transport = transport;
	if (zmq_send(p->pub, cid, cidlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		return;
	if (bt_send_pb(p->pub, &h.base, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		return;
	zmq_send(p->pub, "", 0, ZMQ_DONTWAIT);
}

#define reply_error(p, cid, cidlen, creq, code, ...) reply_status(p, cid, cidlen, creq, code, false, __VA_ARGS__)
#define reply_transport(p, cid, cidlen, creq, code, ...) reply_status(p, cid, cidlen, creq, code, true, __VA_ARGS__)

static void unhold(pending *q)
{
	backend *b = q->be;
	pending **pp = &b->held_head, *prev = NULL;

	if (!q->held)
		return;
	for (; *pp; prev = *pp, pp = &(*pp)->next_held) {
		if (*pp == q) {
			*pp = q->next_held;
			if (b->held_tail == q)
				b->held_tail = prev;
			break;
		}
	}
	zmq_msg_close(&q->hdr);
	zmq_msg_close(&q->body);
	q->held = false;
	q->next_held = NULL;
}

static void pending_drop(gw_proxy *p, pending *q)
{
	unsigned char key[MAX_IDENTITY + 8];
	size_t klen = client_key(key, q->cid, q->cidlen, q->creq);
	client *c;

	unhold(q);
	bt_map_del(p->by_gw, &q->gw_id, sizeof(q->gw_id));
	bt_map_del(p->by_client, key, klen);
	c = bt_map_get(p->clients, q->cid, q->cidlen);
	if (c && --c->in_flight == 0) {
		bt_map_del(p->clients, q->cid, q->cidlen);
		free(c);
	}
	free(q);
}

static void on_monitor(gw_proxy *p, backend *b);
static int send_pending(gw_proxy *p, pending *q);

static void send_backend_control(backend *b, uint64_t gw_id, bool cancel, uint32_t credit)
{
	bt_reqhdr h = BERTH__RPC__V1__REQUEST_HEADER__INIT;

	h.version = BT_PROTOCOL_VERSION;
	h.request_id = gw_id;
	h.cancel = cancel;
	h.credit = credit;
	bt_send_pb(b->sock, &h.base, ZMQ_DONTWAIT);
}

/* --- client → backend ------------------------------------------------------- */

static const char *const local_principal_ns[] = { "*" };

/* Sends a request's frames to its backend. Returns 0 when sent; -1 when the
 * socket has no pipe yet (EAGAIN: the frames stay with q); otherwise answers
 * UNAVAILABLE, drops q and returns -2. */
static int send_pending(gw_proxy *p, pending *q)
{
	backend *b = q->be;
	zmq_msg_t hc, bc;

	/* send copies, so a refused send leaves q's frames intact */
	zmq_msg_init(&hc);
	zmq_msg_init(&bc);
	zmq_msg_copy(&hc, &q->hdr);
	zmq_msg_copy(&bc, &q->body);
	if (zmq_msg_send(&hc, b->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
		int err = errno;
		zmq_msg_close(&hc);
		zmq_msg_close(&bc);
		if (err == EAGAIN)
			return -1;
		reply_transport(p, q->cid, q->cidlen, q->creq, BT_UNAVAILABLE, "service %s is unavailable (%s)",
				b->service, zmq_strerror(err));
		pending_drop(p, q);
		return -2;
	}
	/* once the first frame is in, the second always goes (no HWM) */
	if (zmq_msg_send(&bc, b->sock, ZMQ_DONTWAIT) < 0)
		zmq_msg_close(&bc);
	zmq_msg_close(&q->hdr);
	zmq_msg_close(&q->body);
	zmq_msg_init(&q->hdr);
	zmq_msg_init(&q->body);
	return 0;
}

static void hold(gw_proxy *p, pending *q)
{
	backend *b = q->be;

	q->held = true;
	q->held_until = bt_mono_ms() + p->connect_grace_ms;
	if (q->deadline && q->deadline < q->held_until)
		q->held_until = q->deadline;
	if (b->held_tail)
		b->held_tail->next_held = q;
	else
		b->held_head = q;
	b->held_tail = q;
}

/* Sends what waited for the backend's connection, in order, until the
 * socket takes no more (its pipe may attach a moment after the monitor's
 * CONNECTED event). */
static void release_held(gw_proxy *p, backend *b)
{
	while (b->held_head && (b->inproc || b->npipes > 0)) {
		pending *q = b->held_head;
		int rc = send_pending(p, q);
		if (rc == -1)
			return;
		if (rc == -2)
			continue; /* dropped (and unlinked) already */
		b->held_head = q->next_held;
		if (!b->held_head)
			b->held_tail = NULL;
		q->held = false;
		q->next_held = NULL;
	}
}

static void on_client(gw_proxy *p)
{
	zmq_msg_t f[4];
	int n;
	bool overflow;
	bt_err e;
	bt_reqhdr *h = NULL;
	backend *b;

	if (bt_recv_frames(p->pub, f, 4, &n, &overflow, ZMQ_DONTWAIT) < 0)
		return;
	const unsigned char *cid = zmq_msg_data(&f[0]);
	size_t cidlen = zmq_msg_size(&f[0]);
	if (cidlen > MAX_IDENTITY || n < 1)
		goto out;
	if (n < 2) {
		reply_error(p, cid, cidlen, 0, BT_INVALID_ARGUMENT, "request without a header frame");
		goto out;
	}
	h = bt_reqhdr_decode(zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), &e);
	if (!h) {
		reply_error(p, cid, cidlen, 0, e.code, "%s", e.msg);
		goto out;
	}
	uint64_t creq = h->request_id;
	if (overflow || n > 3) {
		reply_error(p, cid, cidlen, creq, BT_INVALID_ARGUMENT, "request of more than two frames");
		goto out;
	}
	if (h->version != BT_PROTOCOL_VERSION) {
		reply_error(p, cid, cidlen, creq, BT_FAILED_PRECONDITION,
			    "protocol version %u not supported (the gateway speaks %u)", h->version, BT_PROTOCOL_VERSION);
		goto out;
	}
	if (n == 2) {
		/* control: credit or cancel for a request in flight */
		unsigned char key[MAX_IDENTITY + 8];
		size_t klen = client_key(key, cid, cidlen, creq);
		pending *q = bt_map_get(p->by_client, key, klen);
		if (q && (h->cancel || h->credit)) {
			if (!q->held)
				send_backend_control(q->be, q->gw_id, h->cancel, h->credit);
			if (h->cancel)
				pending_drop(p, q);
		} else if (!h->cancel && !h->credit) {
			reply_error(p, cid, cidlen, creq, BT_INVALID_ARGUMENT, "request without a body frame");
		}
		goto out;
	}
	if (zmq_msg_size(&f[2]) > BT_RPC_MAX_MSG) {
		reply_error(p, cid, cidlen, creq, BT_RESOURCE_EXHAUSTED,
			    "message of %zu bytes exceeds the limit of %u bytes", zmq_msg_size(&f[2]), BT_RPC_MAX_MSG);
		goto out;
	}
	bool known;
	b = find_backend(p, h->service, h->snapshotter, &known);
	if (!b) {
		if (known)
			reply_error(p, cid, cidlen, creq, BT_NOT_FOUND, "unknown snapshotter \"%.100s\"", h->snapshotter);
		else
			reply_error(p, cid, cidlen, creq, BT_UNIMPLEMENTED, "unknown service \"%.100s\"", h->service);
		goto out;
	}
	if (!has_method(b, h->method)) {
		reply_error(p, cid, cidlen, creq, BT_UNIMPLEMENTED, "unknown method \"%.100s\" of service \"%s\"",
			    h->method, h->service);
		goto out;
	}
	if (!b->r.no_namespace && bt_rpc_check_namespace(h->namespace_, &e) < 0) {
		reply_error(p, cid, cidlen, creq, e.code, "%s", e.msg);
		goto out;
	}
	unsigned char key[MAX_IDENTITY + 8];
	size_t klen = client_key(key, cid, cidlen, creq);
	if (bt_map_get(p->by_client, key, klen)) {
		reply_error(p, cid, cidlen, creq, BT_INVALID_ARGUMENT, "request id %" PRIu64 " is already in flight",
			    creq);
		goto out;
	}
	client *c = bt_map_get(p->clients, cid, cidlen);
	if (c && c->in_flight >= p->max_in_flight) {
		reply_error(p, cid, cidlen, creq, BT_RESOURCE_EXHAUSTED,
			    "too many requests in flight from this client (limit %d)", p->max_in_flight);
		goto out;
	}

	/* Renumber, set the principal, forward. */
	uint64_t gw_id = p->next_id++;
	bt_principal pr = BERTH__RPC__V1__PRINCIPAL__INIT;
	pr.name = (char *)"local";
	pr.n_namespaces = 1;
	pr.namespaces = (char **)local_principal_ns;
	pr.read_only = false;
	bt_principal *theirs = h->principal;
	h->principal = &pr;
	h->request_id = gw_id;
	char *their_sn = h->snapshotter;
	if (b->snapshotter)
		h->snapshotter = b->snapshotter; /* the backend learns which name was meant */
	pending *q = bt_xzalloc(sizeof(*q));
	q->gw_id = gw_id;
	q->be = b;
	memcpy(q->cid, cid, cidlen);
	q->cidlen = cidlen;
	q->creq = creq;
	q->deadline = h->deadline_ms ? bt_mono_ms() + h->deadline_ms : 0;
	bt_msg_pack(&q->hdr, &h->base);
	h->principal = theirs;
	h->snapshotter = their_sn;
	zmq_msg_init(&q->body);
	zmq_msg_move(&q->body, &f[2]);
	bt_map_put(p->by_gw, &q->gw_id, sizeof(q->gw_id), q);
	bt_map_put(p->by_client, key, klen, q);
	if (!c) {
		c = bt_xzalloc(sizeof(*c));
		bt_map_put(p->clients, cid, cidlen, c);
	}
	c->in_flight++;
	/* A pipe may outlive its connection for a moment: trust the monitor. */
	on_monitor(p, b);
	/* No connection: the backend may be restarting. Hold the request a
	 * little (never past its deadline) rather than fail at once; requests
	 * already held go first. */
	if (b->held_head || !(b->inproc || b->npipes > 0) || send_pending(p, q) == -1)
		hold(p, q);
out:
	bt_reqhdr_free(&h);
	bt_close_frames(f, n);
}

/* --- backend → client --------------------------------------------------------- */

static void on_backend(gw_proxy *p, backend *b)
{
	zmq_msg_t f[2];
	int n;
	bool overflow;
	bt_err e;
	bt_resphdr *h;

	if (bt_recv_frames(b->sock, f, 2, &n, &overflow, ZMQ_DONTWAIT) < 0)
		return;
	if (n != 2 || overflow) {
		bt_log_warn("backend %s sent a malformed reply (%d frames)", b->service, n);
		bt_close_frames(f, n);
		return;
	}
	h = bt_resphdr_decode(zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), &e);
	if (!h) {
		bt_log_warn("backend %s: %s", b->service, e.msg);
		bt_close_frames(f, n);
		return;
	}
	pending *q = bt_map_get(p->by_gw, &h->request_id, sizeof(h->request_id));
	if (!q || q->be != b) {
		/* answered already (deadline) or cancelled */
		bt_resphdr_free(&h);
		bt_close_frames(f, n);
		return;
	}
	h->request_id = q->creq;
	zmq_msg_t hm;
	bt_msg_pack(&hm, &h->base);
	bool final = h->final;
	bt_resphdr_free(&h);
	zmq_msg_close(&f[0]);
	if (zmq_send(p->pub, q->cid, q->cidlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_msg_send(&hm, p->pub, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_msg_send(&f[1], p->pub, ZMQ_DONTWAIT) < 0) {
		/* The client is gone: stop the backend's work for it. */
		zmq_msg_close(&hm);
		zmq_msg_close(&f[1]);
		if (!final)
			send_backend_control(b, q->gw_id, true, 0);
		pending_drop(p, q);
		return;
	}
	zmq_msg_close(&f[1]);
	if (final)
		pending_drop(p, q);
}

static void on_monitor(gw_proxy *p, backend *b)
{
	for (;;) {
		zmq_msg_t ev, addr;
		uint16_t event = 0;

		zmq_msg_init(&ev);
		if (zmq_msg_recv(&ev, b->monitor, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&ev);
			return;
		}
		if (zmq_msg_size(&ev) >= 2)
			memcpy(&event, zmq_msg_data(&ev), 2);
		zmq_msg_close(&ev);
		zmq_msg_init(&addr);
		if (zmq_msg_recv(&addr, b->monitor, 0) >= 0)
			zmq_msg_close(&addr);
		if (event == ZMQ_EVENT_CONNECTED) {
			if (b->npipes++ == 0)
				bt_log_info("backend %s connected (%s)", b->service, b->address);
			release_held(p, b);
		} else if (event == ZMQ_EVENT_DISCONNECTED) {
			bt_log_warn("backend %s went away (%s)", b->service, b->address);
			if (b->npipes > 0)
				b->npipes--;
			/* Everything it had in flight is lost: say so now. */
			bt_map_iter it;
			void *v;
			pending **lost = NULL;
			size_t nlost = 0;
			bt_map_iter_init(&it, p->by_gw);
			while (bt_map_iter_next(&it, NULL, NULL, &v)) {
				pending *q = v;
				if (q->be != b || q->held)
					continue;
				lost = bt_xrealloc(lost, (nlost + 1) * sizeof(*lost));
				lost[nlost++] = q;
			}
			for (size_t i = 0; i < nlost; i++) {
				reply_transport(p, lost[i]->cid, lost[i]->cidlen, lost[i]->creq, BT_UNAVAILABLE,
					    "service %s went away while handling the request", b->service);
				pending_drop(p, lost[i]);
			}
			free(lost);
		}
	}
}

static void expire(gw_proxy *p)
{
	int64_t now = bt_mono_ms();
	bt_map_iter it;
	void *v;
	pending **late = NULL;
	size_t nlate = 0;

	bt_map_iter_init(&it, p->by_gw);
	while (bt_map_iter_next(&it, NULL, NULL, &v)) {
		pending *q = v;
		if ((q->deadline && now >= q->deadline) || (q->held && now >= q->held_until)) {
			late = bt_xrealloc(late, (nlate + 1) * sizeof(*late));
			late[nlate++] = q;
		}
	}
	for (size_t i = 0; i < nlate; i++) {
		pending *q = late[i];
		if (q->held) {
			reply_transport(p, q->cid, q->cidlen, q->creq, BT_UNAVAILABLE,
					"service %s is unavailable (%s not answering)", q->be->service, q->be->address);
			pending_drop(p, q);
			continue;
		}
		reply_transport(p, q->cid, q->cidlen, q->creq, BT_DEADLINE_EXCEEDED,
			    "deadline exceeded waiting for service %s", q->be->service);
		send_backend_control(q->be, q->gw_id, true, 0);
		pending_drop(p, q);
	}
	free(late);
}

int gw_proxy_run(gw_proxy *p, bt_err *e)
{
	int n = 2 + 2 * p->nroutes;
	zmq_pollitem_t *items = bt_xcalloc((size_t)n, sizeof(*items));
	int64_t next_tick = bt_mono_ms() + TICK_MS;

	items[0].socket = p->pub;
	items[0].events = ZMQ_POLLIN;
	items[1].fd = p->wake_fd;
	items[1].events = ZMQ_POLLIN;
	for (int i = 0; i < p->nroutes; i++) {
		items[2 + 2 * i].socket = p->routes[i].sock;
		items[2 + 2 * i].events = ZMQ_POLLIN;
		items[3 + 2 * i].socket = p->routes[i].monitor;
		items[3 + 2 * i].events = ZMQ_POLLIN;
	}
	while (!atomic_load(&p->stop)) {
		bool holding = false;
		for (int i = 0; i < p->nroutes; i++)
			holding |= p->routes[i].held_head != NULL;
		int rc = zmq_poll(items, n, holding ? 5 : TICK_MS);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			free(items);
			return bt_err_set(e, BT_INTERNAL, "poll: %s", zmq_strerror(errno));
		}
		for (int i = 0; i < p->nroutes; i++) {
			if (items[3 + 2 * i].revents & ZMQ_POLLIN)
				on_monitor(p, &p->routes[i]);
			if (items[2 + 2 * i].revents & ZMQ_POLLIN)
				for (int k = 0; k < 256; k++) {
					int ev = 0;
					size_t len = sizeof(ev);
					zmq_getsockopt(p->routes[i].sock, ZMQ_EVENTS, &ev, &len);
					if (!(ev & ZMQ_POLLIN))
						break;
					on_backend(p, &p->routes[i]);
				}
		}
		if (items[0].revents & ZMQ_POLLIN)
			for (int k = 0; k < 256; k++) {
				int ev = 0;
				size_t len = sizeof(ev);
				zmq_getsockopt(p->pub, ZMQ_EVENTS, &ev, &len);
				if (!(ev & ZMQ_POLLIN))
					break;
				on_client(p);
			}
		if (items[1].revents & ZMQ_POLLIN) {
			uint64_t v;
			(void)!read(p->wake_fd, &v, sizeof(v));
		}
		for (int i = 0; i < p->nroutes; i++)
			if (p->routes[i].held_head)
				release_held(p, &p->routes[i]);
		int64_t now = bt_mono_ms();
		atomic_store(&p->last_tick, now);
		if (now >= next_tick) {
			expire(p);
			next_tick = now + TICK_MS;
		}
	}
	free(items);
	return 0;
}

void gw_proxy_stop(gw_proxy *p)
{
	uint64_t one = 1;
	atomic_store(&p->stop, 1);
	(void)!write(p->wake_fd, &one, sizeof(one));
}

int64_t gw_proxy_last_tick(gw_proxy *p)
{
	return atomic_load(&p->last_tick);
}

void gw_proxy_free(gw_proxy **pp)
{
	gw_proxy *p = *pp;
	bt_map_iter it;
	void *v;

	if (!p)
		return;
	for (int i = 0; i < p->nroutes; i++) {
		backend *b = &p->routes[i];
		if (b->sock)
			zmq_socket_monitor(b->sock, NULL, 0);
		bt_zmq_close(&b->monitor);
		bt_zmq_close(&b->sock);
		free(b->service);
		free(b->address);
		free(b->snapshotter);
	}
	if (p->by_gw) {
		bt_map_iter_init(&it, p->by_gw);
		while (bt_map_iter_next(&it, NULL, NULL, &v)) {
			pending *q = v;
			if (q->held) {
				zmq_msg_close(&q->hdr);
				zmq_msg_close(&q->body);
			}
			free(q);
		}
		bt_map_free(&p->by_gw);
	}
	bt_map_free(&p->by_client);
	if (p->clients) {
		bt_map_iter_init(&it, p->clients);
		while (bt_map_iter_next(&it, NULL, NULL, &v))
			free(v);
		bt_map_free(&p->clients);
	}
	bt_zmq_unbind(p->pub, p->public_address, &p->lock_fd);
	bt_zmq_close(&p->pub);
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	free(p->public_address);
	free(p);
	*pp = NULL;
}
