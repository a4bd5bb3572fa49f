/*
 * gw_auth — remote clients' keys (the authorized keys file), the ZAP
 * handler that admits or refuses their CURVE handshakes, and the checks the
 * forwarding loop and the namespaces service make (see gw_auth.c).
 */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "bt_err.h"

typedef struct gw_key {
	char key[41];    /* z85 public key */
	char *name;      /* for logs and the principal */
	char **patterns; /* namespaces it may use (shell patterns), NULL-terminated */
	bool read_only;
} gw_key;

typedef struct gw_auth gw_auth;

/* Reads path (a missing file is an empty list: every key refused). */
int gw_auth_load(const char *path, gw_auth **out, bt_err *e);
/* Binds the ZAP handler (inproc://zeromq.zap.01) and starts its thread. */
int gw_auth_start(gw_auth *a, bt_err *e);
void gw_auth_free(gw_auth **a);
const gw_key *gw_auth_lookup(const gw_auth *a, const char *key);
/* Whether a principal's namespace patterns admit ns. */
bool gw_key_allows(char *const *patterns, size_t n, const char *ns);
/* Whether a method only reads (a read-only key may call it). */
bool gw_method_reads(const char *method);

#endif
