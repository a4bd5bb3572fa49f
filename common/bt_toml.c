/*
 * bt_toml — a TOML 1.0 reader: a recursive-descent parser over a bounded
 * byte range that builds a tree of bt_toml values, and the accessors over
 * that tree.
 *
 * Tables keep their keys in file order (an array of entries) and, once they
 * grow past a few keys, a hash index with a per-document random seed so that
 * crafted keys cannot make lookups quadratic.  Every table remembers how it
 * came to exist (a [header], a path to a header, dotted keys, an inline
 * table), which is what TOML's rules on redefinition are about.  Depth is
 * checked before every descent, so recursion is bounded; the cursor only
 * moves forward, so parsing ends.
 */
#include "bt_toml.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bt_util.h"

/* How a table came to exist. */
enum {
	T_IMPLICIT = 1 << 0, /* named on the way to a [header]: may be defined once later */
	T_EXPLICIT = 1 << 1, /* defined by a [header] or [[header]] (or the root) */
	T_DOTTED = 1 << 2,   /* defined by dotted keys: no [header] may define it again */
	T_INLINE = 1 << 3,   /* an inline table: complete once written */
	A_TABLES = 1 << 4,   /* an array made by [[header]]s (the others are complete values) */
};

/* Below this many keys a table is searched linearly. */
#define TAB_LINEAR 8

typedef struct container {
	bt_toml **vals;
	char **keys;   /* tables only: keys[i] names vals[i] */
	uint32_t *idx; /* tables only, once past TAB_LINEAR: open addressing, entry index + 1, 0 empty */
	size_t len, cap, icap;
	uint64_t seed;
} container;

struct bt_toml {
	uint8_t type;
	uint8_t flags;
	uint16_t depth; /* levels below the root */
	union {
		container *c; /* table or array */
		char *s;      /* string or date-time text */
		int64_t i;
		double f;
		bool b;
	} u;
};

typedef struct parser {
	const char *start, *p, *end;
	bt_toml *cur; /* the table the latest [header] opened */
	uint64_t seed;
	bt_err *e;
} parser;

/* A key path as written: decoded segments and where each began (for errors). */
typedef struct keypath {
	char *seg[BT_TOML_MAX_DEPTH];
	const char *pos[BT_TOML_MAX_DEPTH];
	size_t n;
} keypath;

/* ---- the tree ---------------------------------------------------------- */

static bt_toml *node_new(int type, unsigned depth)
{
	bt_toml *v = bt_xzalloc(sizeof(*v));

	v->type = (uint8_t)type;
	v->depth = (uint16_t)depth;
	if (type == BT_TOML_TABLE || type == BT_TOML_ARRAY)
		v->u.c = bt_xzalloc(sizeof(*v->u.c));
	return v;
}

static void node_free(bt_toml *v)
{
	if (!v)
		return;
	if (v->type == BT_TOML_TABLE || v->type == BT_TOML_ARRAY) {
		container *c = v->u.c;
		for (size_t i = 0; i < c->len; i++) {
			node_free(c->vals[i]);
			if (c->keys)
				free(c->keys[i]);
		}
		free(c->vals);
		free(c->keys);
		free(c->idx);
		free(c);
	} else if (v->type == BT_TOML_STRING || v->type == BT_TOML_DATETIME) {
		free(v->u.s);
	}
	free(v);
}

static uint64_t key_hash(uint64_t seed, const char *k, size_t n)
{
	uint64_t h = seed ^ 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)k[i];
		h *= 0x100000001b3ULL;
	}
	/* spread every input bit over the low bits the index uses */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static bool key_eq(const char *key, const char *k, size_t n)
{
	return strncmp(key, k, n) == 0 && key[n] == '\0';
}

static void index_put(container *c, size_t i)
{
	size_t mask = c->icap - 1;
	size_t slot = key_hash(c->seed, c->keys[i], strlen(c->keys[i])) & mask;

	while (c->idx[slot])
		slot = (slot + 1) & mask;
	c->idx[slot] = (uint32_t)(i + 1);
}

static void index_rebuild(container *c, size_t icap)
{
	free(c->idx);
	c->icap = icap;
	c->idx = bt_xcalloc(icap, sizeof(*c->idx));
	for (size_t i = 0; i < c->len; i++)
		index_put(c, i);
}

/* The entry index of key k (n bytes) in a table's container, or -1. */
static ssize_t tab_find(const container *c, const char *k, size_t n)
{
	if (!c->idx) {
		for (size_t i = 0; i < c->len; i++)
			if (key_eq(c->keys[i], k, n))
				return (ssize_t)i;
		return -1;
	}
	size_t mask = c->icap - 1;
	for (size_t slot = key_hash(c->seed, k, n) & mask; c->idx[slot]; slot = (slot + 1) & mask) {
		size_t i = c->idx[slot] - 1;
		if (key_eq(c->keys[i], k, n))
			return (ssize_t)i;
	}
	return -1;
}

