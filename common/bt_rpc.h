/*
 * bt_rpc — the wire codec shared by the server, the client and the gateway:
 * the envelope's headers (berth/rpc/v1/rpc.proto), the limits that bound
 * every frame, and the ZeroMQ socket set-up every berth socket goes through.
 *
 * Request:  [RequestHeader][body]     (control messages: [RequestHeader])
 * Reply:    [ResponseHeader][body]
 * A ROUTER socket sees the peer's routing id as an extra first frame.
 */
#ifndef BT_RPC_H
#define BT_RPC_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "berth/rpc/v1/rpc.pb-c.h"
#include "bt_err.h"

#define BT_PROTOCOL_VERSION 1u
/* Largest body a request or reply may carry (containerd's 16 MiB). */
#define BT_RPC_MAX_MSG (16u << 20)
/* Frames above this are dropped by ZeroMQ itself (the connection is cut):
 * between BT_RPC_MAX_MSG and this the peer gets RESOURCE_EXHAUSTED. */
#define BT_RPC_HARD_MAX_MSG (64u << 20)
/* Largest header frame. */
#define BT_RPC_MAX_HEADER (64u << 10)
/* Blob data travels in chunks of this size. */
#define BT_RPC_CHUNK (1u << 20)
/* Stream replies a server may send ahead of the client's credit. */
#define BT_RPC_DEFAULT_WINDOW 16u
#define BT_RPC_MAX_WINDOW 256u

typedef Berth__Rpc__V1__RequestHeader bt_reqhdr;
typedef Berth__Rpc__V1__ResponseHeader bt_resphdr;
typedef Berth__Rpc__V1__Principal bt_principal;

/* The process-wide ZeroMQ context (created on first use). */
void *bt_zmq_ctx(void);
/* Terminates the context at exit (all sockets must be closed). */
void bt_zmq_term(void);

/* Writes a process-unique inproc endpoint "inproc://bt-PREFIX-N" into buf. */
void bt_inproc_name(char *buf, size_t len, const char *prefix);

/* Creates a socket of type with berth's defaults (linger 0, no HWM limits,
 * hard message-size cap, fast reconnect). */
void *bt_zmq_socket(int type, bt_err *e);
/* Binds; for ipc:// endpoints creates the parent directory (0700), takes an
 * exclusive lock on "<path>.lock" so two servers never share a path, and
 * chmods the socket to mode. *lock_fd receives the held lock (or -1). */
int bt_zmq_bind(void *sock, const char *endpoint, unsigned mode, int *lock_fd, bt_err *e);
void bt_zmq_close(void **sock);
/* Starts monitoring events (ZMQ_EVENT_* bits) of sock on a fresh inproc
 * endpoint and returns the PAIR socket they arrive on, or NULL.  Stop it
 * with zmq_socket_monitor(sock, NULL, 0) before closing both. */
void *bt_zmq_monitor(void *sock, int events, bt_err *e);
/* The descriptor that becomes readable when sock's state may have changed
 * (ZMQ_FD), or -1.  It is edge-like: it is re-armed only by a receive (or
 * ZMQ_EVENTS) that finds nothing, and any call on the socket, a send too,
 * may consume its news.  So a loop that sleeps in poll(2) on it must, before
 * each sleep, have received from the socket until EAGAIN after its last
 * send there.  In exchange a turn of such a loop costs no zmq_poll: that
 * asks ZMQ_EVENTS of every socket twice per call, each time a system call
 * or two. */
int bt_zmq_fd(void *sock);
/* Unbinds endpoint and, for ipc, waits (up to a second) until ZeroMQ has
 * really closed the listener and removed the socket file, so a new server
 * can bind the same path at once. Then releases lock_fd. */
void bt_zmq_unbind(void *sock, const char *endpoint, int *lock_fd);

/* Decode a header frame (bounded). Caller frees with bt_reqhdr_free / bt_resphdr_free. */
bt_reqhdr *bt_reqhdr_decode(const void *p, size_t n, bt_err *e);
bt_resphdr *bt_resphdr_decode(const void *p, size_t n, bt_err *e);
void bt_reqhdr_free(bt_reqhdr **h);
void bt_resphdr_free(bt_resphdr **h);

/* Packs msg (NULL: empty body) into a new zmq message. */
void bt_msg_pack(zmq_msg_t *m, const ProtobufCMessage *msg);
/* Sends one frame built from msg; flags as zmq_msg_send. Returns 0 or -1 (errno). */
int bt_send_pb(void *sock, const ProtobufCMessage *msg, int flags);
/* Sends raw bytes as one frame. */
int bt_send_bytes(void *sock, const void *p, size_t n, int flags);

/* Receives every frame of one message, keeping at most max; *n receives the
 * count kept and *overflow tells whether more were read and dropped.
 * Returns 0, or -1 with errno (EAGAIN when nothing is there with ZMQ_DONTWAIT). */
int bt_recv_frames(void *sock, zmq_msg_t *frames, int max, int *n, bool *overflow, int flags);
void bt_close_frames(zmq_msg_t *frames, int n);

/* Frees an unpacked protobuf message through a pointer to it (cleanup attribute). */
void bt_pb_freep(void *msgp);
#define _cleanup_pb_ __attribute__((cleanup(bt_pb_freep)))

/* Checks that ns is a valid namespace name: empty → FAILED_PRECONDITION
 * "namespace is required", malformed → INVALID_ARGUMENT. */
int bt_rpc_check_namespace(const char *ns, bt_err *e);

#endif
