/*
 * bt_server — the RPC server every berth daemon runs.
 *
 * One thread owns the ROUTER socket: it reads each request, checks the
 * envelope (version, service, method, namespace, sizes) and answers what is
 * malformed itself; everything else goes to a pool of worker threads that
 * grows on demand, so a slow handler never holds up the others.  Replies go
 * back to the socket thread over an inproc channel.  Streams are paced by
 * the client's credit; calls past their deadline or cancelled by the client
 * are flagged so their handlers stop.
 */
#ifndef BT_SERVER_H
#define BT_SERVER_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "bt_err.h"
#include "bt_rpc.h"

typedef struct bt_server bt_server;
typedef struct bt_call bt_call;

/* A handler answers its call exactly once with bt_call_reply or
 * bt_call_error, from the thread it runs on; after that the call is gone. */
typedef void (*bt_handler_fn)(bt_call *call, void *ctx);

enum {
	BT_M_NO_NAMESPACE = 1 << 0, /* the method does not need a namespace */
	/* The handler is cheap and never blocks (no lock another thread may
	 * hold for long, no I/O beyond a read-only database connection): it
	 * runs on the loop thread itself, saving two thread switches. It must
	 * answer with bt_call_reply/bt_call_error, never stream. */
	BT_M_INLINE = 1 << 1,
	/* The body is not decoded: the handler reads the encoded request with
	 * bt_call_body (to use large fields where they lie, without a copy)
	 * and must treat it as untrusted bytes. */
	BT_M_RAW = 1 << 2,
};

typedef struct bt_method {
	const char *name; /* as in the .proto service */
	bt_handler_fn fn;
	unsigned flags;
} bt_method;

typedef struct bt_service {
	const char *name;                      /* wire name: "content" */
	const ProtobufCServiceDescriptor *desc; /* method names and request types */
	const bt_method *methods;
	size_t n_methods;
	void *ctx; /* passed to every handler */
} bt_service;

typedef struct bt_server_opts {
	const char *daemon;   /* "berth-contentd", reported by system.Health */
	const char *endpoint; /* where to bind */
	unsigned socket_mode; /* ipc socket mode; default 0600 */
	int min_workers;      /* default 4 */
	int max_workers;      /* default 256 */
	int max_queue;        /* queued calls beyond which RESOURCE_EXHAUSTED; default 4096 */
	bool no_system;       /* do not register the "system" service (the caller will) */
} bt_server_opts;

/* Creates the server and binds its socket. */
bt_server *bt_server_new(const bt_server_opts *o, bt_err *e);
/* Registers a service; the server keeps pointers to svc's contents. */
int bt_server_add(bt_server *s, const bt_service *svc, bt_err *e);
/* Serves until bt_server_stop; then cancels what runs and waits (bounded) for it. */
int bt_server_run(bt_server *s, bt_err *e);
/* Asks the loop to stop. Async-signal-safe. */
void bt_server_stop(bt_server *s);
void bt_server_free(bt_server **s);
const char *bt_server_endpoint(const bt_server *s);
/* Monotonic ms of the loop's last turn (the loop turns at least every 100 ms). */
int64_t bt_server_last_tick(bt_server *s);

/* system.NamespaceUsage: what this daemon holds in ns, as lines appended to
 * *holds ("3 blobs"); none when it holds nothing.  Without one, a daemon
 * answers that it holds nothing. */
typedef int (*bt_ns_usage_fn)(void *arg, const char *ns, char ***holds, bt_err *e);
void bt_server_set_ns_usage(bt_server *s, bt_ns_usage_fn fn, void *arg);

/* The system.Health handler; ctx is the bt_server. For services that
 * register "system" themselves (no_system). */
void bt_server_health(bt_call *call, void *srv);

/* --- inside a handler --- */
const bt_reqhdr *bt_call_header(const bt_call *c);
/* The decoded request, of the method's input type (borrowed); NULL for BT_M_RAW methods. */
const void *bt_call_req(const bt_call *c);
/* The encoded request (borrowed, valid until the final reply). */
const uint8_t *bt_call_body(const bt_call *c, size_t *len);
const char *bt_call_namespace(const bt_call *c);
const char *bt_call_method(const bt_call *c);
/* The principal the gateway established, or NULL for a direct caller. */
const bt_principal *bt_call_principal(const bt_call *c);
/* True once the client cancelled, the deadline passed, the client went away
 * or the server is stopping. */
bool bt_call_done(bt_call *c);
/* Milliseconds left before the deadline, or -1 when there is none. */
int64_t bt_call_remaining_ms(const bt_call *c);
/* Fills e with why the call is done (CANCELLED / DEADLINE_EXCEEDED / UNAVAILABLE). */
int bt_call_done_err(bt_call *c, bt_err *e);

/* Sends one stream reply (final = false), waiting for the client's credit.
 * Returns -1 with e filled when the call is done. */
int bt_call_send(bt_call *c, const ProtobufCMessage *item, bt_err *e);
/* Sends one stream reply whose body the handler encoded itself (to move
 * large data without a copy); takes ownership of body. */
int bt_call_send_raw(bt_call *c, zmq_msg_t *body, bt_err *e);
/* Final OK reply; resp NULL sends an empty body (end of a stream). */
void bt_call_reply(bt_call *c, const ProtobufCMessage *resp);
/* Final error reply. */
void bt_call_error(bt_call *c, const bt_err *e);
void bt_call_errorf(bt_call *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
