/*
 * snap_rpc — the snapshots service's handlers, bound to snapshots.proto.
 */
#ifndef SNAP_RPC_H
#define SNAP_RPC_H

#include "bt_server.h"
#include "snap_store.h"

typedef struct snap_rpc {
	snap_store *store; /* borrowed */
	const char *name;  /* the snapshotter this instance serves (borrowed) */
} snap_rpc;

/* Fills svc with the "snapshots" service over ctx (which must outlive it). */
void snap_rpc_service(snap_rpc *ctx, bt_service *svc);

#endif
