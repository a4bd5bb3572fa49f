/*
 * test_shim — unit tests of the shim's pure parts: the seqpacket framing
 * (bt_seqrpc) over a real socket pair and against malformed datagrams, the
 * exit records of a state dir (bt_shimstate), and the little JSON the shim
 * reads (shim_json).  The shim itself is driven for real in
 * tests/integration/shim.bats.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/shim/v1/shim.pb-c.h"
#include "bt_seqrpc.h"
#include "bt_shimstate.h"
#include "bt_util.h"
#include "shim.h"

static void json_ok(const char *s)
{
	bt_err e = { 0 };
	if (shim_json_check_object(s, strlen(s), "spec", &e) < 0)
		fail_msg("%s refused: %s", s, e.msg);
}

static void json_bad(const char *s)
{
	bt_err e = { 0 };
	if (shim_json_check_object(s, strlen(s), "spec", &e) == 0)
		fail_msg("%s accepted", s);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_non_null(strstr(e.msg, "spec: "));
}

static void test_json_check(void **state)
{
	(void)state;
	json_ok("{}");
	json_ok(" {\"args\": [\"sh\", \"-c\", \"echo \\\"x\\\" \\u00e9\"], \"cwd\": \"/\", \"n\": -1.5e3, \"t\": true, "
		"\"z\": null, \"o\": {\"a\": [[], {}]}}\n");
	json_bad("");
	json_bad("[]");
	json_bad("{");
	json_bad("{\"args\": [\"true\"],");
	json_bad("{\"a\": 01}");
	json_bad("{\"a\": tru}");
	json_bad("{\"a\": \"\\x\"}");
	json_bad("{\"a\": \"unterminated}");
	json_bad("{} {}");
	json_bad("{\"a\" 1}");
	char deep[200];
	size_t n = 0;
	deep[n++] = '{';
	deep[n++] = '"';
	deep[n++] = 'a';
	deep[n++] = '"';
	deep[n++] = ':';
	for (int i = 0; i < 90; i++)
		deep[n++] = '[';
	deep[n] = '\0';
	json_bad(deep);
}

static void test_json_log_msg(void **state)
{
	(void)state;
	_cleanup_free_ char *a = shim_json_log_msg(
		"{\"level\":\"warning\",\"msg\":\"a warning\",\"time\":\"t\"}\n"
		"{\"level\":\"error\",\"msg\":\"runc create failed: \\\"x\\\"\\nsecond\",\"time\":\"t\"}\n"
		"{\"level\":\"info\",\"msg\":\"later info\"}\n");
	assert_string_equal(a, "runc create failed: \"x\"\nsecond");
	/* crun puts msg first */
	_cleanup_free_ char *b = shim_json_log_msg("{\"msg\":\"error opening file\",\"level\":\"error\"}\n");
	assert_string_equal(b, "error opening file");
	_cleanup_free_ char *c = shim_json_log_msg("{\"level\":\"info\",\"msg\":\"only info\"}");
	assert_string_equal(c, "only info");
	assert_null(shim_json_log_msg("plain text, not json\n"));
}

static void test_json_pids(void **state)
{
	(void)state;
	int *p = NULL;
	assert_int_equal(shim_json_pids("[12,345, 6789]\n", &p), 3);
	assert_int_equal(p[0], 12);
	assert_int_equal(p[2], 6789);
	free(p);
	assert_int_equal(shim_json_pids("[\n  1\n]", &p), 1);
	free(p);
	assert_int_equal(shim_json_pids("[]", &p), 0);
	free(p);
	assert_int_equal(shim_json_pids("[1,x]", &p), -1);
	assert_int_equal(shim_json_pids("[0]", &p), -1);
	assert_int_equal(shim_json_pids("[99999999999]", &p), -1);
	assert_int_equal(shim_json_pids("1,2", &p), -1);
	assert_int_equal(shim_json_pids("[1,2", &p), -1);
}

static void test_seqrpc_roundtrip(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	bt_err e = { 0 };
	Berth__Rpc__V1__RequestHeader h = BERTH__RPC__V1__REQUEST_HEADER__INIT;
	h.version = 1;
	h.service = "shim";
	h.method = "Kill";
	h.request_id = 42;
	Berth__Shim__V1__KillRequest k = BERTH__SHIM__V1__KILL_REQUEST__INIT;
	k.exec_id = "e1";
	k.signal = 9;
	assert_int_equal(bt_seqrpc_send(sv[0], &h.base, &k.base, 0, &e), 0);
	uint8_t *buf;
	size_t len;
	assert_int_equal(bt_seqrpc_recv(sv[1], 0, &buf, &len, &e), 1);
	const uint8_t *hb, *bb;
	size_t hl, bl;
	assert_int_equal(bt_seqrpc_split(buf, len, &hb, &hl, &bb, &bl, &e), 0);
	Berth__Rpc__V1__RequestHeader *h2 = berth__rpc__v1__request_header__unpack(NULL, hl, hb);
	assert_non_null(h2);
	assert_string_equal(h2->method, "Kill");
	assert_int_equal(h2->request_id, 42);
	Berth__Shim__V1__KillRequest *k2 = berth__shim__v1__kill_request__unpack(NULL, bl, bb);
	assert_non_null(k2);
	assert_string_equal(k2->exec_id, "e1");
	assert_int_equal(k2->signal, 9);
	berth__rpc__v1__request_header__free_unpacked(h2, NULL);
	berth__shim__v1__kill_request__free_unpacked(k2, NULL);
	free(buf);

	/* an error reply carries code and message and no body */
	bt_err st = { 0 };
	bt_err_set(&st, BT_NOT_FOUND, "exec e9: not found");
	assert_int_equal(bt_seqrpc_reply(sv[1], 42, &st, &k.base, 0, &e), 0);
	assert_int_equal(bt_seqrpc_recv(sv[0], 0, &buf, &len, &e), 1);
	assert_int_equal(bt_seqrpc_split(buf, len, &hb, &hl, &bb, &bl, &e), 0);
	assert_int_equal(bl, 0);
	Berth__Rpc__V1__ResponseHeader *r = berth__rpc__v1__response_header__unpack(NULL, hl, hb);
	assert_int_equal(r->code, BT_NOT_FOUND);
	assert_string_equal(r->message, "exec e9: not found");
	assert_true(r->final);
	berth__rpc__v1__response_header__free_unpacked(r, NULL);
	free(buf);

	/* end of stream */
	close(sv[1]);
	assert_int_equal(bt_seqrpc_recv(sv[0], 0, &buf, &len, &e), 0);
	close(sv[0]);
}

