/*
 * bt_digest — sha256 over OpenSSL's EVP interface.
 */
#define _GNU_SOURCE
#include "bt_digest.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>

#include "bt_util.h"

struct bt_digest {
	EVP_MD_CTX *ctx;
	uint64_t count;
};

bt_digest *bt_digest_new(void)
{
	bt_digest *d = bt_xzalloc(sizeof(*d));
	d->ctx = EVP_MD_CTX_new();
	if (!d->ctx)
		bt_oom();
	bt_digest_reset(d);
	return d;
}

void bt_digest_free(bt_digest **dp)
{
	if (!*dp)
		return;
	EVP_MD_CTX_free((*dp)->ctx);
	free(*dp);
	*dp = NULL;
}

void bt_digest_reset(bt_digest *d)
{
	if (EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL) != 1)
		bt_oom();
	d->count = 0;
}

void bt_digest_update(bt_digest *d, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (EVP_DigestUpdate(d->ctx, p, n) != 1)
		bt_oom();
	d->count += n;
}

uint64_t bt_digest_count(const bt_digest *d)
{
	return d->count;
}

void bt_digest_final(bt_digest *d, char out[BT_DIGEST_STR_LEN])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (EVP_DigestFinal_ex(d->ctx, md, &len) != 1 || len != 32)
		bt_oom();
	memcpy(out, "sha256:", 7);
	for (unsigned int i = 0; i < len; i++) {
		out[7 + 2 * i] = hex[md[i] >> 4];
		out[7 + 2 * i + 1] = hex[md[i] & 15];
	}
	out[7 + 64] = '\0';
}

void bt_digest_peek(const bt_digest *d, char out[BT_DIGEST_STR_LEN])
{
	_cleanup_digest_ bt_digest *copy = bt_xzalloc(sizeof(*copy));

	copy->ctx = EVP_MD_CTX_new();
	if (!copy->ctx || EVP_MD_CTX_copy_ex(copy->ctx, d->ctx) != 1)
		bt_oom();
	copy->count = d->count;
	bt_digest_final(copy, out);
}

void bt_digest_buf(const void *p, size_t n, char out[BT_DIGEST_STR_LEN])
{
	_cleanup_digest_ bt_digest *d = bt_digest_new();
	bt_digest_update(d, p, n);
	bt_digest_final(d, out);
}

int64_t bt_digest_fd(bt_digest *d, int fd, int64_t limit, bt_err *e)
{
	size_t bufsz = 1 << 20;
	_cleanup_free_ char *buf = bt_xmalloc(bufsz);
	int64_t off = 0;

	while (limit < 0 || off < limit) {
		size_t want = bufsz;
		if (limit >= 0 && (int64_t)want > limit - off)
			want = (size_t)(limit - off);
		ssize_t r = pread(fd, buf, want, off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return bt_err_errno(e, errno, "read for digest");
		}
		if (r == 0)
			break;
		bt_digest_update(d, buf, (size_t)r);
		off += r;
	}
	return off;
}

int bt_digest_validate(const char *s, char hex[BT_DIGEST_HEX_LEN + 1], bt_err *e)
{
	const char *colon;

	if (!s || !*s)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "digest is empty");
	colon = strchr(s, ':');
	if (!colon || colon == s)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "digest \"%.100s\": invalid: expected algorithm:hex", s);
	if ((size_t)(colon - s) != 6 || strncmp(s, "sha256", 6) != 0) {
		for (const char *p = s; p < colon; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' || *p == '.' ||
			      *p == '_' || *p == '-'))
				return bt_err_set(e, BT_INVALID_ARGUMENT, "digest \"%.100s\": invalid algorithm", s);
		return bt_err_set(e, BT_UNIMPLEMENTED, "digest \"%.100s\": unsupported algorithm %.*s (only sha256)", s,
				  (int)(colon - s), s);
	}
	const char *h = colon + 1;
	size_t n = strlen(h);
	if (n != BT_DIGEST_HEX_LEN)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "digest \"%.100s\": invalid: sha256 needs 64 hex characters, got %zu", s, n);
	for (size_t i = 0; i < n; i++)
		if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
			return bt_err_set(e, BT_INVALID_ARGUMENT, "digest \"%.100s\": invalid: not lowercase hex", s);
	if (hex) {
		memcpy(hex, h, BT_DIGEST_HEX_LEN);
		hex[BT_DIGEST_HEX_LEN] = '\0';
	}
	return 0;
}
