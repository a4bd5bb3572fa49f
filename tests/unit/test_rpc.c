/*
 * test_rpc — the RPC layer (bt_server + bt_client) in one process: unary
 * calls, envelope checks, streams with credit, cancellation, deadlines,
 * ordering keys, slow handlers, and an unreachable or restarted server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/content/v1/content.pb-c.h"
#include "bt_client.h"
#include "bt_server.h"
#include "bt_util.h"

/* A test service reusing content.proto's messages:
 *   Info   echoes the digest back in info.digest; digest "sleep:N" sleeps N ms first;
 *          "noreply" returns without replying; "deadline" waits for bt_call_done.
 *   Read   streams `size` chunks whose offset counts 0..size-1.
 *   Write  with order key: records the offset field in arrival order, sleeping a little. */
static atomic_int stream_cancelled;
static atomic_int deadline_seen;
static pthread_mutex_t order_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t order_seen[64];
static int order_n;

static void h_info(bt_call *call, void *ctx)
{
	(void)ctx;
	const Berth__Content__V1__InfoRequest *r = bt_call_req(call);
	Berth__Content__V1__InfoResponse resp = BERTH__CONTENT__V1__INFO_RESPONSE__INIT;
	Berth__Content__V1__Info info = BERTH__CONTENT__V1__INFO__INIT;

	if (strncmp(r->digest, "sleep:", 6) == 0)
		usleep((useconds_t)atoi(r->digest + 6) * 1000);
	if (strcmp(r->digest, "noreply") == 0)
		return;
	if (strcmp(r->digest, "deadline") == 0) {
		while (!bt_call_done(call))
			usleep(5000);
		atomic_store(&deadline_seen, 1);
		bt_err e;
		bt_call_done_err(call, &e);
		bt_call_error(call, &e);
		return;
	}
	info.digest = r->digest;
	info.size = (int64_t)strlen(bt_call_namespace(call));
	resp.info = &info;
	bt_call_reply(call, &resp.base);
}

static void h_read(bt_call *call, void *ctx)
{
	(void)ctx;
	const Berth__Content__V1__ReadRequest *r = bt_call_req(call);
	bt_err e;

	for (int64_t i = 0; i < r->size; i++) {
		Berth__Content__V1__ReadResponse c = BERTH__CONTENT__V1__READ_RESPONSE__INIT;
		c.offset = i;
		if (bt_call_send(call, &c.base, &e) < 0) {
			atomic_store(&stream_cancelled, 1);
			bt_call_error(call, &e);
			return;
		}
	}
	bt_call_reply(call, NULL);
}

static void h_write(bt_call *call, void *ctx)
{
	(void)ctx;
	const Berth__Content__V1__WriteRequest *r = bt_call_req(call);
	Berth__Content__V1__WriteResponse resp = BERTH__CONTENT__V1__WRITE_RESPONSE__INIT;

	usleep((useconds_t)(rand() % 3000));
	pthread_mutex_lock(&order_mu);
	if (order_n < 64)
		order_seen[order_n++] = r->offset;
	pthread_mutex_unlock(&order_mu);
	resp.offset = r->offset;
	bt_call_reply(call, &resp.base);
}

static const bt_method methods[] = {
	{ "Info", h_info, 0 },
	{ "Read", h_read, 0 },
	{ "Write", h_write, 0 },
};

typedef struct fixture {
	char dir[64];
	char endpoint[128];
	bt_server *srv;
	pthread_t thread;
	bt_conn *conn;
} fixture;

static void *serve(void *arg)
{
	bt_err e;
	bt_server_run(arg, &e);
	return NULL;
}

static void start_server(fixture *f)
{
	bt_err e;
	bt_server_opts o = { .daemon = "test", .endpoint = f->endpoint };
	bt_service svc = { .name = "test",
			   .desc = &berth__content__v1__content__descriptor,
			   .methods = methods,
			   .n_methods = BT_ARRAY_LEN(methods) };

	f->srv = bt_server_new(&o, &e);
	assert_non_null(f->srv);
	assert_int_equal(bt_server_add(f->srv, &svc, &e), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, serve, f->srv), 0);
}

static void stop_server(fixture *f)
{
	bt_server_stop(f->srv);
	pthread_join(f->thread, NULL);
	bt_server_free(&f->srv);
}

