/*
 * bt_seqrpc — the envelope over unix SOCK_SEQPACKET (see bt_seqrpc.h).
 */
#define _GNU_SOURCE
#include "bt_seqrpc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bt_util.h"

#define HDR_MAX 65536u

/* Fills sa for path; a path too long for sun_path goes through an O_PATH
 * descriptor of its directory, left in *dirfd for the caller to close. */
static int seq_addr(const char *path, struct sockaddr_un *sa, int *dirfd, bt_err *e)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	*dirfd = -1;
	if (path[0] == '\0')
		return bt_err_set(e, BT_INVALID_ARGUMENT, "socket path is empty");
	if (strlen(path) < sizeof(sa->sun_path)) {
		memcpy(sa->sun_path, path, strlen(path) + 1);
		return 0;
	}
	const char *slash = strrchr(path, '/');
	if (slash == NULL || strlen(slash + 1) + 32 >= sizeof(sa->sun_path))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "socket path %s: too long", path);
	_cleanup_free_ char *dir = bt_xstrndup(path, slash == path ? 1 : (size_t)(slash - path));
	*dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0)
		return bt_err_errno(e, errno, "socket directory %s", dir);
	snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", *dirfd, slash + 1);
	return 0;
}

static int unix_socket(int type, bt_err *e)
{
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return bt_err_errno(e, errno, "socket");
	return fd;
}

int bt_seqrpc_connect(const char *path, bt_err *e)
{
	return bt_unix_connect(path, SOCK_SEQPACKET, e);
}

int bt_seqrpc_listen(const char *path, bt_err *e)
{
	return bt_unix_listen(path, SOCK_SEQPACKET, e);
}

int bt_unix_connect(const char *path, int type, bt_err *e)
{
	struct sockaddr_un sa;
	_cleanup_close_ int dirfd = -1;
	if (seq_addr(path, &sa, &dirfd, e) < 0)
		return -1;
	_cleanup_close_ int fd = unix_socket(type, e);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno;
		bt_err_errno(e, err, "connect %s", path);
		if (err == ENOENT || err == ECONNREFUSED || err == EAGAIN) {
			e->code = BT_UNAVAILABLE;
			e->transport = 1;
		}
		return -1;
	}
	return BT_STEAL_FD(fd);
}

int bt_unix_listen(const char *path, int type, bt_err *e)
{
	struct sockaddr_un sa;
	_cleanup_close_ int dirfd = -1;
	if (seq_addr(path, &sa, &dirfd, e) < 0)
		return -1;
	_cleanup_close_ int fd = unix_socket(type, e);
	if (fd < 0)
		return -1;
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return bt_err_set(e, BT_ALREADY_EXISTS, "%s exists and is not a socket", path);
		int probe = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
		if (probe < 0)
			return bt_err_errno(e, errno, "socket");
		int live = connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(probe);
		if (live)
			return bt_err_set(e, BT_ALREADY_EXISTS, "%s: another process listens there", path);
		if (unlink(path) < 0 && errno != ENOENT)
			return bt_err_errno(e, errno, "remove stale socket %s", path);
	}
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0)
		return bt_err_errno(e, errno, "bind %s", path);
	if (listen(fd, 512) < 0) {
		bt_err_errno(e, errno, "listen %s", path);
		unlink(path);
		return -1;
	}
	if (bt_set_nonblock(fd) < 0) {
		bt_err_errno(e, errno, "fcntl %s", path);
		unlink(path);
		return -1;
	}
	return BT_STEAL_FD(fd);
}

