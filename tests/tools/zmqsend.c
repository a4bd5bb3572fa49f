/*
 * zmqsend — sends hand-made frames to a berth endpoint and prints each
 * reply's header, so tests can throw malformed input at the daemons.
 *
 *   zmqsend [-t MS] ENDPOINT FRAME...
 *
 * FRAME is one of
 *   hdr:KEY=VAL,...   a RequestHeader (keys: version, service, method, ns,
 *                     id, deadline, cancel, credit, window, order; and a
 *                     principal the client claims: principal=NAME,
 *                     pns=NAMESPACE-PATTERN, ro=1)
 *   raw:TEXT          the bytes of TEXT
 *   rand:N            N random bytes
 *   zero:N            N zero bytes
 *   empty             an empty frame
 * Prints "code=NAME final=0|1 id=N message=..." per reply until a final one
 * or the timeout (then "timeout"), and exits 0 if a reply came.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "berth/rpc/v1/rpc.pb-c.h"
#include "bt_err.h"
#include "bt_util.h"

static void send_frame(void *s, const char *spec, int more)
{
	int flags = more ? ZMQ_SNDMORE : 0;

	if (strncmp(spec, "hdr:", 4) == 0) {
		Berth__Rpc__V1__RequestHeader h = BERTH__RPC__V1__REQUEST_HEADER__INIT;
		Berth__Rpc__V1__Principal pr = BERTH__RPC__V1__PRINCIPAL__INIT;
		char *pns[1];
		char *copy = bt_xstrdup(spec + 4), *save = NULL;
		for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(kv, '=');
			if (!eq)
				continue;
			*eq = '\0';
			const char *v = eq + 1;
			if (!strcmp(kv, "version"))
				h.version = (uint32_t)strtoul(v, NULL, 10);
			else if (!strcmp(kv, "service"))
				h.service = (char *)v;
			else if (!strcmp(kv, "method"))
				h.method = (char *)v;
			else if (!strcmp(kv, "ns"))
				h.namespace_ = (char *)v;
			else if (!strcmp(kv, "id"))
				h.request_id = strtoull(v, NULL, 10);
			else if (!strcmp(kv, "deadline"))
				h.deadline_ms = (uint32_t)strtoul(v, NULL, 10);
			else if (!strcmp(kv, "cancel"))
				h.cancel = atoi(v);
			else if (!strcmp(kv, "credit"))
				h.credit = (uint32_t)strtoul(v, NULL, 10);
			else if (!strcmp(kv, "window"))
				h.window = (uint32_t)strtoul(v, NULL, 10);
			else if (!strcmp(kv, "order"))
				h.order_key = (char *)v;
			else if (!strcmp(kv, "principal"))
				pr.name = (char *)v, h.principal = &pr;
			else if (!strcmp(kv, "pns"))
				pns[0] = (char *)v, pr.namespaces = pns, pr.n_namespaces = 1, h.principal = &pr;
			else if (!strcmp(kv, "ro"))
				pr.read_only = atoi(v), h.principal = &pr;
		}
		size_t n = berth__rpc__v1__request_header__get_packed_size(&h);
		uint8_t *buf = bt_xmalloc(n);
		berth__rpc__v1__request_header__pack(&h, buf);
		zmq_send(s, buf, n, flags);
		free(buf);
		free(copy);
	} else if (strncmp(spec, "raw:", 4) == 0) {
		zmq_send(s, spec + 4, strlen(spec + 4), flags);
	} else if (strncmp(spec, "rand:", 5) == 0 || strncmp(spec, "zero:", 5) == 0) {
		size_t n = strtoull(spec + 5, NULL, 10);
		char *buf = bt_xzalloc(n);
		if (spec[0] == 'r')
			bt_random_bytes(buf, n);
		zmq_send(s, buf, n, flags);
		free(buf);
	} else if (strcmp(spec, "empty") == 0) {
		zmq_send(s, "", 0, flags);
	} else {
		fprintf(stderr, "zmqsend: bad frame spec %s\n", spec);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	int timeout = 3000, i = 1, got = 0;

	if (argc > 2 && strcmp(argv[1], "-t") == 0) {
		timeout = atoi(argv[2]);
		i = 3;
	}
	if (argc - i < 2) {
		fprintf(stderr, "usage: zmqsend [-t MS] ENDPOINT FRAME...\n");
		return 2;
	}
	void *ctx = zmq_ctx_new();
	void *s = zmq_socket(ctx, ZMQ_DEALER);
	int zero = 0;
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
	if (zmq_connect(s, argv[i]) < 0) {
		fprintf(stderr, "zmqsend: connect %s: %s\n", argv[i], zmq_strerror(zmq_errno()));
		return 2;
	}
	for (int k = i + 1; k < argc; k++)
		send_frame(s, argv[k], k + 1 < argc);
	for (;;) {
		zmq_msg_t hm, bm;
		int more = 0;
		size_t len = sizeof(more);
		zmq_msg_init(&hm);
		if (zmq_msg_recv(&hm, s, 0) < 0) {
			printf("timeout\n");
			break;
		}
		zmq_getsockopt(s, ZMQ_RCVMORE, &more, &len);
		while (more) {
			zmq_msg_init(&bm);
			zmq_msg_recv(&bm, s, 0);
			zmq_msg_close(&bm);
			zmq_getsockopt(s, ZMQ_RCVMORE, &more, &len);
		}
		Berth__Rpc__V1__ResponseHeader *h =
			berth__rpc__v1__response_header__unpack(NULL, zmq_msg_size(&hm), zmq_msg_data(&hm));
		zmq_msg_close(&hm);
		got = 1;
		if (!h) {
			printf("malformed reply\n");
			break;
		}
		printf("code=%s final=%d id=%llu message=%s\n", bt_code_name((int)h->code), h->final,
		       (unsigned long long)h->request_id, h->message);
		int final = h->final;
		berth__rpc__v1__response_header__free_unpacked(h, NULL);
		if (final)
			break;
	}
	zmq_close(s);
	zmq_ctx_term(ctx);
	return got ? 0 : 1;
}
