/*
 * test_toml — unit tests for bt_toml: every value type and key form, tables
 * and arrays of tables, the redefinition rules, every parse error with its
 * position, the bounds, the accessors, and real config files (containerd's
 * hosts.toml and config.toml).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bt_toml.h"
#include "bt_util.h"

/* Parses text (as a C string) and fails the test on an error. */
static bt_toml *parse_ok(const char *text)
{
	bt_toml *t = NULL;
	bt_err e = { 0 };

	if (bt_toml_parse(text, strlen(text), &t, &e) < 0)
		fail_msg("parse failed: %s\n--- document:\n%s", e.msg, text);
	assert_non_null(t);
	assert_int_equal(bt_toml_kind(t), BT_TOML_TABLE);
	return t;
}

/* Parses n bytes that must be rejected with code and a message containing want. */
static void parse_fails_n(const char *text, size_t n, int code, const char *want)
{
	bt_toml *t = NULL;
	bt_err e = { 0 };

	if (bt_toml_parse(text, n, &t, &e) == 0) {
		bt_toml_free(&t);
		fail_msg("parse succeeded, expected \"%s\"\n--- document:\n%s", want, text);
	}
	assert_null(t);
	assert_int_equal(e.code, code);
	if (!strstr(e.msg, want))
		fail_msg("message \"%s\" lacks \"%s\"", e.msg, want);
	if (code == BT_INVALID_ARGUMENT)
		assert_true(bt_startswith(e.msg, "line "));
}

static void parse_fails(const char *text, const char *want)
{
	parse_fails_n(text, strlen(text), BT_INVALID_ARGUMENT, want);
}

static const char *str_at(const bt_toml *t, const char *path)
{
	const char *s = bt_toml_str(bt_toml_path(t, path));
	if (!s)
		fail_msg("no string at %s", path);
	return s;
}

static int64_t int_at(const bt_toml *t, const char *path)
{
	int64_t n = 0;
	if (bt_toml_int(bt_toml_path(t, path), &n) < 0)
		fail_msg("no integer at %s", path);
	return n;
}

static double float_at(const bt_toml *t, const char *path)
{
	double f = 0;
	if (bt_toml_float(bt_toml_path(t, path), &f) < 0)
		fail_msg("no float at %s", path);
	return f;
}

static bool bool_at(const bt_toml *t, const char *path)
{
	bool b = false;
	if (bt_toml_bool(bt_toml_path(t, path), &b) < 0)
		fail_msg("no boolean at %s", path);
	return b;
}

/* head, then unit n times, then tail (caller frees). */
static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
	bt_buf b = { 0 };

	bt_buf_append(&b, head, strlen(head));
	for (size_t i = 0; i < n; i++)
		bt_buf_append(&b, unit, strlen(unit));
	bt_buf_append(&b, tail, strlen(tail));
	return bt_buf_steal(&b);
}

/* ---- documents, comments, keys ----------------------------------------- */