static int setup(void **state)
{
	fixture *f = bt_xzalloc(sizeof(*f));
	bt_err e;

	snprintf(f->dir, sizeof(f->dir), "/tmp/bt-rpc.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->endpoint, sizeof(f->endpoint), "ipc://%s/s.sock", f->dir);
	start_server(f);
	bt_conn_opts co = { .timeout_ms = 5000, .connect_timeout_ms = 2000 };
	f->conn = bt_conn_new(f->endpoint, &co, &e);
	assert_non_null(f->conn);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	bt_err e;

	bt_conn_free(&f->conn);
	if (f->srv)
		stop_server(f);
	bt_rm_rf(f->dir, &e);
	free(f);
	return 0;
}

static int info_call(fixture *f, const char *ns, const char *digest, int64_t timeout, char **echo, bt_err *e)
{
	Berth__Content__V1__InfoRequest req = BERTH__CONTENT__V1__INFO_REQUEST__INIT;
	Berth__Content__V1__InfoResponse *resp = NULL;
	bt_callspec cs = { .service = "test", .method = "Info", .ns = ns, .timeout_ms = timeout };

	req.digest = (char *)digest;
	if (bt_conn_call(f->conn, &cs, &req.base, &berth__content__v1__info_response__descriptor, (void **)&resp, e) < 0)
		return -1;
	if (echo)
		*echo = bt_xstrdup(resp->info ? resp->info->digest : "");
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}

static void test_unary(void **state)
{
	fixture *f = *state;
	char *echo = NULL;
	bt_err e;

	assert_int_equal(info_call(f, "default", "hello", 0, &echo, &e), 0);
	assert_string_equal(echo, "hello");
	free(echo);
}

static void test_envelope_errors(void **state)
{
	fixture *f = *state;
	bt_err e;
	bt_callspec cs = { .service = "test", .method = "Nope", .ns = "default" };
	Berth__Content__V1__InfoRequest req = BERTH__CONTENT__V1__INFO_REQUEST__INIT;

	assert_int_equal(bt_conn_call(f->conn, &cs, &req.base, NULL, NULL, &e), -1);
	assert_int_equal(e.code, BT_UNIMPLEMENTED);
	cs.service = "nosuch";
	cs.method = "Info";
	assert_int_equal(bt_conn_call(f->conn, &cs, &req.base, NULL, NULL, &e), -1);
	assert_int_equal(e.code, BT_UNIMPLEMENTED);
	assert_int_equal(info_call(f, NULL, "x", 0, NULL, &e), -1);
	assert_int_equal(e.code, BT_FAILED_PRECONDITION);
	assert_non_null(strstr(e.msg, "namespace is required"));
	assert_int_equal(info_call(f, "a..b", "x", 0, NULL, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	/* a service method without a handler is unimplemented too */
	cs.service = "test";
	cs.method = "Delete";
	assert_int_equal(bt_conn_call(f->conn, &cs, &req.base, NULL, NULL, &e), -1);
	assert_int_equal(e.code, BT_UNIMPLEMENTED);
	/* system.Health is served by every server, without a namespace */
	cs.service = "system";
	cs.method = "Health";
	cs.ns = NULL;
	assert_int_equal(bt_conn_call(f->conn, &cs, &req.base, NULL, NULL, &e), 0);
}

static void test_handler_without_reply(void **state)
{
	fixture *f = *state;
	bt_err e;

	assert_int_equal(info_call(f, "default", "noreply", 0, NULL, &e), -1);
	assert_int_equal(e.code, BT_INTERNAL);
	assert_false(e.transport);
}

static void test_oversized(void **state)
{
	fixture *f = *state;
	Berth__Content__V1__WriteRequest req = BERTH__CONTENT__V1__WRITE_REQUEST__INIT;
	bt_callspec cs = { .service = "test", .method = "Write", .ns = "default" };
	bt_err e;

	req.data.len = BT_RPC_MAX_MSG + 10;
	req.data.data = bt_xzalloc(req.data.len);
	assert_int_equal(bt_conn_call(f->conn, &cs, &req.base, NULL, NULL, &e), -1);
	assert_int_equal(e.code, BT_RESOURCE_EXHAUSTED);
	free(req.data.data);
	/* still serving */
	assert_int_equal(info_call(f, "default", "after", 0, NULL, &e), 0);
}

static void test_stream_credit(void **state)
{
	fixture *f = *state;
	Berth__Content__V1__ReadRequest req = BERTH__CONTENT__V1__READ_REQUEST__INIT;
	bt_callspec cs = { .service = "test", .method = "Read", .ns = "default", .window = 4 };
	bt_err e;
	bt_stream *s;
	void *item;
	int64_t want = 0;
	int rc;

	req.size = 1000;
	s = bt_conn_stream(f->conn, &cs, &req.base, &berth__content__v1__read_response__descriptor, &e);
	assert_non_null(s);
	while ((rc = bt_stream_next(s, &item, &e)) == 1) {
		Berth__Content__V1__ReadResponse *c = item;
		assert_int_equal(c->offset, want);
		want++;
		protobuf_c_message_free_unpacked(item, NULL);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(want, 1000);
	bt_stream_free(&s);
}

static void test_stream_cancel(void **state)
{
	fixture *f = *state;
	Berth__Content__V1__ReadRequest req = BERTH__CONTENT__V1__READ_REQUEST__INIT;
	bt_callspec cs = { .service = "test", .method = "Read", .ns = "default", .window = 2 };
	bt_err e;
	void *item;

	atomic_store(&stream_cancelled, 0);
	req.size = 1000000;
	bt_stream *s = bt_conn_stream(f->conn, &cs, &req.base, &berth__content__v1__read_response__descriptor, &e);
	assert_non_null(s);
	assert_int_equal(bt_stream_next(s, &item, &e), 1);
	protobuf_c_message_free_unpacked(item, NULL);
	bt_stream_free(&s); /* cancels */
	for (int i = 0; i < 200 && !atomic_load(&stream_cancelled); i++)
		usleep(10000);
	assert_true(atomic_load(&stream_cancelled));
}

static void test_deadline(void **state)
{
	fixture *f = *state;
	bt_err e;
	int64_t t0 = bt_mono_ms();

	atomic_store(&deadline_seen, 0);
	assert_int_equal(info_call(f, "default", "deadline", 200, NULL, &e), -1);
	assert_int_equal(e.code, BT_DEADLINE_EXCEEDED);
	assert_true(bt_mono_ms() - t0 < 2000);
	for (int i = 0; i < 100 && !atomic_load(&deadline_seen); i++)
		usleep(10000);
	assert_true(atomic_load(&deadline_seen));
}

typedef struct slow_arg {
	const char *endpoint;
	int rc;
} slow_arg;

static void *slow_caller(void *p)
{
	slow_arg *a = p;
	bt_err e;
	bt_conn *c = bt_conn_new(a->endpoint, NULL, &e);
	Berth__Content__V1__InfoRequest req = BERTH__CONTENT__V1__INFO_REQUEST__INIT;
	bt_callspec cs = { .service = "test", .method = "Info", .ns = "default" };
	req.digest = (char *)"sleep:1500";
	a->rc = bt_conn_call(c, &cs, &req.base, NULL, NULL, &e);
	bt_conn_free(&c);
	return NULL;
}

static void test_slow_handler_blocks_nothing(void **state)
{
	fixture *f = *state;
	pthread_t t[8];
	slow_arg a[8];
	bt_err e;

	/* more slow calls than the pool's minimum */
	for (int i = 0; i < 8; i++) {
		a[i].endpoint = f->endpoint;
		pthread_create(&t[i], NULL, slow_caller, &a[i]);
	}
	usleep(200000);
	int64_t t0 = bt_mono_ms();
	for (int i = 0; i < 20; i++)
		assert_int_equal(info_call(f, "default", "quick", 0, NULL, &e), 0);
	assert_true(bt_mono_ms() - t0 < 1000);
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(a[i].rc, 0);
	}
}

static void test_order_key(void **state)
{
	fixture *f = *state;
	uint64_t ids[40];
	bt_err e;

	order_n = 0;
	for (int i = 0; i < 40; i++) {
		Berth__Content__V1__WriteRequest req = BERTH__CONTENT__V1__WRITE_REQUEST__INIT;
		bt_callspec cs = { .service = "test", .method = "Write", .ns = "default", .order_key = "k" };
		req.offset = i;
		assert_int_equal(bt_conn_send(f->conn, &cs, &req.base, &ids[i], &e), 0);
	}
	for (int i = 0; i < 40; i++) {
		Berth__Content__V1__WriteResponse *r = NULL;
		assert_int_equal(
			bt_conn_collect(f->conn, ids[i], &berth__content__v1__write_response__descriptor, (void **)&r, &e), 0);
		assert_int_equal(r->offset, i);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	assert_int_equal(order_n, 40);
	for (int i = 0; i < 40; i++)
		assert_int_equal(order_seen[i], i);
}

static void test_unreachable_and_restart(void **state)
{
	fixture *f = *state;
	bt_err e;

	stop_server(f);
	int64_t t0 = bt_mono_ms();
	assert_int_equal(info_call(f, "default", "x", 1000, NULL, &e), -1);
	assert_int_equal(e.code, BT_UNAVAILABLE);
	assert_true(e.transport);
	assert_true(bt_mono_ms() - t0 < 3000);
	start_server(f);
	char *echo = NULL;
	int brc = info_call(f, "default", "back", 3000, &echo, &e);
	if (brc < 0)
		fprintf(stderr, "after restart: %s\n", e.msg);
	assert_int_equal(brc, 0);
	assert_string_equal(echo, "back");
	free(echo);
}

static void test_second_server_refused(void **state)
{
	fixture *f = *state;
	bt_err e;
	bt_server_opts o = { .daemon = "test2", .endpoint = f->endpoint };
	bt_server *s2 = bt_server_new(&o, &e);

	assert_null(s2);
	assert_int_equal(e.code, BT_ALREADY_EXISTS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_envelope_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handler_without_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_credit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_handler_blocks_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_order_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreachable_and_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_server_refused, setup, teardown),
	};
	return cmocka_run_group_tests_name("rpc", tests, NULL, NULL);
}
