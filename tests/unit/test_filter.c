/*
 * test_filter — unit tests for bt_filter: every operator, quoting and
 * escapes, AND/OR, absent fields, regexes, every parse error and bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "bt_filter.h"
#include "bt_util.h"

/* A small object for the adaptor: a few fields, labels, a nested target. */
struct obj {
	const char *name;	/* NULL = absent */
	const char *kind;
	const char *digest;	/* target.digest */
	const char *labels[8][2];
};

static const char *obj_get(void *p, const char *const *path, size_t n)
{
	struct obj *o = p;

	if (n == 1 && strcmp(path[0], "name") == 0)
		return o->name;
	if (n == 1 && strcmp(path[0], "kind") == 0)
		return o->kind;
	if (n == 2 && strcmp(path[0], "target") == 0 && strcmp(path[1], "digest") == 0)
		return o->digest;
	if (n == 2 && strcmp(path[0], "labels") == 0) {
		for (size_t i = 0; i < 8 && o->labels[i][0]; i++)
			if (strcmp(o->labels[i][0], path[1]) == 0)
				return o->labels[i][1];
	}
	return NULL;
}

static struct obj busybox = {
	.name = "docker.io/library/busybox:latest",
	.kind = "",
	.digest = "sha256:abc123",
	.labels = {
		{ "env", "prod" },
		{ "a.b/c", "x" },
		{ "team", "core, infra" },
		{ "quote", "say \"hi\"" },
		{ "path", "C:\\dir" },
		{ "empty", "" },
		{ "unicode", "caf\xc3\xa9" },
	},
};

static struct obj nameless = {
	.name = NULL,
	.kind = "image",
	.labels = { { "env", "dev" } },
};

/* Parses the filters, failing the test on error. */
static bt_filter *compile(const char *const *fs, size_t n)
{
	bt_filter *f = NULL;
	bt_err e = { 0 };

	if (bt_filter_parse(fs, n, &f, &e) < 0)
		fail_msg("parse failed: %s", e.msg);
	assert_non_null(f);
	return f;
}

/* Does the single filter string s match o? */
static bool match1(const char *s, struct obj *o)
{
	bt_filter *f = compile(&s, 1);
	bool r = bt_filter_match(f, obj_get, o);

	bt_filter_free(&f);
	return r;
}

/* Parsing s must fail with BT_INVALID_ARGUMENT and a message containing want. */
static void expect_error(const char *s, const char *want)
{
	bt_filter *f = NULL;
	bt_err e = { 0 };

	if (bt_filter_parse(&s, 1, &f, &e) == 0)
		fail_msg("parse of \"%s\" succeeded, wanted error \"%s\"", s, want);
	assert_null(f);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	if (!strstr(e.msg, want))
		fail_msg("error \"%s\" does not contain \"%s\"", e.msg, want);
	/* messages never carry raw control bytes or non-ASCII */
	for (const char *c = e.msg; *c; c++)
		assert_true(*c >= 0x20 && *c < 0x7f);
}

static void test_no_filters_match_everything(void **state)
{
	(void)state;
	bt_filter *f = compile(NULL, 0);

	assert_true(bt_filter_match(f, obj_get, &busybox));
	assert_true(bt_filter_match(f, obj_get, &nameless));
	bt_filter_free(&f);
	assert_null(f);
}

static void test_empty_string_matches_everything(void **state)
{
	(void)state;
	assert_true(match1("", &busybox));
	assert_true(match1("", &nameless));
	assert_true(match1(" \t ", &nameless));
}

static void test_free_null(void **state)
{
	(void)state;
	bt_filter *f = NULL;

	bt_filter_free(&f);
	assert_null(f);
}

static void test_present(void **state)
{
	(void)state;
	assert_true(match1("name", &busybox));
	assert_false(match1("name", &nameless));	/* absent */
	assert_false(match1("kind", &busybox));	/* present but empty */
	assert_true(match1("kind", &nameless));
	assert_true(match1("labels.env", &busybox));
	assert_false(match1("labels.empty", &busybox));
	assert_false(match1("labels.nope", &busybox));
	assert_true(match1("target.digest", &busybox));
}

