/*
 * bt_pbmap — protobuf-c map<string,string> fields to and from bt_labels.
 *
 * protobuf-c represents each map<string,string> field as an array of
 * generated entry messages that all share one layout {base, key, value};
 * these helpers work on any of them given the entry's descriptor.
 */
#ifndef BT_PBMAP_H
#define BT_PBMAP_H

#include <protobuf-c/protobuf-c.h>

#include "bt_labels.h"

typedef struct bt_pb_kv {
	ProtobufCMessage base;
	char *key;
	char *value;
} bt_pb_kv;

/* Copies entries (an array of generated *Entry pointers) into out. */
void bt_pbmap_to_labels(void *const *entries, size_t n, bt_labels *out);
/* Builds entries borrowing l's strings; free the array with bt_pbmap_free (l must outlive it). */
void **bt_pbmap_from_labels(const bt_labels *l, const ProtobufCMessageDescriptor *entry_desc, size_t *n);
void bt_pbmap_free(void **entries, size_t n);

#endif