static void test_empty_documents(void **state)
{
	(void)state;
	const char *docs[] = { "", " \t", "\n\n", "\r\n", "# only a comment", "# c\n  # d\n", "\xef\xbb\xbf" };

	for (size_t i = 0; i < BT_ARRAY_LEN(docs); i++) {
		bt_toml *t = parse_ok(docs[i]);
		assert_int_equal(bt_toml_len(t), 0);
		bt_toml_free(&t);
	}
	/* a NULL text of length 0 is an empty document */
	bt_toml *t = NULL;
	bt_err e = { 0 };
	assert_int_equal(bt_toml_parse(NULL, 0, &t, &e), 0);
	assert_int_equal(bt_toml_len(t), 0);
	bt_toml_free(&t);
	assert_int_equal(bt_toml_parse(NULL, 5, &t, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_null(t);
}

static void test_comments(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("# top\n"
			      "a = 1 # after a value\n"
			      "b = \"# not a comment\" #comment\n"
			      "[t] # after a header\n"
			      "c = [ # inside an array\n"
			      "  1, # one\n"
			      "  # a whole line\n"
			      "  2\n"
			      "] # done\n"
			      "d = 'x'#no space\n");

	assert_int_equal(int_at(t, "a"), 1);
	assert_string_equal(str_at(t, "b"), "# not a comment");
	assert_int_equal(bt_toml_len(bt_toml_path(t, "t.c")), 2);
	assert_string_equal(str_at(t, "t.d"), "x");
	bt_toml_free(&t);
}

static void test_bare_keys(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("key = 1\nbare_key = 2\nbare-key = 3\n1234 = 4\nA-Z_09 = 5\ntrue = 6\n-- = 7\n");

	assert_int_equal(bt_toml_len(t), 7);
	assert_int_equal(int_at(t, "key"), 1);
	assert_int_equal(int_at(t, "bare_key"), 2);
	assert_int_equal(int_at(t, "bare-key"), 3);
	assert_int_equal(int_at(t, "1234"), 4);
	assert_int_equal(int_at(t, "A-Z_09"), 5);
	assert_int_equal(int_at(t, "true"), 6);
	assert_int_equal(int_at(t, "--"), 7);
	bt_toml_free(&t);
}

static void test_quoted_keys(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("\"127.0.0.1\" = 1\n"
			      "\"character encoding\" = 2\n"
			      "\"\\u00e9t\\u00e9\" = 3\n"
			      "'key2' = 4\n"
			      "'quoted \"value\"' = 5\n"
			      "\"\" = 6\n"
			      "'C:\\path' = 7\n");

	assert_int_equal(bt_toml_len(t), 7);
	assert_string_equal(bt_toml_key_at(t, 0), "127.0.0.1");
	assert_int_equal(int_at(t, "\"127.0.0.1\""), 1);
	assert_int_equal(int_at(t, "\"character encoding\""), 2);
	assert_string_equal(bt_toml_key_at(t, 2), "\xc3\xa9t\xc3\xa9");
	assert_int_equal(int_at(t, "key2"), 4);
	assert_string_equal(bt_toml_key_at(t, 4), "quoted \"value\"");
	assert_string_equal(bt_toml_key_at(t, 5), "");
	assert_non_null(bt_toml_get(t, ""));
	assert_string_equal(bt_toml_key_at(t, 6), "C:\\path");
	bt_toml_free(&t);
}

static void test_dotted_keys(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("name = \"Orange\"\n"
			      "physical.color = \"orange\"\n"
			      "physical.shape = \"round\"\n"
			      "site.\"google.com\" = true\n"
			      "fruit . flavor = 'sweet'\n"
			      "a.b.c.d = 1\n"
			      "a.b.e = 2\n"
			      "3.14159 = \"pi\"\n");

	assert_string_equal(str_at(t, "physical.color"), "orange");
	assert_string_equal(str_at(t, "physical.shape"), "round");
	assert_int_equal(bt_toml_len(bt_toml_get(t, "physical")), 2);
	assert_true(bool_at(t, "site.\"google.com\""));
	assert_string_equal(str_at(t, "fruit.flavor"), "sweet");
	assert_int_equal(int_at(t, "a.b.c.d"), 1);
	assert_int_equal(int_at(t, "a.b.e"), 2);
	assert_string_equal(bt_toml_key_at(bt_toml_path(t, "a.b"), 1), "e");
	assert_string_equal(str_at(t, "3.14159"), "pi");
	bt_toml_free(&t);
}

/* ---- tables -------------------------------------------------------------- */

static void test_table_headers(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("top = 0\n"
			      "[table-1]\n"
			      "key1 = \"some string\"\n"
			      "key2 = 123\n"
			      "[a.\"b.c\".d]\n"
			      "x = 1\n"
			      "[ j . \"k\" . 'l' ]\n"
			      "y = 2\n"
			      "[empty]\n");

	assert_int_equal(bt_toml_len(t), 5);
	assert_int_equal(int_at(t, "top"), 0);
	assert_string_equal(str_at(t, "table-1.key1"), "some string");
	assert_int_equal(int_at(t, "table-1.key2"), 123);
	assert_int_equal(int_at(t, "a.\"b.c\".d.x"), 1);
	assert_non_null(bt_toml_get(bt_toml_get(t, "a"), "b.c"));
	assert_int_equal(int_at(t, "j.k.l.y"), 2);
	assert_int_equal(bt_toml_kind(bt_toml_get(t, "empty")), BT_TOML_TABLE);
	assert_int_equal(bt_toml_len(bt_toml_get(t, "empty")), 0);
	bt_toml_free(&t);
}

static void test_implicit_tables(void **state)
{
	(void)state;
	/* [x.y.z] makes x and x.y; each may then be defined once */
	bt_toml *t = parse_ok("[x.y.z.w]\n"
			      "a = 1\n"
			      "[x]\n"
			      "b = 2\n"
			      "[x.y]\n"
			      "c = 3\n"
			      "[fruit]\n"
			      "apple.color = \"red\"\n"
			      "apple.taste.sweet = true\n"
			      "[fruit.apple.texture]\n"
			      "smooth = true\n");

	assert_int_equal(int_at(t, "x.y.z.w.a"), 1);
	assert_int_equal(int_at(t, "x.b"), 2);
	assert_int_equal(int_at(t, "x.y.c"), 3);
	assert_string_equal(bt_toml_key_at(bt_toml_get(t, "x"), 0), "y");
	assert_true(bool_at(t, "fruit.apple.taste.sweet"));
	assert_true(bool_at(t, "fruit.apple.texture.smooth"));
	bt_toml_free(&t);
}

static void test_array_of_tables(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("[[fruits]]\n"
			      "name = \"apple\"\n"
			      "[fruits.physical]\n"
			      "color = \"red\"\n"
			      "[[fruits.varieties]]\n"
			      "name = \"red delicious\"\n"
			      "[[fruits.varieties]]\n"
			      "name = \"granny smith\"\n"
			      "[[fruits]]\n"
			      "name = \"banana\"\n"
			      "[[fruits.varieties]]\n"
			      "name = \"plantain\"\n"
			      "[[ empty ]]\n"
			      "[[empty]]\n");
	const bt_toml *fruits = bt_toml_get(t, "fruits");

	assert_int_equal(bt_toml_kind(fruits), BT_TOML_ARRAY);
	assert_int_equal(bt_toml_len(fruits), 2);
	const bt_toml *apple = bt_toml_at(fruits, 0);
	assert_string_equal(str_at(apple, "name"), "apple");
	assert_string_equal(str_at(apple, "physical.color"), "red");
	assert_int_equal(bt_toml_len(bt_toml_get(apple, "varieties")), 2);
	assert_string_equal(str_at(bt_toml_at(bt_toml_get(apple, "varieties"), 1), "name"), "granny smith");
	const bt_toml *banana = bt_toml_at(fruits, 1);
	assert_string_equal(str_at(banana, "name"), "banana");
	assert_int_equal(bt_toml_len(bt_toml_get(banana, "varieties")), 1);
	assert_int_equal(bt_toml_len(bt_toml_get(t, "empty")), 2);
	assert_int_equal(bt_toml_len(bt_toml_at(bt_toml_get(t, "empty"), 0)), 0);
	bt_toml_free(&t);
}

/* ---- strings ------------------------------------------------------------- */

static void test_basic_string_escapes(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("s = \"b\\b t\\t n\\n f\\f r\\r q\\\" bs\\\\ end\"\n"
			      "tab = \"a\tb\"\n"
			      "utf8 = \"caf\xc3\xa9\"\n");

	assert_string_equal(str_at(t, "s"), "b\b t\t n\n f\f r\r q\" bs\\ end");
	assert_string_equal(str_at(t, "tab"), "a\tb");
	assert_string_equal(str_at(t, "utf8"), "caf\xc3\xa9");
	bt_toml_free(&t);
}

static void test_unicode_escapes(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("a = \"\\u0041\"\n"
			      "e = \"\\u00E9\"\n"
			      "euro = \"\\u20ac\"\n"
			      "smile = \"\\U0001F600\"\n"
			      "max = \"\\U0010FFFF\"\n"
			      "last_bmp = \"\\uD7FF\\uE000\"\n"
			      "ml = \"\"\"\\u00e9\"\"\"\n");

	assert_string_equal(str_at(t, "a"), "A");
	assert_string_equal(str_at(t, "e"), "\xc3\xa9");
	assert_string_equal(str_at(t, "euro"), "\xe2\x82\xac");
	assert_string_equal(str_at(t, "smile"), "\xf0\x9f\x98\x80");
	assert_string_equal(str_at(t, "max"), "\xf4\x8f\xbf\xbf");
	assert_string_equal(str_at(t, "last_bmp"), "\xed\x9f\xbf\xee\x80\x80");
	assert_string_equal(str_at(t, "ml"), "\xc3\xa9");
	bt_toml_free(&t);
}

static void test_literal_strings(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("winpath = 'C:\\Users\\nodejs\\templates'\n"
			      "quoted = 'Tom \"Dubs\" Preston-Werner'\n"
			      "regex = '<\\i\\c*\\s*>'\n"
			      "empty = ''\n"
			      "tab = 'a\tb'\n");

	assert_string_equal(str_at(t, "winpath"), "C:\\Users\\nodejs\\templates");
	assert_string_equal(str_at(t, "quoted"), "Tom \"Dubs\" Preston-Werner");
	assert_string_equal(str_at(t, "regex"), "<\\i\\c*\\s*>");
	assert_string_equal(str_at(t, "empty"), "");
	assert_string_equal(str_at(t, "tab"), "a\tb");
	bt_toml_free(&t);
}

static void test_multiline_basic_strings(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("s1 = \"\"\"\nRoses are red\nViolets are blue\"\"\"\n"
			      "s2 = \"\"\"\r\nwindows\r\nlines\"\"\"\n"
			      "trim = \"\"\"\n"
			      "The quick brown \\\n"
			      "\n"
			      "\n"
			      "  fox jumps over \\   \n"
			      "    the lazy dog.\"\"\"\n"
			      "trim2 = \"\"\"\\\n"
			      "       The quick brown \\\n"
			      "       fox.\\\n"
			      "       \"\"\"\n"
			      "quotes = \"\"\"Here are two quotation marks: \"\". Simple enough.\"\"\"\n"
			      "end1 = \"\"\"\"This,\" she said, \"is just a pointless statement.\"\"\"\"\n"
			      "end2 = \"\"\"ab\"\"\"\"\"\n"
			      "esc = \"\"\"tab\\there \\\"\\\"\\\" three\"\"\"\n"
			      "empty = \"\"\"\"\"\"\n");

	assert_string_equal(str_at(t, "s1"), "Roses are red\nViolets are blue");
	assert_string_equal(str_at(t, "s2"), "windows\nlines");
	assert_string_equal(str_at(t, "trim"), "The quick brown fox jumps over the lazy dog.");
	assert_string_equal(str_at(t, "trim2"), "The quick brown fox.");
	assert_string_equal(str_at(t, "quotes"), "Here are two quotation marks: \"\". Simple enough.");
	assert_string_equal(str_at(t, "end1"), "\"This,\" she said, \"is just a pointless statement.\"");
	assert_string_equal(str_at(t, "end2"), "ab\"\"");
	assert_string_equal(str_at(t, "esc"), "tab\there \"\"\" three");
	assert_string_equal(str_at(t, "empty"), "");
	bt_toml_free(&t);
}

static void test_multiline_literal_strings(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("regex2 = '''I [dw]on't need \\d{2} apples'''\n"
			      "lines = '''\n"
			      "The first newline is\n"
			      "trimmed in raw strings.\n"
			      "   All other whitespace \\\n"
			      "   is preserved.\n"
			      "'''\n"
			      "quot15 = '''Here are fifteen quotation marks: \"\"\"\"\"\"\"\"\"\"\"\"\"\"\"'''\n"
			      "apos15 = \"Here are fifteen apostrophes: '''''''''''''''\"\n"
			      "str = ''''That,' she said, 'is still pointless.''''\n"
			      "crlf = '''a\r\nb'''\n");

	assert_string_equal(str_at(t, "regex2"), "I [dw]on't need \\d{2} apples");
	assert_string_equal(str_at(t, "lines"),
			    "The first newline is\ntrimmed in raw strings.\n   All other whitespace \\\n"
			    "   is preserved.\n");
	assert_string_equal(str_at(t, "quot15"), "Here are fifteen quotation marks: \"\"\"\"\"\"\"\"\"\"\"\"\"\"\"");
	assert_string_equal(str_at(t, "apos15"), "Here are fifteen apostrophes: '''''''''''''''");
	assert_string_equal(str_at(t, "str"), "'That,' she said, 'is still pointless.'");
	assert_string_equal(str_at(t, "crlf"), "a\nb");
	bt_toml_free(&t);
}

static void test_string_errors(void **state)
{
	(void)state;
	parse_fails("a = \"abc\n", "unterminated string");
	parse_fails("a = \"abc", "unterminated string");
	parse_fails("a = 'abc\n'", "unterminated string");
	parse_fails("a = 'abc", "unterminated string");
	parse_fails("a = \"\"\"abc\n\ndef\"\"", "unterminated string");
	parse_fails("a = '''abc\n", "unterminated string");
	parse_fails("a = \"abc\\", "unterminated escape");
	parse_fails("a = \"\"\"a\"\"\"\"\"\"\n", "too many quotes");
	parse_fails("a = '''a''''''\n", "too many quotes");
	parse_fails("\"\"\"k\"\"\" = 1\n", "multi-line string cannot be a key");
	parse_fails("'''k''' = 1\n", "multi-line string cannot be a key");
	/* the position of an unterminated string is its opening quote */
	parse_fails("a = 1\nbb = \"open\n", "line 2, column 6: unterminated string");
}

static void test_invalid_escapes(void **state)
{
	(void)state;
	parse_fails("a = \"\\x41\"\n", "invalid escape");
	parse_fails("a = \"\\e\"\n", "invalid escape");
	parse_fails("a = \"\\ \"\n", "invalid escape");
	parse_fails("a = \"\\'\"\n", "invalid escape");
	parse_fails("a = \"\"\"\\ x\"\"\"\n", "backslash followed by whitespace but no newline");
	parse_fails("a = \"\\u12\"\n", "expected 4 hex digits");
	parse_fails("a = \"\\u12G4\"\n", "expected 4 hex digits");
	parse_fails("a = \"\\U0001F60\"\n", "expected 8 hex digits");
	parse_fails("a = \"\\uD800\"\n", "not a Unicode scalar value");
	parse_fails("a = \"\\uDFFF\"\n", "not a Unicode scalar value");
	parse_fails("a = \"\\U0000D83D\"\n", "not a Unicode scalar value");
	parse_fails("a = \"\\U00110000\"\n", "not a Unicode scalar value");
	parse_fails("a = \"\\UFFFFFFFF\"\n", "not a Unicode scalar value");
	parse_fails("a = \"\\u0000\"\n", "NUL is not supported");
	parse_fails("\"k\\q\" = 1\n", "invalid escape");
}

static void test_control_characters(void **state)
{
	(void)state;
	parse_fails("a = \"x\x01y\"\n", "control character 0x01 in string");
	parse_fails("a = 'x\x1fy'\n", "control character 0x1f in string");
	parse_fails("a = \"x\x7fy\"\n", "control character 0x7f in string");
	parse_fails("a = '''x\x08y'''\n", "control character 0x08 in string");
	parse_fails("a = \"\"\"x\ry\"\"\"\n", "carriage return not followed by a newline");
	parse_fails("# comment \x07 bell\n", "control character 0x07 in comment");
	parse_fails("# comment \x7f del\n", "control character 0x7f in comment");
	parse_fails("# comment \r lone cr\n", "control character 0x0d in comment");
	parse_fails("a = 1\r", "carriage return not followed by a newline");
	parse_fails("a = 1\x0c\n", "expected a newline after the value");
	parse_fails("\x0b = 1\n", "expected a key");
}

static void test_lone_carriage_returns(void **state)
{
	(void)state;
	/* a CR must be part of CRLF wherever a newline may appear */
	static const char *const docs[] = {
		"\r", "a = 1\r", "[t]\r", "a = [\r1]\n", "a = [1\r]\n", "a = [1,\r2]\n", "a = \"\"\"\rx\"\"\"\n",
		"a = \"\"\"x\\\r\"\"\"\n", "a = \"\"\"x\\\n\r\"\"\"\n", "a = '''x\ry'''\n",
	};

	for (size_t i = 0; i < BT_ARRAY_LEN(docs); i++)
		parse_fails(docs[i], "carriage return not followed by a newline");
	/* and comments may hold none of the other control characters wherever they are */
	parse_fails("a = [ # \x01\n 1]\n", "control character 0x01 in comment");
	parse_fails("a = 1 # \x02\n", "control character 0x02 in comment");
	parse_fails("[t] # \x03\n", "control character 0x03 in comment");
	bt_toml *t = parse_ok("a = 1 # tab\tis fine\r\n");
	bt_toml_free(&t);
}

static void test_nul_rejected(void **state)
{
	(void)state;
	static const char doc1[] = "a = 1\nb = \"x\0y\"\n";
	static const char doc2[] = "a = 1\0";
	static const char doc3[] = "# \0\n";

	parse_fails_n(doc1, sizeof(doc1) - 1, BT_INVALID_ARGUMENT, "line 2, column 7: NUL byte in document");
	parse_fails_n(doc2, sizeof(doc2) - 1, BT_INVALID_ARGUMENT, "NUL byte");
	parse_fails_n(doc3, sizeof(doc3) - 1, BT_INVALID_ARGUMENT, "NUL byte");
}

static void test_invalid_utf8(void **state)
{
	(void)state;
	parse_fails("a = \"\xff\"\n", "invalid UTF-8");
	parse_fails("a = \"\xc3\"\n", "invalid UTF-8");
	parse_fails("a = \"\xc0\xaf\"\n", "invalid UTF-8");	    /* overlong */
	parse_fails("a = \"\xed\xa0\x80\"\n", "invalid UTF-8");	    /* a surrogate */
	parse_fails("a = \"\xf4\x90\x80\x80\"\n", "invalid UTF-8"); /* above U+10FFFF */
	parse_fails("# \xe2\x82\n", "invalid UTF-8");
	parse_fails("# \xe0\x80\x80\n", "invalid UTF-8"); /* overlong */
	parse_fails("# \xf0\x80\x80\x80\n", "invalid UTF-8"); /* overlong */
	parse_fails("a = 1 # \xe2\x82", "line 1, column 9: invalid UTF-8"); /* cut at the end */
	parse_fails("# \x80\n", "invalid UTF-8");
	parse_fails("# \xf8\x88\x80\x80\x80\n", "invalid UTF-8");
	bt_toml *t = parse_ok("# \xe2\x82\xac\nk = '\xf0\x9f\x98\x80'\n");
	bt_toml_free(&t);
}

/* ---- numbers, booleans, date-times --------------------------------------- */

static void test_integers(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("int1 = +99\n"
			      "int2 = 42\n"
			      "int3 = 0\n"
			      "int4 = -17\n"
			      "int5 = 1_000\n"
			      "int6 = 5_349_221\n"
			      "int7 = 1_2_3_4_5\n"
			      "zero_plus = +0\n"
			      "zero_minus = -0\n"
			      "max = 9223372036854775807\n"
			      "min = -9223372036854775808\n"
			      "hex1 = 0xDEADBEEF\n"
			      "hex2 = 0xdeadbeef\n"
			      "hex3 = 0xdead_beef\n"
			      "hexmax = 0x7fff_ffff_ffff_ffff\n"
			      "oct1 = 0o01234567\n"
			      "oct2 = 0o755\n"
			      "bin1 = 0b11010110\n"
			      "bin2 = 0b0\n");

	assert_int_equal(int_at(t, "int1"), 99);
	assert_int_equal(int_at(t, "int2"), 42);
	assert_int_equal(int_at(t, "int3"), 0);
	assert_int_equal(int_at(t, "int4"), -17);
	assert_int_equal(int_at(t, "int5"), 1000);
	assert_int_equal(int_at(t, "int6"), 5349221);
	assert_int_equal(int_at(t, "int7"), 12345);
	assert_int_equal(int_at(t, "zero_plus"), 0);
	assert_int_equal(int_at(t, "zero_minus"), 0);
	assert_true(int_at(t, "max") == INT64_MAX);
	assert_true(int_at(t, "min") == INT64_MIN);
	assert_int_equal(int_at(t, "hex1"), 0xdeadbeef);
	assert_int_equal(int_at(t, "hex2"), 0xdeadbeef);
	assert_int_equal(int_at(t, "hex3"), 0xdeadbeef);
	assert_true(int_at(t, "hexmax") == INT64_MAX);
	assert_int_equal(int_at(t, "oct1"), 01234567);
	assert_int_equal(int_at(t, "oct2"), 0755);
	assert_int_equal(int_at(t, "bin1"), 214);
	assert_int_equal(int_at(t, "bin2"), 0);
	assert_int_equal(bt_toml_kind(bt_toml_get(t, "int1")), BT_TOML_INT);
	bt_toml_free(&t);
}

static void test_integer_errors(void **state)
{
	(void)state;
	parse_fails("a = 9223372036854775808\n", "integer out of range");
	parse_fails("a = -9223372036854775809\n", "integer out of range");
	parse_fails("a = 99999999999999999999999999\n", "integer out of range");
	parse_fails("a = 0x8000000000000000\n", "integer out of range");
	parse_fails("a = 0xffff_ffff_ffff_ffff\n", "integer out of range");
	parse_fails("a = 0o1000000000000000000000\n", "integer out of range");
	parse_fails("a = 0b1000000000000000000000000000000000000000000000000000000000000000\n",
		    "integer out of range");
	parse_fails("a = 012\n", "leading zeros");
	parse_fails("a = -012\n", "leading zeros");
	parse_fails("a = 0_1\n", "leading zeros");
	parse_fails("a = 1__000\n", "underscore");
	parse_fails("a = 1000_\n", "underscore");
	parse_fails("a = _1000\n", "expected a value");
	parse_fails("a = 0x_1\n", "expected a digit");
	parse_fails("a = +0x1\n", "cannot have a sign");
	parse_fails("a = -0b1\n", "cannot have a sign");
	parse_fails("a = 0X1\n", "expected a newline after the value");
	parse_fails("a = 0xg\n", "expected a digit");
	parse_fails("a = 0o8\n", "expected a digit");
	parse_fails("a = 0b2\n", "expected a digit");
	parse_fails("a = +\n", "expected a digit");
	parse_fails("a = 1 2\n", "expected a newline after the value");
}

static void test_floats(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("flt1 = +1.0\n"
			      "flt2 = 3.1415\n"
			      "flt3 = -0.01\n"
			      "flt4 = 5e+22\n"
			      "flt5 = 1e06\n"
			      "flt6 = -2E-2\n"
			      "flt7 = 6.626e-34\n"
			      "flt8 = 224_617.445_991_228\n"
			      "zero = 0.0\n"
			      "negzero = -0.0\n"
			      "exp0 = 0e0\n"
			      "tiny = 1e-400\n"
			      "int = 7\n");

	assert_true(float_at(t, "flt1") == 1.0);
	assert_true(float_at(t, "flt2") == 3.1415);
	assert_true(float_at(t, "flt3") == -0.01);
	assert_true(float_at(t, "flt4") == 5e22);
	assert_true(float_at(t, "flt5") == 1e6);
	assert_true(float_at(t, "flt6") == -2e-2);
	assert_true(float_at(t, "flt7") == 6.626e-34);
	assert_true(float_at(t, "flt8") == 224617.445991228);
	assert_true(float_at(t, "zero") == 0.0);
	assert_true(float_at(t, "negzero") == 0.0 && signbit(float_at(t, "negzero")));
	assert_true(float_at(t, "exp0") == 0.0);
	assert_true(float_at(t, "tiny") == 0.0);
	assert_int_equal(bt_toml_kind(bt_toml_get(t, "flt1")), BT_TOML_FLOAT);
	/* floats read integers too, but not the other way round */
	assert_true(float_at(t, "int") == 7.0);
	int64_t n;
	assert_int_equal(bt_toml_int(bt_toml_get(t, "flt1"), &n), -1);
	bt_toml_free(&t);
}

static void test_float_specials(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("a = inf\nb = +inf\nc = -inf\nd = nan\ne = +nan\nf = -nan\n"
			      "g = [inf, -nan]\n");

	assert_true(isinf(float_at(t, "a")) && float_at(t, "a") > 0);
	assert_true(isinf(float_at(t, "b")) && float_at(t, "b") > 0);
	assert_true(isinf(float_at(t, "c")) && float_at(t, "c") < 0);
	assert_true(isnan(float_at(t, "d")));
	assert_true(isnan(float_at(t, "e")));
	assert_true(isnan(float_at(t, "f")));
	assert_int_equal(bt_toml_len(bt_toml_get(t, "g")), 2);
	bt_toml_free(&t);
}

static void test_float_errors(void **state)
{
	(void)state;
	parse_fails("a = 1.\n", "expected a digit");
	parse_fails("a = .5\n", "expected a value");
	parse_fails("a = 1.e5\n", "expected a digit");
	parse_fails("a = 1e\n", "expected a digit");
	parse_fails("a = 1e+\n", "expected a digit");
	parse_fails("a = 1_.5\n", "underscore");
	parse_fails("a = 1._5\n", "expected a digit");
	parse_fails("a = 1e_5\n", "expected a digit");
	parse_fails("a = 03.14\n", "leading zeros");
	parse_fails("a = 1e400\n", "float out of range");
	parse_fails("a = -1.5e999\n", "float out of range");
	parse_fails("a = infinity\n", "expected a newline after the value");
	parse_fails("a = Inf\n", "expected a value");
	parse_fails("a = NaN\n", "expected a value");
}

static void test_number_length_bound(void **state)
{
	(void)state;
	bt_buf b = { 0 };

	bt_buf_append(&b, "a = 0.", 6);
	for (int i = 0; i < BT_TOML_MAX_NUMBER; i++)
		bt_buf_append(&b, "1", 1);
	parse_fails(b.data, "number longer than");
	bt_buf_free(&b);
	/* one at the bound is fine */
	bt_buf_append(&b, "a = 0.", 6);
	for (int i = 0; i < BT_TOML_MAX_NUMBER - 2; i++)
		bt_buf_append(&b, "1", 1);
	bt_toml *t = parse_ok(b.data);
	assert_true(fabs(float_at(t, "a") - 0.111111) < 1e-6);
	bt_toml_free(&t);
	bt_buf_free(&b);
}

static void test_booleans(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("t = true\nf = false\narr = [true,false]\n");

	assert_true(bool_at(t, "t"));
	assert_false(bool_at(t, "f"));
	assert_int_equal(bt_toml_kind(bt_toml_get(t, "t")), BT_TOML_BOOL);
	assert_int_equal(bt_toml_len(bt_toml_get(t, "arr")), 2);
	bt_toml_free(&t);
	parse_fails("a = True\n", "expected a value");
	parse_fails("a = tru\n", "expected a value");
	parse_fails("a = truee\n", "expected a newline after the value");
	parse_fails("a = yes\n", "expected a value");
}

static void test_datetimes(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("odt1 = 1979-05-27T07:32:00Z\n"
			      "odt2 = 1979-05-27T00:32:00-07:00\n"
			      "odt3 = 1979-05-27T00:32:00.999999+05:30\n"
			      "odt4 = 1979-05-27 07:32:00Z\n"
			      "odt5 = 1979-05-27t07:32:00z\n"
			      "ldt1 = 1979-05-27T07:32:00\n"
			      "ldt2 = 1979-05-27 00:32:00.999\n"
			      "ld1 = 1979-05-27\n"
			      "lt1 = 07:32:00\n"
			      "lt2 = 00:32:00.999999\n"
			      "leap = 2024-02-29T23:59:60Z\n"
			      "arr = [1979-05-27, 07:32:00]\n"
			      "date_then_comment = 1979-05-27 # a comment\n");

	assert_int_equal(bt_toml_kind(bt_toml_get(t, "odt1")), BT_TOML_DATETIME);
	assert_string_equal(str_at(t, "odt1"), "1979-05-27T07:32:00Z");
	assert_string_equal(str_at(t, "odt2"), "1979-05-27T00:32:00-07:00");
	assert_string_equal(str_at(t, "odt3"), "1979-05-27T00:32:00.999999+05:30");
	assert_string_equal(str_at(t, "odt4"), "1979-05-27 07:32:00Z");
	assert_string_equal(str_at(t, "odt5"), "1979-05-27t07:32:00z");
	assert_string_equal(str_at(t, "ldt1"), "1979-05-27T07:32:00");
	assert_string_equal(str_at(t, "ldt2"), "1979-05-27 00:32:00.999");
	assert_string_equal(str_at(t, "ld1"), "1979-05-27");
	assert_string_equal(str_at(t, "lt1"), "07:32:00");
	assert_string_equal(str_at(t, "lt2"), "00:32:00.999999");
	assert_string_equal(str_at(t, "leap"), "2024-02-29T23:59:60Z");
	assert_string_equal(bt_toml_str(bt_toml_at(bt_toml_get(t, "arr"), 1)), "07:32:00");
	assert_string_equal(str_at(t, "date_then_comment"), "1979-05-27");
	/* a date-time is not an integer or a string for the typed readers */
	int64_t n;
	assert_int_equal(bt_toml_int(bt_toml_get(t, "ld1"), &n), -1);
	assert_string_equal(bt_toml_path_str(t, "lt1", "x"), "07:32:00");
	bt_toml_free(&t);
}

static void test_datetime_errors(void **state)
{
	(void)state;
	parse_fails("a = 1979-13-01\n", "month out of range");
	parse_fails("a = 1979-00-01\n", "month out of range");
	parse_fails("a = 1979-02-29\n", "day out of range");
	parse_fails("a = 1900-02-29\n", "day out of range");
	parse_fails("a = 2000-04-31\n", "day out of range");
	parse_fails("a = 2000-04-00\n", "day out of range");
	parse_fails("a = 1979-5-27\n", "expected YYYY-MM-DD");
	parse_fails("a = 1979-05-27T24:00:00\n", "valid HH:MM:SS");
	parse_fails("a = 1979-05-27T07:60:00\n", "valid HH:MM:SS");
	parse_fails("a = 1979-05-27T07:32:61\n", "valid HH:MM:SS");
	parse_fails("a = 1979-05-27T07:32\n", "valid HH:MM:SS");
	parse_fails("a = 1979-05-27T07:32:00.\n", "valid HH:MM:SS");
	parse_fails("a = 1979-05-27T07:32:00+7:00\n", "bad offset");
	parse_fails("a = 1979-05-27T07:32:00+24:00\n", "bad offset");
	parse_fails("a = 1979-05-27T07:32:00-07\n", "bad offset");
	parse_fails("a = 07:32\n", "invalid time");
	parse_fails("a = 25:00:00\n", "invalid time");
	parse_fails("a = 1979-05-27 07:32\n", "valid HH:MM:SS");
	parse_fails("a = 1979-05-27X07:32:00\n", "expected a newline after the value");
}

/* ---- arrays and inline tables ------------------------------------------- */

static void test_arrays(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("integers = [ 1, 2, 3 ]\n"
			      "colors = [ \"red\", \"yellow\", \"green\" ]\n"
			      "nested_arrays_of_ints = [ [ 1, 2 ], [3, 4, 5] ]\n"
			      "nested_mixed_array = [ [ 1, 2 ], [\"a\", \"b\", \"c\"] ]\n"
			      "string_array = [ \"all\", 'strings', \"\"\"are the same\"\"\", '''type''' ]\n"
			      "numbers = [ 0.1, 0.2, 0.5, 1, 2, 5 ]\n"
			      "contributors = [\n"
			      "  \"Foo Bar <foo@example.com>\",\n"
			      "  { name = \"Baz Qux\", email = \"bazqux@example.com\", url = \"https://example.com/bazqux\" }\n"
			      "]\n"
			      "integers2 = [\n"
			      "  1, 2, 3\n"
			      "]\n"
			      "integers3 = [\n"
			      "  1,\n"
			      "  2, # this is ok\n"
			      "]\n"
			      "empty = []\n"
			      "empty_lines = [\n\n]\n"
			      "crlf = [\r\n1,\r\n2\r\n]\n");

	static const struct {
		const char *key;
		size_t len;
	} want[] = { { "integers", 3 },	    { "colors", 3 },	 { "nested_arrays_of_ints", 2 },
		     { "nested_mixed_array", 2 }, { "string_array", 4 }, { "numbers", 6 },
		     { "contributors", 2 },	    { "integers2", 3 },	 { "integers3", 2 },
		     { "empty", 0 },		    { "empty_lines", 0 },	 { "crlf", 2 } };
	int64_t n;

	assert_int_equal(bt_toml_len(t), BT_ARRAY_LEN(want));
	for (size_t i = 0; i < BT_ARRAY_LEN(want); i++) {
		assert_string_equal(bt_toml_key_at(t, i), want[i].key);
		assert_int_equal(bt_toml_kind(bt_toml_at(t, i)), BT_TOML_ARRAY);
		assert_int_equal(bt_toml_len(bt_toml_at(t, i)), want[i].len);
	}
	assert_int_equal(bt_toml_int(bt_toml_at(bt_toml_get(t, "integers"), 2), &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(bt_toml_str(bt_toml_at(bt_toml_get(t, "string_array"), 2)), "are the same");
	assert_int_equal(bt_toml_len(bt_toml_at(bt_toml_path(t, "nested_arrays_of_ints"), 1)), 3);
	assert_string_equal(str_at(bt_toml_at(bt_toml_get(t, "contributors"), 1), "email"), "bazqux@example.com");
	bt_toml_free(&t);
}

static void test_array_contents(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("n = [ [ 1, 2 ], [\"a\", [true]], ]\n"
			      "mixed = [1, 'two', 3.0, false, 1979-05-27, [], {}]\n"
			      "c = [\n  1, # one\n  # nothing\n  2, # two\n]\n"
			      "empty = [ ]\n");
	const bt_toml *n = bt_toml_get(t, "n");
	int64_t i;
	bool b;

	assert_int_equal(bt_toml_kind(n), BT_TOML_ARRAY);
	assert_int_equal(bt_toml_len(n), 2);
	assert_int_equal(bt_toml_len(bt_toml_at(n, 0)), 2);
	assert_int_equal(bt_toml_int(bt_toml_at(bt_toml_at(n, 0), 1), &i), 0);
	assert_int_equal(i, 2);
	assert_string_equal(bt_toml_str(bt_toml_at(bt_toml_at(n, 1), 0)), "a");
	assert_int_equal(bt_toml_bool(bt_toml_at(bt_toml_at(bt_toml_at(n, 1), 1), 0), &b), 0);
	assert_true(b);
	assert_null(bt_toml_at(n, 2));

	const bt_toml *m = bt_toml_get(t, "mixed");
	static const bt_toml_type kinds[] = { BT_TOML_INT,  BT_TOML_STRING,   BT_TOML_FLOAT, BT_TOML_BOOL,
					      BT_TOML_DATETIME, BT_TOML_ARRAY, BT_TOML_TABLE };
	assert_int_equal(bt_toml_len(m), BT_ARRAY_LEN(kinds));
	for (size_t k = 0; k < BT_ARRAY_LEN(kinds); k++)
		assert_int_equal(bt_toml_kind(bt_toml_at(m, k)), kinds[k]);
	assert_int_equal(bt_toml_len(bt_toml_get(t, "c")), 2);
	assert_int_equal(bt_toml_len(bt_toml_get(t, "empty")), 0);
	/* key_at is for tables only */
	assert_null(bt_toml_key_at(m, 0));
	bt_toml_free(&t);
}

static void test_array_errors(void **state)
{
	(void)state;
	parse_fails("a = [1 2]\n", "expected ',' or ']' in array, found '2'");
	parse_fails("a = [1,,2]\n", "expected a value, found ','");
	parse_fails("a = [,]\n", "expected a value, found ','");
	parse_fails("a = [1,2\n", "unterminated array");
	parse_fails("a = [1,2", "unterminated array");
	parse_fails("a = [\n", "unterminated array");
	parse_fails("a = [1, # comment ]\n", "unterminated array");
	parse_fails("a = [1]]\n", "expected a newline after the value");
	parse_fails("a = [1, b = 2]\n", "expected a value");
}

static void test_inline_tables(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("name = { first = \"Tom\", last = \"Preston-Werner\" }\n"
			      "point = {x=1,y=2}\n"
			      "animal = { type.name = \"pug\", type.size = 'small' }\n"
			      "nested = { a = { b = { c = 1 } }, d = [ { e = 2 } ] }\n"
			      "empty = {}\n"
			      "spaced = {   }\n"
			      "multi = { s = \"\"\"two\nlines\"\"\", arr = [\n1,\n2] }\n");

	assert_string_equal(str_at(t, "name.first"), "Tom");
	assert_string_equal(str_at(t, "name.last"), "Preston-Werner");
	assert_string_equal(bt_toml_key_at(bt_toml_get(t, "name"), 1), "last");
	assert_int_equal(int_at(t, "point.y"), 2);
	assert_string_equal(str_at(t, "animal.type.name"), "pug");
	assert_string_equal(str_at(t, "animal.type.size"), "small");
	assert_int_equal(int_at(t, "nested.a.b.c"), 1);
	assert_int_equal(int_at(bt_toml_at(bt_toml_path(t, "nested.d"), 0), "e"), 2);
	assert_int_equal(bt_toml_kind(bt_toml_get(t, "empty")), BT_TOML_TABLE);
	assert_int_equal(bt_toml_len(bt_toml_get(t, "empty")), 0);
	assert_int_equal(bt_toml_len(bt_toml_get(t, "spaced")), 0);
	assert_string_equal(str_at(t, "multi.s"), "two\nlines");
	assert_int_equal(bt_toml_len(bt_toml_path(t, "multi.arr")), 2);
	bt_toml_free(&t);
}

static void test_inline_table_errors(void **state)
{
	(void)state;
	parse_fails("a = { b = 1,\n c = 2 }\n", "must be on one line");
	parse_fails("a = {\n}\n", "must be on one line");
	parse_fails("a = { b = 1\n}\n", "must be on one line");
	parse_fails("a = { b = 1, }\n", "trailing comma in inline table");
	parse_fails("a = { b = 1 c = 2 }\n", "expected ',' or '}' in inline table");
	parse_fails("a = { b = 1", "unterminated inline table");
	parse_fails("a = { b = 1, b = 2 }\n", "duplicate key 'b'");
	parse_fails("a = { b = { c = 1 }, b.d = 2 }\n", "cannot add keys to 'b'");
	parse_fails("a = { b.c = 1, b = 2 }\n", "duplicate key 'b'");
	/* an inline table is complete: neither a header nor dotted keys may extend it */
	parse_fails("a = { b = 1 }\na.c = 2\n", "cannot add keys to 'a'");
	parse_fails("a = { b = 1 }\n[a]\n", "table 'a' is already defined");
	parse_fails("a = { b = { c = 1 } }\n[a.b]\n", "'a' is an inline table, which cannot be extended");
	parse_fails("a = { b = 1 }\n[a.c]\n", "'a' is an inline table");
	parse_fails("[t]\na = { b = 1 }\n[t.a.c.d]\n", "line 3, column 4: 'a' is an inline table");
	parse_fails("a = [{ b = 1 }]\n[[a]]\n", "not an array of tables");
}

/* ---- redefinition rules --------------------------------------------------- */

static void test_duplicate_keys(void **state)
{
	(void)state;
	parse_fails("name = \"Tom\"\nname = \"Pradyun\"\n", "line 2, column 1: duplicate key 'name'");
	parse_fails("spelling = \"favorite\"\n\"spelling\" = \"favourite\"\n", "duplicate key 'spelling'");
	parse_fails("a = 1\n'a' = 2\n", "duplicate key 'a'");
	parse_fails("fruit.apple = 1\nfruit.apple.smooth = true\n", "cannot add keys to 'apple'");
	parse_fails("a.b = 1\na = 2\n", "duplicate key 'a'");
	parse_fails("[t]\nx = 1\nx = 2\n", "duplicate key 'x'");
	parse_fails("a = [1]\na.b = 2\n", "cannot add keys to 'a'");
	/* escapes in the message stay printable, and long keys are cut short */
	parse_fails("\"\\n\" = 1\n\"\\n\" = 2\n", "duplicate key '\\x0a'");
	_cleanup_free_ char *k = repeat("", "k", 200, "");
	_cleanup_free_ char *doc = bt_xasprintf("%s = 1\n%s = 2\n", k, k);
	parse_fails(doc, "duplicate key 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...'");
}

static void test_table_redefinition(void **state)
{
	(void)state;
	parse_fails("[fruit]\napple = \"red\"\n[fruit]\norange = \"orange\"\n",
		    "line 3, column 2: table 'fruit' is already defined");
	parse_fails("[a.b]\n[a.b]\n", "table 'b' is already defined");
	parse_fails("[a]\n[a.b]\n[a]\n", "table 'a' is already defined");
	/* a table made by dotted keys cannot be opened by a header */
	parse_fails("[fruit]\napple.color = \"red\"\n[fruit.apple]\n", "table 'apple' is already defined");
	parse_fails("[fruit]\napple.taste.sweet = true\n[fruit.apple.taste]\n", "table 'taste' is already defined");
	parse_fails("a.b = 1\n[a]\n", "table 'a' is already defined");
	/* but dotted keys cannot reach into a table a header defined either */
	parse_fails("[a.b.c]\nz = 9\n[a]\nb.c.t = 1\n", "cannot add keys to 'c'");
	parse_fails("[[a.b]]\n[a]\nb.y = 2\n", "cannot add keys to 'b'");
	parse_fails("[a]\nb = 1\n[a.b.c]\n", "'b' is already defined as a value");
	parse_fails("[ [a] ]\n", "expected a key");
}

static void test_key_redefined_as_table(void **state)
{
	(void)state;
	parse_fails("a = 1\n[a]\n", "key 'a' is already defined");
	parse_fails("a = 1\n[a.b]\n", "'a' is already defined as a value");
	parse_fails("a = []\n[[a]]\n", "'a' is already defined and is not an array of tables");
	parse_fails("[a]\n[[a]]\n", "'a' is already defined and is not an array of tables");
	parse_fails("[[a]]\n[a]\n", "key 'a' is already defined");
	parse_fails("[t]\nk = 'v'\n[t.k]\n", "key 'k' is already defined");
	parse_fails("[t]\nk = 'v'\n[[t.k]]\n", "not an array of tables");
	parse_fails("[[t]]\nk = 1\n[t.k]\n", "key 'k' is already defined");
}

/* ---- syntax errors and their positions --------------------------------- */

static void test_syntax_errors(void **state)
{
	(void)state;
	parse_fails("= 1\n", "line 1, column 1: expected a key, found '='");
	parse_fails("a\n", "expected '=' after a key, found end of line");
	parse_fails("a = \n", "expected a value, found end of line");
	parse_fails("a =\n1\n", "expected a value, found end of line");
	parse_fails("a = 1 b = 2\n", "expected a newline after the value, found 'b'");
	parse_fails("a.= 1\n", "expected a key, found '='");
	parse_fails("a..b = 1\n", "expected a key, found '.'");
	parse_fails(".a = 1\n", "expected a key, found '.'");
	parse_fails("a b = 1\n", "expected '=' after a key, found 'b'");
	parse_fails("[]\n", "expected a key, found ']'");
	parse_fails("[a.]\n", "expected a key, found ']'");
	parse_fails("[a\n", "expected ']' to close the table header, found end of line");
	parse_fails("[[a]\n", "expected ']]' to close the table header");
	parse_fails("[[a] ]\n", "expected ']]' to close the table header");
	parse_fails("[a] b = 1\n", "expected a newline after the table header, found 'b'");
	parse_fails("[a]]\n", "expected a newline after the table header, found ']'");
	parse_fails("a = @\n", "expected a value, found '@'");
	parse_fails("a = \"x\" \"y\"\n", "expected a newline after the value");
	parse_fails("\xc3\xa9 = 1\n", "expected a key, found 0xc3");
}

static void test_error_positions(void **state)
{
	(void)state;
	/* columns count characters, not bytes */
	parse_fails("a = 1\n\"\xc3\xa9\xc3\xa9\" = @\n", "line 2, column 8: expected a value");
	parse_fails("a = 1\r\nb = 2\r\nc = @\r\n", "line 3, column 5: expected a value");
	parse_fails("\n\n\n\t\tx = 1 y\n", "line 4, column 9: expected a newline");
	parse_fails("k = \"\"\"one\ntwo\nthree\\q\"\"\"\n", "line 3, column 6: invalid escape");
	parse_fails("a = [\n1,\n2\nx]", "line 4, column 1: expected ',' or ']' in array, found 'x'");
}

/* ---- bounds ---------------------------------------------------------------- */


static void test_depth_arrays(void **state)
{
	(void)state;
	_cleanup_free_ char *ok_open = repeat("a = ", "[", BT_TOML_MAX_DEPTH, "");
	_cleanup_free_ char *ok = repeat(ok_open, "]", BT_TOML_MAX_DEPTH, "\n");
	_cleanup_free_ char *bad_open = repeat("a = ", "[", BT_TOML_MAX_DEPTH + 1, "");
	_cleanup_free_ char *bad = repeat(bad_open, "]", BT_TOML_MAX_DEPTH + 1, "\n");
	_cleanup_free_ char *huge = repeat("a = ", "[", 100000, "");

	bt_toml *t = parse_ok(ok);
	const bt_toml *v = bt_toml_get(t, "a");
	size_t levels = 0;
	while (v && bt_toml_kind(v) == BT_TOML_ARRAY) {
		levels++;
		v = bt_toml_at(v, 0);
	}
	assert_int_equal(levels, BT_TOML_MAX_DEPTH);
	bt_toml_free(&t);
	parse_fails(bad, "nesting deeper than 64 levels");
	parse_fails(huge, "nesting deeper than 64 levels");
}

static void test_depth_inline_tables(void **state)
{
	(void)state;
	_cleanup_free_ char *ok_open = repeat("a = ", "{b=", BT_TOML_MAX_DEPTH - 1, "1");
	_cleanup_free_ char *ok = repeat(ok_open, "}", BT_TOML_MAX_DEPTH - 1, "\n");
	_cleanup_free_ char *bad_open = repeat("a = ", "{b=", BT_TOML_MAX_DEPTH, "1");
	_cleanup_free_ char *bad = repeat(bad_open, "}", BT_TOML_MAX_DEPTH, "\n");
	_cleanup_free_ char *mixed = repeat("a = ", "[{b=", 40, "");

	bt_toml *t = parse_ok(ok);
	bt_toml_free(&t);
	parse_fails(bad, "nesting deeper than 64 levels");
	parse_fails(mixed, "nesting deeper than 64 levels");
}

static void test_depth_keys(void **state)
{
	(void)state;
	/* 64 parts: the value sits 64 levels down */
	_cleanup_free_ char *ok = repeat("k", ".k", BT_TOML_MAX_DEPTH - 1, " = 1\n");
	_cleanup_free_ char *bad = repeat("k", ".k", BT_TOML_MAX_DEPTH, " = 1\n");
	_cleanup_free_ char *hdr_ok = repeat("[k", ".k", BT_TOML_MAX_DEPTH - 2, "]\nv = 1\n");
	_cleanup_free_ char *hdr_bad = repeat("[k", ".k", BT_TOML_MAX_DEPTH - 1, "]\nv = 1\n");
	_cleanup_free_ char *hdr_long = repeat("[k", ".k", 1000, "]\n");
	/* an array of tables takes two levels: the array and its element */
	_cleanup_free_ char *aot_ok = repeat("[[k", ".k", BT_TOML_MAX_DEPTH - 2, "]]\n");
	_cleanup_free_ char *aot_bad = repeat("[[k", ".k", BT_TOML_MAX_DEPTH - 1, "]]\n");
	_cleanup_free_ char *aot_val = repeat("[[k", ".k", BT_TOML_MAX_DEPTH - 2, "]]\nv = 1\n");

	bt_toml *t = parse_ok(ok);
	bt_toml_free(&t);
	t = parse_ok(hdr_ok);
	bt_toml_free(&t);
	t = parse_ok(aot_ok);
	bt_toml_free(&t);
	parse_fails(bad, "more than 64 parts");
	parse_fails(hdr_bad, "nesting deeper than 64 levels");
	parse_fails(hdr_long, "more than 64 parts");
	parse_fails(aot_bad, "nesting deeper than 64 levels");
	parse_fails(aot_val, "nesting deeper than 64 levels");
	/* arrays of tables on the way count too */
	_cleanup_free_ char *via_aot = repeat("[[a]]\n[a", ".k", BT_TOML_MAX_DEPTH - 1, "]\n");
	_cleanup_free_ char *via_aot2 = repeat("[[a]]\n[[a.b]]\n[a.b", ".k", BT_TOML_MAX_DEPTH - 2, "]\n");
	parse_fails(via_aot, "nesting deeper than 64 levels");
	parse_fails(via_aot2, "nesting deeper than 64 levels");
	/* a header deep down leaves no room for dotted keys below it */
	_cleanup_free_ char *mix = repeat("[k", ".k", 40, "]\n");
	_cleanup_free_ char *mix2 = repeat(mix, "k.", 30, "v = 1\n");
	parse_fails(mix2, "nesting deeper than 64 levels");
}

static void test_size_limit(void **state)
{
	(void)state;
	size_t n = BT_TOML_MAX_SIZE;
	char *doc = bt_xmalloc(n + 2);
	bt_toml *t = NULL;
	bt_err e = { 0 };

	/* exactly 1 MiB: one long comment */
	memset(doc, ' ', n + 1);
	doc[0] = '#';
	doc[n] = '\0';
	assert_int_equal(bt_toml_parse(doc, n, &t, &e), 0);
	bt_toml_free(&t);
	doc[n] = ' ';
	doc[n + 1] = '\0';
	parse_fails_n(doc, n + 1, BT_RESOURCE_EXHAUSTED, "larger than 1048576 bytes");
	free(doc);
}

static void test_many_keys(void **state)
{
	(void)state;
	bt_buf b = { 0 };
	char line[64];
	const size_t n = 5000;

	/* past the linear-search size the hash index must agree with file order */
	for (size_t i = 0; i < n; i++) {
		int len = snprintf(line, sizeof(line), "k%zu = %zu\n", (i * 7919) % n, i);
		bt_buf_append(&b, line, (size_t)len);
	}
	bt_toml *t = parse_ok(b.data);
	assert_int_equal(bt_toml_len(t), n);
	for (size_t i = 0; i < n; i++) {
		snprintf(line, sizeof(line), "k%zu", (i * 7919) % n);
		assert_string_equal(bt_toml_key_at(t, i), line);
		assert_ptr_equal(bt_toml_get(t, line), bt_toml_at(t, i));
		assert_int_equal(int_at(t, line), i);
	}
	assert_null(bt_toml_get(t, "k5000"));
	bt_toml_free(&t);
	/* duplicates are still found once the index is in use */
	bt_buf_append(&b, "k4999 = 0\n", 10);
	parse_fails(b.data, "line 5001, column 1: duplicate key 'k4999'");
	bt_buf_free(&b);
}

static void test_not_nul_terminated(void **state)
{
	(void)state;
	/* only len bytes are read: the rest of the buffer is not part of the document */
	const char buf[] = "a = 1\nb = 2\nGARBAGE";
	bt_toml *t = NULL;
	bt_err e = { 0 };

	assert_int_equal(bt_toml_parse(buf, 12, &t, &e), 0);
	assert_int_equal(bt_toml_len(t), 2);
	bt_toml_free(&t);
	assert_int_equal(bt_toml_parse(buf, 11, &t, &e), 0);
	assert_int_equal(int_at(t, "b"), 2);
	bt_toml_free(&t);
	/* cut inside a token */
	assert_int_equal(bt_toml_parse(buf, 10, &t, &e), -1);
	assert_non_null(strstr(e.msg, "expected a value"));
	assert_int_equal(bt_toml_parse("a = \"xyz\"", 7, &t, &e), -1);
	assert_non_null(strstr(e.msg, "unterminated string"));
	assert_int_equal(bt_toml_parse("a = tru", 6, &t, &e), -1);
	assert_int_equal(bt_toml_parse("a = 1979-05-27", 12, &t, &e), -1);
	assert_int_equal(bt_toml_parse("a = 1979-05-27T07:32:00", 20, &t, &e), -1);
	assert_int_equal(bt_toml_parse("a = \"\\u00e9\"", 9, &t, &e), -1);
	assert_null(t);
}

/* ---- files ------------------------------------------------------------------- */

static char *write_tmp(const char *text, size_t n)
{
	char *path = bt_xstrdup("/tmp/test_toml_XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(bt_write_all(fd, text, n), 0);
	close(fd);
	return path;
}

static void test_parse_file(void **state)
{
	(void)state;
	_cleanup_free_ char *good = write_tmp("[s]\nk = 'v'\n", 12);
	_cleanup_free_ char *bad = write_tmp("[s]\nk = \n", 9);
	bt_toml *t = NULL;
	bt_err e = { 0 };

	assert_int_equal(bt_toml_parse_file(good, &t, &e), 0);
	assert_string_equal(str_at(t, "s.k"), "v");
	bt_toml_free(&t);
	assert_null(t);

	assert_int_equal(bt_toml_parse_file(bad, &t, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_string_equal(e.msg, "line 2, column 5: expected a value, found end of line");

	assert_int_equal(bt_toml_parse_file("/nonexistent/berth/config.toml", &t, &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	assert_null(t);
	unlink(good);
	unlink(bad);
}

static void test_parse_file_too_large(void **state)
{
	(void)state;
	size_t n = BT_TOML_MAX_SIZE + 1;
	_cleanup_free_ char *doc = bt_xmalloc(n);
	bt_toml *t = NULL;
	bt_err e = { 0 };

	memset(doc, '\n', n);
	_cleanup_free_ char *path = write_tmp(doc, n);
	assert_int_equal(bt_toml_parse_file(path, &t, &e), -1);
	assert_int_equal(e.code, BT_RESOURCE_EXHAUSTED);
	assert_null(t);
	unlink(path);
}

/* ---- real documents and the accessors ---------------------------------------- */

static const char hosts_toml[] = "server = \"https://registry-1.docker.io\"\n"
				 "[host.\"https://mirror.example\"]\n"
				 "  capabilities = [\"pull\", \"resolve\"]\n"
				 "  skip_verify = true\n"
				 "  ca = \"/etc/certs/mirror.pem\"\n"
				 "  [host.\"https://mirror.example\".header]\n"
				 "    x-custom = [\"a\", \"b\"]\n"
				 "[host.\"http://127.0.0.1:5000\"]\n"
				 "  capabilities = [\"pull\"]\n"
				 "  client = [[\"/c.cert\", \"/c.key\"]]\n";

static void test_hosts_toml(void **state)
{
	(void)state;
	bt_toml *t = parse_ok(hosts_toml);

	assert_string_equal(bt_toml_path_str(t, "server", NULL), "https://registry-1.docker.io");
	const bt_toml *host = bt_toml_get(t, "host");
	assert_int_equal(bt_toml_kind(host), BT_TOML_TABLE);
	/* hosts are tried in the order they are written */
	assert_int_equal(bt_toml_len(host), 2);
	assert_string_equal(bt_toml_key_at(host, 0), "https://mirror.example");
	assert_string_equal(bt_toml_key_at(host, 1), "http://127.0.0.1:5000");
	assert_null(bt_toml_key_at(host, 2));

	const bt_toml *m = bt_toml_at(host, 0);
	const bt_toml *caps = bt_toml_get(m, "capabilities");
	assert_int_equal(bt_toml_len(caps), 2);
	assert_string_equal(bt_toml_str(bt_toml_at(caps, 0)), "pull");
	assert_string_equal(bt_toml_str(bt_toml_at(caps, 1)), "resolve");
	assert_true(bt_toml_path_bool(t, "host.\"https://mirror.example\".skip_verify", false));
	assert_string_equal(bt_toml_path_str(t, "host.\"https://mirror.example\".ca", NULL),
			    "/etc/certs/mirror.pem");
	const bt_toml *custom = bt_toml_path(t, "host.\"https://mirror.example\".header.x-custom");
	assert_int_equal(bt_toml_len(custom), 2);
	assert_string_equal(bt_toml_str(bt_toml_at(custom, 1)), "b");
	/* keys of the mirror, in order */
	static const char *const mkeys[] = { "capabilities", "skip_verify", "ca", "header" };
	assert_int_equal(bt_toml_len(m), BT_ARRAY_LEN(mkeys));
	for (size_t i = 0; i < BT_ARRAY_LEN(mkeys); i++)
		assert_string_equal(bt_toml_key_at(m, i), mkeys[i]);

	const bt_toml *local = bt_toml_path(t, "host.\"http://127.0.0.1:5000\"");
	assert_ptr_equal(local, bt_toml_at(host, 1));
	assert_int_equal(bt_toml_len(bt_toml_get(local, "capabilities")), 1);
	const bt_toml *client = bt_toml_get(local, "client");
	assert_int_equal(bt_toml_len(client), 1);
	assert_int_equal(bt_toml_len(bt_toml_at(client, 0)), 2);
	assert_string_equal(bt_toml_str(bt_toml_at(bt_toml_at(client, 0), 0)), "/c.cert");
	assert_string_equal(bt_toml_str(bt_toml_at(bt_toml_at(client, 0), 1)), "/c.key");
	assert_false(bt_toml_path_bool(t, "host.\"http://127.0.0.1:5000\".skip_verify", false));
	bt_toml_free(&t);
}

static void test_containerd_config(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("version = 2\n"
			      "root = \"/var/lib/containerd\"\n"
			      "oom_score = -999\n"
			      "\n"
			      "[grpc]\n"
			      "  address = \"/run/containerd/containerd.sock\"\n"
			      "  max_recv_message_size = 16777216\n"
			      "\n"
			      "[plugins]\n"
			      "  [plugins.\"io.containerd.grpc.v1.cri\"]\n"
			      "    sandbox_image = \"registry.k8s.io/pause:3.9\"\n"
			      "    [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n"
			      "      default_runtime_name = \"runc\"\n"
			      "      [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n"
			      "        runtime_type = \"io.containerd.runc.v2\"\n"
			      "        [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n"
			      "          SystemdCgroup = true\n"
			      "    [plugins.\"io.containerd.grpc.v1.cri\".registry]\n"
			      "      config_path = \"/etc/containerd/certs.d\"\n"
			      "\n"
			      "[[proxy_plugins.list]]\n"
			      "  name = 'a'\n"
			      "[proxy_plugins.stargz]\n"
			      "  type = \"snapshot\"\n"
			      "  address = \"/run/containerd-stargz-grpc/containerd-stargz-grpc.sock\"\n");
	const char *cri = "plugins.\"io.containerd.grpc.v1.cri\"";
	_cleanup_free_ char *opts = bt_xasprintf("%s.containerd.runtimes.runc.options.SystemdCgroup", cri);
	_cleanup_free_ char *cfg = bt_xasprintf("%s.registry.config_path", cri);

	assert_int_equal(bt_toml_path_int(t, "version", 0), 2);
	assert_int_equal(bt_toml_path_int(t, "oom_score", 0), -999);
	assert_int_equal(bt_toml_path_int(t, "grpc.max_recv_message_size", 0), 16777216);
	assert_true(bt_toml_path_bool(t, opts, false));
	assert_string_equal(bt_toml_path_str(t, cfg, ""), "/etc/containerd/certs.d");
	assert_string_equal(bt_toml_path_str(t, "proxy_plugins.stargz.type", ""), "snapshot");
	assert_int_equal(bt_toml_len(bt_toml_path(t, "proxy_plugins.list")), 1);
	bt_toml_free(&t);
}

static void test_path_lookup(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("a.b.c = 1\n"
			      "\"x.y\".z = 2\n"
			      "'' = { k = 3 }\n"
			      "s = 'str'\n"
			      "arr = [ { k = 4 } ]\n");

	assert_int_equal(int_at(t, "a.b.c"), 1);
	assert_int_equal(int_at(t, "\"a\".\"b\".c"), 1);
	assert_int_equal(int_at(t, "\"x.y\".z"), 2);
	assert_int_equal(int_at(t, "\"\".k"), 3);
	assert_int_equal(bt_toml_kind(bt_toml_path(t, "a.b")), BT_TOML_TABLE);
	assert_null(bt_toml_path(t, "x.y.z"));
	assert_null(bt_toml_path(t, "a.b.c.d"));	/* through a scalar */
	assert_null(bt_toml_path(t, "s.x"));
	assert_null(bt_toml_path(t, "arr.k"));	/* arrays are not walked */
	assert_null(bt_toml_path(t, "a.missing"));
	/* malformed paths */
	assert_null(bt_toml_path(t, ""));
	assert_null(bt_toml_path(t, "a."));
	assert_null(bt_toml_path(t, ".a"));
	assert_null(bt_toml_path(t, "a..b"));
	assert_null(bt_toml_path(t, "\"x.y"));
	assert_null(bt_toml_path(t, "\"x.y\"z"));
	assert_null(bt_toml_path(t, "a\"b\""));
	assert_null(bt_toml_path(t, NULL));
	assert_null(bt_toml_path(NULL, "a"));
	/* a path from a non-table */
	assert_null(bt_toml_path(bt_toml_get(t, "s"), "x"));
	bt_toml_free(&t);
}

static void test_accessors(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("s = 'x'\ni = 5\nf = 1.5\nb = true\narr = [1]\ntab = { k = 1 }\n");
	const bt_toml *s = bt_toml_get(t, "s"), *i = bt_toml_get(t, "i"), *f = bt_toml_get(t, "f"),
		      *b = bt_toml_get(t, "b"), *arr = bt_toml_get(t, "arr"), *tab = bt_toml_get(t, "tab");
	int64_t n = 42;
	double d = 42;
	bool v = false;

	assert_int_equal(bt_toml_kind(s), BT_TOML_STRING);
	assert_int_equal(bt_toml_kind(arr), BT_TOML_ARRAY);
	/* wrong types fail and leave the output alone */
	assert_int_equal(bt_toml_int(s, &n), -1);
	assert_int_equal(bt_toml_int(f, &n), -1);
	assert_int_equal(bt_toml_int(NULL, &n), -1);
	assert_int_equal(n, 42);
	assert_int_equal(bt_toml_float(s, &d), -1);
	assert_int_equal(bt_toml_float(b, &d), -1);
	assert_true(d == 42);
	assert_int_equal(bt_toml_bool(i, &v), -1);
	assert_int_equal(bt_toml_bool(NULL, &v), -1);
	assert_false(v);
	assert_null(bt_toml_str(i));
	assert_null(bt_toml_str(tab));
	assert_null(bt_toml_str(NULL));
	/* containers */
	assert_int_equal(bt_toml_len(s), 0);
	assert_int_equal(bt_toml_len(NULL), 0);
	assert_int_equal(bt_toml_len(arr), 1);
	assert_null(bt_toml_at(s, 0));
	assert_null(bt_toml_at(NULL, 0));
	assert_null(bt_toml_at(arr, 1));
	assert_null(bt_toml_key_at(tab, 1));
	assert_null(bt_toml_key_at(NULL, 0));
	assert_null(bt_toml_get(arr, "k"));
	assert_null(bt_toml_get(NULL, "k"));
	assert_null(bt_toml_get(t, NULL));
	assert_null(bt_toml_get(t, "nope"));
	assert_ptr_equal(bt_toml_at(t, 5), tab);
	assert_string_equal(bt_toml_key_at(t, 5), "tab");
	assert_null(bt_toml_at(t, 6));
	assert_int_equal(bt_toml_float(f, &d), 0);
	assert_true(d == 1.5);
	assert_int_equal(bt_toml_float(i, &d), 0);
	assert_true(d == 5.0);
	bt_toml_free(&t);
}

static void test_path_defaults(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("[gw]\naddress = 'ipc:///x'\nmax = 7\ndebug = true\nwhen = 1979-05-27\n");

	assert_string_equal(bt_toml_path_str(t, "gw.address", "d"), "ipc:///x");
	assert_string_equal(bt_toml_path_str(t, "gw.missing", "d"), "d");
	assert_string_equal(bt_toml_path_str(t, "gw.max", "d"), "d"); /* wrong type */
	assert_string_equal(bt_toml_path_str(t, "gw.when", "d"), "1979-05-27");
	assert_null(bt_toml_path_str(t, "gw", NULL));
	assert_int_equal(bt_toml_path_int(t, "gw.max", -1), 7);
	assert_int_equal(bt_toml_path_int(t, "gw.address", -1), -1);
	assert_int_equal(bt_toml_path_int(t, "nope.max", -1), -1);
	assert_true(bt_toml_path_bool(t, "gw.debug", false));
	assert_false(bt_toml_path_bool(t, "gw.max", false));
	assert_true(bt_toml_path_bool(t, "gw.nodebug", true));
	/* no document at all: every default */
	assert_string_equal(bt_toml_path_str(NULL, "gw.address", "d"), "d");
	assert_int_equal(bt_toml_path_int(NULL, "gw.max", 3), 3);
	assert_true(bt_toml_path_bool(NULL, "gw.debug", true));
	bt_toml_free(&t);
}

static void test_free_tree(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("a = [1, {b = 'c'}, [[]]]\n[[x]]\n[x.y]\n");
	bt_toml *none = NULL;

	bt_toml_free(&t);
	assert_null(t);
	bt_toml_free(&t);
	bt_toml_free(&none);
	bt_toml_free(NULL);
}

static void test_output_untouched_on_error(void **state)
{
	(void)state;
	bt_toml *sentinel = (bt_toml *)&sentinel;
	bt_toml *t = sentinel;
	bt_err e = { 0 };

	assert_int_equal(bt_toml_parse("a = 1\na = 2\n", 12, &t, &e), -1);
	assert_ptr_equal(t, sentinel);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
}

static void test_whitespace_and_crlf(void **state)
{
	(void)state;
	bt_toml *t = parse_ok("\t a\t=\t1\t\r\n"
			      "[ t ]\r\n"
			      "b=2\r\n"
			      "s = '''\r\nx\r\n'''\r\n"
			      "# comment\r\n");

	assert_int_equal(int_at(t, "a"), 1);
	assert_int_equal(int_at(t, "t.b"), 2);
	assert_string_equal(str_at(t, "t.s"), "x\n");
	bt_toml_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_documents),
		cmocka_unit_test(test_comments),
		cmocka_unit_test(test_bare_keys),
		cmocka_unit_test(test_quoted_keys),
		cmocka_unit_test(test_dotted_keys),
		cmocka_unit_test(test_table_headers),
		cmocka_unit_test(test_implicit_tables),
		cmocka_unit_test(test_array_of_tables),
		cmocka_unit_test(test_basic_string_escapes),
		cmocka_unit_test(test_unicode_escapes),
		cmocka_unit_test(test_literal_strings),
		cmocka_unit_test(test_multiline_basic_strings),
		cmocka_unit_test(test_multiline_literal_strings),
		cmocka_unit_test(test_string_errors),
		cmocka_unit_test(test_invalid_escapes),
		cmocka_unit_test(test_control_characters),
		cmocka_unit_test(test_lone_carriage_returns),
		cmocka_unit_test(test_nul_rejected),
		cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_integer_errors),
		cmocka_unit_test(test_floats),
		cmocka_unit_test(test_float_specials),
		cmocka_unit_test(test_float_errors),
		cmocka_unit_test(test_number_length_bound),
		cmocka_unit_test(test_booleans),
		cmocka_unit_test(test_datetimes),
		cmocka_unit_test(test_datetime_errors),
		cmocka_unit_test(test_arrays),
		cmocka_unit_test(test_array_contents),
		cmocka_unit_test(test_array_errors),
		cmocka_unit_test(test_inline_tables),
		cmocka_unit_test(test_inline_table_errors),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_table_redefinition),
		cmocka_unit_test(test_key_redefined_as_table),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_error_positions),
		cmocka_unit_test(test_depth_arrays),
		cmocka_unit_test(test_depth_inline_tables),
		cmocka_unit_test(test_depth_keys),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_many_keys),
		cmocka_unit_test(test_not_nul_terminated),
		cmocka_unit_test(test_parse_file),
		cmocka_unit_test(test_parse_file_too_large),
		cmocka_unit_test(test_hosts_toml),
		cmocka_unit_test(test_containerd_config),
		cmocka_unit_test(test_path_lookup),
		cmocka_unit_test(test_accessors),
		cmocka_unit_test(test_path_defaults),
		cmocka_unit_test(test_free_tree),
		cmocka_unit_test(test_output_untouched_on_error),
		cmocka_unit_test(test_whitespace_and_crlf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