static bt_toml *tab_get(const bt_toml *t, const char *key)
{
	ssize_t i = tab_find(t->u.c, key, strlen(key));
	return i < 0 ? NULL : t->u.c->vals[i];
}

static void grow(container *c, bool keys)
{
	if (c->len < c->cap)
		return;
	c->cap = c->cap ? c->cap * 2 : 4;
	c->vals = bt_xrealloc(c->vals, c->cap * sizeof(*c->vals));
	if (keys)
		c->keys = bt_xrealloc(c->keys, c->cap * sizeof(*c->keys));
}

/* Adds key (taken over) → val (taken over) to a table that does not hold key yet. */
static void tab_add(bt_toml *t, char *key, bt_toml *val)
{
	container *c = t->u.c;

	grow(c, true);
	c->keys[c->len] = key;
	c->vals[c->len] = val;
	c->len++;
	if (c->idx && c->len * 2 > c->icap)
		index_rebuild(c, c->icap * 2);
	else if (c->idx)
		index_put(c, c->len - 1);
	else if (c->len > TAB_LINEAR)
		index_rebuild(c, 4 * TAB_LINEAR);
}

static void arr_add(bt_toml *a, bt_toml *val)
{
	container *c = a->u.c;

	grow(c, false);
	c->vals[c->len++] = val;
}

/* ---- errors ------------------------------------------------------------ */

/* Fails with "line L, column C: what" for a position in the document (columns count characters). */
static int __attribute__((format(printf, 3, 4))) perr(parser *ps, const char *at, const char *fmt, ...)
{
	char what[512];
	unsigned long line = 1, col = 1;
	va_list ap;

	for (const char *q = ps->start; q < at && q < ps->end; q++) {
		if (*q == '\n') {
			line++;
			col = 1;
		} else if (((unsigned char)*q & 0xc0) != 0x80) {
			col++;
		}
	}
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return bt_err_set(ps->e, BT_INVALID_ARGUMENT, "line %lu, column %lu: %s", line, col, what);
}

/* A printable rendering of s (at most about 60 characters) for messages. */
static const char *show(const char *s, char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	assert(size >= 8);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (o + 8 > size || o > 60) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	buf[o] = '\0';
	return buf;
}

/* The character at q, printable, for "found ..." in messages. */
static const char *show_char(const parser *ps, const char *q, char buf[8])
{
	unsigned char c;

	if (q >= ps->end)
		return "end of document";
	c = (unsigned char)*q;
	if (c == '\n' || c == '\r')
		return "end of line";
	if (c >= 0x20 && c < 0x7f && c != '\'') {
		buf[0] = '\'';
		buf[1] = (char)c;
		buf[2] = '\'';
		buf[3] = '\0';
	} else {
		snprintf(buf, 8, "0x%02x", c);
	}
	return buf;
}

/* ---- lexical helpers ---------------------------------------------------- */

static int peek(const parser *ps)
{
	return ps->p < ps->end ? (unsigned char)*ps->p : -1;
}

