/*
 * bt_server — ROUTER socket thread, envelope checks, worker pool, stream
 * credit, deadlines and cancellation.
 *
 * Threads: the loop thread alone touches the ROUTER socket, the in-flight
 * table and the order-key queues.  Workers take calls from a mutex-guarded
 * queue and hand replies back on another (waking the loop through an
 * eventfd only when that queue was empty: no ZeroMQ socket between threads,
 * whose every check costs a system call); the loop thread forwards them and,
 * on a call's final reply, frees the call.  So a
 * call's memory belongs to the loop thread; a handler may use it until it
 * sends the final reply.
 */
#define _GNU_SOURCE
#include "bt_server.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "berth/system/v1/system.pb-c.h"
#include "bt_log.h"
#include "bt_map.h"
#include "bt_util.h"

#define MAX_IDENTITY 256
#define IDLE_EXIT_MS 30000
#define STOP_GRACE_MS 5000
#define TICK_MS 100
#define CREDIT_IDLE_S 300

typedef struct reg_service {
	bt_service svc;
	/* handlers indexed like desc->methods; NULL when unimplemented */
	const bt_method **by_index;
} reg_service;

struct bt_call {
	bt_server *srv;
	const reg_service *reg;
	const bt_method *method;
	const ProtobufCMessageDescriptor *input;
	unsigned char identity[MAX_IDENTITY];
	size_t idlen;
	bt_reqhdr *hdr;
	zmq_msg_t body;
	ProtobufCMessage *req;
	int64_t deadline; /* monotonic ms; 0: none */
	char *order_key;  /* "<ns>\0<key>" flattened with a '\n' separator, or NULL */

	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint32_t window;
	uint64_t sent;
	uint64_t acked;
	atomic_int done_code; /* BT_OK while live; else why it is done */
	bool on_loop;         /* running inline on the loop thread (BT_M_INLINE) */

	struct bt_call *next; /* work queue or order queue link */
};

typedef struct order_queue {
	bt_call *head, *tail;
} order_queue;

/* The call this thread is answering. */
static __thread bt_call *tl_call;
static __thread bool tl_finished;

/* A reply on its way from a worker to the loop thread. */
typedef struct reply {
	struct reply *next;
	bt_call *call;
	bool final;
	zmq_msg_t hdr;
	zmq_msg_t body;
} reply;

struct bt_server {
	char *daemon;
	char *endpoint;
	int min_workers, max_workers, max_queue;
	void *router;
	int lock_fd;
	int wake_fd; /* eventfd: stop requests and replies waiting */
	pthread_mutex_t rmu;
	reply *rhead, *rtail; /* replies from workers, oldest first */
	bt_map *services;
	bt_map *inflight;
	bt_map *orders;
	int64_t started_ns;
	bt_ns_usage_fn ns_usage;
	void *ns_usage_arg;
	atomic_int stop;
	_Atomic int64_t last_tick; /* monotonic ms of the loop's last turn */

	pthread_mutex_t qmu;
	pthread_cond_t qcv;
	pthread_cond_t exit_cv;
	bt_call *qhead, *qtail;
	int qlen;
	int nworkers, nidle;
	bool stopping;
};

static void call_free(bt_call *c)
{
	if (!c)
		return;
	bt_reqhdr_free(&c->hdr);
	zmq_msg_close(&c->body);
	if (c->req)
		protobuf_c_message_free_unpacked(c->req, NULL);
	free(c->order_key);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c);
}

static size_t inflight_key(unsigned char *buf, const unsigned char *id, size_t idlen, uint64_t reqid)
{
	memcpy(buf, id, idlen);
	memcpy(buf + idlen, &reqid, sizeof(reqid));
	return idlen + sizeof(reqid);
}

