/*
 * gw_events — the gateway's events hub and the "events" service
 * (Subscribe), see gw_events.c.
 */
#ifndef GW_EVENTS_H
#define GW_EVENTS_H

#include "bt_err.h"
#include "bt_server.h"

typedef struct gw_events gw_events;

/* Binds the SUB socket the daemons publish to and starts the hub thread;
 * each subscriber gets a queue of queue_max events. */
int gw_events_start(const char *address, size_t queue_max, gw_events **out, bt_err *e);
void gw_events_free(gw_events **g);
void gw_events_service(gw_events *g, bt_service *svc);

#endif
