/*
 * berth_gc — garbage collection through the gateway's gc service.
 */
#define _GNU_SOURCE
#include <string.h>

#include "berth/gc/v1/gc.pb-c.h"
#include "berth_internal.h"
#include "bt_util.h"

void berth_gc_report_clear(berth_gc_report *r)
{
	for (size_t i = 0; r->removed && i < r->n_removed; i++) {
		free(r->removed[i].id);
		free(r->removed[i].snapshotter);
	}
	free(r->removed);
	memset(r, 0, sizeof(*r));
}

int berth_gc_collect(berth_client *c, const char *ns, bool dry_run, berth_gc_report *out, berth_error *err)
{
	Berth__Gc__V1__CollectRequest req = BERTH__GC__V1__COLLECT_REQUEST__INIT;
	_cleanup_pb_ Berth__Gc__V1__CollectResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "gc", "Collect", ns);
	bt_err e;

	memset(out, 0, sizeof(*out));
	req.dry_run = dry_run;
	if (bt_conn_call(c->conn, &cs, &req.base, &berth__gc__v1__collect_response__descriptor, (void **)&resp, &e) <
	    0)
		return berth_fail(err, &e);
	out->removed = bt_xcalloc(resp->n_removed + 1, sizeof(*out->removed));
	for (size_t i = 0; i < resp->n_removed; i++) {
		const Berth__Gc__V1__Removed *r = resp->removed[i];
		berth_gc_removed *o = &out->removed[out->n_removed++];
		snprintf(o->kind, sizeof(o->kind), "%s", r->kind);
		o->id = bt_xstrdup(r->id);
		o->snapshotter = bt_xstrdup(r->snapshotter);
		o->size = r->size;
	}
	out->content_bytes = resp->content_bytes;
	out->snapshot_bytes = resp->snapshot_bytes;
	out->kept_content = resp->kept_content;
	out->kept_snapshots = resp->kept_snapshots;
	out->duration_us = resp->duration_us;
	return 0;
}
