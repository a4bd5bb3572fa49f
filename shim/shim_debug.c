/*
 * berth-shim-ctl — the shim's debug client: one call on a shim's socket,
 * the request built from key=value arguments and the reply printed as
 * key=value lines, both through the protobuf descriptors of shim.proto.
 *
 *   berth-shim-ctl [-t MS] [-n NS] SOCKET METHOD [field=value ...]
 *
 * Nested fields use dots (stdio.stdout=/path); a bytes field takes its
 * value literally, or from a file with field=@PATH.  Exit status: 0 on OK,
 * 1 on an error reply or transport failure (message on stderr), 2 on usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "berth/shim/v1/shim.pb-c.h"
#include "bt_seqrpc.h"
#include "bt_util.h"

static const ProtobufCMessageDescriptor *find_desc(const char *method, const char *suffix)
{
	/* the request and response types are named after the method */
	_cleanup_free_ char *name = bt_xasprintf("berth.shim.v1.%s%s", method, suffix);
	static const ProtobufCMessageDescriptor *const all[] = {
#define D(x) &berth__shim__v1__##x##_request__descriptor, &berth__shim__v1__##x##_response__descriptor
		D(info), D(create), D(start), D(state), D(wait), D(kill), D(exec), D(resize_pty),
		&berth__shim__v1__close_iorequest__descriptor, &berth__shim__v1__close_ioresponse__descriptor,
		D(pause), D(resume), D(pids), D(update), D(delete), D(shutdown),
#undef D
	};
	for (size_t i = 0; i < BT_ARRAY_LEN(all); i++)
		if (strcmp(all[i]->name, name) == 0)
			return all[i];
	return NULL;
}

static int set_field(ProtobufCMessage *m, const char *key, const char *val, bt_err *e)
{
	const char *dot = strchr(key, '.');
	_cleanup_free_ char *head = dot ? bt_xstrndup(key, (size_t)(dot - key)) : bt_xstrdup(key);
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(m->descriptor, head);
	if (f == NULL || f->label == PROTOBUF_C_LABEL_REPEATED)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: no such field in %s", head, m->descriptor->name);
	void *at = (char *)m + f->offset;
	if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
		if (!dot)
			return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: a message; set %s.FIELD", key, key);
		ProtobufCMessage **sub = at;
		if (*sub == NULL) {
			const ProtobufCMessageDescriptor *d = f->descriptor;
			*sub = bt_xzalloc(d->sizeof_message);
			d->message_init(*sub);
		}
		return set_field(*sub, dot + 1, val, e);
	}
	uint64_t u;
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		*(char **)at = bt_xstrdup(val);
		return 0;
	case PROTOBUF_C_TYPE_BOOL:
		*(protobuf_c_boolean *)at = strcmp(val, "true") == 0 || strcmp(val, "1") == 0;
		return 0;
	case PROTOBUF_C_TYPE_UINT32:
		if (bt_parse_u64(val, &u) < 0 || u > UINT32_MAX)
			return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: not a number: %s", key, val);
		*(uint32_t *)at = (uint32_t)u;
		return 0;
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData *b = at;
		if (val[0] == '@') {
			char *data;
			size_t len;
			if (bt_read_file(val + 1, BT_SEQRPC_MAX, &data, &len, e) < 0)
				return -1;
			b->data = (uint8_t *)data;
			b->len = len;
		} else {
			b->data = (uint8_t *)bt_xstrdup(val);
			b->len = strlen(val);
		}
		return 0;
	}
	default:
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: unsupported field type", key);
	}
}

static void print_msg(const ProtobufCMessage *m, const char *prefix);

static void print_value(const ProtobufCFieldDescriptor *f, const void *at, const char *name)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		printf("%s=%s\n", name, *(char *const *)at ? *(char *const *)at : "");
		break;
	case PROTOBUF_C_TYPE_BOOL:
		printf("%s=%s\n", name, *(const protobuf_c_boolean *)at ? "true" : "false");
		break;
	case PROTOBUF_C_TYPE_UINT32:
		printf("%s=%" PRIu32 "\n", name, *(const uint32_t *)at);
		break;
	case PROTOBUF_C_TYPE_INT64:
		printf("%s=%" PRId64 "\n", name, *(const int64_t *)at);
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumValue *v =
			protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)at);
		printf("%s=%s\n", name, v ? v->name : "?");
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		if (*(ProtobufCMessage *const *)at)
			print_msg(*(ProtobufCMessage *const *)at, name);
		break;
	default:
		break;
	}
}

static void print_msg(const ProtobufCMessage *m, const char *prefix)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *at = (const char *)m + f->offset;
		_cleanup_free_ char *name = *prefix ? bt_xasprintf("%s.%s", prefix, f->name) : bt_xstrdup(f->name);
		if (f->label != PROTOBUF_C_LABEL_REPEATED) {
			print_value(f, at, name);
			continue;
		}
		size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
		size_t sz = f->type == PROTOBUF_C_TYPE_MESSAGE ? sizeof(void *) : 8;
		for (size_t k = 0; k < n; k++) {
			_cleanup_free_ char *item = bt_xasprintf("%s[%zu]", name, k);
			print_value(f, *(char *const *)at + k * sz, item);
		}
	}
}

int main(int argc, char **argv)
{
	int timeout = 30000;
	const char *ns = NULL;
	int c;
	static const struct option longopts[] = { { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	while ((c = getopt_long(argc, argv, "t:n:h", longopts, NULL)) != -1) {
		if (c == 't')
			timeout = atoi(optarg);
		else if (c == 'n')
			ns = optarg;
		else {
			fprintf(c == 'h' ? stdout : stderr,
				"usage: berth-shim-ctl [-t MS] [-n NS] SOCKET METHOD [field=value ...]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (argc - optind < 2) {
		fprintf(stderr, "usage: berth-shim-ctl [-t MS] [-n NS] SOCKET METHOD [field=value ...]\n");
		return 2;
	}
	const char *sock = argv[optind], *method = argv[optind + 1];
	const ProtobufCMessageDescriptor *qd = find_desc(method, "Request");
	const ProtobufCMessageDescriptor *rd = find_desc(method, "Response");
	if (qd == NULL || rd == NULL) {
		fprintf(stderr, "berth-shim-ctl: %s: unknown method\n", method);
		return 2;
	}
	ProtobufCMessage *req = bt_xzalloc(qd->sizeof_message);
	qd->message_init(req);
	bt_err e = { 0 };
	for (int i = optind + 2; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (eq == NULL) {
			fprintf(stderr, "berth-shim-ctl: %s: expected field=value\n", argv[i]);
			return 2;
		}
		*eq = '\0';
		if (set_field(req, argv[i], eq + 1, &e) < 0) {
			fprintf(stderr, "berth-shim-ctl: %s\n", e.msg);
			return 2;
		}
	}
	bt_seqcli *cli = bt_seqcli_open(sock, "shim", ns, &e);
	if (cli == NULL) {
		fprintf(stderr, "berth-shim-ctl: %s: %s\n", bt_code_name(e.code), e.msg);
		return 1;
	}
	ProtobufCMessage *resp = NULL;
	int rc = bt_seqcli_call(cli, method, req, rd, timeout, &resp, &e);
	bt_seqcli_free(&cli);
	if (rc < 0) {
		fprintf(stderr, "berth-shim-ctl: %s: %s\n", bt_code_name(e.code), e.msg);
		protobuf_c_message_free_unpacked(req, NULL);
		return 1;
	}
	print_msg(resp, "");
	protobuf_c_message_free_unpacked(resp, NULL);
	protobuf_c_message_free_unpacked(req, NULL);
	return 0;
}
