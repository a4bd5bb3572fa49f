/*
 * bt_wire — berth's envelope over a unix stream socket: the gateway's
 * unix:// door (docs/protocol.md), for clients that need not carry libzmq.
 *
 * A message is [u32 LE header length][u32 LE body length][header][body].
 * A body length of BT_WIRE_NOBODY means no body at all: a control message
 * (credit or cancel), which is not the same as an empty body.  A request
 * carries a RequestHeader and a reply a ResponseHeader, exactly as the two
 * frames of a ZeroMQ message do; the limits are the same too: a header of
 * at most BT_RPC_MAX_HEADER bytes, a body of at most BT_RPC_MAX_MSG (up to
 * BT_RPC_HARD_MAX_MSG it is read and dropped, and the request refused;
 * beyond, or a header too long, the stream cannot be trusted any more).
 *
 * Both sides are non-blocking pieces: bt_wire_recv takes the next complete
 * message out of what a descriptor has, bt_wire_put queues one and
 * bt_wire_flush writes what the descriptor takes.
 */
#ifndef BT_WIRE_H
#define BT_WIRE_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "bt_err.h"

#define BT_WIRE_NOBODY 0xffffffffu
#define BT_WIRE_PREFIX 8u

/* One received message.  hdr points into the reader's buffer and stays
 * valid until its next bt_wire_recv; body is the caller's (close it). */
typedef struct bt_wire_msg {
	const uint8_t *hdr;
	size_t hlen;
	bool has_body;
	zmq_msg_t body;    /* empty when !has_body or too_big */
	uint32_t too_big;  /* nonzero: the body's length, over BT_RPC_MAX_MSG, dropped */
} bt_wire_msg;

typedef struct bt_wire_in {
	uint8_t *buf;
	size_t cap, off, len; /* unparsed bytes: buf[off, off + len) */
	int state;            /* reading a prefix and header, a large body, or bytes to drop */
	uint8_t *hbuf;        /* the header of the message whose body is being read */
	size_t hcap, hlen;
	zmq_msg_t body;
	size_t have;
	uint64_t skip;
	uint32_t dropped;
} bt_wire_in;

void bt_wire_in_init(bt_wire_in *in);
void bt_wire_in_free(bt_wire_in *in);

/*
 * The next complete message from fd (non-blocking): 1 with *m, 0 at the
 * end of the stream, -1 with errno: EAGAIN when no message is complete yet
 * (wait for POLLIN), EPROTO when the framing is broken (e says how, with
 * its code; the stream is unusable), or the error of read(2).
 */
int bt_wire_recv(bt_wire_in *in, int fd, bt_wire_msg *m, bt_err *e);

typedef struct bt_wire_chunk bt_wire_chunk;

typedef struct bt_wire_out {
	bt_wire_chunk *head, *tail;
	size_t bytes; /* queued, not yet written */
} bt_wire_out;

/* Lets fd's send buffer hold BT_WIRE_SNDBUF bytes (above the system's
 * wmem_max only for root), so a 1 MiB chunk goes out in one write. */
void bt_wire_tune(int fd);
#define BT_WIRE_SNDBUF (4 << 20)

/* Queues hdr (packed now) and body (taken over; NULL: no body). */
void bt_wire_put(bt_wire_out *o, const ProtobufCMessage *hdr, zmq_msg_t *body);
/* Writes what fd takes without blocking (MSG_NOSIGNAL): 0 when all is
 * written, 1 when some is left (wait for POLLOUT), -1 with errno. */
int bt_wire_flush(bt_wire_out *o, int fd);
/* Drops everything queued. */
void bt_wire_out_free(bt_wire_out *o);

#endif
