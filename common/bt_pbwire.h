/*
 * bt_pbwire — just enough of the protobuf wire format to move blob chunks
 * without copying them: encode a message whose last field is a large
 * `bytes` straight into a ZeroMQ frame, and walk the fields of a received
 * frame pointing into it.  Everything else goes through protobuf-c.
 */
#ifndef BT_PBWIRE_H
#define BT_PBWIRE_H

#include <stddef.h>
#include <stdint.h>

enum { BT_PB_VARINT = 0, BT_PB_I64 = 1, BT_PB_LEN = 2, BT_PB_I32 = 5 };

/* Bytes a varint of v takes. */
size_t bt_pb_varint_size(uint64_t v);
/* Writes v as a varint at p; returns the byte after it. */
uint8_t *bt_pb_put_varint(uint8_t *p, uint64_t v);
/* Writes a field key. */
uint8_t *bt_pb_put_key(uint8_t *p, uint32_t field, int wiretype);

typedef struct bt_pb_field {
	uint32_t field;
	int wiretype;
	uint64_t varint;      /* BT_PB_VARINT, and the raw value of I64/I32 */
	const uint8_t *bytes; /* BT_PB_LEN: points into the buffer */
	size_t len;
} bt_pb_field;

/* Reads the next field at *p (before end); returns 1 with f filled, 0 at
 * the end, -1 on malformed input. Unknown fields are returned too (skip them). */
int bt_pb_next(const uint8_t **p, const uint8_t *end, bt_pb_field *f);

#endif
