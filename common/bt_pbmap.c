/*
 * bt_pbmap — conversions between protobuf-c string maps and bt_labels.
 */
#include "bt_pbmap.h"

#include "bt_util.h"

void bt_pbmap_to_labels(void *const *entries, size_t n, bt_labels *out)
{
	for (size_t i = 0; i < n; i++) {
		const bt_pb_kv *kv = entries[i];
		bt_labels_set(out, kv->key ? kv->key : "", kv->value ? kv->value : "");
	}
}

void **bt_pbmap_from_labels(const bt_labels *l, const ProtobufCMessageDescriptor *entry_desc, size_t *n)
{
	void **v;

	*n = l->n;
	if (l->n == 0)
		return NULL;
	/* The shared layout is what protoc-c generates for map<string,string>. */
	if (entry_desc->sizeof_message != sizeof(bt_pb_kv))
		abort();
	v = bt_xcalloc(l->n, sizeof(void *));
	for (size_t i = 0; i < l->n; i++) {
		bt_pb_kv *kv = bt_xzalloc(sizeof(*kv));
		protobuf_c_message_init(entry_desc, kv);
		kv->key = l->keys[i];
		kv->value = l->vals[i];
		v[i] = kv;
	}
	return v;
}

void bt_pbmap_free(void **entries, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(entries[i]);
	free(entries);
}