static void test_equal(void **state)
{
	(void)state;
	assert_true(match1("name==docker.io/library/busybox:latest", &busybox));
	assert_false(match1("name==docker.io/library/busybox", &busybox));
	assert_false(match1("name==x", &nameless));	/* absent never equals */
	assert_true(match1("labels.env==prod", &busybox));
	assert_false(match1("labels.env==Prod", &busybox));
	assert_true(match1("kind==\"\"", &busybox));	/* empty but present */
	assert_false(match1("name==\"\"", &nameless));
	assert_true(match1("target.digest==sha256:abc123", &busybox));
}

static void test_not_equal(void **state)
{
	(void)state;
	assert_true(match1("name!=x", &busybox));
	assert_false(match1("name!=docker.io/library/busybox:latest", &busybox));
	assert_true(match1("name!=x", &nameless));	/* absent is different */
	assert_true(match1("labels.nope!=x", &busybox));
	assert_true(match1("name!=\"\"", &nameless));
	assert_false(match1("kind!=\"\"", &busybox));
}

static void test_regex(void **state)
{
	(void)state;
	assert_true(match1("name~=busybox", &busybox));	/* unanchored */
	assert_true(match1("name~=^docker\\.io/", &busybox));
	assert_false(match1("name~=^busybox", &busybox));
	assert_true(match1("name~=latest$", &busybox));
	assert_true(match1("name~=(alpine|busybox):", &busybox));
	assert_false(match1("name~=alpine", &busybox));
	assert_false(match1("name~=.*", &nameless));	/* absent never matches */
	assert_true(match1("kind~=\"\"", &busybox));	/* empty regex, present field */
	assert_true(match1("labels.env~=^pro?d$", &busybox));
	assert_true(match1("target.digest~=\"^sha256:[a-f0-9]{1,64}$\"", &busybox));
	assert_true(match1("name~=\"^[a-z.]+/[[:alpha:]]+/\"", &busybox));
	assert_true(match1("name~=BUSYBOX|busybox", &busybox));
}

static void test_and(void **state)
{
	(void)state;
	assert_true(match1("name~=busybox,labels.env==prod", &busybox));
	assert_false(match1("name~=busybox,labels.env==dev", &busybox));
	assert_false(match1("labels.env==dev,name~=busybox", &busybox));
	assert_true(match1("name,labels.env,target.digest", &busybox));
	assert_false(match1("name,kind", &busybox));
}

static void test_or(void **state)
{
	(void)state;
	const char *fs[] = { "labels.env==dev", "name~=busybox,labels.env==prod" };
	const char *none[] = { "labels.env==qa", "name==x" };
	bt_filter *f = compile(fs, 2);

	assert_true(bt_filter_match(f, obj_get, &busybox));	/* second alternative */
	assert_true(bt_filter_match(f, obj_get, &nameless));	/* first alternative */
	bt_filter_free(&f);

	f = compile(none, 2);
	assert_false(bt_filter_match(f, obj_get, &busybox));
	assert_false(bt_filter_match(f, obj_get, &nameless));
	bt_filter_free(&f);
}

static void test_or_with_empty_string(void **state)
{
	(void)state;
	const char *fs[] = { "name==nothing", "" };
	bt_filter *f = compile(fs, 2);

	assert_true(bt_filter_match(f, obj_get, &busybox));
	bt_filter_free(&f);
}

static void test_quoted_segment(void **state)
{
	(void)state;
	assert_true(match1("labels.\"a.b/c\"==x", &busybox));
	assert_false(match1("labels.a.b==x", &busybox));
	assert_true(match1("\"labels\".\"env\"==prod", &busybox));
	assert_true(match1("labels.\"caf\xc3\xa9\"!=x", &busybox));
}

/* Records the path the matcher asks for. */
static char seen[16][64];
static size_t nseen;

static const char *record_get(void *p, const char *const *path, size_t n)
{
	(void)p;
	nseen = n;
	for (size_t i = 0; i < n && i < 16; i++)
		snprintf(seen[i], sizeof(seen[i]), "%s", path[i]);
	return "v";
}