static bool looking_at(const parser *ps, const char *s)
{
	size_t n = strlen(s);
	return (size_t)(ps->end - ps->p) >= n && memcmp(ps->p, s, n) == 0;
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool is_bare(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '-';
}

/* Control characters TOML allows nowhere except as tab or a newline. */
static bool is_control(int c)
{
	return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f;
}

static void skip_ws(parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t'))
		ps->p++;
}

/* Consumes a comment if one starts here. */
static int skip_comment(parser *ps)
{
	if (peek(ps) != '#')
		return 0;
	for (ps->p++; ps->p < ps->end && *ps->p != '\n'; ps->p++) {
		int c = (unsigned char)*ps->p;
		if (c == '\r' && ps->p + 1 < ps->end && ps->p[1] == '\n')
			continue;
		if (is_control(c))
			return perr(ps, ps->p, "control character 0x%02x in comment", c);
	}
	return 0;
}

/* Consumes one newline (LF or CRLF): 1 if there was one, 0 if not, -1 on a lone CR. */
static int eat_newline(parser *ps)
{
	if (peek(ps) == '\n') {
		ps->p++;
		return 1;
	}
	if (peek(ps) == '\r') {
		if (ps->p + 1 < ps->end && ps->p[1] == '\n') {
			ps->p += 2;
			return 1;
		}
		return perr(ps, ps->p, "carriage return not followed by a newline");
	}
	return 0;
}

/* Whitespace, newlines and comments, as allowed between array elements. */
static int skip_blank(parser *ps)
{
	for (;;) {
		skip_ws(ps);
		if (skip_comment(ps) < 0)
			return -1;
		int r = eat_newline(ps);
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
	}
}

/* After a key/value pair or a header: optional whitespace and comment, then a newline or the end. */
static int end_of_line(parser *ps, const char *after)
{
	char b[8];

	skip_ws(ps);
	if (skip_comment(ps) < 0)
		return -1;
	if (ps->p == ps->end)
		return 0;
	int r = eat_newline(ps);
	if (r < 0)
		return -1;
	if (r == 0)
		return perr(ps, ps->p, "expected a newline after %s, found %s", after, show_char(ps, ps->p, b));
	return 0;
}

/* ---- strings ----------------------------------------------------------- */

static void put_utf8(bt_buf *b, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	bt_buf_append(b, u, n);
}

/* \uXXXX or \UXXXXXXXX with ps->p on the 'u' or 'U'. */
static int unicode_escape(parser *ps, bt_buf *b)
{
	const char *esc = ps->p - 1;
	size_t n = *ps->p == 'u' ? 4 : 8;
	uint32_t cp = 0;

	ps->p++;
	for (size_t i = 0; i < n; i++, ps->p++) {
		int c = peek(ps);
		int d;
		if (is_digit(c))
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return perr(ps, esc, "invalid unicode escape: expected %zu hex digits", n);
		cp = cp << 4 | (uint32_t)d;
	}
	if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return perr(ps, esc, "invalid unicode escape: U+%04X is not a Unicode scalar value", (unsigned)cp);
	if (cp == 0)
		return perr(ps, esc, "invalid unicode escape: NUL is not supported");
	put_utf8(b, cp);
	return 0;
}

/* One escape of a basic string, ps->p on the backslash; multi-line strings also trim at a
 * line-ending backslash. */
static int escape(parser *ps, bt_buf *b, bool ml)
{
	const char *esc = ps->p;
	char c;
	char sb[8];

	ps->p++;
	if (ps->p == ps->end)
		return perr(ps, esc, "unterminated escape");
	switch (*ps->p) {
	case 'b':
		c = '\b';
		break;
	case 't':
		c = '\t';
		break;
	case 'n':
		c = '\n';
		break;
	case 'f':
		c = '\f';
		break;
	case 'r':
		c = '\r';
		break;
	case '"':
		c = '"';
		break;
	case '\\':
		c = '\\';
		break;
	case 'u':
	case 'U':
		return unicode_escape(ps, b);
	default:
		if (ml && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) {
			/* line-ending backslash: only whitespace may sit between it and the newline */
			skip_ws(ps);
			int r = eat_newline(ps);
			if (r < 0)
				return -1;
			if (r == 0)
				return perr(ps, esc, "invalid escape: backslash followed by whitespace but no newline");
			for (;;) {
				skip_ws(ps);
				r = eat_newline(ps);
				if (r < 0)
					return -1;
				if (r == 0)
					return 0;
			}
		}
		return perr(ps, esc, "invalid escape '\\' followed by %s", show_char(ps, ps->p, sb));
	}
	ps->p++;
	bt_buf_append(b, &c, 1);
	return 0;
}

/* Any string: basic or literal, single- or multi-line (unless it is a key). */
static int parse_string(parser *ps, bool is_key, char **out)
{
	const char *open = ps->p;
	char q = *ps->p;
	bool ml = q == '"' ? looking_at(ps, "\"\"\"") : looking_at(ps, "'''");
	bt_buf b = { 0 };

	if (ml && is_key)
		return perr(ps, open, "a multi-line string cannot be a key");
	bt_buf_append(&b, "", 0);
	ps->p += ml ? 3 : 1;
	if (ml) {
		/* a newline right after the opening delimiter is not part of the string */
		if (eat_newline(ps) < 0)
			goto fail;
	}
	for (;;) {
		if (ps->p == ps->end) {
			perr(ps, open, "unterminated string");
			goto fail;
		}
		int c = (unsigned char)*ps->p;
		if (c == q) {
			size_t n = 1;
			if (!ml) {
				ps->p++;
				break;
			}
			while (ps->p + n < ps->end && ps->p[n] == q && n < 6)
				n++;
			if (n >= 3) {
				/* one or two quotes may sit right before the closing three */
				if (n > 5) {
					perr(ps, ps->p, "too many quotes in a row in a multi-line string");
					goto fail;
				}
				bt_buf_append(&b, ps->p, n - 3);
				ps->p += n;
				break;
			}
			bt_buf_append(&b, ps->p, n);
			ps->p += n;
		} else if (c == '\\' && q == '"') {
			if (escape(ps, &b, ml) < 0)
				goto fail;
		} else if (c == '\n' || c == '\r') {
			if (!ml) {
				perr(ps, open, "unterminated string (newline before the closing quote)");
				goto fail;
			}
			if (eat_newline(ps) < 0)
				goto fail;
			bt_buf_append(&b, "\n", 1);
		} else if (is_control(c)) {
			perr(ps, ps->p, "control character 0x%02x in string", c);
			goto fail;
		} else {
			const char *s = ps->p++;
			/* copy a run of ordinary bytes at once */
			while (ps->p < ps->end && *ps->p != q && !(q == '"' && *ps->p == '\\') &&
			       !is_control((unsigned char)*ps->p))
				ps->p++;
			bt_buf_append(&b, s, (size_t)(ps->p - s));
		}
	}
	*out = bt_buf_steal(&b);
	return 0;
fail:
	bt_buf_free(&b);
	return -1;
}

/* ---- keys -------------------------------------------------------------- */

static void keypath_clear(keypath *kp)
{
	for (size_t i = 0; i < kp->n; i++)
		free(kp->seg[i]);
	kp->n = 0;
}

static int parse_simple_key(parser *ps, char **out)
{
	int c = peek(ps);
	char b[8];

	if (c == '"' || c == '\'')
		return parse_string(ps, true, out);
	if (!is_bare(c))
		return perr(ps, ps->p, "expected a key, found %s", show_char(ps, ps->p, b));
	const char *s = ps->p;
	while (is_bare(peek(ps)))
		ps->p++;
	*out = bt_xstrndup(s, (size_t)(ps->p - s));
	return 0;
}

/* key ( ws '.' ws key )*; leaves the cursor after the last key. */
static int parse_key_path(parser *ps, keypath *kp)
{
	kp->n = 0;
	for (;;) {
		if (kp->n == BT_TOML_MAX_DEPTH)
			return perr(ps, ps->p, "key has more than %d parts", BT_TOML_MAX_DEPTH);
		kp->pos[kp->n] = ps->p;
		if (parse_simple_key(ps, &kp->seg[kp->n]) < 0)
			return -1;
		kp->n++;
		const char *save = ps->p;
		skip_ws(ps);
		if (peek(ps) != '.') {
			ps->p = save;
			return 0;
		}
		ps->p++;
		skip_ws(ps);
	}
}

/* ---- scalars: numbers and date-times ---------------------------------- */

static bool digits_at(const parser *ps, const char *q, size_t n)
{
	if ((size_t)(ps->end - q) < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_digit((unsigned char)q[i]))
			return false;
	return true;
}

static int num2(const char *q)
{
	return (q[0] - '0') * 10 + (q[1] - '0');
}

static bool char_at(const parser *ps, const char *q, char c)
{
	return q < ps->end && *q == c;
}

/* HH:MM:SS[.frac] at *q; advances *q. */
static bool scan_time(const parser *ps, const char **q)
{
	const char *t = *q;

	if (!digits_at(ps, t, 2) || !char_at(ps, t + 2, ':') || !digits_at(ps, t + 3, 2) ||
	    !char_at(ps, t + 5, ':') || !digits_at(ps, t + 6, 2))
		return false;
	if (num2(t) > 23 || num2(t + 3) > 59 || num2(t + 6) > 60)
		return false;
	t += 8;
	if (char_at(ps, t, '.')) {
		t++;
		if (!digits_at(ps, t, 1))
			return false;
		while (digits_at(ps, t, 1))
			t++;
	}
	*q = t;
	return true;
}

static int days_in_month(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

/* Offset date-time, local date-time, local date (ps->p on YYYY-) or local time (on HH:). */
static int parse_datetime(parser *ps, bt_toml **out)
{
	const char *s = ps->p, *q = s;

	if (digits_at(ps, q, 4) && char_at(ps, q + 4, '-')) {
		if (!digits_at(ps, q + 5, 2) || !char_at(ps, q + 7, '-') || !digits_at(ps, q + 8, 2))
			return perr(ps, s, "invalid date: expected YYYY-MM-DD");
		int y = num2(q) * 100 + num2(q + 2), m = num2(q + 5), d = num2(q + 8);
		if (m < 1 || m > 12)
			return perr(ps, s, "invalid date: month out of range");
		if (d < 1 || d > days_in_month(y, m))
			return perr(ps, s, "invalid date: day out of range");
		q += 10;
		/* a space separates date and time only when a time follows */
		if (char_at(ps, q, 'T') || char_at(ps, q, 't') ||
		    (char_at(ps, q, ' ') && digits_at(ps, q + 1, 2) && char_at(ps, q + 3, ':'))) {
			q++;
			if (!scan_time(ps, &q))
				return perr(ps, s, "invalid date-time: expected a valid HH:MM:SS after the date");
			if (char_at(ps, q, 'Z') || char_at(ps, q, 'z')) {
				q++;
			} else if (char_at(ps, q, '+') || char_at(ps, q, '-')) {
				if (!digits_at(ps, q + 1, 2) || !char_at(ps, q + 3, ':') || !digits_at(ps, q + 4, 2) ||
				    num2(q + 1) > 23 || num2(q + 4) > 59)
					return perr(ps, s, "invalid date-time: bad offset, expected +HH:MM");
				q += 6;
			}
		}
	} else if (!scan_time(ps, &q)) {
		return perr(ps, s, "invalid time: expected a valid HH:MM:SS");
	}
	bt_toml *v = node_new(BT_TOML_DATETIME, 0);
	v->u.s = bt_xstrndup(s, (size_t)(q - s));
	ps->p = q;
	*out = v;
	return 0;
}

static int digit_value(int c, int radix)
{
	int d;

	if (is_digit(c))
		d = c - '0';
	else if (c >= 'a' && c <= 'f')
		d = c - 'a' + 10;
	else if (c >= 'A' && c <= 'F')
		d = c - 'A' + 10;
	else
		return -1;
	return d < radix ? d : -1;
}

/* Digits of radix with single underscores between them; advances *q. */
static int scan_digits(parser *ps, const char **q, int radix)
{
	const char *t = *q;

	if (t >= ps->end || digit_value((unsigned char)*t, radix) < 0)
		return perr(ps, t, "expected a digit");
	while (t < ps->end) {
		if (*t == '_') {
			if (t + 1 >= ps->end || digit_value((unsigned char)t[1], radix) < 0)
				return perr(ps, t, "an underscore in a number must sit between two digits");
			t++;
		} else if (digit_value((unsigned char)*t, radix) < 0) {
			break;
		}
		t++;
	}
	*q = t;
	return 0;
}

/* Integers (decimal with sign, 0x, 0o, 0b) and floats, ps->p on the first character. */
static int parse_number(parser *ps, bt_toml **out)
{
	const char *s = ps->p, *q = s;
	bool neg = false, is_float = false;
	int radix = 10;

	if (*q == '+' || *q == '-') {
		neg = *q == '-';
		q++;
	}
	if ((size_t)(ps->end - q) >= 3 && (memcmp(q, "inf", 3) == 0 || memcmp(q, "nan", 3) == 0)) {
		bt_toml *v = node_new(BT_TOML_FLOAT, 0);
		v->u.f = q[0] == 'i' ? INFINITY : NAN;
		if (neg)
			v->u.f = -v->u.f;
		ps->p = q + 3;
		*out = v;
		return 0;
	}
	if (char_at(ps, q, '0') && q + 1 < ps->end && (q[1] == 'x' || q[1] == 'o' || q[1] == 'b')) {
		if (q != s)
			return perr(ps, s, "a hexadecimal, octal or binary integer cannot have a sign");
		radix = q[1] == 'x' ? 16 : q[1] == 'o' ? 8 : 2;
		q += 2;
		if (scan_digits(ps, &q, radix) < 0)
			return -1;
	} else {
		const char *d = q;
		if (scan_digits(ps, &q, 10) < 0)
			return -1;
		if (*d == '0' && q - d > 1)
			return perr(ps, s, "leading zeros are not allowed");
		if (char_at(ps, q, '.')) {
			q++;
			if (scan_digits(ps, &q, 10) < 0)
				return -1;
			is_float = true;
		}
		if (char_at(ps, q, 'e') || char_at(ps, q, 'E')) {
			q++;
			if (char_at(ps, q, '+') || char_at(ps, q, '-'))
				q++;
			if (scan_digits(ps, &q, 10) < 0)
				return -1;
			is_float = true;
		}
	}
	if (q - s > BT_TOML_MAX_NUMBER)
		return perr(ps, s, "number longer than %d characters", BT_TOML_MAX_NUMBER);

	bt_toml *v;
	if (is_float) {
		char buf[BT_TOML_MAX_NUMBER + 1];
		size_t n = 0;
		for (const char *t = s; t < q; t++)
			if (*t != '_')
				buf[n++] = *t;
		buf[n] = '\0';
		errno = 0;
		double f = strtod(buf, NULL);
		if (errno == ERANGE && isinf(f))
			return perr(ps, s, "float out of range");
		v = node_new(BT_TOML_FLOAT, 0);
		v->u.f = f;
	} else {
		uint64_t mag = 0;
		uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
		const char *t = radix == 10 ? s : s + 2;
		if (*t == '+' || *t == '-')
			t++;
		for (; t < q; t++) {
			if (*t == '_')
				continue;
			uint64_t d = (uint64_t)digit_value((unsigned char)*t, radix);
			if (mag > (limit - d) / (uint64_t)radix)
				return perr(ps, s, "integer out of range");
			mag = mag * (uint64_t)radix + d;
		}
		v = node_new(BT_TOML_INT, 0);
		/* -2^63 has no positive counterpart: negate in unsigned arithmetic */
		v->u.i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
	}
	ps->p = q;
	*out = v;
	return 0;
}

/* ---- values ------------------------------------------------------------ */

static int parse_value(parser *ps, unsigned depth, bt_toml **out);
static int parse_keyval(parser *ps, bt_toml *table);

static int parse_array(parser *ps, unsigned depth, bt_toml **out)
{
	const char *open = ps->p;
	bt_toml *a = node_new(BT_TOML_ARRAY, depth);
	char b[8];

	ps->p++;
	for (;;) {
		if (skip_blank(ps) < 0)
			goto fail;
		if (ps->p == ps->end) {
			perr(ps, open, "unterminated array");
			goto fail;
		}
		if (peek(ps) == ']')
			break;
		bt_toml *v;
		if (parse_value(ps, depth + 1, &v) < 0)
			goto fail;
		arr_add(a, v);
		if (skip_blank(ps) < 0)
			goto fail;
		if (peek(ps) == ',') {
			ps->p++;
			continue;
		}
		if (peek(ps) == ']')
			break;
		if (ps->p == ps->end)
			perr(ps, open, "unterminated array");
		else
			perr(ps, ps->p, "expected ',' or ']' in array, found %s", show_char(ps, ps->p, b));
		goto fail;
	}
	ps->p++;
	*out = a;
	return 0;
fail:
	node_free(a);
	return -1;
}

static int parse_inline_table(parser *ps, unsigned depth, bt_toml **out)
{
	const char *open = ps->p;
	bt_toml *t = node_new(BT_TOML_TABLE, depth);
	char b[8];

	t->u.c->seed = ps->seed;
	ps->p++;
	skip_ws(ps);
	if (peek(ps) != '}') {
		for (;;) {
			skip_ws(ps);
			if (peek(ps) == '\n' || peek(ps) == '\r' || peek(ps) == '#') {
				perr(ps, ps->p, "an inline table must be on one line");
				goto fail;
			}
			if (peek(ps) == '}') {
				perr(ps, ps->p, "trailing comma in inline table");
				goto fail;
			}
			if (parse_keyval(ps, t) < 0)
				goto fail;
			skip_ws(ps);
			if (peek(ps) == ',') {
				ps->p++;
				continue;
			}
			if (peek(ps) == '}')
				break;
			if (ps->p == ps->end)
				perr(ps, open, "unterminated inline table");
			else if (peek(ps) == '\n' || peek(ps) == '\r' || peek(ps) == '#')
				perr(ps, ps->p, "an inline table must be on one line");
			else
				perr(ps, ps->p, "expected ',' or '}' in inline table, found %s",
				     show_char(ps, ps->p, b));
			goto fail;
		}
	}
	ps->p++;
	t->flags |= T_INLINE;
	*out = t;
	return 0;
fail:
	node_free(t);
	return -1;
}

/* A value of any type; depth is the level it will sit at. */
static int parse_value(parser *ps, unsigned depth, bt_toml **out)
{
	int c = peek(ps);
	char b[8];

	if (depth > BT_TOML_MAX_DEPTH)
		return perr(ps, ps->p, "nesting deeper than %d levels", BT_TOML_MAX_DEPTH);
	if (c == '"' || c == '\'') {
		char *s;
		if (parse_string(ps, false, &s) < 0)
			return -1;
		*out = node_new(BT_TOML_STRING, depth);
		(*out)->u.s = s;
		return 0;
	}
	if (c == '[')
		return parse_array(ps, depth, out);
	if (c == '{')
		return parse_inline_table(ps, depth, out);
	if (looking_at(ps, "true") || looking_at(ps, "false")) {
		*out = node_new(BT_TOML_BOOL, depth);
		(*out)->u.b = c == 't';
		ps->p += c == 't' ? 4 : 5;
		return 0;
	}
	int r;
	if ((digits_at(ps, ps->p, 4) && char_at(ps, ps->p + 4, '-')) ||
	    (digits_at(ps, ps->p, 2) && char_at(ps, ps->p + 2, ':')))
		r = parse_datetime(ps, out);
	else if (is_digit(c) || c == '+' || c == '-' || looking_at(ps, "inf") || looking_at(ps, "nan"))
		r = parse_number(ps, out);
	else
		return perr(ps, ps->p, "expected a value, found %s", show_char(ps, ps->p, b));
	if (r == 0)
		(*out)->depth = (uint16_t)depth;
	return r;
}

/* ---- tables ------------------------------------------------------------ */

static int add_table(parser *ps, bt_toml *parent, keypath *kp, size_t i, int flags, bt_toml **out)
{
	if (parent->depth + 1u > BT_TOML_MAX_DEPTH)
		return perr(ps, kp->pos[i], "nesting deeper than %d levels", BT_TOML_MAX_DEPTH);
	bt_toml *t = node_new(BT_TOML_TABLE, parent->depth + 1u);
	t->flags = (uint8_t)flags;
	t->u.c->seed = ps->seed;
	tab_add(parent, BT_STEAL(kp->seg[i]), t);
	*out = t;
	return 0;
}

/* key = value into table, creating the tables dotted keys name. */
static int parse_keyval(parser *ps, bt_toml *table)
{
	_cleanup_(keypath_clear) keypath kp = { .n = 0 };
	bt_toml *t = table, *v;
	char b[8], kb[80];

	if (parse_key_path(ps, &kp) < 0)
		return -1;
	skip_ws(ps);
	if (peek(ps) != '=')
		return perr(ps, ps->p, "expected '=' after a key, found %s", show_char(ps, ps->p, b));
	ps->p++;
	skip_ws(ps);
	for (size_t i = 0; i + 1 < kp.n; i++) {
		bt_toml *next = tab_get(t, kp.seg[i]);
		if (!next) {
			if (add_table(ps, t, &kp, i, T_DOTTED, &next) < 0)
				return -1;
		} else if (next->type != BT_TOML_TABLE || (next->flags & (T_EXPLICIT | T_INLINE))) {
			return perr(ps, kp.pos[i], "cannot add keys to '%s': it is already defined",
				    show(kp.seg[i], kb, sizeof(kb)));
		} else {
			next->flags = T_DOTTED;
		}
		t = next;
	}
	if (tab_get(t, kp.seg[kp.n - 1]))
		return perr(ps, kp.pos[kp.n - 1], "duplicate key '%s'", show(kp.seg[kp.n - 1], kb, sizeof(kb)));
	if (parse_value(ps, t->depth + 1u, &v) < 0)
		return -1;
	tab_add(t, BT_STEAL(kp.seg[kp.n - 1]), v);
	return 0;
}

/* [a.b.c] or [[a.b.c]], ps->p on the first '['. */
static int parse_header(parser *ps, bt_toml *root)
{
	_cleanup_(keypath_clear) keypath kp = { .n = 0 };
	const char *open = ps->p;
	bool aot = looking_at(ps, "[[");
	bt_toml *t = root, *v;
	char b[8], kb[80];

	ps->p += aot ? 2 : 1;
	skip_ws(ps);
	if (parse_key_path(ps, &kp) < 0)
		return -1;
	skip_ws(ps);
	if (!looking_at(ps, aot ? "]]" : "]"))
		return perr(ps, ps->p, "expected '%s' to close the table header, found %s", aot ? "]]" : "]",
			    show_char(ps, ps->p, b));
	ps->p += aot ? 2 : 1;

	for (size_t i = 0; i + 1 < kp.n; i++) {
		v = tab_get(t, kp.seg[i]);
		if (!v) {
			if (add_table(ps, t, &kp, i, T_IMPLICIT, &v) < 0)
				return -1;
		} else if (v->type == BT_TOML_ARRAY && (v->flags & A_TABLES)) {
			/* a path through an array of tables goes to its latest element */
			v = v->u.c->vals[v->u.c->len - 1];
		} else if (v->type != BT_TOML_TABLE) {
			return perr(ps, kp.pos[i], "'%s' is already defined as a value, not a table",
				    show(kp.seg[i], kb, sizeof(kb)));
		} else if (v->flags & T_INLINE) {
			return perr(ps, kp.pos[i], "'%s' is an inline table, which cannot be extended",
				    show(kp.seg[i], kb, sizeof(kb)));
		}
		t = v;
	}

	const char *last = kp.seg[kp.n - 1];
	v = tab_get(t, last);
	if (aot) {
		if (!v) {
			if (t->depth + 2u > BT_TOML_MAX_DEPTH)
				return perr(ps, open, "nesting deeper than %d levels", BT_TOML_MAX_DEPTH);
			v = node_new(BT_TOML_ARRAY, t->depth + 1u);
			v->flags = A_TABLES;
			tab_add(t, BT_STEAL(kp.seg[kp.n - 1]), v);
		} else if (v->type != BT_TOML_ARRAY || !(v->flags & A_TABLES)) {
			return perr(ps, kp.pos[kp.n - 1], "'%s' is already defined and is not an array of tables",
				    show(last, kb, sizeof(kb)));
		}
		bt_toml *elem = node_new(BT_TOML_TABLE, v->depth + 1u);
		elem->flags = T_EXPLICIT;
		elem->u.c->seed = ps->seed;
		arr_add(v, elem);
		ps->cur = elem;
		return end_of_line(ps, "the table header");
	}
	if (!v) {
		if (add_table(ps, t, &kp, kp.n - 1, T_EXPLICIT, &v) < 0)
			return -1;
	} else if (v->type == BT_TOML_TABLE && v->flags == T_IMPLICIT) {
		v->flags = T_EXPLICIT;
	} else {
		return perr(ps, kp.pos[kp.n - 1], "%s '%s' is already defined",
			    v->type == BT_TOML_TABLE ? "table" : "key", show(last, kb, sizeof(kb)));
	}
	ps->cur = v;
	return end_of_line(ps, "the table header");
}

/* ---- the document ------------------------------------------------------ */

/* The first byte of an invalid UTF-8 sequence in s, or NULL. */
static const char *bad_utf8(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		unsigned char c = u[i];
		size_t more;
		unsigned char lo = 0x80, hi = 0xbf;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			more = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			more = 2;
			if (c == 0xe0)
				lo = 0xa0; /* overlong */
			else if (c == 0xed)
				hi = 0x9f; /* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3;
			if (c == 0xf0)
				lo = 0x90; /* overlong */
			else if (c == 0xf4)
				hi = 0x8f; /* above U+10FFFF */
		} else {
			return s + i;
		}
		if (n - i <= more)
			return s + i;
		for (size_t k = 1; k <= more; k++) {
			unsigned char d = u[i + k];
			if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xbf))
				return s + i;
		}
		i += more + 1;
	}
	return NULL;
}

