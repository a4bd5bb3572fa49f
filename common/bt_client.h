/*
 * bt_client — the RPC client: one DEALER connection to a berth endpoint
 * (the gateway, or a service's own socket), unary calls with deadlines,
 * pipelined calls, and server streams paced by credit.
 *
 * A bt_conn is used by one thread at a time; bt_pool hands connections to
 * worker threads.  ZeroMQ reconnects by itself; a call made while the peer
 * is unreachable fails with UNAVAILABLE once the connect timeout passes, and
 * calls in flight when the connection drops fail with UNAVAILABLE at once.
 */
#ifndef BT_CLIENT_H
#define BT_CLIENT_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "bt_err.h"
#include "bt_rpc.h"

typedef struct bt_conn bt_conn;
typedef struct bt_stream bt_stream;

typedef struct bt_conn_opts {
	int64_t timeout_ms;         /* default deadline of a unary call; 0 → 30 s */
	int64_t connect_timeout_ms; /* wait for a connection at most this; 0 → 3 s */
	/* CURVE, for tcp:// endpoints (z85-encoded keys); all NULL for none. */
	const char *server_key;
	const char *public_key;
	const char *secret_key;
} bt_conn_opts;

/* What to call and how. */
typedef struct bt_callspec {
	const char *service;
	const char *method;
	const char *ns;          /* namespace; NULL for none */
	int64_t timeout_ms;      /* 0: the connection's default; < 0: no deadline */
	const char *snapshotter; /* header fields, NULL when unused */
	const char *lease;
	const char *order_key;
	uint32_t window; /* stream window; 0: server default */
} bt_callspec;

bt_conn *bt_conn_new(const char *endpoint, const bt_conn_opts *o, bt_err *e);
void bt_conn_free(bt_conn **c);
const char *bt_conn_endpoint(const bt_conn *c);

/* Unary call: on success *resp is a message of type rdesc (free it with
 * protobuf_c_message_free_unpacked), on failure e holds the server's code
 * and message or the transport's (UNAVAILABLE, DEADLINE_EXCEEDED). */
int bt_conn_call(bt_conn *c, const bt_callspec *cs, const ProtobufCMessage *req,
		 const ProtobufCMessageDescriptor *rdesc, void **resp, bt_err *e);

/* Pipelining: send now, collect the reply later (replies to other pending
 * ids received meanwhile are kept). Every sent id must be collected. */
int bt_conn_send(bt_conn *c, const bt_callspec *cs, const ProtobufCMessage *req, uint64_t *id, bt_err *e);
int bt_conn_collect(bt_conn *c, uint64_t id, const ProtobufCMessageDescriptor *rdesc, void **resp, bt_err *e);
/* bt_conn_send with a body the caller encoded (large data without a copy);
 * takes ownership of body. */
int bt_conn_send_raw(bt_conn *c, const bt_callspec *cs, zmq_msg_t *body, uint64_t *id, bt_err *e);

/* Server stream: next yields 1 with an item (caller frees), 0 at the end,
 * -1 on error.  Freeing an unfinished stream cancels it on the server. */
bt_stream *bt_conn_stream(bt_conn *c, const bt_callspec *cs, const ProtobufCMessage *req,
			  const ProtobufCMessageDescriptor *item, bt_err *e);
int bt_stream_next(bt_stream *s, void **item, bt_err *e);
/* Like bt_stream_next, but hands over the item's encoded frame (to decode
 * by hand without copying large fields); close it with zmq_msg_close. */
int bt_stream_next_raw(bt_stream *s, zmq_msg_t *body, bt_err *e);
void bt_stream_free(bt_stream **s);

/* A pool of connections to one endpoint, safe to share between threads. */
typedef struct bt_pool bt_pool;
bt_pool *bt_pool_new(const char *endpoint, const bt_conn_opts *o);
void bt_pool_free(bt_pool **p);
bt_conn *bt_pool_get(bt_pool *p, bt_err *e);
/* Returns c to the pool (or closes it when the pool is full). */
void bt_pool_put(bt_pool *p, bt_conn *c);
const char *bt_pool_endpoint(const bt_pool *p);

#endif
