/*
 * gw_ns — the gateway's registry of namespaces and the "namespaces"
 * service over it (see gw_ns.c).
 */
#ifndef GW_NS_H
#define GW_NS_H

#include "bt_err.h"
#include "bt_server.h"
#include "gw_system.h"

typedef struct gw_ns gw_ns;

/* Opens (creating) dir/namespaces.db; backends are asked before a Delete
 * (the array must outlive the registry). */
int gw_ns_open(const char *dir, const gw_backend_ref *backends, size_t n_backends, gw_ns **out, bt_err *e);
void gw_ns_free(gw_ns **g);
struct gw_leases;
/* Leases count among what a namespace holds (Delete refuses while any remain). */
void gw_ns_set_leases(gw_ns *g, struct gw_leases *l);
/* Records ns when method may write (thread-safe; cheap once ns is known). */
void gw_ns_touch(gw_ns *g, const char *ns, const char *method);
void gw_ns_service(gw_ns *g, bt_service *svc);

#endif
