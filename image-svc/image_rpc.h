/*
 * image_rpc — the "images" service's handlers, bound to images.proto.
 */
#ifndef IMAGE_RPC_H
#define IMAGE_RPC_H

#include "bt_server.h"
#include "image_store.h"

typedef struct image_xfer image_xfer;

typedef struct image_rpc {
	image_store *store;
	image_xfer *xfer; /* pull, push, unpack jobs */
} image_rpc;

/* Fills svc with the "images" service over rpc (borrowed). */
void image_rpc_service(image_rpc *rpc, bt_service *svc);

#endif
