/*
 * bt_labels — a small ordered set of key/value labels, and the update-mask
 * rules every service shares ("labels" replaces all, "labels.<key>" sets or
 * removes one key).
 */
#ifndef BT_LABELS_H
#define BT_LABELS_H

#include <stdbool.h>
#include <stddef.h>

#include "bt_err.h"

typedef struct bt_labels {
	size_t n;
	char **keys;
	char **vals;
} bt_labels;

void bt_labels_clear(bt_labels *l);
/* Sets key to val (copying both); replaces an existing value. */
void bt_labels_set(bt_labels *l, const char *key, const char *val);
const char *bt_labels_get(const bt_labels *l, const char *key);
/* Removes key; returns true when it was there. */
bool bt_labels_del(bt_labels *l, const char *key);
void bt_labels_copy(bt_labels *dst, const bt_labels *src);

/* Validates every label (see bt_label_validate) and their count (≤ 1024). */
int bt_labels_validate(const bt_labels *l, bool allow_reserved, bt_err *e);

/* Applies an update of labels to cur according to mask (n entries):
 *   n == 0        cur becomes want;
 *   "labels"      cur becomes want;
 *   "labels.KEY"  KEY takes want's value, or is removed when want lacks it.
 * Any other mask entry is INVALID_ARGUMENT unless other(entry) accepts it. */
int bt_labels_update(bt_labels *cur, const bt_labels *want, char *const *mask, size_t n,
		     bool (*other)(const char *field), bt_err *e);

#endif
