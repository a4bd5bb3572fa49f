/*
 * test_ident — unit tests for bt_ident: identifiers at and past the length
 * limit, separators in every wrong place, non-ASCII, labels and their
 * reserved prefix, ingest refs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "bt_ident.h"
#include "bt_util.h"

#define RULE "must match [A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)* (at most 76 characters)"

static void ident_ok(const char *s)
{
	bt_err e = { 0 };

	if (bt_ident_validate("container id", s, &e) < 0)
		fail_msg("\"%s\" refused: %s", s, e.msg);
	assert_int_equal(e.code, BT_OK);
}

/* s must be refused with BT_INVALID_ARGUMENT and exactly the message want. */
static void ident_bad(const char *what, const char *s, const char *want)
{
	bt_err e = { 0 };

	if (bt_ident_validate(what, s, &e) == 0)
		fail_msg("\"%s\" accepted", s ? s : "(null)");
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_string_equal(e.msg, want);
}

static void test_ident_valid(void **state)
{
	(void)state;
	ident_ok("a");
	ident_ok("Z");
	ident_ok("7");
	ident_ok("default");
	ident_ok("k8s.io");
	ident_ok("moby");
	ident_ok("a.b");
	ident_ok("a-b");
	ident_ok("a_b");
	ident_ok("a.b-c_d.E9");
	ident_ok("0123456789abcdefABCDEF");
	ident_ok("a1.b2-c3_d4");
}

