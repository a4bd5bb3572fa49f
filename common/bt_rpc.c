/*
 * bt_rpc — envelope codec and ZeroMQ socket set-up.
 */
#define _GNU_SOURCE
#include "bt_rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bt_ident.h"
#include "bt_util.h"

_Static_assert((int)BERTH__RPC__V1__CODE__UNAUTHENTICATED == (int)BT_UNAUTHENTICATED, "codes match the wire");
_Static_assert((int)BERTH__RPC__V1__CODE__UNAVAILABLE == (int)BT_UNAVAILABLE, "codes match the wire");
_Static_assert((unsigned)BERTH__RPC__V1__VERSION__PROTOCOL_VERSION == BT_PROTOCOL_VERSION, "version matches");

static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
static void *zctx;

static void ctx_init(void)
{
	zctx = zmq_ctx_new();
	if (!zctx)
		bt_oom();
	/* Our own limits bound every queue; ZeroMQ's socket count must not. */
	zmq_ctx_set(zctx, ZMQ_MAX_SOCKETS, 65536);
	zmq_ctx_set(zctx, ZMQ_BLOCKY, 0);
}

void *bt_zmq_ctx(void)
{
	pthread_once(&ctx_once, ctx_init);
	return zctx;
}

void bt_zmq_term(void)
{
	if (zctx) {
		zmq_ctx_term(zctx);
		zctx = NULL;
	}
}

void bt_inproc_name(char *buf, size_t len, const char *prefix)
{
	static atomic_ulong counter;
	snprintf(buf, len, "inproc://bt-%s-%lu", prefix, atomic_fetch_add(&counter, 1) + 1);
}

void *bt_zmq_socket(int type, bt_err *e)
{
	void *s = zmq_socket(bt_zmq_ctx(), type);
	int zero = 0, ivl = 20, ivl_max = 250;
	int64_t maxmsg = BT_RPC_HARD_MAX_MSG;

	if (!s) {
		bt_err_errno(e, errno, "zmq socket");
		return NULL;
	}
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(s, ZMQ_SNDHWM, &zero, sizeof(zero));
	zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof(zero));
	zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl));
	zmq_setsockopt(s, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof(ivl_max));
	if (type != ZMQ_PUSH && type != ZMQ_PULL && type != ZMQ_PAIR)
		zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
	return s;
}

void *bt_zmq_monitor(void *sock, int events, bt_err *e)
{
	char ep[64];
	void *m;

	bt_inproc_name(ep, sizeof(ep), "mon");
	if (zmq_socket_monitor(sock, ep, events) < 0) {
		bt_err_set(e, BT_INTERNAL, "monitor: %s", zmq_strerror(errno));
		return NULL;
	}
	m = zmq_socket(bt_zmq_ctx(), ZMQ_PAIR);
	if (!m || zmq_connect(m, ep) < 0) {
		bt_err_set(e, BT_INTERNAL, "monitor: %s", zmq_strerror(errno));
		if (m)
			zmq_close(m);
		zmq_socket_monitor(sock, NULL, 0);
		return NULL;
	}
	return m;
}

void bt_zmq_close(void **sock)
{
	if (*sock) {
		zmq_close(*sock);
		*sock = NULL;
	}
}

int bt_zmq_fd(void *sock)
{
	int fd = -1;
	size_t len = sizeof(fd);

	if (zmq_getsockopt(sock, ZMQ_FD, &fd, &len) < 0)
		return -1;
	return fd;
}

int bt_zmq_bind(void *sock, const char *endpoint, unsigned mode, int *lock_fd, bt_err *e)
{
	*lock_fd = -1;
	if (bt_startswith(endpoint, "ipc://")) {
		const char *path = endpoint + 6;
		_cleanup_free_ char *dir = bt_xstrdup(path);
		_cleanup_free_ char *lock = bt_xasprintf("%s.lock", path);
		char *slash = strrchr(dir, '/');
		int fd;

		if (path[0] != '/' || path[1] == '\0')
			return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: ipc endpoints need an absolute path", endpoint);
		if (strlen(path) >= 108)
			return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: path too long for a unix socket (max 107)",
					  endpoint);
		if (slash && slash != dir) {
			*slash = '\0';
			if (bt_mkdir_p(dir, 0700, e) < 0)
				return bt_err_wrap(e, "bind %s", endpoint);
		}
		fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return bt_err_errno(e, errno, "bind %s: open %s", endpoint, lock);
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			int err = errno;
			close(fd);
			if (err == EWOULDBLOCK)
				return bt_err_set(e, BT_ALREADY_EXISTS,
						  "bind %s: another process is serving this endpoint", endpoint);
			return bt_err_errno(e, err, "bind %s: lock %s", endpoint, lock);
		}
		if (zmq_bind(sock, endpoint) < 0) {
			int err = errno;
			close(fd);
			return bt_err_set(e, bt_code_from_errno(err), "bind %s: %s", endpoint, zmq_strerror(err));
		}
		if (chmod(path, mode) < 0) {
			int err = errno;
			close(fd);
			return bt_err_errno(e, err, "chmod %s", path);
		}
		*lock_fd = fd;
		return 0;
	}
	if (zmq_bind(sock, endpoint) < 0)
		return bt_err_set(e, bt_code_from_errno(errno), "bind %s: %s", endpoint, zmq_strerror(errno));
	return 0;
}

