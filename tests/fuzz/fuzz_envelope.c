/*
 * fuzz_envelope — libFuzzer harness for every decoder of bytes that arrive
 * from another process: request and response headers, the content
 * service's request bodies (protobuf-c and the hand decoder of Write), and
 * the wire walker used for blob chunks.  The first byte picks the decoder;
 * each must return an error or a value, never crash, leak or hang.
 *
 * Build and run: tests/fuzz/run.sh (make fuzz).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/content/v1/content.pb-c.h"
#include "bt_pbwire.h"
#include "bt_rpc.h"
#include "content_rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const bodies[] = {
	&berth__content__v1__info_request__descriptor,   &berth__content__v1__update_request__descriptor,
	&berth__content__v1__list_request__descriptor,   &berth__content__v1__read_request__descriptor,
	&berth__content__v1__write_request__descriptor,  &berth__content__v1__list_statuses_request__descriptor,
	&berth__content__v1__read_response__descriptor,  &berth__content__v1__write_response__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bt_err e;

	if (size < 1)
		return 0;
	uint8_t which = data[0];
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	/* an exact-size copy, so reads past the end are caught */
	uint8_t *buf = malloc(n ? n : 1);
	memcpy(buf, p, n);

	switch (which % 5) {
	case 0: {
		bt_reqhdr *h = bt_reqhdr_decode(buf, n, &e);
		if (h && h->principal)
			(void)h->principal->n_namespaces;
		bt_reqhdr_free(&h);
		(void)bt_rpc_check_namespace(h ? "x" : (char *)"", &e);
		break;
	}
	case 1: {
		bt_resphdr *h = bt_resphdr_decode(buf, n, &e);
		bt_resphdr_free(&h);
		break;
	}
	case 2: {
		content_write_fields w = { 0 };
		if (content_parse_write(buf, n, &w, &e) == 0 && w.data)
			(void)w.data[w.len ? w.len - 1 : 0];
		content_write_fields_clear(&w);
		break;
	}
	case 3: {
		const ProtobufCMessageDescriptor *d = bodies[(which / 5) % (sizeof(bodies) / sizeof(bodies[0]))];
		ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, n, buf);
		if (m)
			protobuf_c_message_free_unpacked(m, NULL);
		break;
	}
	case 4: {
		const uint8_t *q = buf, *end = buf + n;
		bt_pb_field f;
		while (bt_pb_next(&q, end, &f) == 1)
			if (f.wiretype == BT_PB_LEN && f.len)
				(void)f.bytes[f.len - 1];
		break;
	}
	}
	free(buf);
	return 0;
}
