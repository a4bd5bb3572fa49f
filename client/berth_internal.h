/*
 * berth_internal — what libberth's files share: the client structure and
 * the bridge from bt_err to berth_error.
 */
#ifndef BERTH_INTERNAL_H
#define BERTH_INTERNAL_H

#include "berth/berth.h"
#include "bt_client.h"
#include "bt_err.h"
#include "bt_labels.h"
#include "bt_util.h"

struct berth_client {
	bt_conn *conn;
	char *address;
	char *ns;
	int64_t timeout_ms;
};

/* Copies e into err; returns -1. */
int berth_fail(berth_error *err, const bt_err *e);
/* The namespace to use: ns, or the client's default. */
const char *berth_ns(const berth_client *c, const char *ns);
/* A callspec for service.method in ns. */
bt_callspec berth_spec(const berth_client *c, const char *service, const char *method, const char *ns);

/* Runs a server stream (no deadline) of messages of type d, calling
 * each(msg, arg) for every one; the message is freed afterwards. */
int berth_stream_each(berth_client *c, bt_callspec *cs, const ProtobufCMessage *req,
		      const ProtobufCMessageDescriptor *d, void (*each)(const void *msg, void *arg), void *arg,
		      bt_err *e);

/* Reads a stored document (index, manifest, config) whole, within max bytes.
 * Errors name it as "<what> <digest>": NOT_FOUND "… is not stored (pull the
 * image again)", RESOURCE_EXHAUSTED "… is larger than <max> bytes". */
int berth_read_doc(berth_client *c, const char *ns, const char *what, const char *digest, size_t max, bt_buf *out,
		   bt_err *e);

/* labels: public array <-> bt_labels */
void berth_labels_from_public(const berth_label *l, size_t n, bt_labels *out);
berth_label *berth_labels_to_public(void *const *pb_entries, size_t n);
void berth_labels_free(berth_label *l, size_t n);

#endif