static void test_path_segments_passed(void **state)
{
	(void)state;
	const char *s = " a_1 . \"b.c/d\" .\"q\\\"x\\\\\" . \"\" . Z9 == v ";
	bt_filter *f = compile(&s, 1);

	assert_true(bt_filter_match(f, record_get, NULL));
	assert_int_equal(nseen, 5);
	assert_string_equal(seen[0], "a_1");
	assert_string_equal(seen[1], "b.c/d");
	assert_string_equal(seen[2], "q\"x\\");
	assert_string_equal(seen[3], "");
	assert_string_equal(seen[4], "Z9");
	bt_filter_free(&f);
}

static void test_quoted_values(void **state)
{
	(void)state;
	assert_true(match1("labels.team==\"core, infra\"", &busybox));
	assert_true(match1("labels.quote==\"say \\\"hi\\\"\"", &busybox));
	assert_true(match1("labels.path==\"C:\\\\dir\"", &busybox));
	assert_true(match1("labels.team==\"core, infra\",labels.env==prod", &busybox));
	assert_true(match1("labels.unicode==\"caf\xc3\xa9\"", &busybox));
	/* a quoted value keeps its spaces */
	assert_false(match1("labels.env==\" prod\"", &busybox));
}

static void test_bare_values(void **state)
{
	(void)state;
	/* backslashes are literal in bare values */
	assert_true(match1("labels.path==C:\\dir", &busybox));
	/* surrounding blanks trimmed, inner ones kept */
	assert_true(match1("labels.env==  prod\t ", &busybox));
	/* a bare value stops at the comma: this is labels.team=="core" AND infra */
	assert_false(match1("labels.team== core, infra", &busybox));
	assert_true(match1("labels.unicode==caf\xc3\xa9", &busybox));
	/* everything up to the comma, '=' included */
	assert_false(match1("name==a==b", &busybox));
	assert_true(match1("name!=a==b", &busybox));
}

static void test_whitespace(void **state)
{
	(void)state;
	assert_true(match1("  name ~= busybox ,  labels . env == prod  ", &busybox));
	assert_true(match1("\tlabels\t.\t\"a.b/c\"\t==\t\"x\"\t,\tname\t", &busybox));
	assert_true(match1("name ,labels.env", &busybox));
}

static void test_error_operator(void **state)
{
	(void)state;
	expect_error("name=x", "column 5: expected operator (==, !=, ~=), '.', ',' or end of "
			       "filter, found '='");
	expect_error("name>x", "column 5: expected operator");
	expect_error("name =~x", "column 6: expected operator");
	expect_error("na-me==x", "column 3: expected operator");
	expect_error("name!", "column 5: expected operator");
	expect_error("name==x,kind<y", "column 13: expected operator");
}

static void test_error_field(void **state)
{
	(void)state;
	expect_error(",name", "column 1: expected field name ([A-Za-z0-9_]+) or quoted field, "
			      "found ','");
	expect_error("name,", "column 6: expected field name");
	expect_error("name, ", "column 7: expected field name");
	expect_error("name,,kind", "column 6: expected field name");
	expect_error("labels.", "column 8: expected field name");
	expect_error("labels..x", "column 8: expected field name");
	expect_error(".labels", "column 1: expected field name");
	expect_error("==x", "column 1: expected field name");
	expect_error("caf\xc3\xa9==x", "column 4: expected operator (==, !=, ~=), '.', ',' or end "
				       "of filter, found byte 0xc3");
	expect_error("\xc3\xa9==x", "found byte 0xc3");
	expect_error("name==x,kind==\"y\",\x01", "column 19: expected field name");
}

static void test_error_value(void **state)
{
	(void)state;
	expect_error("name==", "column 7: expected value or quoted value, found end of filter");
	expect_error("name==  ", "column 9: expected value");
	expect_error("name==,kind", "column 7: expected value or quoted value, found ','");
	expect_error("name!= ,kind", "column 8: expected value");
	expect_error("name==a\"b", "column 8: unexpected '\"' in unquoted value");
	expect_error("name==a\x01", "column 8: unexpected control byte 0x01 in unquoted value");
	expect_error("name==a\x7f", "unexpected control byte 0x7f");
}