static int parse_document(parser *ps, bt_toml *root)
{
	const char *bad;

	if ((bad = memchr(ps->start, '\0', (size_t)(ps->end - ps->start))))
		return perr(ps, bad, "NUL byte in document");
	if ((bad = bad_utf8(ps->start, (size_t)(ps->end - ps->start))))
		return perr(ps, bad, "invalid UTF-8");
	if (looking_at(ps, "\xef\xbb\xbf"))
		ps->p += 3; /* a byte-order mark */
	ps->cur = root;
	for (;;) {
		skip_ws(ps);
		if (skip_comment(ps) < 0)
			return -1;
		if (ps->p == ps->end)
			return 0;
		int r = eat_newline(ps);
		if (r < 0)
			return -1;
		if (r > 0)
			continue;
		if (peek(ps) == '[') {
			if (parse_header(ps, root) < 0)
				return -1;
		} else {
			if (parse_keyval(ps, ps->cur) < 0 || end_of_line(ps, "the value") < 0)
				return -1;
		}
	}
}

int bt_toml_parse(const char *text, size_t len, bt_toml **out, bt_err *e)
{
	parser ps = { .e = e };
	bt_toml *root;

	if (!text && len)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "no document");
	if (len > BT_TOML_MAX_SIZE)
		return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "document larger than %d bytes", BT_TOML_MAX_SIZE);
	ps.start = ps.p = text ? text : "";
	ps.end = ps.start + len;
	bt_random_bytes(&ps.seed, sizeof(ps.seed));
	root = node_new(BT_TOML_TABLE, 0);
	root->flags = T_EXPLICIT;
	root->u.c->seed = ps.seed;
	if (parse_document(&ps, root) < 0) {
		node_free(root);
		return -1;
	}
	*out = root;
	return 0;
}

