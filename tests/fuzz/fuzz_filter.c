/*
 * fuzz_filter — libFuzzer harness for bt_filter.
 *
 * The input is split on '\n' into filter strings (a NUL inside a line ends
 * that string early, as it would for a C caller), compiled, and matched
 * against a small fixed object.  A parse must either succeed or fail with
 * BT_INVALID_ARGUMENT and a printable, non-empty message; it must never
 * crash, leak, or hang.
 *
 * Build: clang -std=gnu11 -g -fsanitize=fuzzer,address,undefined -Icommon \
 *	common/bt_filter.c common/bt_util.c common/bt_err.c \
 *	tests/fuzz/fuzz_filter.c -o fuzz_filter
 * Run:   ./fuzz_filter -max_len=9000 tests/fuzz/corpus/filter
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bt_filter.h"
#include "bt_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const labels[][2] = {
	{ "env", "prod" },
	{ "a.b/c", "x,y" },
	{ "empty", "" },
	{ "quote", "say \"hi\"" },
};

/* Adaptor over a fixed object: name, kind, target.digest and labels.<key>. */
static const char *get(void *obj, const char *const *path, size_t n)
{
	(void)obj;
	if (n == 0)
		abort();	/* the parser must never produce an empty path */
	if (n == 1 && strcmp(path[0], "name") == 0)
		return "docker.io/library/busybox:latest";
	if (n == 1 && strcmp(path[0], "kind") == 0)
		return "";
	if (n == 2 && strcmp(path[0], "target") == 0 && strcmp(path[1], "digest") == 0)
		return "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	if (n == 2 && strcmp(path[0], "labels") == 0) {
		for (size_t i = 0; i < BT_ARRAY_LEN(labels); i++)
			if (strcmp(labels[i][0], path[1]) == 0)
				return labels[i][1];
	}
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *strs[BT_FILTER_MAX_FILTERS + 2];
	size_t n = 0, start = 0;
	bt_filter *f = NULL;
	bt_err e = { 0 };

	/* one string per line; a few too many lines exercise the count bound */
	for (size_t i = 0; i <= size && n < BT_ARRAY_LEN(strs); i++) {
		if (i == size || data[i] == '\n') {
			strs[n++] = bt_xstrndup((const char *)data + start, i - start);
			start = i + 1;
		}
	}

	if (bt_filter_parse((const char *const *)strs, n, &f, &e) == 0) {
		if (!f)
			abort();
		/* the result must not depend on anything but the object */
		if (bt_filter_match(f, get, NULL) != bt_filter_match(f, get, NULL))
			abort();
		bt_filter_free(&f);
		if (f)
			abort();
	} else {
		if (f || e.code != BT_INVALID_ARGUMENT || !e.msg[0])
			abort();
		for (const char *c = e.msg; *c; c++)
			if (*c < 0x20 || *c >= 0x7f)
				abort();
	}
	for (size_t i = 0; i < n; i++)
		free(strs[i]);
	return 0;
}
