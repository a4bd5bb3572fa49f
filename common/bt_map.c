/*
 * bt_map — chained hash map keyed by byte strings (FNV-1a hashing).
 */
#include "bt_map.h"

#include <string.h>

#include "bt_util.h"

typedef struct node {
	struct node *next;
	uint64_t hash;
	void *val;
	size_t klen;
	unsigned char key[];
} node;

struct bt_map {
	node **buckets;
	size_t nbuckets;
	size_t len;
};

uint64_t bt_hash64(const void *p, size_t n)
{
	const unsigned char *c = p;
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 1099511628211ULL;
	}
	return h ^ (h >> 29);
}

bt_map *bt_map_new(void)
{
	bt_map *m = bt_xzalloc(sizeof(*m));
	m->nbuckets = 16;
	m->buckets = bt_xcalloc(m->nbuckets, sizeof(node *));
	return m;
}

void bt_map_free(bt_map **mp)
{
	bt_map *m = *mp;
	if (!m)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		node *n = m->buckets[i];
		while (n) {
			node *next = n->next;
			free(n);
			n = next;
		}
	}
	free(m->buckets);
	free(m);
	*mp = NULL;
}

static void grow(bt_map *m)
{
	size_t nb = m->nbuckets * 2;
	node **b = bt_xcalloc(nb, sizeof(node *));
	for (size_t i = 0; i < m->nbuckets; i++) {
		node *n = m->buckets[i];
		while (n) {
			node *next = n->next;
			size_t j = n->hash & (nb - 1);
			n->next = b[j];
			b[j] = n;
			n = next;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = nb;
}

static node **find(const bt_map *m, const void *key, size_t klen, uint64_t h)
{
	node **pp = &m->buckets[h & (m->nbuckets - 1)];
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == h && (*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0)
			return pp;
	return pp;
}

void *bt_map_put(bt_map *m, const void *key, size_t klen, void *val)
{
	uint64_t h = bt_hash64(key, klen);
	node **pp = find(m, key, klen, h);
	if (*pp) {
		void *old = (*pp)->val;
		(*pp)->val = val;
		return old;
	}
	if (m->len >= m->nbuckets) {
		grow(m);
		pp = find(m, key, klen, h);
	}
	node *n = bt_xmalloc(sizeof(*n) + klen);
	n->next = NULL;
	n->hash = h;
	n->val = val;
	n->klen = klen;
	memcpy(n->key, key, klen);
	*pp = n;
	m->len++;
	return NULL;
}

void *bt_map_get(const bt_map *m, const void *key, size_t klen)
{
	node **pp = find(m, key, klen, bt_hash64(key, klen));
	return *pp ? (*pp)->val : NULL;
}

void *bt_map_del(bt_map *m, const void *key, size_t klen)
{
	node **pp = find(m, key, klen, bt_hash64(key, klen));
	node *n = *pp;
	if (!n)
		return NULL;
	void *val = n->val;
	*pp = n->next;
	free(n);
	m->len--;
	return val;
}

size_t bt_map_len(const bt_map *m)
{
	return m->len;
}

void *bt_map_sput(bt_map *m, const char *key, void *val)
{
	return bt_map_put(m, key, strlen(key), val);
}

void *bt_map_sget(const bt_map *m, const char *key)
{
	return bt_map_get(m, key, strlen(key));
}

void *bt_map_sdel(bt_map *m, const char *key)
{
	return bt_map_del(m, key, strlen(key));
}

void bt_map_iter_init(bt_map_iter *it, const bt_map *m)
{
	it->m = m;
	it->bucket = 0;
	it->node = NULL;
	it->next = m->nbuckets ? m->buckets[0] : NULL;
}

int bt_map_iter_next(bt_map_iter *it, const void **key, size_t *klen, void **val)
{
	node *n = it->next;
	while (!n) {
		if (++it->bucket >= it->m->nbuckets)
			return 0;
		n = it->m->buckets[it->bucket];
	}
	it->node = n;
	it->next = n->next;
	if (key)
		*key = n->key;
	if (klen)
		*klen = n->klen;
	if (val)
		*val = n->val;
	return 1;
}
