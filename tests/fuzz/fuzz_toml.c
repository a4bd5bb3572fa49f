/*
 * fuzz_toml — libFuzzer harness for bt_toml.
 *
 * The input is one document, handed over as exactly its bytes (not
 * NUL-terminated, so any over-read is caught).  A parse must either succeed
 * with a tree that is consistent under every accessor, or fail with a
 * printable "line L, column C: ..." message; it must never crash, leak, or
 * hang.
 *
 * Build: clang -std=gnu11 -g -fsanitize=fuzzer,address,undefined -Icommon \
 *	common/bt_toml.c common/bt_util.c common/bt_err.c \
 *	tests/fuzz/fuzz_toml.c -lm -o fuzz_toml
 * Run:   ./fuzz_toml -max_len=65536 tests/fuzz/corpus/toml
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bt_toml.h"
#include "bt_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* Walks a value and checks every accessor against its kind; returns the values seen. */
static size_t walk(const bt_toml *v, unsigned depth)
{
	bt_toml_type k = bt_toml_kind(v);
	size_t n = bt_toml_len(v), seen = 1;
	int64_t i;
	double f;
	bool b;

	check(depth <= BT_TOML_MAX_DEPTH);
	check((bt_toml_int(v, &i) == 0) == (k == BT_TOML_INT));
	check((bt_toml_bool(v, &b) == 0) == (k == BT_TOML_BOOL));
	check((bt_toml_float(v, &f) == 0) == (k == BT_TOML_FLOAT || k == BT_TOML_INT));
	check((bt_toml_str(v) != NULL) == (k == BT_TOML_STRING || k == BT_TOML_DATETIME));
	check(bt_toml_at(v, n) == NULL);
	check(bt_toml_key_at(v, n) == NULL);

	switch (k) {
	case BT_TOML_TABLE:
		for (size_t j = 0; j < n; j++) {
			const char *key = bt_toml_key_at(v, j);
			const bt_toml *c = bt_toml_at(v, j);
			check(key && c);
			/* lookup by key finds this entry: keys are unique and the index agrees */
			check(bt_toml_get(v, key) == c);
			if (!strchr(key, '"') && strlen(key) < 200) {
				char path[256];
				snprintf(path, sizeof(path), "\"%s\"", key);
				check(bt_toml_path(v, path) == c);
			}
			seen += walk(c, depth + 1);
		}
		break;
	case BT_TOML_ARRAY:
		check(bt_toml_key_at(v, 0) == NULL);
		check(bt_toml_get(v, "") == NULL);
		for (size_t j = 0; j < n; j++) {
			const bt_toml *c = bt_toml_at(v, j);
			check(c != NULL);
			seen += walk(c, depth + 1);
		}
		break;
	case BT_TOML_STRING:
	case BT_TOML_DATETIME:
		check(n == 0);
		(void)strlen(bt_toml_str(v));
		break;
	case BT_TOML_FLOAT:
	case BT_TOML_INT:
	case BT_TOML_BOOL:
		check(n == 0);
		check(bt_toml_get(v, "") == NULL);
		break;
	default:
		abort();
	}
	return seen;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a copy of exactly size bytes, so reading past the end is an ASan report */
	char *text = bt_xmalloc(size ? size : 1);
	bt_toml *t = NULL;
	bt_err e = { 0 };

	memcpy(text, data, size);
	if (bt_toml_parse(text, size, &t, &e) == 0) {
		check(t && bt_toml_kind(t) == BT_TOML_TABLE);
		size_t seen = walk(t, 0);
		/* every value costs at least one byte of input */
		check(seen <= size + 1);
		/* the convenience readers fall back to the default on anything odd */
		(void)bt_toml_path_str(t, "a.b", NULL);
		(void)bt_toml_path_int(t, "\"a\".b", 0);
		(void)bt_toml_path_bool(t, "a.\"b.c\"", false);
		bt_toml_free(&t);
		check(t == NULL);
	} else {
		check(t == NULL);
		check(e.code == BT_INVALID_ARGUMENT || (e.code == BT_RESOURCE_EXHAUSTED && size > BT_TOML_MAX_SIZE));
		check(e.code != BT_INVALID_ARGUMENT || bt_startswith(e.msg, "line "));
		check(e.msg[0] != '\0');
		for (const char *c = e.msg; *c; c++)
			check(*c >= 0x20 && *c < 0x7f);
	}
	free(text);
	return 0;
}
