/*
 * gw_events — the gateway's fan-out of events.
 *
 * A hub thread reads every daemon's events from a SUB socket bound at the
 * events endpoint (and the gateway's own, injected by gw_events_publish),
 * decodes each once, and appends it to the queue of every subscriber whose
 * namespaces and filters it matches.  A queue holds at most
 * gateway.event_queue events: when a subscriber reads too slowly its oldest events are dropped
 * and counted, and the next one it gets says how many it missed.  Nothing
 * ever waits for a subscriber: the hub only appends under a lock, and each
 * Subscribe call's worker sends from its own queue at the pace its client
 * gives credit.  Memory is bounded by the queue size × MAX_SUBSCRIBERS events.
 */
#define _GNU_SOURCE
#include "gw_events.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <zmq.h>

#include "berth/events/v1/events.pb-c.h"
#include "bt_filter.h"
#include "bt_log.h"
#include "bt_pbmap.h"
#include "bt_rpc.h"
#include "bt_util.h"
#include "gw_auth.h"

#define MAX_SUBSCRIBERS 1024
#define WAIT_MS 200

typedef struct ev {
	Berth__Events__V1__Envelope *env; /* shared, reference counted */
	atomic_int refs;
} ev;

typedef struct sub {
	struct sub *next;
	char *ns;                  /* the header's namespace, NULL with all_namespaces */
	char **patterns;           /* a remote key's namespaces (NULL-terminated), NULL: all */
	bt_filter *filter;
	ev **q;
	size_t cap, head, len;
	uint64_t dropped;
	pthread_cond_t cv;
} sub;

struct gw_events {
	void *subsock;
	char *address;
	int lock_fd;
	pthread_t thread;
	bool running;
	atomic_int stop;
	pthread_mutex_t mu;
	sub *subs;
	int nsubs;
	size_t queue_max;
};

static void ev_unref(ev *e)
{
	if (e && atomic_fetch_sub(&e->refs, 1) == 1) {
		protobuf_c_message_free_unpacked(&e->env->base, NULL);
		free(e);
	}
}

static const char *env_field(void *obj, const char *const *path, size_t n)
{
	Berth__Events__V1__Envelope *m = obj;
	if (n == 1 && !strcmp(path[0], "topic"))
		return m->topic;
	if (n == 1 && !strcmp(path[0], "namespace"))
		return m->namespace_;
	if (n == 1 && !strcmp(path[0], "source"))
		return m->source;
	if (n == 2 && !strcmp(path[0], "fields"))
		for (size_t i = 0; i < m->n_fields; i++)
			if (!strcmp(m->fields[i]->key, path[1]))
				return m->fields[i]->value;
	return NULL;
}

static bool wants(const sub *s, Berth__Events__V1__Envelope *m)
{
	if (s->ns && strcmp(s->ns, m->namespace_))
		return false;
	if (s->patterns && !gw_key_allows(s->patterns, bt_strv_len(s->patterns), m->namespace_))
		return false;
	return bt_filter_match(s->filter, env_field, m);
}

/* Hands one decoded event to every subscriber that wants it (takes env). */
static void dispatch(gw_events *g, Berth__Events__V1__Envelope *env)
{
	ev *e = bt_xzalloc(sizeof(*e));

	e->env = env;
	atomic_init(&e->refs, 1);
	pthread_mutex_lock(&g->mu);
	for (sub *s = g->subs; s; s = s->next) {
		if (!wants(s, env))
			continue;
		if (s->len == s->cap) {
			/* the slowest reader loses its oldest event, nobody waits */
			ev_unref(s->q[s->head]);
			s->head = (s->head + 1) % s->cap;
			s->len--;
			s->dropped++;
		}
		atomic_fetch_add(&e->refs, 1);
		s->q[(s->head + s->len) % s->cap] = e;
		s->len++;
		pthread_cond_signal(&s->cv);
	}
	pthread_mutex_unlock(&g->mu);
	ev_unref(e);
}

static void *hub_main(void *arg)
{
	gw_events *g = arg;
	zmq_pollitem_t it = { .socket = g->subsock, .events = ZMQ_POLLIN };

	while (!atomic_load(&g->stop)) {
		if (zmq_poll(&it, 1, WAIT_MS) <= 0)
			continue;
		for (;;) {
			zmq_msg_t m;
			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, g->subsock, ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(&m);
				break;
			}
			Berth__Events__V1__Envelope *env = berth__events__v1__envelope__unpack(
				NULL, zmq_msg_size(&m), zmq_msg_data(&m));
			bool more = zmq_msg_more(&m);
			zmq_msg_close(&m);
			if (more) {
				/* events are one frame: drain and drop the rest */
				if (env)
					protobuf_c_message_free_unpacked(&env->base, NULL);
				continue;
			}
			if (env && env->topic && env->topic[0] == '/')
				dispatch(g, env);
			else if (env)
				protobuf_c_message_free_unpacked(&env->base, NULL);
		}
	}
	return NULL;
}

