/*
 * bt_keys — CURVE key files: one z85 key (40 characters) per file, as
 * `berth keys generate` writes them (PREFIX.key secret, 0600; PREFIX.pub
 * public).  The gateway's key and clients' keys use the same files.
 */
#ifndef BT_KEYS_H
#define BT_KEYS_H

#include "bt_err.h"

#define BT_KEY_LEN 40

/* Reads a key file (the first 40 characters; surrounding space ignored). */
int bt_key_read(const char *path, char out[BT_KEY_LEN + 1], bt_err *e);
/* The public key of a secret one. */
int bt_key_public(const char *secret, char out[BT_KEY_LEN + 1], bt_err *e);
/* Makes a keypair and writes PREFIX.key (0600, created exclusively) and PREFIX.pub. */
int bt_keypair_write(const char *prefix, char public_out[BT_KEY_LEN + 1], bt_err *e);

#endif
