/*
 * gw_proxy — the gateway's single-threaded forwarding loop.
 *
 * The public ROUTER takes clients' requests; each backend has a DEALER of
 * its own.  Frames are moved, not copied: only the header is decoded and
 * re-encoded, to renumber the request and set the principal; bodies pass
 * through.
 *
 * A backend's DEALER has ZMQ_IMMEDIATE: it queues nothing for a backend it
 * has no connection to, and when the connection breaks, what was queued
 * for it is dropped with it.  Without that, libzmq keeps the queue across
 * a reconnection and hands requests the gateway has already answered
 * UNAVAILABLE (the backend died) to the backend's next instance, which
 * then carries them out.  A backend counts as connected from its
 * connection's handshake to its DISCONNECTED event, as the DEALER's
 * monitor says; requests for one that is not connected are held for the
 * connect grace, then answered UNAVAILABLE.
 *
 * Clients come through either door: the ZeroMQ ROUTER, or the unix stream
 * socket (bt_wire.h), whose connections the loop reads itself.  A stream
 * client is named by a client id no ZeroMQ peer can have (ZeroMQ's own
 * ids are 5 bytes from a zero byte, and a peer may not choose one that
 * starts with zero), so both kinds share the tables and every reply goes
 * out through to_client.  The loop sleeps in epoll_wait on the two
 * sockets' ZMQ_FDs, the eventfd, the listener and the stream connections.
 *
 * A fence (gw_proxy_fence, for a garbage collection) holds the requests of
 * one namespace that could add a reference there, and waits until those
 * sent before it are answered; the loop carries it out, other threads ask
 * for it under fmu.
 */
#define _GNU_SOURCE
#include "gw_proxy.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bt_log.h"
#include "bt_ident.h"
#include "bt_map.h"
#include "bt_rpc.h"
#include "bt_seqrpc.h"
#include "bt_util.h"
#include "bt_wire.h"

#define MAX_IDENTITY 256
#define MAX_ROUTES 64
#define TICK_MS 50
#define MAX_STREAM_CONNS 4096
/* A stream client that reads nothing while this much waits for it is cut. */
#define MAX_STREAM_OUT ((size_t)BT_RPC_HARD_MAX_MSG * 4)
/* Messages taken from one stream connection per turn (fairness). */
#define STREAM_BATCH 64
#define UCID_LEN 10 /* 0, 'u', serial (8 bytes) */

/* epoll tags of the loop's fixed descriptors (stream connections are tagged
 * by their sconn). */
#define TAG_PUB ((void *)1)
#define TAG_WAKE ((void *)3)
#define TAG_LISTEN ((void *)4)

typedef struct pending pending;

/* Requests waiting in the gateway, in arrival order, linked through
 * pending.next: those for a backend with no connection, and those a fence
 * holds (a request is in one queue at most: the fence holds it before it
 * is forwarded). */
typedef struct pqueue {
	pending *head, *tail;
} pqueue;

/* One backend endpoint (several routes may share it). */
typedef struct conn {
	char *address;
	void *sock;    /* DEALER, ZMQ_IMMEDIATE */
	void *monitor; /* PAIR: sock's handshakes and disconnections */
	bool up;       /* connected, as the monitor reports (one connection at most) */
	bool inproc;   /* ZeroMQ reports no connection events for inproc */
	bool sent;     /* sent to since it was last received from until EAGAIN */
	bool readable; /* to receive from this turn */
	pqueue held;   /* requests waiting for a connection */
} conn;

/* A service (and for snapshots, a snapshotter name) and where it goes. */
typedef struct route {
	gw_route r;
	char *service;
	char *snapshotter;
	conn *c;
} route;

typedef struct client {
	int in_flight;
} client;

/* A client connection to the unix stream door. */
typedef struct sconn {
	int fd;
	uint64_t serial;
	bt_wire_in in;
	bt_wire_out out;
	bool pollout; /* registered for EPOLLOUT: output waits */
	bool dirty;   /* in p->dirty: output to flush this turn */
	bool dead;    /* closed; freed at the end of the turn */
	bool overrun; /* left MAX_STREAM_OUT unread: closed at the next flush */
	bool ready;   /* in p->ready: a full batch was taken, more may be buffered */
	struct sconn *next_dirty, *next_dead, *next_ready;
} sconn;

struct pending {
	uint64_t gw_id;
	route *rt;
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
	pending *next; /* in a pqueue */
	unsigned method; /* index in the route's service descriptor */
	char ns[BT_IDENT_MAX + 1];
	bool fenced; /* held by the fence (in p->fenced) */
	bool sent;   /* handed to a backend connection (a disconnect loses it) */
	bool drain;  /* in flight when the fence went up: the fence waits for it */
};

typedef enum fence_state {
	FENCE_NONE,
	FENCE_ASKED,    /* the loop has yet to look at what is in flight */
	FENCE_DRAINING, /* up; waiting for requests sent before it */
	FENCE_UP,
	FENCE_REFUSED, /* up, but what was in flight refuses it: to be lifted */
	FENCE_LIFTING, /* the loop has yet to release what it held */
} fence_state;