static void test_error_quotes(void **state)
{
	(void)state;
	expect_error("labels.\"abc", "column 8: unterminated quoted string");
	expect_error("name==\"abc", "column 7: unterminated quoted string");
	expect_error("name==\"abc\\\"", "column 7: unterminated quoted string");
	expect_error("name==\"a\\nb\"", "column 9: invalid escape in quoted string: '\\' followed "
					"by 'n' (only \\\" and \\\\ are allowed)");
	expect_error("name==\"a\\", "column 9: invalid escape in quoted string: '\\' followed by "
				    "end of filter");
	expect_error("labels.\"a\\.b\"", "column 10: invalid escape");
	expect_error("name==\"x\" y", "column 11: expected ',' or end of filter, found 'y'");
	expect_error("name==\"x\"\"y\"", "column 10: expected ',' or end of filter");
	expect_error("labels.\"a\"b==x", "column 11: expected operator");
}

/* "name~=((…(b)…))" with depth groups. */
static char *nested(int depth)
{
	bt_buf b = { 0 };

	bt_buf_append(&b, "name~=", 6);
	for (int i = 0; i < depth; i++)
		bt_buf_append(&b, "(", 1);
	bt_buf_append(&b, "b", 1);
	for (int i = 0; i < depth; i++)
		bt_buf_append(&b, ")", 1);
	return bt_buf_steal(&b);
}

static void nested_error(int depth, const char *want)
{
	char *s = nested(depth);

	expect_error(s, want);
	free(s);
}

/* "name~=b***…" with n stars. */
static void star_error(int n)
{
	bt_buf b = { 0 };

	bt_buf_append(&b, "name~=b", 7);
	for (int i = 0; i < n; i++)
		bt_buf_append(&b, "*", 1);
	expect_error(b.data, "column 7: regex repeats something that can match the empty string");
	bt_buf_free(&b);
}

static void test_error_regex(void **state)
{
	(void)state;
	expect_error("name~=(", "column 7: invalid regex \"(\": ");
	expect_error("name~=a[", "column 7: invalid regex");
	expect_error("name ~= \"*a\"", "column 9: invalid regex \"*a\"");
	/* a bare regex stops at the comma */
	expect_error("name~=a{1,3}", "column 7: invalid regex \"a{1\": ");
	expect_error("name~=\"(a)\\\\1\"", "column 7: regex backreferences (\\1) are not supported");
	expect_error("name~=\"(.{1,200}){1,200}\"", "regex too complex (expands to more than 256 "
						    "positions");
	expect_error("name~=\"a{257}\"", "regex too complex");
	expect_error("name~=\"a{1,}{300}\"", "regex too complex");
	expect_error("name~=\"((((((((((a+)+)+)+)+)+)+)+)+)+)\"", "regex too complex");
	expect_error("name~=\"(a|b{10}|c){30}\"", "regex too complex");
	/* fuzz findings: glibc's closures explode on repeated empty matches */
	star_error(300);
	expect_error("name~=\"(r**********++++++){0,}{1,}\"", "regex repeats something");
	expect_error("name~=\"%%+$'+++*0******+**-****************++*0\"",
		     "regex repeats something");
	expect_error("name~=\"(\\\\b\\\\B)*(\\\\b\\\\B)*(\\\\b\\\\B)*\"", "regex repeats something");
	expect_error("name~=\"^(|)*(|)*(|)*\"", "regex repeats something");
	nested_error(BT_FILTER_REGEX_MAX_DEPTH + 1, "regex nests groups too deeply (at most 32)");
}

