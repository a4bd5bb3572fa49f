/*
 * bt_labels — label sets and the shared update-mask rules.
 */
#include "bt_labels.h"

#include <string.h>

#include "bt_ident.h"
#include "bt_util.h"

#define MAX_LABELS 1024

void bt_labels_clear(bt_labels *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->keys[i]);
		free(l->vals[i]);
	}
	free(l->keys);
	free(l->vals);
	l->keys = l->vals = NULL;
	l->n = 0;
}

static ssize_t find(const bt_labels *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->keys[i], key) == 0)
			return (ssize_t)i;
	return -1;
}

void bt_labels_set(bt_labels *l, const char *key, const char *val)
{
	ssize_t i = find(l, key);
	if (i >= 0) {
		free(l->vals[i]);
		l->vals[i] = bt_xstrdup(val);
		return;
	}
	l->keys = bt_xrealloc(l->keys, (l->n + 1) * sizeof(char *));
	l->vals = bt_xrealloc(l->vals, (l->n + 1) * sizeof(char *));
	l->keys[l->n] = bt_xstrdup(key);
	l->vals[l->n] = bt_xstrdup(val);
	l->n++;
}

const char *bt_labels_get(const bt_labels *l, const char *key)
{
	ssize_t i = find(l, key);
	return i >= 0 ? l->vals[i] : NULL;
}

bool bt_labels_del(bt_labels *l, const char *key)
{
	ssize_t i = find(l, key);
	if (i < 0)
		return false;
	free(l->keys[i]);
	free(l->vals[i]);
	memmove(&l->keys[i], &l->keys[i + 1], (l->n - (size_t)i - 1) * sizeof(char *));
	memmove(&l->vals[i], &l->vals[i + 1], (l->n - (size_t)i - 1) * sizeof(char *));
	l->n--;
	return true;
}

void bt_labels_copy(bt_labels *dst, const bt_labels *src)
{
	bt_labels_clear(dst);
	for (size_t i = 0; i < src->n; i++)
		bt_labels_set(dst, src->keys[i], src->vals[i]);
}

int bt_labels_validate(const bt_labels *l, bool allow_reserved, bt_err *e)
{
	if (l->n > MAX_LABELS)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "too many labels (%zu, at most %d)", l->n, MAX_LABELS);
	for (size_t i = 0; i < l->n; i++)
		if (bt_label_validate(l->keys[i], strlen(l->keys[i]), l->vals[i], strlen(l->vals[i]),
				      allow_reserved, e) < 0)
			return -1;
	return 0;
}

int bt_labels_update(bt_labels *cur, const bt_labels *want, char *const *mask, size_t n,
		     bool (*other)(const char *field), bt_err *e)
{
	bt_labels next = { 0 };

	bt_labels_copy(&next, cur);
	if (n == 0) {
		bt_labels_copy(&next, want);
	}
	for (size_t i = 0; i < n; i++) {
		const char *m = mask[i];
		if (strcmp(m, "labels") == 0) {
			bt_labels_copy(&next, want);
		} else if (bt_startswith(m, "labels.") && m[7]) {
			const char *key = m + 7;
			const char *v = bt_labels_get(want, key);
			if (v)
				bt_labels_set(&next, key, v);
			else
				bt_labels_del(&next, key);
		} else if (!other || !other(m)) {
			bt_labels_clear(&next);
			return bt_err_set(e, BT_INVALID_ARGUMENT, "update mask: field \"%.200s\" cannot be updated", m);
		}
	}
	bt_labels_clear(cur);
	*cur = next;
	return 0;
}