struct gw_proxy {
	void *pub;
	int lock_fd;
	bool activated; /* the public socket came from systemd */
	int wake_fd;
	char *public_address;
	int max_in_flight;
	int64_t connect_grace_ms;
	void (*on_namespace)(void *arg, const char *ns, const char *method);
	void *on_namespace_arg;
	const gw_auth *auth;
	char *tcp_address;
	route routes[MAX_ROUTES];
	int nroutes;
	conn conns[MAX_ROUTES];
	int nconns;
	bt_map *by_gw;     /* gw_id → pending */
	bt_map *by_client; /* cid + creq → pending */
	bt_map *clients;   /* cid → client */
	uint64_t next_id;
	/* sent to since it was last received from until EAGAIN (bt_zmq_fd; a
	 * backend's DEALER: conn.sent) */
	bool pub_sent;
	/* the unix stream door */
	int ep;
	int unix_fd;
	char *unix_path;
	bool unix_activated;
	bt_map *sconns; /* serial → sconn */
	uint64_t next_serial;
	sconn *dirty, *dead;
	sconn *ready; /* to read again next turn without waiting for EPOLLIN */
	atomic_int stop;
	_Atomic int64_t last_tick;
	/* the fence: state, namespace and classifier under fmu (the loop
	 * reads them only while fence_on); the rest is the loop's */
	pthread_mutex_t fmu;
	pthread_cond_t fcv;
	atomic_bool fence_on;
	bool loop_done;
	fence_state fstate;
	char fence_ns[BT_IDENT_MAX + 1];
	gw_fence_classify fence_cls;
	char fence_why[256];
	int fence_draining;
	pqueue fenced;
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
	p->ep = -1;
	p->unix_fd = -1;
	p->sconns = bt_map_new();
	p->next_serial = 1;
	p->public_address = bt_xstrdup(o->public_address);
	p->max_in_flight = o->max_in_flight > 0 ? o->max_in_flight : 1024;
	p->connect_grace_ms = o->connect_grace_ms >= 0 ? o->connect_grace_ms : 2000;
	p->on_namespace = o->on_namespace;
	p->on_namespace_arg = o->on_namespace_arg;
	p->auth = o->auth;
	p->by_gw = bt_map_new();
	p->by_client = bt_map_new();
	p->clients = bt_map_new();
	p->next_id = 1;
	atomic_init(&p->stop, 0);
	atomic_init(&p->last_tick, bt_mono_ms());
	atomic_init(&p->fence_on, false);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->fcv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&p->fmu, NULL);
	p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->wake_fd < 0) {
		bt_err_errno(e, errno, "eventfd");
		goto fail;
	}
	p->pub = bt_zmq_socket(ZMQ_ROUTER, e);
	if (!p->pub)
		goto fail;
	zmq_setsockopt(p->pub, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
	if (o->activated_fd >= 3) {
		/* systemd owns the socket file: bind the endpoint on its descriptor
		 * (zmq neither creates nor removes the file), and only this one */
		int none = -1;
		if (zmq_setsockopt(p->pub, ZMQ_USE_FD, &o->activated_fd, sizeof(o->activated_fd)) < 0 ||
		    zmq_bind(p->pub, o->public_address) < 0 ||
		    zmq_setsockopt(p->pub, ZMQ_USE_FD, &none, sizeof(none)) < 0) {
			bt_err_set(e, bt_code_from_errno(errno), "bind %s on the socket from systemd: %s",
				   o->public_address, zmq_strerror(errno));
			goto fail;
		}
		p->activated = true;
	} else if (bt_zmq_bind(p->pub, o->public_address, o->socket_mode ? o->socket_mode : 0660, &p->lock_fd, e) <
		   0) {
		goto fail;
	}
	if (!p->activated && o->socket_group && *o->socket_group && bt_startswith(o->public_address, "ipc://")) {
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
	if (o->tcp_address && *o->tcp_address) {
		/* options apply to the endpoints bound after them: the ipc one stays plain */
		int server = 1;
		if (zmq_setsockopt(p->pub, ZMQ_CURVE_SERVER, &server, sizeof(server)) < 0 || !o->secret_key ||
		    zmq_setsockopt(p->pub, ZMQ_CURVE_SECRETKEY, o->secret_key, strlen(o->secret_key)) < 0 ||
		    zmq_setsockopt(p->pub, ZMQ_ZAP_DOMAIN, "berth", 5) < 0) {
			bt_err_set(e, BT_INVALID_ARGUMENT, "gateway CURVE key: %s", zmq_strerror(errno));
			goto fail;
		}
		if (zmq_bind(p->pub, o->tcp_address) < 0) {
			bt_err_set(e, BT_UNAVAILABLE, "bind %s: %s", o->tcp_address, zmq_strerror(errno));
			goto fail;
		}
		p->tcp_address = bt_xstrdup(o->tcp_address);
	}
	p->ep = epoll_create1(EPOLL_CLOEXEC);
	if (p->ep < 0) {
		bt_err_errno(e, errno, "epoll_create1");
		goto fail;
	}
	if (o->unix_address && *o->unix_address) {
		if (!bt_startswith(o->unix_address, "unix:///")) {
			bt_err_set(e, BT_INVALID_ARGUMENT, "gateway.unix_address \"%s\": not unix:///PATH", o->unix_address);
			goto fail;
		}
		const char *path = o->unix_address + 7;
		p->unix_path = bt_xstrdup(path);
		if (o->unix_activated_fd >= 3) {
			p->unix_fd = o->unix_activated_fd;
			p->unix_activated = true;
			if (bt_set_nonblock(p->unix_fd) < 0) {
				bt_err_errno(e, errno, "socket from systemd for %s", o->unix_address);
				goto fail;
			}
		} else {
			_cleanup_free_ char *dir = bt_xstrndup(path, (size_t)(strrchr(path, '/') - path));
			if (*dir && bt_mkdir_p(dir, 0700, e) < 0)
				goto fail;
			p->unix_fd = bt_unix_listen(path, SOCK_STREAM, e);
			if (p->unix_fd < 0)
				goto fail;
			if (chmod(path, o->socket_mode ? o->socket_mode : 0660) < 0) {
				bt_err_errno(e, errno, "chmod %s", path);
				goto fail;
			}
			if (o->socket_group && *o->socket_group) {
				struct group *g = getgrnam(o->socket_group);
				if (!g || chown(path, (uid_t)-1, g->gr_gid) < 0) {
					bt_err_set(e, BT_INVALID_ARGUMENT, "gateway.socket_group %s for %s: %s",
						   o->socket_group, path, g ? strerror(errno) : "no such group");
					goto fail;
				}
			}
		}
	}
	return p;
fail:
	gw_proxy_free(&p);
	return NULL;
}

static void conn_close(conn *c)
{
	if (c->sock && c->monitor)
		zmq_socket_monitor(c->sock, NULL, 0);
	bt_zmq_close(&c->monitor);
	bt_zmq_close(&c->sock);
	free(c->address);
	c->address = NULL;
}

static conn *conn_for(gw_proxy *p, const char *address, bt_err *e)
{
	conn *c;

	for (int i = 0; i < p->nconns; i++)
		if (strcmp(p->conns[i].address, address) == 0)
			return &p->conns[i];
	if (p->nconns == MAX_ROUTES) {
		bt_err_set(e, BT_RESOURCE_EXHAUSTED, "too many backends");
		return NULL;
	}
	c = &p->conns[p->nconns];
	memset(c, 0, sizeof(*c));
	c->address = bt_xstrdup(address);
	c->inproc = bt_startswith(address, "inproc://");
	c->sock = bt_zmq_socket(ZMQ_DEALER, e);
	if (!c->sock)
		goto fail;
	int one = 1;
	if (zmq_setsockopt(c->sock, ZMQ_IMMEDIATE, &one, sizeof(one)) < 0) {
		bt_err_set(e, BT_INTERNAL, "ZMQ_IMMEDIATE: %s", zmq_strerror(errno));
		goto fail;
	}
	if (!c->inproc &&
	    !(c->monitor = bt_zmq_monitor(c->sock, ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED, e)))
		goto fail;
	if (zmq_connect(c->sock, address) < 0) {
		bt_err_set(e, BT_INVALID_ARGUMENT, "connect %s: %s", address, zmq_strerror(errno));
		goto fail;
	}
	p->nconns++;
	return c;
fail:
	conn_close(c);
	return NULL;
}

int gw_proxy_add_route(gw_proxy *p, const gw_route *r, bt_err *e)
{
	route *rt;
	conn *c;

	if (p->nroutes == MAX_ROUTES)
		return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "too many routes");
	c = conn_for(p, r->address, e);
	if (!c)
		return bt_err_wrap(e, "route %s", r->service);
	rt = &p->routes[p->nroutes++];
	rt->r = *r;
	rt->service = bt_xstrdup(r->service);
	rt->snapshotter = r->snapshotter ? bt_xstrdup(r->snapshotter) : NULL;
	rt->r.service = rt->service;
	rt->r.snapshotter = rt->snapshotter;
	rt->r.address = c->address;
	rt->c = c;
	return 0;
}