static void call_mark_done(bt_call *c, int code)
{
	int expected = BT_OK;
	pthread_mutex_lock(&c->mu);
	atomic_compare_exchange_strong(&c->done_code, &expected, code);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* --- replies ------------------------------------------------------------ */

static void send_to_client(bt_server *s, bt_call *c, zmq_msg_t *hm, zmq_msg_t *bm);

static void push_reply_msg(bt_call *c, int code, const char *message, zmq_msg_t *body, bool final)
{
	bt_resphdr h = BERTH__RPC__V1__RESPONSE_HEADER__INIT;
	zmq_msg_t hm, bm;

	h.version = BT_PROTOCOL_VERSION;
	h.request_id = c->hdr->request_id;
	h.code = (Berth__Rpc__V1__Code)code;
	h.message = (char *)(message ? message : "");
	h.final = final;
	bt_msg_pack(&hm, &h.base);
	zmq_msg_init(&bm);
	zmq_msg_move(&bm, body);
	if (c->on_loop) {
		/* inline on the loop thread: straight to the socket; the loop
		 * finishes the call when the handler returns */
		send_to_client(c->srv, c, &hm, &bm);
		return;
	}
	bt_server *s = c->srv;
	reply *r = bt_xmalloc(sizeof(*r));
	bool was_empty;
	r->next = NULL;
	r->call = c;
	r->final = final;
	zmq_msg_init(&r->hdr);
	zmq_msg_init(&r->body);
	zmq_msg_move(&r->hdr, &hm);
	zmq_msg_move(&r->body, &bm);
	pthread_mutex_lock(&s->rmu);
	was_empty = s->rhead == NULL;
	if (s->rtail)
		s->rtail->next = r;
	else
		s->rhead = r;
	s->rtail = r;
	pthread_mutex_unlock(&s->rmu);
	if (was_empty) {
		uint64_t one = 1;
		(void)!write(s->wake_fd, &one, sizeof(one));
	}
}

static void push_reply(bt_call *c, int code, const char *message, const ProtobufCMessage *body, bool final)
{
	zmq_msg_t bm;

	bt_msg_pack(&bm, body);
	push_reply_msg(c, code, message, &bm, final);
}

void bt_call_reply(bt_call *c, const ProtobufCMessage *resp)
{
	if (tl_finished && tl_call == c) {
		bt_log_err("%s: second final reply ignored", c->method->name);
		return;
	}
	if (tl_call == c)
		tl_finished = true;
	push_reply(c, BT_OK, NULL, resp, true);
}

void bt_call_error(bt_call *c, const bt_err *e)
{
	if (tl_finished && tl_call == c) {
		bt_log_err("%s: second final reply ignored (%s)", c->method->name, e->msg);
		return;
	}
	if (tl_call == c)
		tl_finished = true;
	push_reply(c, e->code == BT_OK ? BT_UNKNOWN : e->code, e->msg, NULL, true);
}

void bt_call_errorf(bt_call *c, int code, const char *fmt, ...)
{
	bt_err e;
	va_list ap;

	va_start(ap, fmt);
	bt_err_setv(&e, code, fmt, ap);
	va_end(ap);
	bt_call_error(c, &e);
}

/* Waits for the client's credit to send one more stream reply. */
static int await_credit(bt_call *c, bt_err *e)
{
	/* streams wait for credit: never on the loop thread */
	assert(!c->on_loop);
	pthread_mutex_lock(&c->mu);
	for (;;) {
		if (atomic_load(&c->done_code) != BT_OK) {
			pthread_mutex_unlock(&c->mu);
			return bt_call_done_err(c, e);
		}
		if (c->sent - c->acked < c->window)
			break;
		/* A client that stops granting credit for this long has gone. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += CREDIT_IDLE_S;
		if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT && c->sent - c->acked >= c->window) {
			int expected = BT_OK;
			atomic_compare_exchange_strong(&c->done_code, &expected, BT_CANCELLED);
		}
	}
	c->sent++;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int bt_call_send(bt_call *c, const ProtobufCMessage *item, bt_err *e)
{
	if (await_credit(c, e) < 0)
		return -1;
	push_reply(c, BT_OK, NULL, item, false);
	return 0;
}

int bt_call_send_raw(bt_call *c, zmq_msg_t *body, bt_err *e)
{
	if (await_credit(c, e) < 0) {
		zmq_msg_close(body);
		return -1;
	}
	push_reply_msg(c, BT_OK, NULL, body, false);
	return 0;
}

/* --- accessors ------------------------------------------------------------ */

const bt_reqhdr *bt_call_header(const bt_call *c)
{
	return c->hdr;
}

const void *bt_call_req(const bt_call *c)
{
	return c->req;
}

const uint8_t *bt_call_body(const bt_call *c, size_t *len)
{
	*len = zmq_msg_size((zmq_msg_t *)&c->body);
	return zmq_msg_data((zmq_msg_t *)&c->body);
}

const char *bt_call_namespace(const bt_call *c)
{
	return c->hdr->namespace_;
}

const char *bt_call_method(const bt_call *c)
{
	return c->method->name;
}

const bt_principal *bt_call_principal(const bt_call *c)
{
	return c->hdr->principal;
}

bool bt_call_done(bt_call *c)
{
	if (atomic_load(&c->done_code) != BT_OK)
		return true;
	if (c->deadline && bt_mono_ms() >= c->deadline) {
		call_mark_done(c, BT_DEADLINE_EXCEEDED);
		return true;
	}
	return false;
}

int64_t bt_call_remaining_ms(const bt_call *c)
{
	if (!c->deadline)
		return -1;
	int64_t left = c->deadline - bt_mono_ms();
	return left > 0 ? left : 0;
}

int bt_call_done_err(bt_call *c, bt_err *e)
{
	switch (atomic_load(&c->done_code)) {
	case BT_DEADLINE_EXCEEDED:
		return bt_err_set(e, BT_DEADLINE_EXCEEDED, "%s: deadline exceeded", c->method->name);
	case BT_UNAVAILABLE:
		return bt_err_set(e, BT_UNAVAILABLE, "%s: server is stopping", c->method->name);
	default:
		return bt_err_set(e, BT_CANCELLED, "%s: cancelled by the client", c->method->name);
	}
}

int64_t bt_server_last_tick(bt_server *s)
{
	return atomic_load(&s->last_tick);
}

const char *bt_server_endpoint(const bt_server *s)
{
	return s->endpoint;
}

/* --- workers -------------------------------------------------------------- */

static void run_call(bt_call *c)
{
	const reg_service *reg = c->reg;
	bt_err e;

	tl_call = c;
	tl_finished = false;
	if (c->deadline && bt_mono_ms() >= c->deadline) {
		bt_call_errorf(c, BT_DEADLINE_EXCEEDED, "%s: deadline exceeded before the call ran", c->method->name);
		goto out;
	}
	if (!(c->method->flags & BT_M_RAW)) {
		size_t n = zmq_msg_size(&c->body);
		c->req = protobuf_c_message_unpack(c->input, NULL, n, zmq_msg_data(&c->body));
		if (!c->req) {
			bt_call_errorf(c, BT_INVALID_ARGUMENT, "%s.%s: malformed %s body (%zu bytes)", reg->svc.name,
				       c->method->name, c->input->name, n);
			goto out;
		}
		zmq_msg_close(&c->body);
		zmq_msg_init(&c->body);
	}
	c->method->fn(c, reg->svc.ctx);
	if (!tl_finished) {
		bt_err_set(&e, BT_INTERNAL, "%s.%s: handler returned without a reply", reg->svc.name,
			   c->method->name);
		bt_log_err("%s", e.msg);
		bt_call_error(c, &e);
	}
out:
	tl_call = NULL;
}

static void *worker_main(void *arg)
{
	bt_server *s = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&s->qmu);
	for (;;) {
		while (!s->qhead && !s->stopping) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += IDLE_EXIT_MS / 1000;
			s->nidle++;
			int rc = pthread_cond_timedwait(&s->qcv, &s->qmu, &ts);
			s->nidle--;
			if (rc == ETIMEDOUT && !s->qhead && s->nworkers > s->min_workers)
				goto exit;
		}
		if (!s->qhead)
			goto exit; /* stopping and nothing left */
		bt_call *c = s->qhead;
		s->qhead = c->next;
		if (!s->qhead)
			s->qtail = NULL;
		s->qlen--;
		c->next = NULL;
		pthread_mutex_unlock(&s->qmu);
		run_call(c);
		pthread_mutex_lock(&s->qmu);
	}
exit:
	s->nworkers--;
	pthread_cond_broadcast(&s->exit_cv);
	pthread_mutex_unlock(&s->qmu);
	return NULL;
}

static void finish_call(bt_server *s, bt_call *c);
static void run_call(bt_call *c);

/* Queues a call for the workers; spawns one when none is idle. Loop thread. */
static int enqueue(bt_server *s, bt_call *c, bt_err *e)
{
	if (c->method->flags & BT_M_INLINE) {
		/* cheap and never blocking: run it here, saving two thread
		 * switches (which dominate a round trip on small machines) */
		c->on_loop = true;
		run_call(c);
		tl_call = NULL;
		finish_call(s, c);
		return 0;
	}
	pthread_mutex_lock(&s->qmu);
	if (s->qlen >= s->max_queue) {
		pthread_mutex_unlock(&s->qmu);
		return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "server busy: %d calls queued", s->qlen);
	}
	if (s->qtail)
		s->qtail->next = c;
	else
		s->qhead = c;
	s->qtail = c;
	s->qlen++;
	if (s->nidle < s->qlen && s->nworkers < s->max_workers) {
		pthread_t t;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 1 << 20);
		if (pthread_create(&t, &attr, worker_main, s) == 0)
			s->nworkers++;
		else if (s->nworkers == 0)
			bt_log_err("cannot start a worker thread: %s", strerror(errno));
		pthread_attr_destroy(&attr);
	}
	pthread_cond_signal(&s->qcv);
	pthread_mutex_unlock(&s->qmu);
	return 0;
}

