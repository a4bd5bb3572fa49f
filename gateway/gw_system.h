/*
 * gw_system — the gateway's own "system" service: Health of the gateway and
 * Version, which asks every backend for its Health.
 */
#ifndef GW_SYSTEM_H
#define GW_SYSTEM_H

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

#endif