/* The route for service; for services routed by snapshotter, the one named
 * (or the default when the name is empty).  Sets *known_service. */
static route *find_route(gw_proxy *p, const char *service, const char *snapshotter, bool *known_service)
{
	*known_service = false;
	for (int i = 0; i < p->nroutes; i++) {
		route *rt = &p->routes[i];
		if (strcmp(rt->service, service) != 0)
			continue;
		*known_service = true;
		if (!rt->snapshotter)
			return rt;
		if (snapshotter && *snapshotter ? strcmp(rt->snapshotter, snapshotter) == 0 : rt->r.is_default)
			return rt;
	}
	return NULL;
}

/* The method's index in the route's service, or -1. */
static int method_index(const route *rt, const char *method)
{
	for (unsigned i = 0; i < rt->r.desc->n_methods; i++)
		if (strcmp(rt->r.desc->methods[i].name, method) == 0)
			return (int)i;
	return -1;
}

static bool connected(const conn *c)
{
	return c->inproc || c->up;
}

/* --- replies to clients --------------------------------------------------- */

static bool is_ucid(const void *cid, size_t cidlen)
{
	return cidlen == UCID_LEN && ((const unsigned char *)cid)[0] == 0 && ((const unsigned char *)cid)[1] == 'u';
}

static sconn *sconn_of(gw_proxy *p, const void *cid)
{
	uint64_t serial;

	memcpy(&serial, (const unsigned char *)cid + 2, sizeof(serial));
	sconn *sc = bt_map_get(p->sconns, &serial, sizeof(serial));
	return sc && !sc->dead ? sc : NULL;
}

/* Sends a reply (its header, then body, taken over) to a client of either
 * door. Returns 0, or -1 when the client is gone. */
