/*
 * bt_pbwire — varints, keys, and a bounded field walker.
 */
#include "bt_pbwire.h"

#include <string.h>

size_t bt_pb_varint_size(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

uint8_t *bt_pb_put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

uint8_t *bt_pb_put_key(uint8_t *p, uint32_t field, int wiretype)
{
	return bt_pb_put_varint(p, ((uint64_t)field << 3) | (uint64_t)wiretype);
}

static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (*p >= end)
			return -1;
		uint8_t b = *(*p)++;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

int bt_pb_next(const uint8_t **p, const uint8_t *end, bt_pb_field *f)
{
	uint64_t key;

	if (*p >= end)
		return 0;
	memset(f, 0, sizeof(*f));
	if (get_varint(p, end, &key) < 0)
		return -1;
	f->field = (uint32_t)(key >> 3);
	f->wiretype = (int)(key & 7);
	if (f->field == 0)
		return -1;
	switch (f->wiretype) {
	case BT_PB_VARINT:
		return get_varint(p, end, &f->varint) < 0 ? -1 : 1;
	case BT_PB_I64:
		if (end - *p < 8)
			return -1;
		memcpy(&f->varint, *p, 8);
		*p += 8;
		return 1;
	case BT_PB_I32: {
		uint32_t v;
		if (end - *p < 4)
			return -1;
		memcpy(&v, *p, 4);
		f->varint = v;
		*p += 4;
		return 1;
	}
	case BT_PB_LEN: {
		uint64_t len;
		if (get_varint(p, end, &len) < 0 || len > (uint64_t)(end - *p))
			return -1;
		f->bytes = *p;
		f->len = (size_t)len;
		*p += len;
		return 1;
	}
	default:
		return -1;
	}
}
