/*
 * gw_system — Version: the suite's version and the health of every backend,
 * asked in parallel with a short deadline so one dead backend costs at most
 * that deadline.
 */
#define _GNU_SOURCE
#include "gw_system.h"

#include <string.h>
#include <unistd.h>

#include "berth/system/v1/system.pb-c.h"
#include "bt_client.h"
#include "bt_util.h"

#define PROBE_TIMEOUT_MS 1000

static void h_health(bt_call *call, void *ctx)
{
	gw_system *sys = ctx;
	bt_server_health(call, sys->srv);
}

gw_answer *gw_ask_all(const gw_backend_ref *b, size_t n, const bt_callspec *cs, const ProtobufCMessage *req,
		      const ProtobufCMessageDescriptor *rd, int64_t timeout_ms, int64_t connect_ms)
{
	gw_answer *a = bt_xcalloc(n ? n : 1, sizeof(*a));
	bt_conn **c = bt_xcalloc(n ? n : 1, sizeof(*c));
	uint64_t *id = bt_xcalloc(n ? n : 1, sizeof(*id));
	int64_t *started = bt_xcalloc(n ? n : 1, sizeof(*started));
	bool *sent = bt_xcalloc(n ? n : 1, sizeof(*sent));
	bt_conn_opts o = { .timeout_ms = timeout_ms, .connect_timeout_ms = connect_ms };
	bt_callspec spec = *cs;

	spec.timeout_ms = timeout_ms;
	for (size_t i = 0; i < n; i++) {
		c[i] = bt_conn_new(b[i].address, &o, &a[i].err);
		started[i] = bt_mono_ns();
		sent[i] = c[i] && bt_conn_send(c[i], &spec, req, &id[i], &a[i].err) == 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (sent[i] && bt_conn_collect(c[i], id[i], rd, &a[i].resp, &a[i].err) == 0)
			a[i].latency_us = (bt_mono_ns() - started[i]) / 1000;
		bt_conn_free(&c[i]);
	}
	free(c);
	free(id);
	free(started);
	free(sent);
	return a;
}

void gw_answers_free(gw_answer *a, size_t n)
{
	for (size_t i = 0; a && i < n; i++)
		if (a[i].resp)
			protobuf_c_message_free_unpacked(a[i].resp, NULL);
	free(a);
}

static void h_version(bt_call *call, void *ctx)
{
	gw_system *sys = ctx;
	Berth__System__V1__VersionResponse resp = BERTH__SYSTEM__V1__VERSION_RESPONSE__INIT;
	Berth__System__V1__HealthResponse gw = BERTH__SYSTEM__V1__HEALTH_RESPONSE__INIT;
	size_t n = sys->n_backends;
	Berth__System__V1__BackendStatus *st = bt_xcalloc(n ? n : 1, sizeof(*st));
	Berth__System__V1__BackendStatus **stp = bt_xcalloc(n ? n : 1, sizeof(*stp));
	bt_callspec cs = { .service = "system", .method = "Health" };
	Berth__System__V1__HealthRequest req = BERTH__SYSTEM__V1__HEALTH_REQUEST__INIT;
	char *services[] = { (char *)"system" };
	gw_answer *a = gw_ask_all(sys->backends, n, &cs, &req.base, &berth__system__v1__health_response__descriptor,
				  PROBE_TIMEOUT_MS, PROBE_TIMEOUT_MS);

	for (size_t i = 0; i < n; i++) {
		berth__system__v1__backend_status__init(&st[i]);
		st[i].service = (char *)sys->backends[i].service;
		st[i].address = (char *)sys->backends[i].address;
		st[i].healthy = a[i].resp != NULL;
		st[i].health = a[i].resp;
		st[i].latency_us = a[i].latency_us;
		st[i].error = a[i].resp ? (char *)"" : a[i].err.msg;
		stp[i] = &st[i];
	}
	gw.daemon = (char *)"berth-gatewayd";
	gw.version = (char *)BERTH_VERSION;
	gw.protocol = BT_PROTOCOL_VERSION;
	gw.pid = (int32_t)getpid();
	gw.n_services = 1;
	gw.services = services;
	resp.gateway = &gw;
	resp.n_backends = n;
	resp.backends = stp;
	bt_call_reply(call, &resp.base);
	gw_answers_free(a, n);
	free(st);
	free(stp);
}

static const bt_method methods[] = {
	{ "Health", h_health, BT_M_NO_NAMESPACE },
	{ "Version", h_version, BT_M_NO_NAMESPACE },
};

void gw_system_service(gw_system *sys, bt_service *svc)
{
	svc->name = "system";
	svc->desc = &berth__system__v1__system__descriptor;
	svc->methods = methods;
	svc->n_methods = BT_ARRAY_LEN(methods);
	svc->ctx = sys;
}
