/*
 * content_rpc — the content service's handlers, bound to content.proto.
 */
#ifndef CONTENT_RPC_H
#define CONTENT_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "bt_labels.h"
#include "bt_server.h"
#include "content_store.h"

/* A WriteRequest decoded by hand, its data pointing into the frame. */
typedef struct content_write_fields {
	int action;
	char *ref, *writer, *expected;
	int64_t total, offset;
	const uint8_t *data;
	size_t len;
	bt_labels labels;
} content_write_fields;

/* Decodes an encoded WriteRequest (untrusted bytes); clear w afterwards either way. */
int content_parse_write(const uint8_t *p, size_t n, content_write_fields *w, bt_err *e);
void content_write_fields_clear(content_write_fields *w);

/* Fills svc with the "content" service over store (borrowed). */
void content_rpc_service(content_store *store, bt_service *svc);

#endif