static void test_regex_bounds_accepted(void **state)
{
	(void)state;
	char *s;

	/* what people write stays well inside the budget */
	assert_true(match1("name~=\"^docker\\\\.io/[a-z]+/[a-z0-9._-]{1,128}:[a-z0-9.]{1,64}$\"",
			   &busybox));
	assert_false(match1("target.digest~=\"^sha256:[a-f0-9]{64}$\"", &busybox));
	/* 32 groups deep is fine */
	s = nested(BT_FILTER_REGEX_MAX_DEPTH);
	assert_true(match1(s, &busybox));
	free(s);
	/* exactly the budget: 253 copies, the interval, the '|', the other branch */
	assert_true(match1("name~=\"b{253}|b\"", &busybox));
	expect_error("name~=\"b{254}|b\"", "regex too complex");
	expect_error("name~=\"||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||"
		     "||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||"
		     "||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||"
		     "||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||"
		     "\"", "regex too complex");
	/* a '{' that is not an interval is up to regcomp */
	assert_false(match1("name~=\"a\\\\{\"", &busybox));
	/* brackets hide specials from the estimate */
	assert_true(match1("name~=\"[(|)]|[]a]|[^]]|[[:digit:][.-.]]\"", &busybox));
}

static void test_regex_empty_repeats(void **state)
{
	(void)state;
	const char *bad[] = {
		"a**", "a?*", "a*?", ".*?", "a*+", "a{0,3}*", "a*{2}", "(a|)*", "(|a)+",
		"(a?){2}", "(a*)*", "(a*b*)*", "()+", "(^)*", "($)?", "(\\\\b)*", "^*",
		"((a|b*)c?)*", "(x|(y|))*",
	};
	const char *good[] = {
		"a*", "a+*", ".+?", "(a*b)*", "(a|b)*", "(-[a-z]+)*", "a*b*c*", "(foo)?",
		"a{1,3}*", "^(ab|cd)*$", "(^a|b$)+", "(a|b*c)+", "((a|b)c?)*", "[*?]*",
		"\\\\**", "(\\\\ba)*",
	};

	for (size_t i = 0; i < BT_ARRAY_LEN(bad); i++) {
		char *s = bt_xasprintf("name~=\"%s\"", bad[i]);

		expect_error(s, "regex repeats something that can match the empty string");
		free(s);
	}
	for (size_t i = 0; i < BT_ARRAY_LEN(good); i++) {
		char *s = bt_xasprintf("name~=\"%s\"", good[i]);
		bt_filter *f = NULL;
		bt_err e = { 0 };

		if (bt_filter_parse((const char *const *)&s, 1, &f, &e) < 0)
			fail_msg("%s refused: %s", s, e.msg);
		bt_filter_free(&f);
		free(s);
	}
}

static void test_error_names_filter(void **state)
{
	(void)state;
	const char *fs[] = { "name==x", "labels.\"env==y" };
	bt_filter *f = NULL;
	bt_err e = { 0 };

	assert_int_equal(bt_filter_parse(fs, 2, &f, &e), -1);
	assert_null(f);
	assert_string_equal(e.msg,
			    "filter \"labels.\\\"env==y\": column 8: unterminated quoted string");
}

static void test_error_escapes_and_cuts_filter(void **state)
{
	(void)state;
	char big[1000];
	bt_err e = { 0 };
	bt_filter *f = NULL;
	const char *s = big;

	memset(big, 'x', sizeof(big) - 2);
	big[sizeof(big) - 2] = '%';
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(bt_filter_parse(&s, 1, &f, &e), -1);
	assert_non_null(strstr(e.msg, "xxx...\": column 999: expected operator"));
	assert_true(strlen(e.msg) < 300);

	expect_error("a\tb", "filter \"a\\x09b\": column 3");
}