static void test_seqrpc_malformed(void **state)
{
	(void)state;
	bt_err e = { 0 };
	const uint8_t *hb, *bb;
	size_t hl, bl;
	const uint8_t shortbuf[] = { 1, 0 };
	assert_int_equal(bt_seqrpc_split(shortbuf, sizeof(shortbuf), &hb, &hl, &bb, &bl, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	const uint8_t overlong[] = { 9, 0, 0, 0, 1, 2 };
	assert_int_equal(bt_seqrpc_split(overlong, sizeof(overlong), &hb, &hl, &bb, &bl, &e), -1);
	const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff, 1 };
	assert_int_equal(bt_seqrpc_split(huge, sizeof(huge), &hb, &hl, &bb, &bl, &e), -1);
	const uint8_t empty_hdr[] = { 0, 0, 0, 0 };
	assert_int_equal(bt_seqrpc_split(empty_hdr, sizeof(empty_hdr), &hb, &hl, &bb, &bl, &e), 0);
	assert_int_equal(hl, 0);
	assert_int_equal(bl, 0);
}

static void test_seqrpc_listen_connect(void **state)
{
	(void)state;
	char dir[] = "/tmp/bt-seqrpc.XXXXXX";
	assert_non_null(mkdtemp(dir));
	/* a path longer than sun_path goes through /proc/self/fd of its directory */
	char longdir[300];
	snprintf(longdir, sizeof(longdir), "%s/%0120d", dir, 0);
	bt_err e = { 0 };
	assert_int_equal(bt_mkdir_p(longdir, 0700, &e), 0);
	char path[400];
	snprintf(path, sizeof(path), "%s/s.sock", longdir);
	int l = bt_seqrpc_listen(path, &e);
	if (l < 0)
		fail_msg("listen: %s", e.msg);
	/* a second listener is refused while the first lives */
	assert_int_equal(bt_seqrpc_listen(path, &e), -1);
	assert_int_equal(e.code, BT_ALREADY_EXISTS);
	bt_seqcli *c = bt_seqcli_open(path, "shim", "ns", &e);
	assert_non_null(c);
	bt_seqcli_free(&c);
	assert_null(c);
	close(l);
	/* nobody listens: UNAVAILABLE, a transport error; then a stale socket is replaced */
	assert_null(bt_seqcli_open(path, "shim", "ns", &e));
	assert_int_equal(e.code, BT_UNAVAILABLE);
	assert_true(e.transport);
	l = bt_seqrpc_listen(path, &e);
	assert_true(l >= 0);
	close(l);
	assert_int_equal(bt_rm_rf(dir, &e), 0);
}

static void test_exit_record(void **state)
{
	(void)state;
	char dir[] = "/tmp/bt-exit.XXXXXX";
	assert_non_null(mkdtemp(dir));
	_cleanup_free_ char *p = bt_xasprintf("%s/init.exit", dir);
	bt_err e = { 0 };
	bt_shim_exit x;
	assert_int_equal(bt_shim_exit_read(p, &x, &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	bt_shim_exit w = { .pid = 4242, .exit_status = 137, .exited_at_ns = 1764351431123456789LL };
	assert_int_equal(bt_shim_exit_write(p, &w, &e), 0);
	assert_int_equal(bt_shim_exit_read(p, &x, &e), 0);
	assert_int_equal(x.pid, 4242);
	assert_int_equal(x.exit_status, 137);
	assert_true(x.exited_at_ns == 1764351431123456789LL);
	static const char *const bad[] = { "pid=1\nexit_status=3\n", "pid=1\nexit_status=300\nexited_at_ns=1\n",
					   "pid=x\nexit_status=3\nexited_at_ns=1\n", "garbage\n" };
	for (size_t i = 0; i < BT_ARRAY_LEN(bad); i++) {
		assert_int_equal(bt_write_file_atomic(p, bad[i], strlen(bad[i]), 0600, &e), 0);
		assert_int_equal(bt_shim_exit_read(p, &x, &e), -1);
		assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	}
	_cleanup_free_ char *pf = bt_xasprintf("%s/init.pid", dir);
	int pid = 0;
	assert_int_equal(bt_write_file_atomic(pf, "123", 3, 0600, &e), 0);
	assert_int_equal(bt_shim_pid_read(pf, &pid, &e), 0);
	assert_int_equal(pid, 123);
	assert_int_equal(bt_write_file_atomic(pf, "0\n", 2, 0600, &e), 0);
	assert_int_equal(bt_shim_pid_read(pf, &pid, &e), -1);
	assert_int_equal(bt_rm_rf(dir, &e), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_check),         cmocka_unit_test(test_json_log_msg),
		cmocka_unit_test(test_json_pids),          cmocka_unit_test(test_seqrpc_roundtrip),
		cmocka_unit_test(test_seqrpc_malformed),   cmocka_unit_test(test_seqrpc_listen_connect),
		cmocka_unit_test(test_exit_record),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
