/*
 * manyclients — N client connections at once to a berth endpoint, each
 * with a request in flight, for ROUNDS rounds: namespaces.List through the
 * gateway (or system.Health for a service socket, with -H).
 *
 *   manyclients [-H] [-f K] N ROUNDS ENDPOINT
 *
 * -f K: K requests in flight on every connection (default 1).
 * Prints "ok=K failed=F" and the first error; exits 0 when every call
 * succeeded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <zmq.h>

#include "berth/namespaces/v1/namespaces.pb-c.h"
#include "berth/system/v1/system.pb-c.h"
#include "bt_client.h"
#include "bt_rpc.h"
#include "bt_util.h"

int main(int argc, char **argv)
{
	bool health = false;
	int a = 1, k = 1;
	struct rlimit rl;

	for (; a < argc && argv[a][0] == '-'; a++) {
		if (!strcmp(argv[a], "-H"))
			health = true;
		else if (!strcmp(argv[a], "-f") && a + 1 < argc)
			k = atoi(argv[++a]);
	}
	if (argc - a != 3 || k < 1) {
		fprintf(stderr, "usage: manyclients [-H] [-f K] N ROUNDS ENDPOINT\n");
		return 2;
	}
	int n = atoi(argv[a]), rounds = atoi(argv[a + 1]);
	const char *ep = argv[a + 2];
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* a connection is a DEALER and its monitor sockets */
	zmq_ctx_set(bt_zmq_ctx(), ZMQ_MAX_SOCKETS, 4 * n + 64);
	bt_conn **c = bt_xcalloc((size_t)n, sizeof(*c));
	uint64_t *id = bt_xcalloc((size_t)n * (size_t)k, sizeof(*id));
	bool *sent = bt_xcalloc((size_t)n * (size_t)k, sizeof(*sent));
	bt_conn_opts o = { .timeout_ms = 60000, .connect_timeout_ms = 60000 };
	bt_callspec cs = health ? (bt_callspec){ .service = "system", .method = "Health", .timeout_ms = 60000 }
				: (bt_callspec){ .service = "namespaces", .method = "List", .timeout_ms = 60000 };
	Berth__Namespaces__V1__ListNamespacesRequest lreq = BERTH__NAMESPACES__V1__LIST_NAMESPACES_REQUEST__INIT;
	Berth__System__V1__HealthRequest hreq = BERTH__SYSTEM__V1__HEALTH_REQUEST__INIT;
	const ProtobufCMessage *req = health ? &hreq.base : &lreq.base;
	const ProtobufCMessageDescriptor *rd = health ? &berth__system__v1__health_response__descriptor
						      : &berth__namespaces__v1__list_namespaces_response__descriptor;
	int ok = 0, failed = 0;
	bt_err first = { 0 }, e;

	for (int i = 0; i < n; i++) {
		c[i] = bt_conn_new(ep, &o, &e);
		if (!c[i]) {
			fprintf(stderr, "connection %d: %s\n", i, e.msg);
			return 1;
		}
	}
	for (int r = 0; r < rounds; r++) {
		for (int j = 0; j < n * k; j++) {
			sent[j] = bt_conn_send(c[j / k], &cs, req, &id[j], &e) == 0;
			if (!sent[j]) {
				failed++;
				if (!first.code)
					first = e;
			}
		}
		for (int j = 0; j < n * k; j++) {
			void *resp = NULL;
			if (!sent[j])
				continue;
			if (bt_conn_collect(c[j / k], id[j], rd, &resp, &e) == 0) {
				ok++;
				protobuf_c_message_free_unpacked(resp, NULL);
			} else {
				failed++;
				if (!first.code)
					first = e;
			}
		}
	}
	printf("ok=%d failed=%d%s%s\n", ok, failed, first.code ? " first error: " : "", first.code ? first.msg : "");
	for (int i = 0; i < n; i++)
		bt_conn_free(&c[i]);
	free(c);
	free(id);
	free(sent);
	return failed ? 1 : 0;
}
