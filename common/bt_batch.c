/*
 * bt_batch — List streams in batches (see bt_batch.h).
 */
#include "bt_batch.h"

#include <string.h>

#include "bt_util.h"

void bt_batch_init(bt_batch *b, bt_call *call, const bt_batch_ops *ops)
{
	memset(b, 0, sizeof(*b));
	b->call = call;
	b->ops = ops;
	b->recs = bt_xcalloc(BT_BATCH, ops->size);
}

static void drop(bt_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		b->ops->clear(b->recs + i * b->ops->size);
	memset(b->recs, 0, b->n * b->ops->size);
	b->n = 0;
}

static int flush(bt_batch *b)
{
	int rc = b->n ? b->ops->send(b->call, b->recs, b->n, &b->err) : 0;
	drop(b);
	return rc;
}

int bt_batch_add(bt_batch *b, const void *rec)
{
	b->ops->copy(b->recs + b->n++ * b->ops->size, rec);
	return b->n == BT_BATCH ? flush(b) : 0;
}

void bt_batch_end(bt_batch *b, int list_rc, const bt_err *e)
{
	if (list_rc == 0)
		list_rc = flush(b);
	else
		drop(b);
	if (list_rc < 0)
		bt_call_error(b->call, b->err.code ? &b->err : e);
	else
		bt_call_reply(b->call, NULL);
	free(b->recs);
	b->recs = NULL;
}