static void test_null_filter_string(void **state)
{
	(void)state;
	const char *fs[] = { "name", NULL };
	bt_filter *f = NULL;
	bt_err e = { 0 };

	assert_int_equal(bt_filter_parse(fs, 2, &f, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_string_equal(e.msg, "filter 2: missing");
}

static void test_bound_length(void **state)
{
	(void)state;
	char s[BT_FILTER_MAX_LEN + 2];
	const char *p = s;
	bt_filter *f = NULL;
	bt_err e = { 0 };

	/* name==xxxx… of exactly 4096 bytes */
	memcpy(s, "name==", 6);
	memset(s + 6, 'x', BT_FILTER_MAX_LEN - 6);
	s[BT_FILTER_MAX_LEN] = '\0';
	assert_false(match1(s, &busybox));

	s[BT_FILTER_MAX_LEN] = 'x';
	s[BT_FILTER_MAX_LEN + 1] = '\0';
	assert_int_equal(bt_filter_parse(&p, 1, &f, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_non_null(strstr(e.msg, "...\": too long (4097 bytes, at most 4096)"));
}

/* "name,name,…" with n selectors. */
static char *selectors(size_t n)
{
	bt_buf b = { 0 };

	for (size_t i = 0; i < n; i++)
		bt_buf_appendf(&b, "%sname", i ? "," : "");
	return bt_buf_steal(&b);
}

static void test_bound_selectors(void **state)
{
	(void)state;
	char *s = selectors(BT_FILTER_MAX_SELECTORS);

	assert_true(match1(s, &busybox));
	free(s);
	s = selectors(BT_FILTER_MAX_SELECTORS + 1);
	/* the 65th selector starts at 64 * 5 + 1 */
	expect_error(s, "column 321: too many selectors (at most 64)");
	free(s);
}

static void test_bound_segments(void **state)
{
	(void)state;
	bt_buf b = { 0 };
	bt_filter *f;
	const char *s;

	for (int i = 0; i < BT_FILTER_MAX_SEGMENTS; i++)
		bt_buf_appendf(&b, "%sa", i ? "." : "");
	s = b.data;
	f = compile(&s, 1);
	assert_true(bt_filter_match(f, record_get, NULL));
	assert_int_equal(nseen, BT_FILTER_MAX_SEGMENTS);
	bt_filter_free(&f);

	bt_buf_append(&b, ".\"b\"", 4);
	expect_error(b.data, "column 33: too many field path segments (at most 16)");
	bt_buf_free(&b);
}

static void test_bound_filters(void **state)
{
	(void)state;
	const char *fs[BT_FILTER_MAX_FILTERS + 1];
	bt_filter *f = NULL;
	bt_err e = { 0 };

	for (size_t i = 0; i < BT_ARRAY_LEN(fs); i++)
		fs[i] = "labels.env==nope";
	fs[BT_FILTER_MAX_FILTERS - 1] = "labels.env==prod";
	f = compile(fs, BT_FILTER_MAX_FILTERS);
	assert_true(bt_filter_match(f, obj_get, &busybox));
	assert_false(bt_filter_match(f, obj_get, &nameless));
	bt_filter_free(&f);

	assert_int_equal(bt_filter_parse(fs, BT_FILTER_MAX_FILTERS + 1, &f, &e), -1);
	assert_null(f);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_string_equal(e.msg, "too many filters (65, at most 64)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_filters_match_everything),
		cmocka_unit_test(test_empty_string_matches_everything),
		cmocka_unit_test(test_free_null),
		cmocka_unit_test(test_present),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_not_equal),
		cmocka_unit_test(test_regex),
		cmocka_unit_test(test_and),
		cmocka_unit_test(test_or),
		cmocka_unit_test(test_or_with_empty_string),
		cmocka_unit_test(test_quoted_segment),
		cmocka_unit_test(test_path_segments_passed),
		cmocka_unit_test(test_quoted_values),
		cmocka_unit_test(test_bare_values),
		cmocka_unit_test(test_whitespace),
		cmocka_unit_test(test_error_operator),
		cmocka_unit_test(test_error_field),
		cmocka_unit_test(test_error_value),
		cmocka_unit_test(test_error_quotes),
		cmocka_unit_test(test_error_regex),
		cmocka_unit_test(test_regex_bounds_accepted),
		cmocka_unit_test(test_regex_empty_repeats),
		cmocka_unit_test(test_error_names_filter),
		cmocka_unit_test(test_error_escapes_and_cuts_filter),
		cmocka_unit_test(test_null_filter_string),
		cmocka_unit_test(test_bound_length),
		cmocka_unit_test(test_bound_selectors),
		cmocka_unit_test(test_bound_segments),
		cmocka_unit_test(test_bound_filters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
