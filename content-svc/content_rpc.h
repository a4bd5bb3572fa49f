/*
 * content_rpc — the content service's handlers, bound to content.proto.
 */
#ifndef CONTENT_RPC_H
#define CONTENT_RPC_H

#include "bt_server.h"
#include "content_store.h"

/* Fills svc with the "content" service over store (borrowed). */
void content_rpc_service(content_store *store, bt_service *svc);

#endif