int gw_events_start(const char *address, size_t queue_max, gw_events **out, bt_err *e)
{
	gw_events *g = bt_xzalloc(sizeof(*g));
	int hwm = 100000;

	g->queue_max = queue_max > 0 ? queue_max : 1024;
	g->lock_fd = -1;
	atomic_init(&g->stop, 0);
	pthread_mutex_init(&g->mu, NULL);
	g->subsock = bt_zmq_socket(ZMQ_SUB, e);
	if (!g->subsock)
		goto fail;
	zmq_setsockopt(g->subsock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(g->subsock, ZMQ_SUBSCRIBE, "", 0);
	if (bt_zmq_bind(g->subsock, address, 0600, &g->lock_fd, e) < 0)
		goto fail;
	g->address = bt_xstrdup(address);
	if (pthread_create(&g->thread, NULL, hub_main, g) != 0) {
		bt_err_set(e, BT_INTERNAL, "cannot start the events thread");
		goto fail;
	}
	g->running = true;
	*out = g;
	return 0;
fail:
	gw_events_free(&g);
	return -1;
}

void gw_events_free(gw_events **gp)
{
	gw_events *g = *gp;
	if (!g)
		return;
	if (g->running) {
		atomic_store(&g->stop, 1);
		pthread_join(g->thread, NULL);
	}
	if (g->address)
		bt_zmq_unbind(g->subsock, g->address, &g->lock_fd);
	bt_zmq_close(&g->subsock);
	free(g->address);
	pthread_mutex_destroy(&g->mu);
	free(g);
	*gp = NULL;
}

/* --- Subscribe ---------------------------------------------------------------------------- */

static void h_subscribe(bt_call *call, void *ctx)
{
	gw_events *g = ctx;
	const Berth__Events__V1__SubscribeRequest *q = bt_call_req(call);
	const bt_principal *p = bt_call_principal(call);
	const char *ns = bt_call_namespace(call);
	sub *s = bt_xzalloc(sizeof(*s));
	bt_err e = { 0 };

	s->cap = g->queue_max;
	s->q = bt_xcalloc(s->cap, sizeof(*s->q));

	if (bt_filter_parse((const char *const *)q->filters, q->n_filters, &s->filter, &e) < 0)
		goto out;
	if (!q->all_namespaces) {
		if (bt_rpc_check_namespace(ns, &e) < 0)
			goto out;
		if (p && !gw_key_allows(p->namespaces, p->n_namespaces, ns)) {
			bt_err_set(&e, BT_PERMISSION_DENIED, "key %s may not use namespace \"%s\"", p->name, ns);
			goto out;
		}
		s->ns = bt_xstrdup(ns);
	}
	for (size_t i = 0; p && i < p->n_namespaces; i++)
		bt_strv_push(&s->patterns, p->namespaces[i]);
	pthread_cond_init(&s->cv, NULL);
	pthread_mutex_lock(&g->mu);
	if (g->nsubs >= MAX_SUBSCRIBERS) {
		pthread_mutex_unlock(&g->mu);
		pthread_cond_destroy(&s->cv);
		bt_err_set(&e, BT_RESOURCE_EXHAUSTED, "too many event subscribers (limit %d)", MAX_SUBSCRIBERS);
		goto out;
	}
	s->next = g->subs;
	g->subs = s;
	g->nsubs++;
	while (!bt_call_done(call)) {
		if (s->len == 0) {
			struct timespec ts = bt_timespec_in(CLOCK_REALTIME, (int64_t)WAIT_MS * 1000000);
			pthread_cond_timedwait(&s->cv, &g->mu, &ts);
			continue;
		}
		ev *one = s->q[s->head];
		s->head = (s->head + 1) % s->cap;
		s->len--;
		uint64_t dropped = s->dropped;
		s->dropped = 0;
		pthread_mutex_unlock(&g->mu);
		/* a copy of the shared envelope's top, with this subscriber's count */
		Berth__Events__V1__Envelope out = *one->env;
		out.dropped = dropped;
		int rc = bt_call_send(call, &out.base, &e);
		ev_unref(one);
		pthread_mutex_lock(&g->mu);
		if (rc < 0)
			break;
	}
	for (sub **pp = &g->subs; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	g->nsubs--;
	pthread_mutex_unlock(&g->mu);
	while (s->len) {
		ev_unref(s->q[s->head]);
		s->head = (s->head + 1) % s->cap;
		s->len--;
	}
	pthread_cond_destroy(&s->cv);
	memset(&e, 0, sizeof(e));
	bt_call_done_err(call, &e);
out:
	if (e.code)
		bt_call_error(call, &e);
	else
		bt_call_reply(call, NULL);
	bt_filter_free(&s->filter);
	free(s->ns);
	bt_strv_free(s->patterns);
	free(s->q);
	free(s);
}

static const bt_method methods[] = {
	{ "Subscribe", h_subscribe, BT_M_NO_NAMESPACE },
};

void gw_events_service(gw_events *g, bt_service *svc)
{
	svc->name = "events";
	svc->desc = &berth__events__v1__events__descriptor;
	svc->methods = methods;
	svc->n_methods = BT_ARRAY_LEN(methods);
	svc->ctx = g;
}