static int to_client(gw_proxy *p, const void *cid, size_t cidlen, const ProtobufCMessage *hdr, zmq_msg_t *body)
{
	if (is_ucid(cid, cidlen)) {
		sconn *sc = sconn_of(p, cid);
		if (!sc || sc->overrun) {
			zmq_msg_close(body);
			return -1;
		}
		bt_wire_put(&sc->out, hdr, body);
		/* not closed here: the caller may hold one of its requests */
		if (sc->out.bytes > MAX_STREAM_OUT)
			sc->overrun = true;
		if (!sc->dirty) {
			sc->dirty = true;
			sc->next_dirty = p->dirty;
			p->dirty = sc;
		}
		return 0;
	}
	zmq_msg_t hm;
	bt_msg_pack(&hm, hdr);
	p->pub_sent = true;
	if (zmq_send(p->pub, cid, cidlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_msg_send(&hm, p->pub, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_msg_send(body, p->pub, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&hm);
		zmq_msg_close(body);
		return -1;
	}
	zmq_msg_close(body);
	return 0;
}

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
	zmq_msg_t empty;
	zmq_msg_init(&empty);
	to_client(p, cid, cidlen, &h.base, &empty);
}

#define reply_error(p, cid, cidlen, creq, code, ...) reply_status(p, cid, cidlen, creq, code, false, __VA_ARGS__)
#define reply_transport(p, cid, cidlen, creq, code, ...) reply_status(p, cid, cidlen, creq, code, true, __VA_ARGS__)

static void pq_push(pqueue *pq, pending *q)
{
	q->next = NULL;
	if (pq->tail)
		pq->tail->next = q;
	else
		pq->head = q;
	pq->tail = q;
}

static pending *pq_pop(pqueue *pq)
{
	pending *q = pq->head;
	if (q) {
		pq->head = q->next;
		if (!pq->head)
			pq->tail = NULL;
		q->next = NULL;
	}
	return q;
}

static void pq_unlink(pqueue *pq, pending *q)
{
	pending **pp = &pq->head, *prev = NULL;

	for (; *pp; prev = *pp, pp = &(*pp)->next) {
		if (*pp == q) {
			*pp = q->next;
			if (pq->tail == q)
				pq->tail = prev;
			break;
		}
	}
	q->next = NULL;
}

static void unhold(pending *q)
{
	if (!q->held)
		return;
	pq_unlink(&q->rt->c->held, q);
	q->held = false;
}

/* --- the fence ------------------------------------------------------------------ */

static void fence_set(gw_proxy *p, fence_state st)
{
	pthread_mutex_lock(&p->fmu);
	p->fstate = st;
	pthread_cond_broadcast(&p->fcv);
	pthread_mutex_unlock(&p->fmu);
}

/* q leaves the fence's accounts (it is answered, dropped or released). */
static void unfence(gw_proxy *p, pending *q)
{
	if (q->drain) {
		q->drain = false;
		if (--p->fence_draining == 0) {
			pthread_mutex_lock(&p->fmu);
			if (p->fstate == FENCE_DRAINING) {
				p->fstate = FENCE_UP;
				pthread_cond_broadcast(&p->fcv);
			}
			pthread_mutex_unlock(&p->fmu);
		}
	}
	if (!q->fenced)
		return;
	pq_unlink(&p->fenced, q);
	q->fenced = false;
}

static const char *method_name(const pending *q)
{
	return q->rt->r.desc->methods[q->method].name;
}

/* Whether a fence is up over q's namespace and holds q's kind of request. */
static bool fenced_out(gw_proxy *p, const pending *q)
{
	bool held;

	if (!atomic_load(&p->fence_on))
		return false;
	pthread_mutex_lock(&p->fmu);
	held = p->fstate != FENCE_NONE && !strcmp(p->fence_ns, q->ns) &&
	       p->fence_cls(q->rt->service, method_name(q)) != GW_FENCE_PASS;
	pthread_mutex_unlock(&p->fmu);
	return held;
}

static void pending_drop(gw_proxy *p, pending *q)
{
	unsigned char key[MAX_IDENTITY + 8];
	size_t klen = client_key(key, q->cid, q->cidlen, q->creq);
	client *cl;

	unhold(q);
	unfence(p, q);
	zmq_msg_close(&q->hdr);
	zmq_msg_close(&q->body);
	bt_map_del(p->by_gw, &q->gw_id, sizeof(q->gw_id));
	bt_map_del(p->by_client, key, klen);
	cl = bt_map_get(p->clients, q->cid, q->cidlen);
	if (cl && --cl->in_flight == 0) {
		bt_map_del(p->clients, q->cid, q->cidlen);
		free(cl);
	}
	free(q);
}

/* Sends frames to backend c. Returns 0, or -1 with errno (EAGAIN: no
 * connection to it). */
static int send_to_backend(conn *c, zmq_msg_t *hdr, zmq_msg_t *body)
{
	c->sent = true;
	if (zmq_msg_send(hdr, c->sock, body ? ZMQ_SNDMORE | ZMQ_DONTWAIT : ZMQ_DONTWAIT) < 0)
		return -1;
	/* once the first frame is accepted the rest always goes (no HWM) */
	if (body && zmq_msg_send(body, c->sock, ZMQ_DONTWAIT) < 0)
		return -1;
	return 0;
}

static void send_backend_control(conn *c, uint64_t gw_id, bool cancel, uint32_t credit)
{
	bt_reqhdr h = BERTH__RPC__V1__REQUEST_HEADER__INIT;
	zmq_msg_t m;

	h.version = BT_PROTOCOL_VERSION;
	h.request_id = gw_id;
	h.cancel = cancel;
	h.credit = credit;
	bt_msg_pack(&m, &h.base);
	if (send_to_backend(c, &m, NULL) < 0)
		zmq_msg_close(&m);
}

/* --- client → backend ------------------------------------------------------- */

static const char *const local_principal_ns[] = { "*" };

/* Sends a request to its backend. Returns 0 when sent; -1 when the backend
 * has no connection (the frames stay with q); otherwise answers UNAVAILABLE,
 * drops q and returns -2. */
static int send_pending(gw_proxy *p, pending *q)
{
	conn *c = q->rt->c;
	zmq_msg_t hc, bc;

	/* send copies (reference counted, not byte copies), so a refused send
	 * leaves q's frames intact */
	zmq_msg_init(&hc);
	zmq_msg_init(&bc);
	zmq_msg_copy(&hc, &q->hdr);
	zmq_msg_copy(&bc, &q->body);
	if (send_to_backend(c, &hc, &bc) < 0) {
		int err = errno;
		zmq_msg_close(&hc);
		zmq_msg_close(&bc);
		if (err == EAGAIN)
			return -1;
		reply_transport(p, q->cid, q->cidlen, q->creq, BT_UNAVAILABLE, "service %s is unavailable (%s)",
				q->rt->service, zmq_strerror(err));
		pending_drop(p, q);
		return -2;
	}
	zmq_msg_close(&q->hdr);
	zmq_msg_close(&q->body);
	zmq_msg_init(&q->hdr);
	zmq_msg_init(&q->body);
	q->sent = true;
	return 0;
}

static void hold(gw_proxy *p, pending *q)
{
	conn *c = q->rt->c;

	q->held = true;
	q->held_until = bt_mono_ms() + p->connect_grace_ms;
	if (q->deadline && q->deadline < q->held_until)
		q->held_until = q->deadline;
	pq_push(&c->held, q);
}

/* Sends what waited for the backend's connection, in order, until the
 * socket takes no more. */
static void release_held(gw_proxy *p, conn *c)
{
	while (c->held.head && connected(c)) {
		pending *q = c->held.head;
		int rc = send_pending(p, q);
		if (rc == -1)
			return;
		if (rc == -2)
			continue; /* dropped (and unlinked) already */
		pq_pop(&c->held);
		q->held = false;
	}
}

static void on_monitor(gw_proxy *p);

/* Sends q on, or holds it while its backend has no connection. */
static void forward(gw_proxy *p, pending *q)
{
	/* With no connection known, look for a fresh CONNECTED event first. */
	if (!connected(q->rt->c))
		on_monitor(p);
	/* No connection: the backend may be restarting. Hold the request a
	 * little (never past its deadline) rather than fail at once; requests
	 * already held go first. */
	if (q->rt->c->held.head || !connected(q->rt->c) || send_pending(p, q) == -1)
		hold(p, q);
}

/* The loop's side of a fence: when one is asked, look at what is in flight
 * in its namespace; when it is lifted, send on what it held, in order. */
static void fence_step(gw_proxy *p)
{
	bt_map_iter it;
	void *v;

	if (!atomic_load(&p->fence_on))
		return;
	pthread_mutex_lock(&p->fmu);
	fence_state st = p->fstate;
	pthread_mutex_unlock(&p->fmu);
	if (st == FENCE_ASKED) {
		int busy = 0;
		const pending *example = NULL;
		bt_map_iter_init(&it, p->by_gw);
		while (bt_map_iter_next(&it, NULL, NULL, &v)) {
			pending *q = v;
			if (q->fenced || strcmp(q->ns, p->fence_ns) != 0)
				continue;
			gw_fence_kind k = p->fence_cls(q->rt->service, method_name(q));
			if (k == GW_FENCE_BUSY) {
				busy++;
				example = q;
			} else if (k == GW_FENCE_HOLD) {
				q->drain = true;
				p->fence_draining++;
			}
		}
		pthread_mutex_lock(&p->fmu);
		if (busy) {
			snprintf(p->fence_why, sizeof(p->fence_why), "%d request%s in progress (such as %s.%s)", busy,
				 busy == 1 ? "" : "s", example->rt->service, method_name(example));
			p->fstate = FENCE_REFUSED;
		} else {
			p->fstate = p->fence_draining ? FENCE_DRAINING : FENCE_UP;
		}
		pthread_cond_broadcast(&p->fcv);
		pthread_mutex_unlock(&p->fmu);
	} else if (st == FENCE_LIFTING) {
		bt_map_iter_init(&it, p->by_gw);
		while (bt_map_iter_next(&it, NULL, NULL, &v))
			((pending *)v)->drain = false;
		p->fence_draining = 0;
		pqueue out = p->fenced;
		p->fenced = (pqueue){ 0 };
		atomic_store(&p->fence_on, false);
		fence_set(p, FENCE_NONE);
		pending *q;
		while ((q = pq_pop(&out))) {
			q->fenced = false;
			forward(p, q);
		}
	}
}

static void wake(gw_proxy *p)
{
	uint64_t one = 1;
	(void)!write(p->wake_fd, &one, sizeof(one));
}

int gw_proxy_fence(gw_proxy *p, const char *ns, gw_fence_classify cls, int64_t timeout_ms, bt_err *e)
{
	struct timespec until = bt_timespec_in(CLOCK_MONOTONIC, timeout_ms * 1000000);
	fence_state st;

	if (strlen(ns) > BT_IDENT_MAX)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "namespace \"%.80s…\" is too long", ns);
	pthread_mutex_lock(&p->fmu);
	while (p->fstate != FENCE_NONE && !p->loop_done)
		if (pthread_cond_timedwait(&p->fcv, &p->fmu, &until) == ETIMEDOUT)
			break;
	if (p->fstate != FENCE_NONE || p->loop_done) {
		pthread_mutex_unlock(&p->fmu);
		return bt_err_set(e, BT_UNAVAILABLE, "the gateway is %s",
				  p->loop_done ? "stopping" : "fenced for another collection");
	}
	snprintf(p->fence_ns, sizeof(p->fence_ns), "%s", ns);
	p->fence_cls = cls;
	p->fstate = FENCE_ASKED;
	atomic_store(&p->fence_on, true);
	wake(p);
	while ((p->fstate == FENCE_ASKED || p->fstate == FENCE_DRAINING) && !p->loop_done)
		if (pthread_cond_timedwait(&p->fcv, &p->fmu, &until) == ETIMEDOUT)
			break;
	st = p->fstate;
	if (st == FENCE_REFUSED)
		bt_err_set(e, BT_UNAVAILABLE, "%s", p->fence_why);
	else if (p->loop_done)
		bt_err_set(e, BT_UNAVAILABLE, "the gateway is stopping");
	else if (st != FENCE_UP)
		bt_err_set(e, BT_UNAVAILABLE,
			   "requests that may add references are still unanswered after %" PRId64 " ms", timeout_ms);
	pthread_mutex_unlock(&p->fmu);
	if (st == FENCE_UP && !p->loop_done)
		return 0;
	gw_proxy_unfence(p);
	return -1;
}

