/*
 * bt_digest — streaming sha256 (OpenSSL EVP) and digest strings of the form
 * "sha256:<64 lowercase hex>", the only algorithm berth stores blobs under.
 */
#ifndef BT_DIGEST_H
#define BT_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "bt_err.h"

#define BT_DIGEST_HEX_LEN 64
/* "sha256:" + 64 hex + NUL */
#define BT_DIGEST_STR_LEN 72

typedef struct bt_digest bt_digest;

/* A fresh sha256 context; caller frees with bt_digest_free. Aborts on OOM. */
bt_digest *bt_digest_new(void);
void bt_digest_free(bt_digest **d);
void bt_digest_reset(bt_digest *d);
void bt_digest_update(bt_digest *d, const void *p, size_t n);
/* Writes "sha256:<hex>" of what was fed into out; the context can be reused after bt_digest_reset. */
void bt_digest_final(bt_digest *d, char out[BT_DIGEST_STR_LEN]);
/* Writes the digest of what was fed so far without disturbing d. */
void bt_digest_peek(const bt_digest *d, char out[BT_DIGEST_STR_LEN]);
/* Bytes fed so far. */
uint64_t bt_digest_count(const bt_digest *d);
#define _cleanup_digest_ __attribute__((cleanup(bt_digest_free)))

/* One-shot digest of a buffer. */
void bt_digest_buf(const void *p, size_t n, char out[BT_DIGEST_STR_LEN]);
/* Digest of the first `limit` bytes of an open fd (limit < 0: to EOF), reading with pread from 0;
 * feeds d (which the caller may keep using). Returns bytes read or -1. */
int64_t bt_digest_fd(bt_digest *d, int fd, int64_t limit, bt_err *e);

/* Validates "sha256:<64 lowercase hex>"; other algorithms are UNIMPLEMENTED, malformed ones INVALID_ARGUMENT.
 * On success hex (if given) receives the 64 hex characters and a NUL. */
int bt_digest_validate(const char *s, char hex[BT_DIGEST_HEX_LEN + 1], bt_err *e);

#endif