static void test_ident_length(void **state)
{
	(void)state;
	char s[80];
	char want[256];
	bt_err e = { 0 };

	memset(s, 'a', sizeof(s));
	s[76] = '\0';
	ident_ok(s);

	/* separators count too */
	memset(s, 'a', 76);
	s[1] = '.';
	s[40] = '-';
	ident_ok(s);

	memset(s, 'a', sizeof(s));
	s[77] = '\0';
	assert_int_equal(bt_ident_validate("namespace", s, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	snprintf(want, sizeof(want), "namespace \"%s\": invalid: 77 characters long, at most 76",
		 s);
	assert_string_equal(e.msg, want);
}

static void test_ident_separators(void **state)
{
	(void)state;
	ident_bad("namespace", "a..b", "namespace \"a..b\": invalid: " RULE);
	ident_bad("namespace", ".a", "namespace \".a\": invalid: " RULE);
	ident_bad("namespace", "a.", "namespace \"a.\": invalid: " RULE);
	ident_bad("namespace", "-a", "namespace \"-a\": invalid: " RULE);
	ident_bad("namespace", "a-", "namespace \"a-\": invalid: " RULE);
	ident_bad("namespace", "_a", "namespace \"_a\": invalid: " RULE);
	ident_bad("namespace", "a_", "namespace \"a_\": invalid: " RULE);
	ident_bad("namespace", "a.-b", "namespace \"a.-b\": invalid: " RULE);
	ident_bad("namespace", "a-_b", "namespace \"a-_b\": invalid: " RULE);
	ident_bad("namespace", "a__b", "namespace \"a__b\": invalid: " RULE);
	ident_bad("namespace", ".", "namespace \".\": invalid: " RULE);
	ident_bad("namespace", "-", "namespace \"-\": invalid: " RULE);
}

static void test_ident_bad_chars(void **state)
{
	(void)state;
	ident_bad("container id", "a b", "container id \"a b\": invalid: " RULE);
	ident_bad("container id", "a/b", "container id \"a/b\": invalid: " RULE);
	ident_bad("container id", "a:b", "container id \"a:b\": invalid: " RULE);
	ident_bad("container id", "a+b", "container id \"a+b\": invalid: " RULE);
	ident_bad("container id", " a", "container id \" a\": invalid: " RULE);
	ident_bad("container id", "a\n", "container id \"a\\x0a\": invalid: " RULE);
	ident_bad("container id", "a\"b\\", "container id \"a\\\"b\\\\\": invalid: " RULE);
	/* unicode letters are not [A-Za-z] */
	ident_bad("container id", "caf\xc3\xa9", "container id \"caf\\xc3\\xa9\": invalid: " RULE);
	ident_bad("container id", "\xe2\x80\x8b" "a", "container id \"\\xe2\\x80\\x8ba\": invalid: " RULE);
	ident_bad("container id", "\xef\xbd\x81", "container id \"\\xef\\xbd\\x81\": invalid: " RULE);
}

static void test_ident_empty(void **state)
{
	(void)state;
	ident_bad("namespace", "", "namespace \"\": invalid: must not be empty");
	ident_bad("namespace", NULL, "namespace \"\": invalid: must not be empty");
	ident_bad(NULL, "a..b", "identifier \"a..b\": invalid: " RULE);
}

static void test_ident_long_garbage_is_cut(void **state)
{
	(void)state;
	char s[4000];
	bt_err e = { 0 };

	memset(s, '\x01', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	assert_int_equal(bt_ident_validate("exec id", s, &e), -1);
	assert_true(strlen(e.msg) < 200);
	assert_non_null(strstr(e.msg, "\\x01\\x01..."));
	assert_non_null(strstr(e.msg, ": invalid: 3999 characters long, at most 76"));
	for (const char *c = e.msg; *c; c++)
		assert_true(*c >= 0x20 && *c < 0x7f);
}

static void test_ident_null_err(void **state)
{
	(void)state;
	/* callers that only want a yes/no may pass no error */
	assert_int_equal(bt_ident_validate("x", "a..b", NULL), -1);
	assert_int_equal(bt_ident_validate("x", "ab", NULL), 0);
}

static int label(const char *k, const char *v, bool allow, bt_err *e)
{
	return bt_label_validate(k, strlen(k), v, strlen(v), allow, e);
}

static void test_label_valid(void **state)
{
	(void)state;
	bt_err e = { 0 };

	assert_int_equal(label("env", "prod", false, &e), 0);
	assert_int_equal(label("env", "", false, &e), 0);
	assert_int_equal(label("a.b/c d", "any \"thing\" \xc3\xa9", false, &e), 0);
	assert_int_equal(label("containerd.io/gc.ref.content", "sha256:x", false, &e), 0);
	/* only the exact prefix is reserved */
	assert_int_equal(label("berth.io", "x", false, &e), 0);
	assert_int_equal(label("Berth.io/x", "x", false, &e), 0);
	assert_int_equal(label("xberth.io/x", "x", false, &e), 0);
	assert_int_equal(bt_label_validate("k", 1, NULL, 0, false, &e), 0);
	assert_int_equal(e.code, BT_OK);
}

static void test_label_size(void **state)
{
	(void)state;
	static char key[BT_LABEL_MAX + 2], val[BT_LABEL_MAX + 2];
	bt_err e = { 0 };

	memset(key, 'k', sizeof(key));
	memset(val, 'v', sizeof(val));
	assert_int_equal(bt_label_validate(key, 4096, val, 0, false, &e), 0);
	assert_int_equal(bt_label_validate(key, 1, val, 4095, false, &e), 0);
	assert_int_equal(bt_label_validate(key, 2048, val, 2048, false, &e), 0);

	assert_int_equal(bt_label_validate(key, 2048, val, 2049, false, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_non_null(strstr(e.msg, "kkk...\": invalid: key and value are 2048 + 2049 bytes, at "
				      "most 4096 together"));
	assert_int_equal(bt_label_validate(key, 4097, val, 0, false, &e), -1);
	assert_int_equal(bt_label_validate(key, 1, val, 4096, false, &e), -1);
	/* no overflow in the sum */
	assert_int_equal(bt_label_validate(key, 10, val, SIZE_MAX - 5, false, &e), -1);
	assert_non_null(strstr(e.msg, "at most 4096 together"));
}

static void test_label_empty_key(void **state)
{
	(void)state;
	bt_err e = { 0 };

	assert_int_equal(label("", "v", false, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_string_equal(e.msg, "label key: invalid: must not be empty");
	assert_int_equal(bt_label_validate(NULL, 0, "v", 1, true, &e), -1);
	assert_string_equal(e.msg, "label key: invalid: must not be empty");
}

static void test_label_nul(void **state)
{
	(void)state;
	bt_err e = { 0 };

	assert_int_equal(bt_label_validate("a\0b", 3, "v", 1, false, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_string_equal(e.msg, "label key \"a\\x00b\": invalid: contains a NUL byte");
	assert_int_equal(bt_label_validate("k", 1, "v\0", 2, false, &e), -1);
	assert_string_equal(e.msg, "label \"k\": invalid: value contains a NUL byte");
	assert_int_equal(bt_label_validate("k", 1, "\0v", 2, true, &e), -1);
}

static void test_label_reserved(void **state)
{
	(void)state;
	bt_err e = { 0 };

	assert_int_equal(label("berth.io/gc.root", "x", false, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_string_equal(e.msg, "label \"berth.io/gc.root\": invalid: the prefix \"berth.io/\" "
				   "is reserved for berth");
	assert_int_equal(label("berth.io/", "x", false, &e), -1);
	bt_err_clear(&e);
	assert_int_equal(label("berth.io/gc.root", "x", true, &e), 0);
	assert_int_equal(e.code, BT_OK);
	/* a shorter key that is a prefix of the prefix is no match */
	assert_int_equal(bt_label_validate("berth.io/gc", 5, "x", 1, false, &e), 0);
}

static void test_ref_valid(void **state)
{
	(void)state;
	static char s[BT_REF_MAX + 1];
	bt_err e = { 0 };
	const char *ok[] = {
		"manifest-sha256:0123abcd",
		"docker.io/library/busybox:latest-index-sha256:ff",
		"!",
		"~",
		"a!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~",
	};

	for (size_t i = 0; i < BT_ARRAY_LEN(ok); i++) {
		if (bt_ref_validate(ok[i], strlen(ok[i]), &e) < 0)
			fail_msg("\"%s\" refused: %s", ok[i], e.msg);
	}
	memset(s, 'r', sizeof(s));
	assert_int_equal(bt_ref_validate(s, BT_REF_MAX, &e), 0);
	assert_int_equal(e.code, BT_OK);
}

static void ref_bad(const char *s, size_t len, const char *want)
{
	bt_err e = { 0 };

	assert_int_equal(bt_ref_validate(s, len, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	if (!strstr(e.msg, want))
		fail_msg("error \"%s\" does not contain \"%s\"", e.msg, want);
}

static void test_ref_invalid(void **state)
{
	(void)state;
	static char s[BT_REF_MAX + 2];

	ref_bad("", 0, "ref \"\": invalid: must not be empty");
	ref_bad(NULL, 0, "ref \"\": invalid: must not be empty");
	memset(s, 'r', sizeof(s));
	ref_bad(s, BT_REF_MAX + 1, "rrr...\": invalid: 257 bytes long, at most 256");
	ref_bad("a b", 3, "ref \"a b\": invalid: byte 0x20 at offset 1 is not printable ASCII "
			  "('!' to '~', no spaces)");
	ref_bad("ab\t", 3, "ref \"ab\\x09\": invalid: byte 0x09 at offset 2");
	ref_bad("a\0b", 3, "ref \"a\\x00b\": invalid: byte 0x00 at offset 1");
	ref_bad("\x7f", 1, "byte 0x7f at offset 0");
	ref_bad("\x1b[31m", 5, "byte 0x1b at offset 0");
	ref_bad("caf\xc3\xa9", 5, "ref \"caf\\xc3\\xa9\": invalid: byte 0xc3 at offset 3");
	ref_bad("x\n", 2, "byte 0x0a at offset 1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ident_valid),
		cmocka_unit_test(test_ident_length),
		cmocka_unit_test(test_ident_separators),
		cmocka_unit_test(test_ident_bad_chars),
		cmocka_unit_test(test_ident_empty),
		cmocka_unit_test(test_ident_long_garbage_is_cut),
		cmocka_unit_test(test_ident_null_err),
		cmocka_unit_test(test_label_valid),
		cmocka_unit_test(test_label_size),
		cmocka_unit_test(test_label_empty_key),
		cmocka_unit_test(test_label_nul),
		cmocka_unit_test(test_label_reserved),
		cmocka_unit_test(test_ref_valid),
		cmocka_unit_test(test_ref_invalid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