void gw_proxy_unfence(gw_proxy *p)
{
	pthread_mutex_lock(&p->fmu);
	if (p->fstate != FENCE_NONE)
		p->fstate = FENCE_LIFTING;
	if (p->loop_done) /* nothing is held any more */
		p->fstate = FENCE_NONE;
	pthread_cond_broadcast(&p->fcv);
	pthread_mutex_unlock(&p->fmu);
	wake(p);
}

/* One request from a client of either door: its header, its body (NULL:
 * none, a control message; the body is taken over), the length of a body
 * too large to have been kept, whether more than two frames came, and the
 * CURVE key of a remote client. */
static void on_request(gw_proxy *p, const unsigned char *cid, size_t cidlen, const void *hdr, size_t hlen,
		       zmq_msg_t *body, uint32_t too_big, bool extra, const char *uid)
{
	bt_err e;
	bt_reqhdr *h = NULL;
	route *rt;

	h = bt_reqhdr_decode(hdr, hlen, &e);
	if (!h) {
		reply_error(p, cid, cidlen, 0, e.code, "%s", e.msg);
		goto out;
	}
	uint64_t creq = h->request_id;
	if (extra) {
		reply_error(p, cid, cidlen, creq, BT_INVALID_ARGUMENT, "request of more than two frames");
		goto out;
	}
	if (h->version != BT_PROTOCOL_VERSION) {
		reply_error(p, cid, cidlen, creq, BT_FAILED_PRECONDITION,
			    "protocol version %u not supported (the gateway speaks %u)", h->version, BT_PROTOCOL_VERSION);
		goto out;
	}
	if (!body && !too_big) {
		/* control: credit or cancel for a request in flight */
		unsigned char key[MAX_IDENTITY + 8];
		size_t klen = client_key(key, cid, cidlen, creq);
		pending *q = bt_map_get(p->by_client, key, klen);
		if (q && (h->cancel || h->credit)) {
			if (!q->held && !q->fenced)
				send_backend_control(q->rt->c, q->gw_id, h->cancel, h->credit);
			if (h->cancel)
				pending_drop(p, q);
		} else if (!h->cancel && !h->credit) {
			reply_error(p, cid, cidlen, creq, BT_INVALID_ARGUMENT, "request without a body frame");
		}
		goto out;
	}
	if (too_big || zmq_msg_size(body) > BT_RPC_MAX_MSG) {
		reply_error(p, cid, cidlen, creq, BT_RESOURCE_EXHAUSTED,
			    "message of %zu bytes exceeds the limit of %u bytes",
			    too_big ? (size_t)too_big : zmq_msg_size(body), BT_RPC_MAX_MSG);
		goto out;
	}
	bool known;
	rt = find_route(p, h->service, h->snapshotter, &known);
	if (!rt) {
		if (known)
			reply_error(p, cid, cidlen, creq, BT_NOT_FOUND, "unknown snapshotter \"%.100s\"", h->snapshotter);
		else
			reply_error(p, cid, cidlen, creq, BT_UNIMPLEMENTED, "unknown service \"%.100s\"", h->service);
		goto out;
	}
	int mix = method_index(rt, h->method);
	if (mix < 0) {
		reply_error(p, cid, cidlen, creq, BT_UNIMPLEMENTED, "unknown method \"%.100s\" of service \"%s\"",
			    h->method, h->service);
		goto out;
	}
	if (!rt->r.no_namespace && bt_rpc_check_namespace(h->namespace_, &e) < 0) {
		reply_error(p, cid, cidlen, creq, e.code, "%s", e.msg);
		goto out;
	}
	/* A remote client: its key decides what it may touch. */
	const gw_key *ck = NULL;
	if (uid && *uid) {
		ck = gw_auth_lookup(p->auth, uid);
		if (!ck) {
			reply_error(p, cid, cidlen, creq, BT_PERMISSION_DENIED, "unknown client key");
			goto out;
		}
		if (!rt->r.no_namespace && !gw_key_allows(ck->patterns, bt_strv_len(ck->patterns), h->namespace_)) {
			reply_error(p, cid, cidlen, creq, BT_PERMISSION_DENIED, "key %s may not use namespace \"%s\"",
				    ck->name, h->namespace_);
			goto out;
		}
		if (ck->read_only && !gw_method_reads(h->method)) {
			reply_error(p, cid, cidlen, creq, BT_PERMISSION_DENIED, "key %s is read-only: %s.%s is refused",
				    ck->name, h->service, h->method);
			goto out;
		}
	}
	if (!rt->r.no_namespace && p->on_namespace)
		p->on_namespace(p->on_namespace_arg, h->namespace_, h->method);
	unsigned char key[MAX_IDENTITY + 8];
	size_t klen = client_key(key, cid, cidlen, creq);
	if (bt_map_get(p->by_client, key, klen)) {
		reply_error(p, cid, cidlen, creq, BT_INVALID_ARGUMENT, "request id %" PRIu64 " is already in flight",
			    creq);
		goto out;
	}
	client *cl = bt_map_get(p->clients, cid, cidlen);
	if (cl && cl->in_flight >= p->max_in_flight) {
		reply_error(p, cid, cidlen, creq, BT_RESOURCE_EXHAUSTED,
			    "too many requests in flight from this client (limit %d)", p->max_in_flight);
		goto out;
	}

	/* Renumber, set the principal (whatever the client sent is replaced),
	 * name the snapshotter meant, and forward. */
	uint64_t gw_id = p->next_id++;
	bt_principal pr = BERTH__RPC__V1__PRINCIPAL__INIT;
	pr.name = ck ? ck->name : (char *)"local";
	pr.n_namespaces = ck ? bt_strv_len(ck->patterns) : 1;
	pr.namespaces = ck ? ck->patterns : (char **)local_principal_ns;
	pr.read_only = ck ? ck->read_only : false;
	bt_principal *theirs = h->principal;
	char *their_sn = h->snapshotter;
	h->principal = &pr;
	h->request_id = gw_id;
	if (rt->snapshotter)
		h->snapshotter = rt->snapshotter;
	pending *q = bt_xzalloc(sizeof(*q));
	q->gw_id = gw_id;
	q->rt = rt;
	memcpy(q->cid, cid, cidlen);
	q->cidlen = cidlen;
	q->creq = creq;
	q->method = (unsigned)mix;
	if (!rt->r.no_namespace)
		snprintf(q->ns, sizeof(q->ns), "%s", h->namespace_);
	q->deadline = h->deadline_ms ? bt_mono_ms() + h->deadline_ms : 0;
	bt_msg_pack(&q->hdr, &h->base);
	h->principal = theirs;
	h->snapshotter = their_sn;
	zmq_msg_init(&q->body);
	zmq_msg_move(&q->body, body);
	bt_map_put(p->by_gw, &q->gw_id, sizeof(q->gw_id), q);
	bt_map_put(p->by_client, key, klen, q);
	if (!cl) {
		cl = bt_xzalloc(sizeof(*cl));
		bt_map_put(p->clients, cid, cidlen, cl);
	}
	cl->in_flight++;
	if (fenced_out(p, q)) {
		q->fenced = true;
		pq_push(&p->fenced, q);
	} else {
		forward(p, q);
	}
out:
	bt_reqhdr_free(&h);
	if (body)
		zmq_msg_close(body);
}

