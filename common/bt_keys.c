/*
 * bt_keys — CURVE key files (see bt_keys.h).
 */
#define _GNU_SOURCE
#include "bt_keys.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "bt_util.h"

int bt_key_read(const char *path, char out[BT_KEY_LEN + 1], bt_err *e)
{
	char buf[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return bt_err_errno(e, errno, "open %s", path);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return bt_err_errno(e, errno, "read %s", path);
	buf[n] = 0;
	char *s = buf;
	while (isspace((unsigned char)*s))
		s++;
	size_t len = strlen(s);
	while (len && isspace((unsigned char)s[len - 1]))
		s[--len] = 0;
	uint8_t raw[32];
	if (len != BT_KEY_LEN || !zmq_z85_decode(raw, s))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s does not hold a 40-character z85 key", path);
	memcpy(out, s, BT_KEY_LEN + 1);
	return 0;
}

int bt_key_public(const char *secret, char out[BT_KEY_LEN + 1], bt_err *e)
{
	if (zmq_curve_public(out, secret) < 0)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "not a CURVE secret key: %s", zmq_strerror(errno));
	return 0;
}

static int write_new(const char *path, const char *key, mode_t mode, bt_err *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return bt_err_errno(e, errno, "create %s", path);
	char line[BT_KEY_LEN + 2];
	snprintf(line, sizeof(line), "%s\n", key);
	if (bt_write_all(fd, line, strlen(line)) < 0 || fsync(fd) < 0) {
		int err = errno;
		close(fd);
		unlink(path);
		return bt_err_errno(e, err, "write %s", path);
	}
	return close(fd) < 0 ? bt_err_errno(e, errno, "close %s", path) : 0;
}

int bt_keypair_write(const char *prefix, char public_out[BT_KEY_LEN + 1], bt_err *e)
{
	char secret[BT_KEY_LEN + 1];
	_cleanup_free_ char *kpath = bt_xasprintf("%s.key", prefix);
	_cleanup_free_ char *ppath = bt_xasprintf("%s.pub", prefix);

	if (zmq_curve_keypair(public_out, secret) < 0)
		return bt_err_set(e, BT_INTERNAL, "make a CURVE keypair: %s", zmq_strerror(errno));
	int rc = write_new(kpath, secret, 0600, e);
	explicit_bzero(secret, sizeof(secret));
	if (rc < 0)
		return -1;
	if (write_new(ppath, public_out, 0644, e) < 0) {
		unlink(kpath);
		return -1;
	}
	return 0;
}
