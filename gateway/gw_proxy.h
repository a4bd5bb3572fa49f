/*
 * gw_proxy — the gateway's forwarding loop: the public ROUTER socket, one
 * DEALER per backend service, and the table of requests in flight.
 *
 * For each request it checks the envelope (version, service, method,
 * namespace, size, the client's in-flight count), sets the principal,
 * renumbers the request and forwards it; replies are renumbered back.  A
 * request for a backend that is not connected waits for it a little (the
 * connect grace, within the request's deadline) and then gets UNAVAILABLE;
 * a backend that drops
 * answers UNAVAILABLE for everything it had; a deadline that passes answers
 * DEADLINE_EXCEEDED and cancels the backend's work.
 */
#ifndef GW_PROXY_H
#define GW_PROXY_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "bt_err.h"
#include "gw_auth.h"

typedef struct gw_proxy gw_proxy;

typedef struct gw_route {
	const char *service;                     /* wire name */
	const ProtobufCServiceDescriptor *desc;  /* its methods */
	const char *address;                     /* backend endpoint */
	bool no_namespace;                       /* methods need no namespace */
	/* For a service with several backends chosen by the header's
	 * snapshotter field (the snapshots service): this backend's name.
	 * NULL: the service's only backend. */
	const char *snapshotter;
	bool is_default; /* the backend a request naming none goes to */
} gw_route;

typedef struct gw_proxy_opts {
	const char *public_address;
	unsigned socket_mode;
	const char *socket_group; /* NULL/"" keeps the owner's group */
	/* A listening unix socket at public_address passed by systemd
	 * (berth-gatewayd.socket), used through ZMQ_USE_FD instead of binding
	 * a new one; its mode and group are the socket unit's.  Values below 3
	 * mean none (systemd passes descriptors from 3 on). */
	int activated_fd;
	/* The unix stream door (bt_wire.h): unix:///PATH, NULL/"" for none;
	 * same mode and group as the ipc socket.  A listening socket systemd
	 * passed for it (>= 3), or 0. */
	const char *unix_address;
	int unix_activated_fd;
	int max_in_flight;        /* per client */
	int64_t connect_grace_ms; /* hold a request this long for a backend that is reconnecting */
	/* Called for every request forwarded in a namespace (from the loop's thread). */
	void (*on_namespace)(void *arg, const char *ns, const char *method);
	void *on_namespace_arg;
	/* Remote clients: a tcp:// endpoint with CURVE (NULL/"" for none), the
	 * gateway's secret key (z85), and the keys that may connect. */
	const char *tcp_address;
	const char *secret_key;
	const gw_auth *auth;
} gw_proxy_opts;

gw_proxy *gw_proxy_new(const gw_proxy_opts *o, bt_err *e);
/* Adds a backend route (before gw_proxy_run). */
int gw_proxy_add_route(gw_proxy *p, const gw_route *r, bt_err *e);
int gw_proxy_run(gw_proxy *p, bt_err *e);
/* Async-signal-safe. */
void gw_proxy_stop(gw_proxy *p);
void gw_proxy_free(gw_proxy **p);
int64_t gw_proxy_last_tick(gw_proxy *p);

/*
 * A fence over one namespace, for a garbage collection (docs/gc.md): while
 * it is up, every request in that namespace that the classifier does not
 * pass is held in the gateway, in order, until the fence is lifted (or its
 * deadline passes); other requests and namespaces flow as before.
 *
 * gw_proxy_fence puts it up from any thread but the loop's and returns once
 * no request it would hold is still in flight to a backend (they were sent
 * before it went up): 0, or UNAVAILABLE (fence lifted again) when a request
 * classified GW_FENCE_BUSY is in flight, when those to wait for are not
 * answered within timeout_ms, or when the loop has stopped.  One fence at a
 * time: a second caller waits for the first to be lifted.
 */
typedef enum gw_fence_kind {
	GW_FENCE_PASS, /* flows through a fence */
	GW_FENCE_HOLD, /* held by a fence; one in flight is waited for */
	GW_FENCE_BUSY, /* held by a fence; one in flight refuses it */
} gw_fence_kind;
typedef gw_fence_kind (*gw_fence_classify)(const char *service, const char *method);

int gw_proxy_fence(gw_proxy *p, const char *ns, gw_fence_classify cls, int64_t timeout_ms, bt_err *e);
void gw_proxy_unfence(gw_proxy *p);

#endif