void bt_zmq_unbind(void *sock, const char *endpoint, int *lock_fd)
{
	if (sock && endpoint && zmq_unbind(sock, endpoint) == 0 && bt_startswith(endpoint, "ipc://")) {
		for (int i = 0; i < 1000 && access(endpoint + 6, F_OK) == 0; i++)
			usleep(1000);
	}
	if (*lock_fd >= 0) {
		close(*lock_fd);
		*lock_fd = -1;
	}
}

bt_reqhdr *bt_reqhdr_decode(const void *p, size_t n, bt_err *e)
{
	bt_reqhdr *h;

	if (n > BT_RPC_MAX_HEADER) {
		bt_err_set(e, BT_INVALID_ARGUMENT, "request header of %zu bytes exceeds %u", n, BT_RPC_MAX_HEADER);
		return NULL;
	}
	h = berth__rpc__v1__request_header__unpack(NULL, n, p);
	if (!h)
		bt_err_set(e, BT_INVALID_ARGUMENT, "malformed request header (%zu bytes)", n);
	return h;
}

bt_resphdr *bt_resphdr_decode(const void *p, size_t n, bt_err *e)
{
	bt_resphdr *h;

	if (n > BT_RPC_MAX_HEADER) {
		bt_err_set(e, BT_INVALID_ARGUMENT, "response header of %zu bytes exceeds %u", n, BT_RPC_MAX_HEADER);
		return NULL;
	}
	h = berth__rpc__v1__response_header__unpack(NULL, n, p);
	if (!h)
		bt_err_set(e, BT_INVALID_ARGUMENT, "malformed response header (%zu bytes)", n);
	return h;
}

void bt_reqhdr_free(bt_reqhdr **h)
{
	if (*h)
		berth__rpc__v1__request_header__free_unpacked(*h, NULL);
	*h = NULL;
}

void bt_resphdr_free(bt_resphdr **h)
{
	if (*h)
		berth__rpc__v1__response_header__free_unpacked(*h, NULL);
	*h = NULL;
}

static void free_packed(void *data, void *hint)
{
	(void)hint;
	free(data);
}

void bt_msg_pack(zmq_msg_t *m, const ProtobufCMessage *msg)
{
	size_t n = msg ? protobuf_c_message_get_packed_size(msg) : 0;

	if (n == 0) {
		zmq_msg_init(m);
		return;
	}
	void *buf = bt_xmalloc(n);
	protobuf_c_message_pack(msg, buf);
	if (zmq_msg_init_data(m, buf, n, free_packed, NULL) < 0)
		bt_oom();
}

int bt_send_pb(void *sock, const ProtobufCMessage *msg, int flags)
{
	zmq_msg_t m;

	bt_msg_pack(&m, msg);
	if (zmq_msg_send(&m, sock, flags) < 0) {
		int err = errno;
		zmq_msg_close(&m);
		errno = err;
		return -1;
	}
	return 0;
}

int bt_send_bytes(void *sock, const void *p, size_t n, int flags)
{
	return zmq_send(sock, p, n, flags) < 0 ? -1 : 0;
}

int bt_recv_frames(void *sock, zmq_msg_t *frames, int max, int *n, bool *overflow, int flags)
{
	int count = 0, more;
	size_t len = sizeof(more);

	*n = 0;
	for (;;) {
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, sock, count == 0 ? flags : 0) < 0) {
			int err = errno;
			zmq_msg_close(&m);
			bt_close_frames(frames, BT_MIN(count, max));
			errno = err;
			return -1;
		}
		if (count < max)
			frames[count] = m;
		else
			zmq_msg_close(&m);
		count++;
		len = sizeof(more);
		if (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &len) < 0 || !more)
			break;
	}
	*n = BT_MIN(count, max);
	*overflow = count > max;
	return 0;
}

void bt_close_frames(zmq_msg_t *frames, int n)
{
	for (int i = 0; i < n; i++)
		zmq_msg_close(&frames[i]);
}

int bt_rpc_check_namespace(const char *ns, bt_err *e)
{
	if (!ns || !*ns)
		return bt_err_set(e, BT_FAILED_PRECONDITION,
				  "namespace is required (set one with --namespace or BERTH_NAMESPACE)");
	if (bt_ident_validate("namespace", ns, e) < 0) {
		e->code = BT_INVALID_ARGUMENT;
		return -1;
	}
	return 0;
}

void bt_pb_freep(void *msgp)
{
	ProtobufCMessage **m = msgp;
	if (*m)
		protobuf_c_message_free_unpacked(*m, NULL);
	*m = NULL;
}
