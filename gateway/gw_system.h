/*
 * gw_system — the gateway's own "system" service: Health of the gateway and
 * Version, which asks every backend for its Health.
 */
#ifndef GW_SYSTEM_H
#define GW_SYSTEM_H

#include "bt_client.h"
#include "bt_server.h"

typedef struct gw_backend_ref {
	const char *service;
	const char *address;
} gw_backend_ref;

typedef struct gw_system {
	bt_server *srv; /* the gateway's local server (for Health) */
	const gw_backend_ref *backends;
	size_t n_backends;
} gw_system;

void gw_system_service(gw_system *sys, bt_service *svc);

/* One backend's answer to gw_ask_all: resp (of the reply type) or err. */
typedef struct gw_answer {
	void *resp;
	bt_err err;
	int64_t latency_us;
} gw_answer;

/* Asks every backend at once (all requests sent, then all replies
 * collected), so that one dead backend costs at most the timeouts; the
 * namespace is cs->ns.  Free the answers with gw_answers_free. */
gw_answer *gw_ask_all(const gw_backend_ref *b, size_t n, const bt_callspec *cs, const ProtobufCMessage *req,
		      const ProtobufCMessageDescriptor *rd, int64_t timeout_ms, int64_t connect_ms);
void gw_answers_free(gw_answer *a, size_t n);

#endif
