/*
 * berth_client — connection, defaults, errors, version and health.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "berth/system/v1/system.pb-c.h"
#include "berth_internal.h"
#include "bt_pbmap.h"
#include "bt_rpc.h"
#include "bt_util.h"

_Static_assert((int)BERTH_UNAUTHENTICATED == (int)BT_UNAUTHENTICATED, "public codes match");
_Static_assert(sizeof(((berth_error *)0)->message) == BT_ERR_MSG_MAX, "message sizes match");

const char *berth_code_name(int code)
{
	return bt_code_name(code);
}

int berth_fail(berth_error *err, const bt_err *e)
{
	if (err) {
		err->code = e->code ? e->code : BERTH_UNKNOWN;
		err->transport = e->transport;
		snprintf(err->message, sizeof(err->message), "%s", e->msg);
	}
	return -1;
}

const char *berth_ns(const berth_client *c, const char *ns)
{
	return ns ? ns : c->ns;
}

bt_callspec berth_spec(const berth_client *c, const char *service, const char *method, const char *ns)
{
	bt_callspec cs = { .service = service, .method = method, .ns = berth_ns(c, ns), .timeout_ms = c->timeout_ms };
	return cs;
}

berth_client *berth_client_new(const berth_options *opts, berth_error *err)
{
	berth_client *c = bt_xzalloc(sizeof(*c));
	const char *addr = opts ? opts->address : NULL;
	const char *ns = opts ? opts->namespace_ : NULL;
	bt_err e = { 0 };

	if (!addr || !*addr)
		addr = getenv("BERTH_ADDRESS");
	if (!addr || !*addr)
		addr = BERTH_DEFAULT_ADDRESS;
	if (!ns)
		ns = getenv("BERTH_NAMESPACE");
	if (!ns || !*ns)
		ns = BERTH_DEFAULT_NAMESPACE;
	c->address = bt_xstrdup(addr);
	c->ns = bt_xstrdup(ns);
	c->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
	bt_conn_opts co = {
		.timeout_ms = c->timeout_ms,
		.server_key = opts ? opts->server_key : NULL,
		.public_key = opts ? opts->public_key : NULL,
		.secret_key = opts ? opts->secret_key : NULL,
	};
	c->conn = bt_conn_new(addr, &co, &e);
	if (!c->conn) {
		berth_fail(err, &e);
		berth_client_free(&c);
		return NULL;
	}
	return c;
}

void berth_client_free(berth_client **cp)
{
	berth_client *c = *cp;
	if (!c)
		return;
	bt_conn_free(&c->conn);
	free(c->address);
	free(c->ns);
	free(c);
	*cp = NULL;
}

void berth_client_set_namespace(berth_client *c, const char *ns)
{
	free(c->ns);
	c->ns = bt_xstrdup(ns);
}

const char *berth_client_namespace(const berth_client *c)
{
	return c->ns;
}

const char *berth_client_address(const berth_client *c)
{
	return c->address;
}

void berth_labels_from_public(const berth_label *l, size_t n, bt_labels *out)
{
	for (size_t i = 0; i < n; i++)
		bt_labels_set(out, l[i].key ? l[i].key : "", l[i].value ? l[i].value : "");
}

berth_label *berth_labels_to_public(void *const *pb_entries, size_t n)
{
	berth_label *l;

	if (n == 0)
		return NULL;
	l = bt_xcalloc(n, sizeof(*l));
	for (size_t i = 0; i < n; i++) {
		const bt_pb_kv *kv = pb_entries[i];
		l[i].key = bt_xstrdup(kv->key);
		l[i].value = bt_xstrdup(kv->value);
	}
	return l;
}

void berth_labels_free(berth_label *l, size_t n)
{
	for (size_t i = 0; l && i < n; i++) {
		free(l[i].key);
		free(l[i].value);
	}
	free(l);
}

static void daemon_from_pb(const Berth__System__V1__HealthResponse *h, berth_daemon_info *d)
{
	d->daemon = bt_xstrdup(h->daemon);
	d->version = bt_xstrdup(h->version);
	d->protocol = h->protocol;
	d->pid = h->pid;
	d->uptime_seconds = h->uptime_seconds;
}

void berth_daemon_info_clear(berth_daemon_info *d)
{
	free(d->daemon);
	free(d->version);
	memset(d, 0, sizeof(*d));
}

int berth_health(berth_client *c, berth_daemon_info *out, berth_error *err)
{
	Berth__System__V1__HealthRequest req = BERTH__SYSTEM__V1__HEALTH_REQUEST__INIT;
	_cleanup_pb_ Berth__System__V1__HealthResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "system", "Health", NULL);
	bt_err e;

	cs.ns = NULL;
	if (bt_conn_call(c->conn, &cs, &req.base, &berth__system__v1__health_response__descriptor, (void **)&resp,
			 &e) < 0)
		return berth_fail(err, &e);
	daemon_from_pb(resp, out);
	return 0;
}

int berth_version_get(berth_client *c, berth_version **out, berth_error *err)
{
	Berth__System__V1__VersionRequest req = BERTH__SYSTEM__V1__VERSION_REQUEST__INIT;
	_cleanup_pb_ Berth__System__V1__VersionResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "system", "Version", NULL);
	berth_version *v;
	bt_err e;

	cs.ns = NULL;
	if (bt_conn_call(c->conn, &cs, &req.base, &berth__system__v1__version_response__descriptor, (void **)&resp,
			 &e) < 0)
		return berth_fail(err, &e);
	v = bt_xzalloc(sizeof(*v));
	if (resp->gateway)
		daemon_from_pb(resp->gateway, &v->gateway);
	v->n_backends = resp->n_backends;
	v->backends = bt_xcalloc(resp->n_backends, sizeof(*v->backends));
	for (size_t i = 0; i < resp->n_backends; i++) {
		const Berth__System__V1__BackendStatus *b = resp->backends[i];
		v->backends[i].service = bt_xstrdup(b->service);
		v->backends[i].address = bt_xstrdup(b->address);
		v->backends[i].healthy = b->healthy;
		v->backends[i].error = bt_xstrdup(b->error);
		v->backends[i].latency_us = b->latency_us;
		if (b->health)
			daemon_from_pb(b->health, &v->backends[i].daemon);
	}
	*out = v;
	return 0;
}

void berth_version_free(berth_version **vp)
{
	berth_version *v = *vp;
	if (!v)
		return;
	berth_daemon_info_clear(&v->gateway);
	for (size_t i = 0; i < v->n_backends; i++) {
		free(v->backends[i].service);
		free(v->backends[i].address);
		free(v->backends[i].error);
		berth_daemon_info_clear(&v->backends[i].daemon);
	}
	free(v->backends);
	free(v);
	*vp = NULL;
}

int berth_stream_each(berth_client *c, bt_callspec *cs, const ProtobufCMessage *req,
		      const ProtobufCMessageDescriptor *d, void (*each)(const void *msg, void *arg), void *arg,
		      bt_err *e)
{
	bt_stream *s;
	int rc;

	cs->timeout_ms = -1;
	s = bt_conn_stream(c->conn, cs, req, d, e);
	if (!s)
		return -1;
	for (;;) {
		ProtobufCMessage *m = NULL;
		rc = bt_stream_next(s, (void **)&m, e);
		if (rc <= 0)
			break;
		each(m, arg);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	bt_stream_free(&s);
	return rc < 0 ? -1 : 0;
}
