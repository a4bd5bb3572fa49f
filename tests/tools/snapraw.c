/*
 * snapraw — one snapshots call whose key (and parent) may hold any bytes,
 * NUL included, which no shell argument and no C string can: tests use it
 * to check that such keys reach the service whole and are refused.
 *
 *   snapraw [-s SNAPSHOTTER] ENDPOINT NAMESPACE Prepare|View|Mounts|Remove|Stat|Usage KEY [PARENT]
 *
 * KEY and PARENT take C escapes: \0, \xHH, \\.  Prints "code=NAME
 * message=..." and exits 0 when a reply came.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/snapshots/v1/snapshots.pb-c.h"
#include "bt_client.h"
#include "bt_util.h"

/* Decodes s's escapes into a new buffer of *len bytes. */
static uint8_t *unescape(const char *s, size_t *len)
{
	uint8_t *out = bt_xmalloc(strlen(s) + 1);
	size_t n = 0;

	for (const char *c = s; *c; c++) {
		if (*c != '\\' || !c[1]) {
			out[n++] = (uint8_t)*c;
			continue;
		}
		c++;
		if (*c == '0') {
			out[n++] = 0;
		} else if (*c == 'x' && c[1] && c[2]) {
			char hex[3] = { c[1], c[2], 0 };
			out[n++] = (uint8_t)strtoul(hex, NULL, 16);
			c += 2;
		} else {
			out[n++] = (uint8_t)*c;
		}
	}
	*len = n;
	return out;
}

int main(int argc, char **argv)
{
	const char *snapshotter = NULL;
	int c;

	while ((c = getopt(argc, argv, "s:")) != -1) {
		if (c != 's') {
			fprintf(stderr, "usage: snapraw [-s SNAPSHOTTER] ENDPOINT NS METHOD KEY [PARENT]\n");
			return 2;
		}
		snapshotter = optarg;
	}
	if (argc - optind < 4 || argc - optind > 5) {
		fprintf(stderr, "usage: snapraw [-s SNAPSHOTTER] ENDPOINT NS METHOD KEY [PARENT]\n");
		return 2;
	}
	const char *ep = argv[optind], *ns = argv[optind + 1], *method = argv[optind + 2];
	ProtobufCBinaryData key = { 0 }, parent = { 0 };
	key.data = unescape(argv[optind + 3], &key.len);
	if (argc - optind == 5)
		parent.data = unescape(argv[optind + 4], &parent.len);

	/* Every request of these methods has the key as field 1 (and Prepare
	 * and View the parent as field 2): one message type carries them all. */
	Berth__Snapshots__V1__PrepareSnapshotRequest req = BERTH__SNAPSHOTS__V1__PREPARE_SNAPSHOT_REQUEST__INIT;
	req.key = key;
	req.parent = parent;
	bt_callspec cs = { .service = "snapshots", .method = method, .ns = ns, .snapshotter = snapshotter };
	bt_err e = { 0 };
	bt_conn *conn = bt_conn_new(ep, NULL, &e);
	int rc = 1;
	if (conn) {
		if (bt_conn_call(conn, &cs, &req.base, NULL, NULL, &e) == 0)
			bt_err_clear(&e);
		bt_conn_free(&conn);
		rc = e.transport ? 1 : 0;
	}
	printf("code=%s message=%s\n", bt_code_name(e.code), e.msg);
	free(key.data);
	free(parent.data);
	return rc;
}