/* Takes one request from the ZeroMQ door; false when there was none.
 * (c: unused; the shape receive_batch calls.) */
static bool on_client(gw_proxy *p, conn *c)
{
	(void)c;
	zmq_msg_t f[4];
	int n;
	bool overflow;

	if (bt_recv_frames(p->pub, f, 4, &n, &overflow, ZMQ_DONTWAIT) < 0)
		return false;
	const unsigned char *cid = zmq_msg_data(&f[0]);
	size_t cidlen = zmq_msg_size(&f[0]);
	if (cidlen > MAX_IDENTITY || n < 1)
		goto out;
	if (n < 2) {
		reply_error(p, cid, cidlen, 0, BT_INVALID_ARGUMENT, "request without a header frame");
		goto out;
	}
	on_request(p, cid, cidlen, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), n >= 3 ? &f[2] : NULL, 0,
		   overflow || n > 3, zmq_msg_gets(&f[1], "User-Id"));
out:
	bt_close_frames(f, n);
	return true;
}

/* --- the unix stream door ------------------------------------------------- */

static void make_ucid(unsigned char *cid, uint64_t serial)
{
	cid[0] = 0;
	cid[1] = 'u';
	memcpy(cid + 2, &serial, sizeof(serial));
}

/* Closes a stream connection: what it had in flight is cancelled (the
 * client cannot be answered any more), the memory waits for the turn's end. */
static void sconn_close(gw_proxy *p, sconn *sc, const char *why)
{
	unsigned char cid[UCID_LEN];
	bt_map_iter it;
	void *v;
	pending **mine = NULL;
	size_t n = 0;

	if (sc->dead)
		return;
	if (why)
		bt_log_debug("stream client %" PRIu64 " closed: %s", sc->serial, why);
	sc->dead = true;
	if (sc->ready) {
		for (sconn **pp = &p->ready; *pp; pp = &(*pp)->next_ready)
			if (*pp == sc) {
				*pp = sc->next_ready;
				break;
			}
		sc->ready = false;
	}
	epoll_ctl(p->ep, EPOLL_CTL_DEL, sc->fd, NULL);
	close(sc->fd);
	sc->fd = -1;
	bt_map_del(p->sconns, &sc->serial, sizeof(sc->serial));
	sc->next_dead = p->dead;
	p->dead = sc;
	make_ucid(cid, sc->serial);
	bt_map_iter_init(&it, p->by_gw);
	while (bt_map_iter_next(&it, NULL, NULL, &v)) {
		pending *q = v;
		if (q->cidlen == UCID_LEN && !memcmp(q->cid, cid, UCID_LEN)) {
			mine = bt_xrealloc(mine, (n + 1) * sizeof(*mine));
			mine[n++] = q;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (mine[i]->sent)
			send_backend_control(mine[i]->rt->c, mine[i]->gw_id, true, 0);
		pending_drop(p, mine[i]);
	}
	free(mine);
}

static void sconn_free(sconn *sc)
{
	bt_wire_in_free(&sc->in);
	bt_wire_out_free(&sc->out);
	free(sc);
}

static void on_accept(gw_proxy *p)
{
	for (;;) {
		int fd = accept4(p->unix_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				bt_log_warn("accept on %s: %s", p->unix_path, strerror(errno));
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		if (bt_map_len(p->sconns) >= MAX_STREAM_CONNS) {
			bt_log_warn("%s: %d clients connected already; refusing another", p->unix_path,
				    MAX_STREAM_CONNS);
			close(fd);
			continue;
		}
		bt_wire_tune(fd);
		sconn *sc = bt_xzalloc(sizeof(*sc));
		sc->fd = fd;
		sc->serial = p->next_serial++;
		bt_wire_in_init(&sc->in);
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = sc };
		if (epoll_ctl(p->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			bt_log_warn("epoll_ctl: %s", strerror(errno));
			close(fd);
			sconn_free(sc);
			continue;
		}
		bt_map_put(p->sconns, &sc->serial, sizeof(sc->serial), sc);
	}
}

/* Takes what a stream client sent, a batch at most. */
static void on_sconn(gw_proxy *p, sconn *sc)
{
	unsigned char cid[UCID_LEN];

	make_ucid(cid, sc->serial);
	for (int k = 0; k < STREAM_BATCH && !sc->dead; k++) {
		bt_wire_msg m;
		bt_err e;
		int rc = bt_wire_recv(&sc->in, sc->fd, &m, &e);
		if (rc == 1) {
			on_request(p, cid, UCID_LEN, m.hdr, m.hlen, m.has_body && !m.too_big ? &m.body : NULL,
				   m.too_big, false, NULL);
			zmq_msg_close(&m.body);
			continue;
		}
		zmq_msg_close(&m.body);
		if (rc < 0 && errno == EAGAIN)
			return;
		if (rc < 0 && errno == EPROTO) {
			/* say why before hanging up; the stream cannot be read on */
			reply_error(p, cid, UCID_LEN, 0, e.code, "%s", e.msg);
			bt_wire_flush(&sc->out, sc->fd);
			sconn_close(p, sc, e.msg);
			return;
		}
		sconn_close(p, sc, rc == 0 ? "end of stream" : strerror(errno));
		return;
	}
	/* A full batch: the rest may be in our buffer already, where EPOLLIN
	 * will not announce it; take it next turn. */
	if (!sc->dead && !sc->ready) {
		sc->ready = true;
		sc->next_ready = p->ready;
		p->ready = sc;
	}
}

/* Writes what waits for stream clients. */
static void flush_dirty(gw_proxy *p)
{
	while (p->dirty) {
		sconn *sc = p->dirty;
		p->dirty = sc->next_dirty;
		sc->dirty = false;
		if (sc->dead)
			continue;
		if (sc->overrun) {
			sconn_close(p, sc, "reads nothing of what waits for it");
			continue;
		}
		int rc = bt_wire_flush(&sc->out, sc->fd);
		if (rc < 0) {
			sconn_close(p, sc, strerror(errno));
			continue;
		}
		bool want = rc == 1;
		if (want != sc->pollout) {
			struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = sc };
			epoll_ctl(p->ep, EPOLL_CTL_MOD, sc->fd, &ev);
			sc->pollout = want;
		}
	}
}

static void free_dead(gw_proxy *p)
{
	while (p->dead) {
		sconn *sc = p->dead;
		p->dead = sc->next_dead;
		sconn_free(sc);
	}
}

/* --- backend → client --------------------------------------------------------- */

/* Passes one reply from backend c to its client; false when there was none. */
static bool on_backend(gw_proxy *p, conn *c)
{
	zmq_msg_t f[2];
	int n;
	bool overflow;
	bt_err e;
	bt_resphdr *h;

	if (bt_recv_frames(c->sock, f, 2, &n, &overflow, ZMQ_DONTWAIT) < 0)
		return false;
	if (n != 2 || overflow) {
		bt_log_warn("backend %s sent a malformed reply (%d frames)", c->address, n);
		bt_close_frames(f, n);
		return true;
	}
	h = bt_resphdr_decode(zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), &e);
	if (!h) {
		bt_log_warn("backend %s: %s", c->address, e.msg);
		bt_close_frames(f, n);
		return true;
	}
	pending *q = bt_map_get(p->by_gw, &h->request_id, sizeof(h->request_id));
	if (!q || q->rt->c != c) {
		/* answered already (deadline) or cancelled */
		bt_resphdr_free(&h);
		bt_close_frames(f, n);
		return true;
	}
	h->request_id = q->creq;
	bool final = h->final;
	zmq_msg_close(&f[0]);
	int rc = to_client(p, q->cid, q->cidlen, &h->base, &f[1]);
	bt_resphdr_free(&h);
	if (rc < 0) {
		/* The client is gone: stop the backend's work for it. */
		if (!final)
			send_backend_control(c, q->gw_id, true, 0);
		pending_drop(p, q);
		return true;
	}
	if (final)
		pending_drop(p, q);
	return true;
}

