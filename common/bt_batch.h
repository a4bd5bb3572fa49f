/*
 * bt_batch — a List handler's stream of records, BT_BATCH to a reply: a
 * store's list callback hands each record to bt_batch_add (which copies
 * it, the store's being borrowed), every full batch goes out as one stream
 * reply built by the service's send function, and bt_batch_end sends the
 * rest and the final reply, or the error.
 */
#ifndef BT_BATCH_H
#define BT_BATCH_H

#include <stddef.h>

#include "bt_err.h"
#include "bt_server.h"

#define BT_BATCH 128

typedef struct bt_batch_ops {
	size_t size;                               /* of one record */
	void (*copy)(void *dst, const void *src);  /* a deep copy into a zeroed dst */
	void (*clear)(void *rec);
	/* builds one reply of recs[0..n) and sends it (bt_call_send) */
	int (*send)(bt_call *call, const void *recs, size_t n, bt_err *e);
} bt_batch_ops;

typedef struct bt_batch {
	bt_call *call;
	const bt_batch_ops *ops;
	unsigned char *recs;
	size_t n;
	bt_err err; /* why sending failed */
} bt_batch;

void bt_batch_init(bt_batch *b, bt_call *call, const bt_batch_ops *ops);
/* Copies rec in; sends the batch when it is full. -1 when sending failed (stop listing). */
int bt_batch_add(bt_batch *b, const void *rec);
/* Ends the call: with list_rc 0 the rest and the final reply, otherwise the
 * error (e: the store's, unless sending failed first); frees everything. */
void bt_batch_end(bt_batch *b, int list_rc, const bt_err *e);

#endif