int bt_seqrpc_send(int fd, const ProtobufCMessage *hdr, const ProtobufCMessage *body, int flags,
		   bt_err *e)
{
	size_t hlen = hdr ? protobuf_c_message_get_packed_size(hdr) : 0;
	size_t blen = body ? protobuf_c_message_get_packed_size(body) : 0;
	if (hlen > HDR_MAX || 4 + hlen + blen > BT_SEQRPC_MAX) {
		errno = EMSGSIZE;
		return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "message of %zu bytes exceeds %u", 4 + hlen + blen,
				  BT_SEQRPC_MAX);
	}
	uint8_t small[512];
	_cleanup_free_ uint8_t *big = NULL;
	uint8_t *p = small;
	if (4 + hlen + blen > sizeof(small))
		p = big = bt_xmalloc(4 + hlen + blen);
	p[0] = (uint8_t)hlen;
	p[1] = (uint8_t)(hlen >> 8);
	p[2] = (uint8_t)(hlen >> 16);
	p[3] = (uint8_t)(hlen >> 24);
	if (hdr)
		protobuf_c_message_pack(hdr, p + 4);
	if (body)
		protobuf_c_message_pack(body, p + 4 + hlen);
	ssize_t n;
	do
		n = send(fd, p, 4 + hlen + blen, flags | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int err = errno;
		bt_err_errno(e, err, "send");
		e->transport = 1;
		if (err == EPIPE || err == ECONNRESET)
			e->code = BT_UNAVAILABLE;
		errno = err;
		return -1;
	}
	return 0;
}

int bt_seqrpc_recv(int fd, int flags, uint8_t **buf, size_t *len, bt_err *e)
{
	*buf = NULL;
	*len = 0;
	ssize_t n;
	do
		n = recv(fd, NULL, 0, flags | MSG_PEEK | MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int err = errno;
		bt_err_errno(e, err, "recv");
		e->transport = 1;
		if (err == ECONNRESET)
			e->code = BT_UNAVAILABLE;
		errno = err;
		return -1;
	}
	if (n == 0) {
		/* end of stream (an empty datagram is no message either: drop it) */
		char c;
		(void)recv(fd, &c, 0, MSG_DONTWAIT);
		return 0;
	}
	if ((size_t)n > BT_SEQRPC_MAX) {
		char c;
		(void)recv(fd, &c, 1, MSG_DONTWAIT | MSG_TRUNC);
		errno = E2BIG;
		return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "message of %zd bytes exceeds %u", n, BT_SEQRPC_MAX);
	}
	uint8_t *p = bt_xmalloc((size_t)n);
	ssize_t m;
	do
		m = recv(fd, p, (size_t)n, flags);
	while (m < 0 && errno == EINTR);
	if (m <= 0) {
		int err = m < 0 ? errno : ECONNRESET;
		free(p);
		bt_err_errno(e, err, "recv");
		e->transport = 1;
		errno = err;
		return -1;
	}
	*buf = p;
	*len = (size_t)m;
	return 1;
}

int bt_seqrpc_split(const uint8_t *buf, size_t len, const uint8_t **hdr, size_t *hlen,
		    const uint8_t **body, size_t *blen, bt_err *e)
{
	if (len < 4)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "malformed message: %zu bytes, shorter than its length prefix",
				  len);
	size_t h = (size_t)buf[0] | (size_t)buf[1] << 8 | (size_t)buf[2] << 16 | (size_t)buf[3] << 24;
	if (h > len - 4 || h > HDR_MAX)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "malformed message: header of %zu bytes in %zu", h, len);
	*hdr = buf + 4;
	*hlen = h;
	*body = buf + 4 + h;
	*blen = len - 4 - h;
	return 0;
}

int bt_seqrpc_reply(int fd, uint64_t request_id, const bt_err *status, const ProtobufCMessage *body,
		    int flags, bt_err *e)
{
	Berth__Rpc__V1__ResponseHeader h = BERTH__RPC__V1__RESPONSE_HEADER__INIT;
	h.version = BERTH__RPC__V1__VERSION__PROTOCOL_VERSION;
	h.request_id = request_id;
	h.final = 1;
	if (status != NULL && status->code != BT_OK) {
		h.code = (Berth__Rpc__V1__Code)status->code;
		h.message = (char *)status->msg;
		body = NULL;
	}
	return bt_seqrpc_send(fd, &h.base, body, flags, e);
}

struct bt_seqcli {
	int fd;
	uint64_t next_id;
	char *service;
	char *ns;
	char *path;
};

