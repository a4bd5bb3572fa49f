/*
 * bt_events — a daemon's publisher of events (proto/berth/events/v1): one
 * per process, opened by bt_daemon_init, used from any thread.  Publishing
 * never waits: with no gateway listening, or a full queue, the event is
 * dropped (as containerd's are when nobody subscribes).  Without a
 * publisher (unit tests, tools) bt_event does nothing.
 */
#ifndef BT_EVENTS_H
#define BT_EVENTS_H

#include "bt_config.h"

/* Connects the process's publisher to the gateway's events endpoint. */
void bt_events_open(const bt_config *cfg, const char *source);
void bt_events_close(void);
/* The gateway's events endpoint (caller frees). */
char *bt_events_address(const bt_config *cfg);
/* Publishes topic in ns with fields given as key, value pairs ending in NULL. */
void bt_event(const char *ns, const char *topic, ...) __attribute__((sentinel));

#endif