/* Everything backend c had in flight is lost: say so now. */
static void fail_in_flight(gw_proxy *p, conn *c)
{
	bt_map_iter it;
	void *v;
	pending **lost = NULL;
	size_t nlost = 0;

	bt_map_iter_init(&it, p->by_gw);
	while (bt_map_iter_next(&it, NULL, NULL, &v)) {
		pending *q = v;
		/* only what was sent is lost: a request not sent yet (held, fenced,
		 * or being forwarded while this event is read) waits for the next
		 * connection */
		if (q->rt->c != c || !q->sent)
			continue;
		lost = bt_xrealloc(lost, (nlost + 1) * sizeof(*lost));
		lost[nlost++] = q;
	}
	for (size_t i = 0; i < nlost; i++) {
		reply_transport(p, lost[i]->cid, lost[i]->cidlen, lost[i]->creq, BT_UNAVAILABLE,
				"service %s went away while handling the request", lost[i]->rt->service);
		pending_drop(p, lost[i]);
	}
	free(lost);
}

/* Reads backend c's connection events. */
static void conn_events(gw_proxy *p, conn *c)
{
	for (;;) {
		zmq_msg_t ev;
		uint16_t event = 0;

		zmq_msg_init(&ev);
		if (zmq_msg_recv(&ev, c->monitor, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&ev);
			return;
		}
		if (zmq_msg_size(&ev) >= 2)
			memcpy(&event, zmq_msg_data(&ev), 2);
		zmq_msg_close(&ev);
		zmq_msg_init(&ev);
		(void)zmq_msg_recv(&ev, c->monitor, 0); /* the endpoint: c's own */
		zmq_msg_close(&ev);
		if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
			/* One connection per DEALER. The socket learns of the new
			 * connection's pipe (and of the old one's end) by commands
			 * queued before this event; ZMQ_EVENTS takes them in now, so
			 * the sends below go to the new pipe. */
			int events;
			size_t len = sizeof(events);
			if (!c->up)
				bt_log_info("backend %s connected", c->address);
			c->up = true;
			(void)zmq_getsockopt(c->sock, ZMQ_EVENTS, &events, &len);
			/* that may have taken the descriptor's news: receive until EAGAIN */
			c->sent = true;
			release_held(p, c);
		} else if (event == ZMQ_EVENT_DISCONNECTED) {
			if (c->up)
				bt_log_warn("backend %s went away", c->address);
			c->up = false;
			fail_in_flight(p, c);
		}
	}
}

/* Reads the backends' connection events. */
static void on_monitor(gw_proxy *p)
{
	for (int i = 0; i < p->nconns; i++)
		if (p->conns[i].monitor)
			conn_events(p, &p->conns[i]);
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
		if (q->fenced) {
			reply_transport(p, q->cid, q->cidlen, q->creq, BT_DEADLINE_EXCEEDED,
					"deadline exceeded while a garbage collection of namespace %s held the request",
					q->ns);
			pending_drop(p, q);
			continue;
		}
		if (q->held) {
			reply_transport(p, q->cid, q->cidlen, q->creq, BT_UNAVAILABLE,
					"service %s is unavailable (%s not answering)", q->rt->service, q->rt->c->address);
			pending_drop(p, q);
			continue;
		}
		reply_transport(p, q->cid, q->cidlen, q->creq, BT_DEADLINE_EXCEEDED,
				"deadline exceeded waiting for service %s", q->rt->service);
		send_backend_control(q->rt->c, q->gw_id, true, 0);
		pending_drop(p, q);
	}
	free(late);
}

/* Receives from one socket until EAGAIN, at most a batch, with one(p, c)
 * per message (c: the backend, or NULL for the public socket); true when
 * the batch was full (there may be more).  *sent is the socket's "sent to
 * since EAGAIN" flag: what the handlers send to it before the EAGAIN is
 * covered by it. */
static bool receive_batch(gw_proxy *p, bool (*one)(gw_proxy *, conn *), conn *c, bool *sent)
{
	int k = 0;

	*sent = false;
	while (k < 256 && one(p, c))
		k++;
	if (k == 256)
		return true;
	*sent = false;
	return false;
}

/* Whether some backend's DEALER is to be received from: announced
 * readable, or sent to since its last EAGAIN. */
static bool backends_due(const gw_proxy *p)
{
	for (int i = 0; i < p->nconns; i++)
		if (p->conns[i].readable || p->conns[i].sent)
			return true;
	return false;
}