int bt_toml_parse_file(const char *path, bt_toml **out, bt_err *e)
{
	_cleanup_free_ char *text = NULL;
	size_t len;

	if (bt_read_file(path, BT_TOML_MAX_SIZE, &text, &len, e) < 0)
		return -1;
	return bt_toml_parse(text, len, out, e);
}

void bt_toml_free(bt_toml **v)
{
	if (!v)
		return;
	node_free(*v);
	*v = NULL;
}

/* ---- accessors --------------------------------------------------------- */

bt_toml_type bt_toml_kind(const bt_toml *v)
{
	assert(v);
	return (bt_toml_type)v->type;
}

const bt_toml *bt_toml_get(const bt_toml *table, const char *key)
{
	if (!table || !key || table->type != BT_TOML_TABLE)
		return NULL;
	return tab_get(table, key);
}

const bt_toml *bt_toml_path(const bt_toml *table, const char *path)
{
	const bt_toml *t = table;
	const char *p = path;

	if (!t || !p || !*p)
		return NULL;
	for (;;) {
		const char *k;
		size_t n;
		if (*p == '"') {
			const char *close = strchr(p + 1, '"');
			if (!close)
				return NULL;
			k = p + 1;
			n = (size_t)(close - k);
			p = close + 1;
			if (*p && *p != '.')
				return NULL;
		} else {
			k = p;
			n = strcspn(p, ".\"");
			p += n;
			if (n == 0 || *p == '"')
				return NULL;
		}
		if (t->type != BT_TOML_TABLE)
			return NULL;
		ssize_t i = tab_find(t->u.c, k, n);
		if (i < 0)
			return NULL;
		t = t->u.c->vals[i];
		if (!*p)
			return t;
		p++; /* the dot */
	}
}