bt_seqcli *bt_seqcli_open(const char *path, const char *service, const char *ns, bt_err *e)
{
	int fd = bt_seqrpc_connect(path, e);
	if (fd < 0)
		return NULL;
	bt_seqcli *c = bt_xzalloc(sizeof(*c));
	c->fd = fd;
	c->next_id = 1;
	c->service = bt_xstrdup(service);
	c->ns = bt_xstrdup(ns ? ns : "");
	c->path = bt_xstrdup(path);
	return c;
}

void bt_seqcli_free(bt_seqcli **cp)
{
	bt_seqcli *c = *cp;
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->service);
	free(c->ns);
	free(c->path);
	free(c);
	*cp = NULL;
}

int bt_seqcli_fd(const bt_seqcli *c)
{
	return c->fd;
}

static int cli_lost(bt_err *e, int code, const char *fmt, const char *method, const char *path)
{
	bt_err_set(e, code, fmt, method, path);
	e->transport = 1;
	return -1;
}

int bt_seqcli_call(bt_seqcli *c, const char *method, const ProtobufCMessage *req,
		   const ProtobufCMessageDescriptor *resp_desc, int timeout_ms, ProtobufCMessage **resp,
		   bt_err *e)
{
	*resp = NULL;
	Berth__Rpc__V1__RequestHeader h = BERTH__RPC__V1__REQUEST_HEADER__INIT;
	h.version = BERTH__RPC__V1__VERSION__PROTOCOL_VERSION;
	h.service = c->service;
	h.method = (char *)method;
	h.namespace_ = c->ns;
	h.request_id = c->next_id++;
	h.deadline_ms = timeout_ms > 0 ? (uint32_t)timeout_ms : 0;
	if (bt_seqrpc_send(c->fd, &h.base, req, 0, e) < 0)
		return bt_err_wrap(e, "%s %s", method, c->path);
	int64_t deadline = timeout_ms > 0 ? bt_mono_ms() + timeout_ms : 0;
	for (;;) {
		int wait = -1;
		if (deadline) {
			int64_t left = deadline - bt_mono_ms();
			if (left <= 0)
				return cli_lost(e, BT_DEADLINE_EXCEEDED, "%s %s: deadline exceeded", method, c->path);
			wait = (int)left;
		}
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int n = poll(&pfd, 1, wait);
		if (n < 0 && errno != EINTR)
			return bt_err_errno(e, errno, "%s %s: poll", method, c->path);
		if (n <= 0)
			continue;
		_cleanup_free_ uint8_t *buf = NULL;
		size_t len;
		int r = bt_seqrpc_recv(c->fd, MSG_DONTWAIT, &buf, &len, e);
		if (r < 0 && errno == EAGAIN)
			continue;
		if (r < 0)
			return bt_err_wrap(e, "%s %s", method, c->path);
		if (r == 0)
			return cli_lost(e, BT_UNAVAILABLE, "%s %s: connection closed by the server", method, c->path);
		const uint8_t *hb, *bb;
		size_t hl, bl;
		if (bt_seqrpc_split(buf, len, &hb, &hl, &bb, &bl, e) < 0)
			return bt_err_wrap(e, "%s %s", method, c->path);
		Berth__Rpc__V1__ResponseHeader *rh = berth__rpc__v1__response_header__unpack(NULL, hl, hb);
		if (rh == NULL)
			return bt_err_set(e, BT_INTERNAL, "%s %s: malformed response header", method, c->path);
		if (rh->request_id != h.request_id) {
			berth__rpc__v1__response_header__free_unpacked(rh, NULL);
			continue;
		}
		int rc = 0;
		if (rh->code != BERTH__RPC__V1__CODE__OK) {
			rc = bt_err_set(e, (int)rh->code, "%s", rh->message ? rh->message : "");
		} else if (resp_desc != NULL) {
			*resp = protobuf_c_message_unpack(resp_desc, NULL, bl, bb);
			if (*resp == NULL)
				rc = bt_err_set(e, BT_INTERNAL, "%s %s: malformed response body", method, c->path);
		}
		berth__rpc__v1__response_header__free_unpacked(rh, NULL);
		return rc;
	}
}