/* receive_batch for each backend that is due; true when some batch was full. */
static bool receive_backends(gw_proxy *p)
{
	bool full = false;

	for (int i = 0; i < p->nconns; i++) {
		conn *c = &p->conns[i];
		if (!c->readable && !c->sent)
			continue;
		c->readable = false;
		full |= receive_batch(p, on_backend, c, &c->sent);
	}
	return full;
}

static int watch(gw_proxy *p, int fd, void *tag, bt_err *e)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = tag };

	if (epoll_ctl(p->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		return bt_err_errno(e, errno, "epoll_ctl");
	return 0;
}

int gw_proxy_run(gw_proxy *p, bt_err *e)
{
	/* epoll_wait on the sockets' ZMQ_FDs, the eventfd and the stream door
	 * rather than zmq_poll, which asks every socket's state twice per
	 * call, each time a system call or two. The price is the rule of
	 * bt_zmq_fd: before sleeping, each ZeroMQ socket has been received
	 * from until EAGAIN after the last send to it (pub_sent and each
	 * conn.sent say which were sent to since; the loop does not sleep
	 * while one is set). The monitors are read every tick, not polled. */
	int fpub = bt_zmq_fd(p->pub);
	int64_t next_tick = bt_mono_ms() + TICK_MS;
	bool again = true; /* messages may be waiting that no descriptor announced */
	int ret = 0;

	if (fpub < 0)
		return bt_err_set(e, BT_INTERNAL, "ZMQ_FD: %s", zmq_strerror(errno));
	if (watch(p, fpub, TAG_PUB, e) < 0 || watch(p, p->wake_fd, TAG_WAKE, e) < 0 ||
	    (p->unix_fd >= 0 && watch(p, p->unix_fd, TAG_LISTEN, e) < 0))
		return -1;
	for (int i = 0; i < p->nconns; i++) {
		int fd = bt_zmq_fd(p->conns[i].sock);
		if (fd < 0)
			return bt_err_set(e, BT_INTERNAL, "ZMQ_FD: %s", zmq_strerror(errno));
		if (watch(p, fd, &p->conns[i], e) < 0)
			return -1;
	}
	on_monitor(p);
	while (!atomic_load(&p->stop)) {
		struct epoll_event evs[64];
		bool holding = false;
		for (int i = 0; i < p->nconns; i++)
			holding |= p->conns[i].held.head != NULL;
		int64_t wait = next_tick - bt_mono_ms();
		if (wait < 0)
			wait = 0;
		if (holding)
			wait = BT_MIN(wait, 5);
		bool force = again;
		int n = epoll_wait(p->ep, evs, 64, again || p->pub_sent || backends_due(p) || p->ready ? 0 : (int)wait);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = bt_err_set(e, BT_INTERNAL, "epoll_wait: %s", strerror(errno));
			break;
		}
		again = false;
		bool rpub = force || p->pub_sent;
		if (force)
			for (int i = 0; i < p->nconns; i++)
				p->conns[i].readable = true;
		/* stream clients with more to read than the last batch took */
		sconn *r = p->ready;
		p->ready = NULL;
		while (r) {
			sconn *sc = r;
			r = sc->next_ready;
			sc->ready = false;
			if (!sc->dead)
				on_sconn(p, sc);
		}
		for (int i = 0; i < n; i++) {
			void *tag = evs[i].data.ptr;
			if (tag == TAG_PUB) {
				rpub = true;
			} else if (tag >= (void *)p->conns && tag < (void *)(p->conns + MAX_ROUTES)) {
				((conn *)tag)->readable = true;
			} else if (tag == TAG_WAKE) {
				uint64_t v;
				(void)!read(p->wake_fd, &v, sizeof(v));
			} else if (tag == TAG_LISTEN) {
				on_accept(p);
			} else {
				sconn *sc = tag;
				if (!sc->dead && (evs[i].events & EPOLLOUT) && !sc->dirty) {
					sc->dirty = true;
					sc->next_dirty = p->dirty;
					p->dirty = sc;
				}
				if (!sc->dead && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
					on_sconn(p, sc);
			}
		}
		/* a fence asked or lifted (sends what it held: conn.sent) */
		fence_step(p);
		/* Receive from a socket until EAGAIN when its descriptor says so,
		 * or when it was sent to since it last said EAGAIN (the send may
		 * have consumed the descriptor's news); repeat, as forwarding
		 * sends to the other socket. A full batch means there may be
		 * more: look again without sleeping. */
		for (int round = 0; (rpub || backends_due(p)) && !again; round++) {
			if (round == 4) {
				again = true;
				break;
			}
			if (receive_backends(p))
				again = true;
			if ((rpub || p->pub_sent) && receive_batch(p, on_client, NULL, &p->pub_sent))
				again = true;
			rpub = false;
		}
		if (holding) {
			on_monitor(p);
			for (int i = 0; i < p->nconns; i++)
				release_held(p, &p->conns[i]);
		}
		int64_t now = bt_mono_ms();
		atomic_store(&p->last_tick, now);
		if (now >= next_tick) {
			on_monitor(p);
			expire(p);
			next_tick = now + TICK_MS;
		}
		flush_dirty(p);
		free_dead(p);
	}
	pthread_mutex_lock(&p->fmu);
	p->loop_done = true;
	pthread_cond_broadcast(&p->fcv);
	pthread_mutex_unlock(&p->fmu);
	return ret;
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
	if (p->by_gw) {
		bt_map_iter_init(&it, p->by_gw);
		while (bt_map_iter_next(&it, NULL, NULL, &v)) {
			pending *q = v;
			zmq_msg_close(&q->hdr);
			zmq_msg_close(&q->body);
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
	for (int i = 0; i < p->nroutes; i++) {
		free(p->routes[i].service);
		free(p->routes[i].snapshotter);
	}
	for (int i = 0; i < p->nconns; i++)
		conn_close(&p->conns[i]);
	/* an activated socket stays with systemd, listening for the next start */
	if (!p->activated)
		bt_zmq_unbind(p->pub, p->public_address, &p->lock_fd);
	bt_zmq_close(&p->pub);
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	if (p->sconns) {
		bt_map_iter_init(&it, p->sconns);
		while (bt_map_iter_next(&it, NULL, NULL, &v)) {
			sconn *sc = v;
			close(sc->fd);
			sconn_free(sc);
		}
		bt_map_free(&p->sconns);
	}
	free_dead(p);
	if (p->unix_fd >= 0) {
		close(p->unix_fd);
		/* an activated socket stays with systemd */
		if (!p->unix_activated)
			unlink(p->unix_path);
	}
	free(p->unix_path);
	if (p->ep >= 0)
		close(p->ep);
	pthread_cond_destroy(&p->fcv);
	pthread_mutex_destroy(&p->fmu);
	free(p->public_address);
	free(p->tcp_address);
	free(p);
	*pp = NULL;
}
