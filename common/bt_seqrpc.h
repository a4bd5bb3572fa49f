/*
 * bt_seqrpc — berth's protobuf envelope over a plain unix SOCK_SEQPACKET
 * socket, for peers too small to carry libzmq (berth-shim and its callers).
 *
 * One datagram is one message: [u32 LE header length][header][body], the
 * header a berth.rpc.v1 RequestHeader (requests) or ResponseHeader
 * (replies), the body the method's message.  Sockets are paths in a 0700
 * directory, never abstract; a path longer than sun_path is reached through
 * /proc/self/fd/N of its directory.
 *
 * The server side is non-blocking pieces (listen, recv, split, reply) for a
 * poll loop; the client side is a small blocking caller with a deadline.
 */
#ifndef BT_SEQRPC_H
#define BT_SEQRPC_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "bt_err.h"
#include "berth/rpc/v1/rpc.pb-c.h"

/* Largest datagram either side accepts (header + body). */
#define BT_SEQRPC_MAX (1u << 20)

/* Listening socket at path (mode 0600), non-blocking, close-on-exec.  A
 * stale socket file is replaced; a live one (a peer answers) is refused with
 * ALREADY_EXISTS.  Returns the fd or -1. */
int bt_seqrpc_listen(const char *path, bt_err *e);

/* The same two for a unix socket of any type (SOCK_STREAM: the gateway's
 * unix:// door, bt_wire.h). */
int bt_unix_listen(const char *path, int type, bt_err *e);
int bt_unix_connect(const char *path, int type, bt_err *e);

/* Connected, blocking, close-on-exec socket to path; -1 with UNAVAILABLE
 * (transport) when nobody listens there. */
int bt_seqrpc_connect(const char *path, bt_err *e);

/* Sends one message: header then body (either may be NULL = empty).
 * flags go to send(2) (MSG_DONTWAIT for a server); MSG_NOSIGNAL is added.
 * Returns 0 or -1 (errno kept, e filled). */
int bt_seqrpc_send(int fd, const ProtobufCMessage *hdr, const ProtobufCMessage *body, int flags,
		   bt_err *e);

/* Receives one datagram into a new buffer (*buf, caller frees).  Returns 1
 * with a message, 0 at end of stream, -1 on error (errno EAGAIN when
 * nothing is there on a non-blocking socket; E2BIG, consumed, when the
 * datagram exceeds BT_SEQRPC_MAX). */
int bt_seqrpc_recv(int fd, int flags, uint8_t **buf, size_t *len, bt_err *e);

/* Splits a datagram into header and body (pointers into buf). */
int bt_seqrpc_split(const uint8_t *buf, size_t len, const uint8_t **hdr, size_t *hlen,
		    const uint8_t **body, size_t *blen, bt_err *e);

/* Sends a reply to request_id: code/message from e (NULL or BT_OK = OK,
 * body sent), else the error and no body. */
int bt_seqrpc_reply(int fd, uint64_t request_id, const bt_err *status, const ProtobufCMessage *body,
		    int flags, bt_err *e);

/* A blocking client on one connection. */
typedef struct bt_seqcli bt_seqcli;

/* Connects to path; requests carry service and namespace (ns may be NULL).
 * Caller owns the result. */
bt_seqcli *bt_seqcli_open(const char *path, const char *service, const char *ns, bt_err *e);
void bt_seqcli_free(bt_seqcli **c);
/* The connection's fd (for a caller's own poll loop). */
int bt_seqcli_fd(const bt_seqcli *c);

/*
 * Unary call: sends method with req, waits at most timeout_ms (0: no
 * deadline) for its reply, skipping replies to older requests.  On OK
 * unpacks the body with resp_desc into *resp (caller frees with
 * protobuf_c_message_free_unpacked).  A service error comes back in e with
 * its code; a transport failure (connection lost, deadline) sets
 * e->transport.  Returns 0 or -1.
 */
int bt_seqcli_call(bt_seqcli *c, const char *method, const ProtobufCMessage *req,
		   const ProtobufCMessageDescriptor *resp_desc, int timeout_ms, ProtobufCMessage **resp,
		   bt_err *e);

#endif
