/*
 * gw_gc — the "gc" service: garbage collection of one namespace, asked of
 * the services behind the gateway (docs/gc.md).
 */
#ifndef GW_GC_H
#define GW_GC_H

#include <stddef.h>

#include "bt_server.h"
#include "gw_proxy.h"
#include "gw_system.h"

typedef struct gw_gc gw_gc;
struct gw_leases;

/* backends: the gateway's ("content", "images", "containers",
 * "snapshots/<name>" …), borrowed; default_sn: the snapshotter a container
 * naming none uses; leases: whose resources are roots (borrowed). */
gw_gc *gw_gc_new(const gw_backend_ref *backends, size_t n, const char *default_sn, struct gw_leases *leases);
void gw_gc_free(gw_gc **g);
void gw_gc_service(gw_gc *g, bt_service *svc);
/* Collections after deletions: gw_gc_schedule(ns) runs one of ns delay_ms
 * later (further calls meanwhile join it); a collection refused because
 * transfers run is tried again later.  delay_ms 0: scheduling does nothing. */
int gw_gc_start(gw_gc *g, int64_t delay_ms, bt_err *e);
void gw_gc_schedule(gw_gc *g, const char *ns);
/* One collection of ns (what a synchronous lease Delete runs). */
int gw_gc_run(gw_gc *g, const char *ns, bt_err *e);
/* The forwarding loop whose fence guards collections (set once it exists;
 * before, nothing reaches the namespaces to guard). */
void gw_gc_set_proxy(gw_gc *g, gw_proxy *p);
/* How a collection's fence treats a request (gw_proxy_fence). */
gw_fence_kind gw_gc_fence_kind(const char *service, const char *method);

#endif