size_t bt_toml_len(const bt_toml *v)
{
	if (!v || (v->type != BT_TOML_TABLE && v->type != BT_TOML_ARRAY))
		return 0;
	return v->u.c->len;
}

const char *bt_toml_key_at(const bt_toml *table, size_t i)
{
	if (!table || table->type != BT_TOML_TABLE || i >= table->u.c->len)
		return NULL;
	return table->u.c->keys[i];
}

const bt_toml *bt_toml_at(const bt_toml *v, size_t i)
{
	if (i >= bt_toml_len(v))
		return NULL;
	return v->u.c->vals[i];
}

const char *bt_toml_str(const bt_toml *v)
{
	if (!v || (v->type != BT_TOML_STRING && v->type != BT_TOML_DATETIME))
		return NULL;
	return v->u.s;
}

int bt_toml_int(const bt_toml *v, int64_t *out)
{
	if (!v || v->type != BT_TOML_INT)
		return -1;
	*out = v->u.i;
	return 0;
}

int bt_toml_bool(const bt_toml *v, bool *out)
{
	if (!v || v->type != BT_TOML_BOOL)
		return -1;
	*out = v->u.b;
	return 0;
}

int bt_toml_float(const bt_toml *v, double *out)
{
	if (v && v->type == BT_TOML_INT) {
		*out = (double)v->u.i;
		return 0;
	}
	if (!v || v->type != BT_TOML_FLOAT)
		return -1;
	*out = v->u.f;
	return 0;
}

const char *bt_toml_path_str(const bt_toml *root, const char *path, const char *dflt)
{
	const char *s = bt_toml_str(bt_toml_path(root, path));
	return s ? s : dflt;
}

int64_t bt_toml_path_int(const bt_toml *root, const char *path, int64_t dflt)
{
	int64_t n;
	return bt_toml_int(bt_toml_path(root, path), &n) == 0 ? n : dflt;
}

bool bt_toml_path_bool(const bt_toml *root, const char *path, bool dflt)
{
	bool b;
	return bt_toml_bool(bt_toml_path(root, path), &b) == 0 ? b : dflt;
}
