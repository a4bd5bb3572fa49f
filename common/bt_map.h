/*
 * bt_map — a hash map from byte-string keys to pointers (chained buckets,
 * grows at load 1).  Keys are copied; values are borrowed.  Not thread-safe.
 */
#ifndef BT_MAP_H
#define BT_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct bt_map bt_map;

bt_map *bt_map_new(void);
/* Frees the map; values are not touched. NULLs *m. */
void bt_map_free(bt_map **m);
/* Sets key to val; returns the value it replaced, or NULL. */
void *bt_map_put(bt_map *m, const void *key, size_t klen, void *val);
void *bt_map_get(const bt_map *m, const void *key, size_t klen);
/* Removes key; returns its value or NULL. */
void *bt_map_del(bt_map *m, const void *key, size_t klen);
size_t bt_map_len(const bt_map *m);

/* String-key conveniences. */
void *bt_map_sput(bt_map *m, const char *key, void *val);
void *bt_map_sget(const bt_map *m, const char *key);
void *bt_map_sdel(bt_map *m, const char *key);

/* Iteration in no particular order; the map must not change meanwhile
 * except through bt_map_iter_del. */
typedef struct bt_map_iter {
	const bt_map *m;
	size_t bucket;
	void *node;
	void *next;
} bt_map_iter;
void bt_map_iter_init(bt_map_iter *it, const bt_map *m);
/* Returns 1 with key/len/val filled, 0 at the end. */
int bt_map_iter_next(bt_map_iter *it, const void **key, size_t *klen, void **val);

uint64_t bt_hash64(const void *p, size_t n);

#endif
