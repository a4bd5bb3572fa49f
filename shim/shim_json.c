/*
 * shim_json — the little JSON berth-shim must read without a JSON library
 * (the shim links libc and protobuf-c only): a syntax check of process
 * specs and resources from the client, the message of a runtime's JSON log,
 * and the pid array of `ps --format json`.
 */
#define _GNU_SOURCE
#include "shim.h"

#include <ctype.h>
#include <string.h>

#include "bt_util.h"

#define JSON_DEPTH 64

typedef struct jp {
	const char *p, *end;
	const char *err;
} jp;

static void ws(jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int fail(jp *j, const char *why)
{
	if (j->err == NULL)
		j->err = why;
	return -1;
}

static int jstring(jp *j)
{
	j->p++; /* opening quote */
	while (j->p < j->end) {
		unsigned char c = (unsigned char)*j->p++;
		if (c == '"')
			return 0;
		if (c < 0x20)
			return fail(j, "control character in string");
		if (c == '\\') {
			if (j->p >= j->end)
				break;
			char x = *j->p++;
			if (x == 'u') {
				for (int i = 0; i < 4; i++, j->p++)
					if (j->p >= j->end || !isxdigit((unsigned char)*j->p))
						return fail(j, "bad \\u escape");
			} else if (!strchr("\"\\/bfnrt", x)) {
				return fail(j, "bad escape");
			}
		}
	}
	return fail(j, "unterminated string");
}

static int jnumber(jp *j)
{
	const char *s = j->p;
	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p >= j->end || !isdigit((unsigned char)*j->p))
		return fail(j, "bad number");
	if (*j->p == '0')
		j->p++;
	else
		while (j->p < j->end && isdigit((unsigned char)*j->p))
			j->p++;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (j->p >= j->end || !isdigit((unsigned char)*j->p))
			return fail(j, "bad number");
		while (j->p < j->end && isdigit((unsigned char)*j->p))
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (j->p >= j->end || !isdigit((unsigned char)*j->p))
			return fail(j, "bad number");
		while (j->p < j->end && isdigit((unsigned char)*j->p))
			j->p++;
	}
	return j->p > s ? 0 : -1;
}

static int jvalue(jp *j, int depth);

static int jcontainer(jp *j, int depth, char close)
{
	if (depth >= JSON_DEPTH)
		return fail(j, "nested too deeply");
	j->p++;
	ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return 0;
	}
	for (;;) {
		ws(j);
		if (close == '}') {
			if (j->p >= j->end || *j->p != '"')
				return fail(j, "expected a member name");
			if (jstring(j) < 0)
				return -1;
			ws(j);
			if (j->p >= j->end || *j->p != ':')
				return fail(j, "expected ':'");
			j->p++;
		}
		if (jvalue(j, depth + 1) < 0)
			return -1;
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return 0;
		}
		return fail(j, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static int jvalue(jp *j, int depth)
{
	ws(j);
	if (j->p >= j->end)
		return fail(j, "unexpected end");
	switch (*j->p) {
	case '{': return jcontainer(j, depth, '}');
	case '[': return jcontainer(j, depth, ']');
	case '"': return jstring(j);
	case 't':
	case 'f':
	case 'n': {
		static const char *const words[] = { "true", "false", "null" };
		for (size_t i = 0; i < BT_ARRAY_LEN(words); i++) {
			size_t n = strlen(words[i]);
			if ((size_t)(j->end - j->p) >= n && memcmp(j->p, words[i], n) == 0) {
				j->p += n;
				return 0;
			}
		}
		return fail(j, "unexpected word");
	}
	default: return jnumber(j) < 0 ? fail(j, "unexpected character") : 0;
	}
}

int shim_json_check_object(const char *s, size_t len, const char *what, bt_err *e)
{
	jp j = { .p = s, .end = s + len };
	ws(&j);
	if (j.p >= j.end || *j.p != '{')
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: not a JSON object", what);
	if (jvalue(&j, 0) == 0) {
		ws(&j);
		if (j.p == j.end)
			return 0;
		fail(&j, "trailing data");
	}
	return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: invalid JSON at byte %td: %s", what, j.p - s,
			  j.err ? j.err : "syntax error");
}

/* Decodes the JSON string starting after `"msg":"` at p (up to the line end). */
static char *decode_str(const char *p, const char *end)
{
	bt_buf b = { 0 };
	while (p < end && *p != '"') {
		if (*p == '\\' && p + 1 < end) {
			p++;
			char c = *p++;
			if (c == 'n')
				bt_buf_append(&b, "\n", 1);
			else if (c == 't')
				bt_buf_append(&b, "\t", 1);
			else if (c == 'u') {
				p += (end - p >= 4) ? 4 : end - p;
				bt_buf_append(&b, "?", 1);
			} else
				bt_buf_append(&b, &c, 1);
			continue;
		}
		bt_buf_append(&b, p, 1);
		p++;
	}
	if (b.data == NULL)
		bt_buf_append(&b, "", 0);
	return bt_buf_steal(&b);
}

char *shim_json_log_msg(const char *log)
{
	const char *best = NULL, *best_end = NULL;
	bool best_err = false;
	for (const char *line = log; line && *line;) {
		const char *nl = strchr(line, '\n');
		const char *end = nl ? nl : line + strlen(line);
		const char *m = memmem(line, (size_t)(end - line), "\"msg\":\"", 7);
		if (m) {
			bool is_err = memmem(line, (size_t)(end - line), "\"level\":\"error\"", 15) != NULL;
			if (is_err || !best_err) {
				best = m + 7;
				best_end = end;
				best_err = is_err;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	return best ? decode_str(best, best_end) : NULL;
}

int shim_json_pids(const char *s, int **pids)
{
	*pids = NULL;
	const char *p = s;
	while (*p && isspace((unsigned char)*p))
		p++;
	if (*p++ != '[')
		return -1;
	int n = 0, cap = 0;
	int *v = NULL;
	for (;;) {
		while (*p && isspace((unsigned char)*p))
			p++;
		if (*p == ']')
			break;
		if (!isdigit((unsigned char)*p))
			goto bad;
		long x = 0;
		while (isdigit((unsigned char)*p) && x < 1L << 31)
			x = x * 10 + (*p++ - '0');
		if (x <= 0 || x >= 1L << 31)
			goto bad;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			v = bt_xrealloc(v, (size_t)cap * sizeof(*v));
		}
		v[n++] = (int)x;
		while (*p && isspace((unsigned char)*p))
			p++;
		if (*p == ',')
			p++;
		else if (*p != ']')
			goto bad;
	}
	*pids = v;
	return n;
bad:
	free(v);
	return -1;
}