/* --- the loop thread ---------------------------------------------------- */

static void send_error_direct(bt_server *s, const void *id, size_t idlen, uint64_t reqid, const bt_err *e)
{
	bt_resphdr h = BERTH__RPC__V1__RESPONSE_HEADER__INIT;

	h.version = BT_PROTOCOL_VERSION;
	h.request_id = reqid;
	h.code = (Berth__Rpc__V1__Code)e->code;
	h.message = (char *)e->msg;
	h.final = true;
	if (zmq_send(s->router, id, idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		return;
	if (bt_send_pb(s->router, &h.base, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		return;
	zmq_send(s->router, "", 0, ZMQ_DONTWAIT);
}

static void order_release(bt_server *s, bt_call *c)
{
	bt_err e;
	order_queue *q;

	if (!c->order_key)
		return;
	q = bt_map_sget(s->orders, c->order_key);
	if (!q)
		return;
	while (q->head) {
		bt_call *next = q->head;
		q->head = next->next;
		if (!q->head)
			q->tail = NULL;
		next->next = NULL;
		if (enqueue(s, next, &e) == 0)
			return;
		/* could not queue: answer it here and try the one after */
		unsigned char key[MAX_IDENTITY + 8];
		size_t klen = inflight_key(key, next->identity, next->idlen, next->hdr->request_id);
		bt_map_del(s->inflight, key, klen);
		send_error_direct(s, next->identity, next->idlen, next->hdr->request_id, &e);
		call_free(next);
	}
	bt_map_sdel(s->orders, c->order_key);
	free(q);
}

/* Sends a reply's two frames to the call's client; a client that is gone
 * marks the call done so its handler stops. */
static void send_to_client(bt_server *s, bt_call *c, zmq_msg_t *hm, zmq_msg_t *bm)
{
	if (zmq_send(s->router, c->identity, c->idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_msg_send(hm, s->router, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_msg_send(bm, s->router, ZMQ_DONTWAIT) < 0) {
		/* EHOSTUNREACH: the peer is gone */
		call_mark_done(c, BT_CANCELLED);
	}
	zmq_msg_close(hm);
	zmq_msg_close(bm);
}

/* After a call's final reply: forget it, let the next call of its order key
 * run, free it. Loop thread. */
static void finish_call(bt_server *s, bt_call *c)
{
	unsigned char key[MAX_IDENTITY + 8];
	size_t klen = inflight_key(key, c->identity, c->idlen, c->hdr->request_id);

	bt_map_del(s->inflight, key, klen);
	order_release(s, c);
	call_free(c);
}

/* Forwards every reply the workers queued, in order. */
static void forward_replies(bt_server *s)
{
	reply *r;

	pthread_mutex_lock(&s->rmu);
	r = s->rhead;
	s->rhead = s->rtail = NULL;
	pthread_mutex_unlock(&s->rmu);
	while (r) {
		reply *next = r->next;
		send_to_client(s, r->call, &r->hdr, &r->body);
		if (r->final)
			finish_call(s, r->call);
		free(r);
		r = next;
	}
}

static const bt_method *find_method(bt_server *s, const char *svc, const char *method, const reg_service **reg,
				    const ProtobufCMessageDescriptor **input, bt_err *e)
{
	*reg = bt_map_sget(s->services, svc);
	if (!*reg)
		return bt_err_set(e, BT_UNIMPLEMENTED, "unknown service \"%.100s\"", svc), NULL;
	const ProtobufCServiceDescriptor *d = (*reg)->svc.desc;
	for (unsigned i = 0; i < d->n_methods; i++) {
		if (strcmp(d->methods[i].name, method) == 0) {
			if (!(*reg)->by_index[i])
				break;
			*input = d->methods[i].input;
			return (*reg)->by_index[i];
		}
	}
	bt_err_set(e, BT_UNIMPLEMENTED, "unknown method \"%.100s\" of service \"%s\"", method, svc);
	return NULL;
}

static void handle_control(bt_server *s, const unsigned char *id, size_t idlen, const bt_reqhdr *h)
{
	unsigned char key[MAX_IDENTITY + 8];
	size_t klen = inflight_key(key, id, idlen, h->request_id);
	bt_call *c = bt_map_get(s->inflight, key, klen);

	if (!c)
		return; /* finished already: nothing to do */
	if (h->cancel) {
		call_mark_done(c, BT_CANCELLED);
		return;
	}
	pthread_mutex_lock(&c->mu);
	c->acked += h->credit;
	if (c->acked > c->sent)
		c->acked = c->sent;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* Takes one request; returns false when there was none. */
static bool handle_request(bt_server *s)
{
	zmq_msg_t f[4];
	int n;
	bool overflow;
	bt_err e;

	if (bt_recv_frames(s->router, f, 4, &n, &overflow, ZMQ_DONTWAIT) < 0)
		return false;
	size_t idlen = zmq_msg_size(&f[0]);
	const unsigned char *id = zmq_msg_data(&f[0]);
	bt_reqhdr *h = NULL;
	uint64_t reqid = 0;

	if (n < 2 || idlen > MAX_IDENTITY) {
		bt_err_set(&e, BT_INVALID_ARGUMENT, "request without a header frame");
		goto fail;
	}
	h = bt_reqhdr_decode(zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), &e);
	if (!h)
		goto fail;
	reqid = h->request_id;
	if (overflow || n > 3) {
		bt_err_set(&e, BT_INVALID_ARGUMENT, "request of more than two frames");
		goto fail;
	}
	if (h->version != BT_PROTOCOL_VERSION) {
		bt_err_set(&e, BT_FAILED_PRECONDITION, "protocol version %u not supported (this server speaks %u)",
			   h->version, BT_PROTOCOL_VERSION);
		goto fail;
	}
	if (n == 2) {
		if (h->cancel || h->credit) {
			handle_control(s, id, idlen, h);
			bt_reqhdr_free(&h);
			bt_close_frames(f, n);
			return true;
		}
		bt_err_set(&e, BT_INVALID_ARGUMENT, "request without a body frame");
		goto fail;
	}
	if (zmq_msg_size(&f[2]) > BT_RPC_MAX_MSG) {
		bt_err_set(&e, BT_RESOURCE_EXHAUSTED, "message of %zu bytes exceeds the limit of %u bytes",
			   zmq_msg_size(&f[2]), BT_RPC_MAX_MSG);
		goto fail;
	}
	const reg_service *reg;
	const ProtobufCMessageDescriptor *input = NULL;
	const bt_method *m = find_method(s, h->service, h->method, &reg, &input, &e);
	if (!m)
		goto fail;
	if (!(m->flags & BT_M_NO_NAMESPACE) && bt_rpc_check_namespace(h->namespace_, &e) < 0)
		goto fail;

	unsigned char key[MAX_IDENTITY + 8];
	size_t klen = inflight_key(key, id, idlen, reqid);
	if (bt_map_get(s->inflight, key, klen)) {
		bt_err_set(&e, BT_INVALID_ARGUMENT, "request id %" PRIu64 " is already in flight", reqid);
		goto fail;
	}

	bt_call *c = bt_xzalloc(sizeof(*c));
	c->srv = s;
	c->reg = reg;
	c->method = m;
	c->input = input;
	memcpy(c->identity, id, idlen);
	c->idlen = idlen;
	c->hdr = BT_STEAL(h);
	zmq_msg_init(&c->body);
	zmq_msg_move(&c->body, &f[2]);
	c->deadline = c->hdr->deadline_ms ? bt_mono_ms() + c->hdr->deadline_ms : 0;
	c->window = c->hdr->window ? BT_MIN(c->hdr->window, BT_RPC_MAX_WINDOW) : BT_RPC_DEFAULT_WINDOW;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	atomic_init(&c->done_code, BT_OK);
	bt_close_frames(f, n);

	bt_map_put(s->inflight, key, klen, c);
	if (c->hdr->order_key && c->hdr->order_key[0]) {
		c->order_key = bt_xasprintf("%s\n%s\n%s", reg->svc.name, c->hdr->namespace_, c->hdr->order_key);
		order_queue *q = bt_map_sget(s->orders, c->order_key);
		if (q) {
			if (q->tail)
				q->tail->next = c;
			else
				q->head = c;
			q->tail = c;
			return true;
		}
		bt_map_sput(s->orders, c->order_key, bt_xzalloc(sizeof(order_queue)));
	}
	if (enqueue(s, c, &e) < 0) {
		bt_map_del(s->inflight, key, klen);
		send_error_direct(s, c->identity, c->idlen, reqid, &e);
		order_release(s, c);
		call_free(c);
	}
	return true;
fail:
	if (n >= 1 && idlen <= MAX_IDENTITY) {
		bt_log_debug("rejected request %" PRIu64 ": %s", reqid, e.msg);
		send_error_direct(s, id, idlen, reqid, &e);
	}
	bt_reqhdr_free(&h);
	bt_close_frames(f, n);
	return true;
}

static void expire_calls(bt_server *s)
{
	bt_map_iter it;
	void *v;
	int64_t now = bt_mono_ms();

	bt_map_iter_init(&it, s->inflight);
	while (bt_map_iter_next(&it, NULL, NULL, &v)) {
		bt_call *c = v;
		if (c->deadline && now >= c->deadline && atomic_load(&c->done_code) == BT_OK)
			call_mark_done(c, BT_DEADLINE_EXCEEDED);
	}
}

void bt_server_stop(bt_server *s)
{
	uint64_t one = 1;
	atomic_store(&s->stop, 1);
	(void)!write(s->wake_fd, &one, sizeof(one));
}

int bt_server_run(bt_server *s, bt_err *e)
{
	/* poll(2) on the ROUTER's ZMQ_FD and the eventfd, not zmq_poll (which
	 * asks the socket's state twice per call, each a system call or two):
	 * every turn receives until EAGAIN after the turn's sends, so the
	 * descriptor is armed whenever the loop sleeps (bt_zmq_fd). */
	int rfd = bt_zmq_fd(s->router);
	struct pollfd pfd[2] = {
		{ .fd = rfd, .events = POLLIN },
		{ .fd = s->wake_fd, .events = POLLIN },
	};
	int64_t next_tick = bt_mono_ms() + TICK_MS;
	bool again = true; /* messages may be waiting that the descriptor never announced */

	if (rfd < 0)
		return bt_err_set(e, BT_INTERNAL, "ZMQ_FD: %s", zmq_strerror(errno));
	while (!atomic_load(&s->stop)) {
		int rc = poll(pfd, 2, again ? 0 : TICK_MS);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			return bt_err_set(e, BT_INTERNAL, "poll: %s", strerror(errno));
		}
		again = false;
		/* Replies first: they free calls and keep streams moving. */
		if (pfd[1].revents & POLLIN) {
			uint64_t v;
			(void)!read(s->wake_fd, &v, sizeof(v));
			forward_replies(s);
		}
		/* Every turn, whatever the descriptor said: the replies just sent
		 * may have consumed its news. Receiving until EAGAIN drains a
		 * batch per wake-up and re-arms the descriptor; a full batch
		 * means there may be more, so look again without sleeping. */
		int k = 0;
		while (k < 64 && handle_request(s))
			k++;
		if (k == 64)
			again = true;
		int64_t now = bt_mono_ms();
		atomic_store(&s->last_tick, now);
		if (now >= next_tick) {
			expire_calls(s);
			next_tick = now + TICK_MS;
		}
	}

	/* Stop: refuse new work, tell running calls, forward what they answer. */
	bt_map_iter it;
	void *v;
	bt_map_iter_init(&it, s->inflight);
	while (bt_map_iter_next(&it, NULL, NULL, &v))
		call_mark_done(v, BT_UNAVAILABLE);
	pthread_mutex_lock(&s->qmu);
	s->stopping = true;
	pthread_cond_broadcast(&s->qcv);
	pthread_mutex_unlock(&s->qmu);
	int64_t until = bt_mono_ms() + STOP_GRACE_MS;
	for (;;) {
		pthread_mutex_lock(&s->qmu);
		int busy = s->nworkers;
		pthread_mutex_unlock(&s->qmu);
		if (busy == 0 || bt_mono_ms() >= until)
			break;
		if (poll(&pfd[1], 1, 20) > 0) {
			uint64_t ticks;
			(void)!read(s->wake_fd, &ticks, sizeof(ticks));
		}
		forward_replies(s);
	}
	forward_replies(s);
	return 0;
}

/* --- system.Health, served by every daemon ------------------------------- */

void bt_server_health(bt_call *call, void *ctx)
{
	bt_server *s = ctx;
	Berth__System__V1__HealthResponse r = BERTH__SYSTEM__V1__HEALTH_RESPONSE__INIT;
	char *names[64];
	size_t n = 0;
	bt_map_iter it;
	const void *key;
	size_t klen;
	void *val;

	bt_map_iter_init(&it, s->services);
	while (n < BT_ARRAY_LEN(names) && bt_map_iter_next(&it, &key, &klen, &val))
		names[n++] = (char *)((reg_service *)val)->svc.name;
	r.daemon = s->daemon;
	r.version = (char *)BERTH_VERSION;
	r.protocol = BT_PROTOCOL_VERSION;
	r.pid = (int32_t)getpid();
	r.uptime_seconds = (bt_now_ns() - s->started_ns) / 1000000000LL;
	r.n_services = n;
	r.services = names;
	bt_call_reply(call, &r.base);
}

void bt_server_set_ns_usage(bt_server *s, bt_ns_usage_fn fn, void *arg)
{
	s->ns_usage = fn;
	s->ns_usage_arg = arg;
}

static void ns_usage(bt_call *call, void *ctx)
{
	bt_server *s = ctx;
	Berth__System__V1__NamespaceUsageResponse r = BERTH__SYSTEM__V1__NAMESPACE_USAGE_RESPONSE__INIT;
	_cleanup_strv_ char **holds = NULL;
	bt_err e = { 0 };

	if (s->ns_usage && s->ns_usage(s->ns_usage_arg, bt_call_namespace(call), &holds, &e) < 0) {
		bt_call_error(call, &e);
		return;
	}
	r.n_holds = bt_strv_len(holds);
	r.holds = holds;
	bt_call_reply(call, &r.base);
}

static const bt_method system_methods[] = {
	{ "Health", bt_server_health, BT_M_NO_NAMESPACE | BT_M_INLINE },
	{ "NamespaceUsage", ns_usage, 0 },
};

bt_server *bt_server_new(const bt_server_opts *o, bt_err *e)
{
	bt_server *s = bt_xzalloc(sizeof(*s));

	s->daemon = bt_xstrdup(o->daemon ? o->daemon : "berth");
	s->endpoint = bt_xstrdup(o->endpoint);
	s->min_workers = o->min_workers > 0 ? o->min_workers : 4;
	s->max_workers = o->max_workers > 0 ? o->max_workers : 256;
	s->max_queue = o->max_queue > 0 ? o->max_queue : 4096;
	s->lock_fd = -1;
	s->wake_fd = -1;
	s->services = bt_map_new();
	s->inflight = bt_map_new();
	s->orders = bt_map_new();
	s->started_ns = bt_now_ns();
	atomic_init(&s->stop, 0);
	atomic_init(&s->last_tick, bt_mono_ms());
	pthread_mutex_init(&s->qmu, NULL);
	pthread_cond_init(&s->qcv, NULL);
	pthread_cond_init(&s->exit_cv, NULL);
	pthread_mutex_init(&s->rmu, NULL);

	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0) {
		bt_err_errno(e, errno, "eventfd");
		goto fail;
	}
	s->router = bt_zmq_socket(ZMQ_ROUTER, e);
	if (!s->router)
		goto fail;
	int one = 1;
	zmq_setsockopt(s->router, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
	if (bt_zmq_bind(s->router, s->endpoint, o->socket_mode ? o->socket_mode : 0600, &s->lock_fd, e) < 0)
		goto fail;

	if (o->no_system)
		return s;
	bt_service sys = {
		.name = "system",
		.desc = &berth__system__v1__system__descriptor,
		.methods = system_methods,
		.n_methods = BT_ARRAY_LEN(system_methods),
		.ctx = s,
	};
	if (bt_server_add(s, &sys, e) < 0)
		goto fail;
	return s;
fail:
	bt_server_free(&s);
	return NULL;
}

int bt_server_add(bt_server *s, const bt_service *svc, bt_err *e)
{
	reg_service *r;

	if (bt_map_sget(s->services, svc->name))
		return bt_err_set(e, BT_ALREADY_EXISTS, "service %s registered twice", svc->name);
	r = bt_xzalloc(sizeof(*r));
	r->svc = *svc;
	r->by_index = bt_xcalloc(svc->desc->n_methods, sizeof(*r->by_index));
	for (size_t i = 0; i < svc->n_methods; i++) {
		unsigned j;
		for (j = 0; j < svc->desc->n_methods; j++)
			if (strcmp(svc->desc->methods[j].name, svc->methods[i].name) == 0)
				break;
		if (j == svc->desc->n_methods) {
			free(r->by_index);
			free(r);
			return bt_err_set(e, BT_INTERNAL, "service %s has no method %s", svc->name,
					  svc->methods[i].name);
		}
		r->by_index[j] = &svc->methods[i];
	}
	bt_map_sput(s->services, svc->name, r);
	return 0;
}

void bt_server_free(bt_server **sp)
{
	bt_server *s = *sp;
	bt_map_iter it;
	void *v;

	if (!s)
		return;
	/* Workers that outlived the grace period keep the server: leak it
	 * rather than free memory they use. */
	pthread_mutex_lock(&s->qmu);
	int busy = s->nworkers;
	pthread_mutex_unlock(&s->qmu);
	if (busy) {
		bt_log_warn("%d worker(s) still busy at shutdown", busy);
		*sp = NULL;
		return;
	}
	if (s->inflight) {
		bt_map_iter_init(&it, s->inflight);
		while (bt_map_iter_next(&it, NULL, NULL, &v))
			call_free(v);
		bt_map_free(&s->inflight);
	}
	if (s->orders) {
		bt_map_iter_init(&it, s->orders);
		while (bt_map_iter_next(&it, NULL, NULL, &v))
			free(v);
		bt_map_free(&s->orders);
	}
	if (s->services) {
		bt_map_iter_init(&it, s->services);
		while (bt_map_iter_next(&it, NULL, NULL, &v)) {
			free(((reg_service *)v)->by_index);
			free(v);
		}
		bt_map_free(&s->services);
	}
	while (s->qhead) {
		bt_call *c = s->qhead;
		s->qhead = c->next;
		(void)c; /* also in inflight: freed above */
	}
	bt_zmq_unbind(s->router, s->endpoint, &s->lock_fd);
	bt_zmq_close(&s->router);
	while (s->rhead) {
		reply *r = s->rhead;
		s->rhead = r->next;
		zmq_msg_close(&r->hdr);
		zmq_msg_close(&r->body);
		free(r);
	}
	pthread_mutex_destroy(&s->rmu);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	pthread_mutex_destroy(&s->qmu);
	pthread_cond_destroy(&s->qcv);
	pthread_cond_destroy(&s->exit_cv);
	free(s->daemon);
	free(s->endpoint);
	free(s);
	*sp = NULL;
}
