/*
 * gw_leases — the "leases" service of the gateway: leases per namespace in
 * $ROOT/gateway/leases.db, each holding resources (content digests,
 * snapshot keys of a snapshotter, ingest refs, image names) against garbage
 * collection until it is deleted or expires (docs/gc.md).
 */
#ifndef GW_LEASES_H
#define GW_LEASES_H

#include <stdint.h>

#include "bt_err.h"
#include "bt_server.h"

typedef struct gw_leases gw_leases;
struct gw_gc;

int gw_leases_open(const char *dir, gw_leases **out, bt_err *e);
void gw_leases_free(gw_leases **l);
/* The collector a synchronous Delete runs (borrowed; may be NULL). */
void gw_leases_set_gc(gw_leases *l, struct gw_gc *gc);
void gw_leases_service(gw_leases *l, bt_service *svc);

/* What the unexpired leases of ns hold: types[i] and ids[i]
 * (NULL-terminated, caller frees with bt_strv_free).  Leases expired at now
 * are deleted first. */
/* How many leases ns has (expired ones included until a collection), -1 on error. */
int64_t gw_leases_count(gw_leases *l, const char *ns, bt_err *e);
int gw_leases_held(gw_leases *l, const char *ns, int64_t now, char ***types, char ***ids, bt_err *e);

#endif
