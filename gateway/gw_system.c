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

typedef struct probe {
	bt_conn *c;
	uint64_t id;
	int64_t started;
	bool sent;
	bt_err err;
	Berth__System__V1__HealthResponse *resp;
	int64_t latency_us;
} probe;

static void h_version(bt_call *call, void *ctx)
{
	gw_system *sys = ctx;
	Berth__System__V1__VersionResponse resp = BERTH__SYSTEM__V1__VERSION_RESPONSE__INIT;
	Berth__System__V1__HealthResponse gw = BERTH__SYSTEM__V1__HEALTH_RESPONSE__INIT;
	size_t n = sys->n_backends;
	probe *pr = bt_xcalloc(n, sizeof(*pr));
	Berth__System__V1__BackendStatus *st = bt_xcalloc(n, sizeof(*st));
	Berth__System__V1__BackendStatus **stp = bt_xcalloc(n, sizeof(*stp));
	bt_conn_opts o = { .timeout_ms = PROBE_TIMEOUT_MS, .connect_timeout_ms = PROBE_TIMEOUT_MS };
	bt_callspec cs = { .service = "system", .method = "Health", .timeout_ms = PROBE_TIMEOUT_MS };
	Berth__System__V1__HealthRequest req = BERTH__SYSTEM__V1__HEALTH_REQUEST__INIT;
	char *services[] = { (char *)"system" };

	/* Send all probes first, then collect: they run side by side. */
	for (size_t i = 0; i < n; i++) {
		pr[i].c = bt_conn_new(sys->backends[i].address, &o, &pr[i].err);
		pr[i].started = bt_mono_ns();
		if (pr[i].c && bt_conn_send(pr[i].c, &cs, &req.base, &pr[i].id, &pr[i].err) == 0)
			pr[i].sent = true;
	}
	for (size_t i = 0; i < n; i++) {
		if (pr[i].sent &&
		    bt_conn_collect(pr[i].c, pr[i].id, &berth__system__v1__health_response__descriptor,
				    (void **)&pr[i].resp, &pr[i].err) == 0)
			pr[i].latency_us = (bt_mono_ns() - pr[i].started) / 1000;
		berth__system__v1__backend_status__init(&st[i]);
		st[i].service = (char *)sys->backends[i].service;
		st[i].address = (char *)sys->backends[i].address;
		st[i].healthy = pr[i].resp != NULL;
		st[i].health = pr[i].resp;
		st[i].latency_us = pr[i].latency_us;
		st[i].error = pr[i].resp ? (char *)"" : pr[i].err.msg;
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
	for (size_t i = 0; i < n; i++) {
		if (pr[i].resp)
			protobuf_c_message_free_unpacked(&pr[i].resp->base, NULL);
		bt_conn_free(&pr[i].c);
	}
	free(pr);
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
