/*
 * bt_filter — parser and matcher for containerd-style filter strings.
 *
 * Each filter string is parsed by hand, one byte at a time, into a list of
 * selectors (an AND); the filter is the list of those lists (an OR).  Errors
 * name the filter and the byte column where parsing stopped.  Regexes are
 * vetted (size, nesting, repeated empty matches) before regcomp() sees them,
 * because glibc's compiler and matcher blow up on patterns such as
 * (.{1,200}){1,200} or ^(|)*(|)*(|)*.
 */
#define _GNU_SOURCE
#include "bt_filter.h"

#include <assert.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bt_util.h"

/* How many bytes of a filter an error message shows before cutting it. */
#define SHOW_MAX 160

enum sel_op {
	OP_PRESENT,	/* bare field path */
	OP_EQ,		/* == */
	OP_NE,		/* != */
	OP_MATCH,	/* ~= */
};

struct selector {
	char **path;
	size_t npath;
	enum sel_op op;
	char *value;		/* NULL for OP_PRESENT */
	regex_t re;		/* for OP_MATCH */
	bool compiled;		/* re holds a compiled regex */
};

/* One filter string: every selector must match.  None matches anything. */
struct conjunction {
	struct selector *sels;
	size_t nsels;
};

struct bt_filter {
	struct conjunction *alts;
	size_t nalts;		/* 0 means "match everything" */
};

struct parser {
	const char *s;		/* the filter string */
	size_t len;
	size_t pos;		/* byte offset of the next unread byte */
	bt_err *e;
};


/* Describes the byte at pos for "found ..." in messages. */
static const char *found(const struct parser *p, size_t pos, char *buf, size_t size)
{
	unsigned char c;

	if (pos >= p->len)
		return "end of filter";
	c = (unsigned char)p->s[pos];
	if (c >= 0x21 && c < 0x7f)
		snprintf(buf, size, "'%c'", c);
	else if (c == ' ')
		snprintf(buf, size, "space");
	else
		snprintf(buf, size, "byte 0x%02x", c);
	return buf;
}

__attribute__((format(printf, 3, 4)))
static int parse_fail(const struct parser *p, size_t pos, const char *fmt, ...)
{
	char what[512];
	char shown[SHOW_MAX + 8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	bt_escape(shown, sizeof(shown), p->s, p->len);
	return bt_err_set(p->e, BT_INVALID_ARGUMENT, "filter \"%s\": column %zu: %s",
			  shown, pos + 1, what);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_field_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_';
}

static void skip_space(struct parser *p)
{
	while (p->pos < p->len && is_space(p->s[p->pos]))
		p->pos++;
}

static bool at(const struct parser *p, char c)
{
	return p->pos < p->len && p->s[p->pos] == c;
}

/*
 * Reads a double-quoted string starting at the opening quote; \" and \\ are
 * the only escapes.  Returns the unescaped bytes in *out (caller frees).
 */
static int parse_quoted(struct parser *p, char **out)
{
	size_t open = p->pos;
	bt_buf b = { 0 };

	assert(at(p, '"'));
	p->pos++;
	while (p->pos < p->len) {
		char c = p->s[p->pos];

		if (c == '"') {
			p->pos++;
			*out = bt_buf_steal(&b);
			return 0;
		}
		if (c == '\\') {
			char next = p->pos + 1 < p->len ? p->s[p->pos + 1] : '\0';

			if (next != '"' && next != '\\') {
				char fb[16];

				bt_buf_free(&b);
				return parse_fail(p, p->pos,
						  "invalid escape in quoted string: '\\' followed by %s "
						  "(only \\\" and \\\\ are allowed)",
						  found(p, p->pos + 1, fb, sizeof(fb)));
			}
			bt_buf_append(&b, &next, 1);
			p->pos += 2;
			continue;
		}
		bt_buf_append(&b, &c, 1);
		p->pos++;
	}
	bt_buf_free(&b);
	return parse_fail(p, open, "unterminated quoted string");
}

/* Reads a field path into sel->path: segments separated by '.'. */
static int parse_path(struct parser *p, struct selector *sel)
{
	for (;;) {
		char *seg;

		skip_space(p);
		if (sel->npath == BT_FILTER_MAX_SEGMENTS)
			return parse_fail(p, p->pos, "too many field path segments (at most %d)",
					  BT_FILTER_MAX_SEGMENTS);
		if (at(p, '"')) {
			if (parse_quoted(p, &seg) < 0)
				return -1;
		} else if (p->pos < p->len && is_field_char(p->s[p->pos])) {
			size_t start = p->pos;

			while (p->pos < p->len && is_field_char(p->s[p->pos]))
				p->pos++;
			seg = bt_xstrndup(p->s + start, p->pos - start);
		} else {
			char fb[16];

			return parse_fail(p, p->pos,
					  "expected field name ([A-Za-z0-9_]+) or quoted field, found %s",
					  found(p, p->pos, fb, sizeof(fb)));
		}
		sel->path = bt_xrealloc(sel->path, (sel->npath + 1) * sizeof(*sel->path));
		sel->path[sel->npath++] = seg;
		skip_space(p);
		if (!at(p, '.'))
			return 0;
		p->pos++;
	}
}

/* Reads a bare value: every byte up to the next ',' or the end, trimmed. */
static int parse_bare_value(struct parser *p, char **out)
{
	size_t start = p->pos;
	size_t end;

	while (p->pos < p->len && p->s[p->pos] != ',') {
		unsigned char c = (unsigned char)p->s[p->pos];

		if (c == '"')
			return parse_fail(p, p->pos,
					  "unexpected '\"' in unquoted value (quote the whole value)");
		if ((c < 0x20 && !is_space((char)c)) || c == 0x7f)
			return parse_fail(p, p->pos,
					  "unexpected control byte 0x%02x in unquoted value", c);
		p->pos++;
	}
	end = p->pos;
	while (end > start && is_space(p->s[end - 1]))
		end--;
	if (end == start) {
		char fb[16];

		return parse_fail(p, start, "expected value or quoted value, found %s",
				  found(p, start, fb, sizeof(fb)));
	}
	*out = bt_xstrndup(p->s + start, end - start);
	return 0;
}

/* Multiplies a saturating cost; anything over the limit is just "too much". */
static size_t cost_mul(size_t a, size_t b)
{
	if (a == 0 || b == 0)
		return 0;
	if (a > (BT_FILTER_REGEX_MAX_COST + 1) / b)
		return BT_FILTER_REGEX_MAX_COST + 1;
	return BT_MIN(a * b, (size_t)BT_FILTER_REGEX_MAX_COST + 1);
}

static size_t cost_add(size_t a, size_t b)
{
	return BT_MIN(a + b, (size_t)BT_FILTER_REGEX_MAX_COST + 1);
}

/* Skips a bracket expression starting at re[i] == '['; returns the index after it. */
static size_t skip_bracket(const char *re, size_t len, size_t i)
{
	i++;
	if (i < len && re[i] == '^')
		i++;
	/* a leading ']' is a literal */
	if (i < len && re[i] == ']')
		i++;
	while (i < len && re[i] != ']') {
		if (re[i] == '[' && i + 1 < len &&
		    (re[i + 1] == ':' || re[i + 1] == '.' || re[i + 1] == '=')) {
			char kind = re[i + 1];

			for (i += 2; i + 1 < len; i++)
				if (re[i] == kind && re[i + 1] == ']')
					break;
			i += 2;
			continue;
		}
		i++;
	}
	return i < len ? i + 1 : len;
}

/*
 * Parses the interval at re[i] == '{' ("{m}", "{m,}", "{,n}", "{m,n}");
 * returns the index after it, the factor it multiplies by and its lower
 * bound, or i when it is not an interval (regcomp then decides what it is).
 */
static size_t parse_interval(const char *re, size_t len, size_t i, size_t *factor, size_t *min)
{
	size_t j = i + 1, m = 0, n = 0;
	bool have_m = false, have_n = false, comma = false;

	while (j < len && re[j] >= '0' && re[j] <= '9') {
		m = BT_MIN(m * 10 + (size_t)(re[j] - '0'), (size_t)100000);
		have_m = true;
		j++;
	}
	if (j < len && re[j] == ',') {
		comma = true;
		j++;
		while (j < len && re[j] >= '0' && re[j] <= '9') {
			n = BT_MIN(n * 10 + (size_t)(re[j] - '0'), (size_t)100000);
			have_n = true;
			j++;
		}
	}
	if (j >= len || re[j] != '}' || (!have_m && !have_n))
		return i;
	if (!comma)
		*factor = m;
	else if (!have_n)
		*factor = m + 1;	/* {m,} unrolls m copies and a star */
	else
		*factor = BT_MAX(m, n);
	*factor = BT_MAX(*factor, (size_t)1);
	*min = m;
	return j + 1;
}

/* What vet_regex knows about one open group (or the whole regex). */
struct re_frame {
	size_t sum;		/* cost of the items before the last one */
	size_t last;		/* cost of the last item */
	bool has_last;		/* the current branch has an item */
	bool last_null;		/* the last item can match the empty string */
	bool branch_null;	/* so can every item before it in this branch */
	bool alt_null;		/* so can some earlier branch of this group */
};

static void frame_init(struct re_frame *f)
{
	memset(f, 0, sizeof(*f));
	f->branch_null = true;
}

/* Starts a new item of the given cost in the current branch. */
static void frame_item(struct re_frame *f, size_t cost, bool nullable)
{
	if (f->has_last)
		f->branch_null = f->branch_null && f->last_null;
	f->sum = cost_add(f->sum, f->last);
	f->last = cost;
	f->has_last = true;
	f->last_null = nullable;
}

static bool frame_branch_null(const struct re_frame *f)
{
	return f->branch_null && (!f->has_last || f->last_null);
}

/* Zero-width escapes of glibc: \b \B \< \> \` \'. */
static bool is_anchor_escape(char c)
{
	return c == 'b' || c == 'B' || c == '<' || c == '>' || c == '`' || c == '\'';
}

/*
 * Vets a regex before regcomp() sees it, because glibc blows up on some
 * patterns (found by fuzzing): it copies the operand of '+' and of counted
 * repetitions, and its epsilon closures grow exponentially when something
 * that can match the empty string is repeated, above all after an anchor
 * (^(|)*(|)*…, (\b\B)*…, ^a***…).  So:
 *  - the estimated size must stay within BT_FILTER_REGEX_MAX_COST: every
 *    atom, group and operator counts one, a counted repetition multiplies
 *    what it applies to by its bound, '+' by two, alternatives add up;
 *  - nothing that can match the empty string may be repeated (a**, (a|)*,
 *    (a?){2}, .*? — ERE has no lazy quantifiers anyway);
 *  - groups nest at most BT_FILTER_REGEX_MAX_DEPTH deep;
 *  - no backreferences (Go's regexp, which containerd uses, has none, and
 *    they make matching exponential).
 * Returns 0 or fails with a message at column col.
 */
static int vet_regex(struct parser *p, size_t col, const char *re)
{
	struct re_frame st[BT_FILTER_REGEX_MAX_DEPTH + 1];
	size_t depth = 0, len = strlen(re), i = 0, total = 0;

	frame_init(&st[0]);
	while (i < len) {
		struct re_frame *f = &st[depth];
		size_t factor = 1, min = 0, next;
		bool repeat = false;

		switch (re[i]) {
		case '\\':
			if (i + 1 < len && re[i + 1] >= '1' && re[i + 1] <= '9')
				return parse_fail(p, col, "regex backreferences (\\%c) are not supported",
						  re[i + 1]);
			frame_item(f, 1, i + 1 < len && is_anchor_escape(re[i + 1]));
			i += i + 1 < len ? 2 : 1;
			break;
		case '[':
			frame_item(f, 1, false);
			i = skip_bracket(re, len, i);
			break;
		case '^':
		case '$':
			frame_item(f, 1, true);
			i++;
			break;
		case '(':
			if (depth == BT_FILTER_REGEX_MAX_DEPTH)
				return parse_fail(p, col, "regex nests groups too deeply (at most %d)",
						  BT_FILTER_REGEX_MAX_DEPTH);
			frame_init(&st[++depth]);
			i++;
			break;
		case ')':
			if (depth > 0) {
				size_t cost = cost_add(cost_add(f->sum, f->last), 1);
				bool null = f->alt_null || frame_branch_null(f);

				depth--;
				frame_item(&st[depth], cost, null);
			} else {
				frame_item(f, 1, false);	/* a literal ')' */
			}
			i++;
			break;
		case '|':
			f->alt_null = f->alt_null || frame_branch_null(f);
			f->sum = cost_add(cost_add(f->sum, f->last), 1);
			f->last = 0;
			f->has_last = false;
			f->last_null = false;
			f->branch_null = true;
			i++;
			break;
		case '*':
		case '?':
			repeat = true;
			min = 0;
			i++;
			break;
		case '+':
			repeat = true;
			factor = 2;
			min = 1;
			i++;
			break;
		case '{':
			next = parse_interval(re, len, i, &factor, &min);
			if (next != i) {
				repeat = true;
				i = next;
				break;
			}
			/* not an interval: an ordinary character */
			/* fallthrough */
		default:
			frame_item(f, 1, false);
			i++;
			break;
		}
		if (!repeat || !f->has_last)
			continue;	/* regcomp judges a dangling operator */
		if (f->last_null)
			return parse_fail(p, col,
					  "regex repeats something that can match the empty string "
					  "(like a**, (a|)* or .*?, which ERE has no use for)");
		f->last = cost_add(cost_mul(f->last, factor), 1);
		f->last_null = min == 0;
	}
	for (size_t d = 0; d <= depth; d++)
		total = cost_add(total, cost_add(st[d].sum, st[d].last));
	if (total > BT_FILTER_REGEX_MAX_COST)
		return parse_fail(p, col,
				  "regex too complex (expands to more than %d positions; "
				  "lower the repetition counts)",
				  BT_FILTER_REGEX_MAX_COST);
	return 0;
}

static int compile_regex(struct parser *p, size_t col, struct selector *sel)
{
	char msg[256];
	char shown[64];
	int rc;

	if (vet_regex(p, col, sel->value) < 0)
		return -1;
	rc = regcomp(&sel->re, sel->value, REG_EXTENDED | REG_NOSUB);
	if (rc != 0) {
		regerror(rc, NULL, msg, sizeof(msg));
		return parse_fail(p, col, "invalid regex \"%s\": %s",
				  bt_escape(shown, sizeof(shown), sel->value, strlen(sel->value)), msg);
	}
	sel->compiled = true;
	return 0;
}

static void selector_clear(struct selector *sel)
{
	for (size_t i = 0; i < sel->npath; i++)
		free(sel->path[i]);
	free(sel->path);
	if (sel->compiled)
		regfree(&sel->re);
	free(sel->value);
	memset(sel, 0, sizeof(*sel));
}

/* Reads "==", "!=" or "~=" into *op. */
static int parse_operator(struct parser *p, enum sel_op *op)
{
	char fb[16];

	if (p->pos + 1 < p->len && p->s[p->pos + 1] == '=') {
		switch (p->s[p->pos]) {
		case '=':
			*op = OP_EQ;
			p->pos += 2;
			return 0;
		case '!':
			*op = OP_NE;
			p->pos += 2;
			return 0;
		case '~':
			*op = OP_MATCH;
			p->pos += 2;
			return 0;
		}
	}
	return parse_fail(p, p->pos,
			  "expected operator (==, !=, ~=), '.', ',' or end of filter, found %s",
			  found(p, p->pos, fb, sizeof(fb)));
}

/*
 * Parses one selector into *sel.  On failure sel holds what was parsed so
 * far and the caller clears it.
 */
static int parse_selector(struct parser *p, struct selector *sel)
{
	size_t col;
	int rc;

	if (parse_path(p, sel) < 0)
		return -1;
	skip_space(p);
	if (p->pos >= p->len || at(p, ',')) {
		sel->op = OP_PRESENT;
		return 0;
	}
	if (parse_operator(p, &sel->op) < 0)
		return -1;
	skip_space(p);
	col = p->pos;
	if (at(p, '"'))
		rc = parse_quoted(p, &sel->value);
	else
		rc = parse_bare_value(p, &sel->value);
	if (rc < 0)
		return -1;
	if (sel->op == OP_MATCH)
		return compile_regex(p, col, sel);
	return 0;
}

static void conjunction_clear(struct conjunction *c)
{
	for (size_t i = 0; i < c->nsels; i++)
		selector_clear(&c->sels[i]);
	free(c->sels);
	c->sels = NULL;
	c->nsels = 0;
}

/* Parses one filter string into *c (an AND of selectors). */
static int parse_one(const char *s, struct conjunction *c, bt_err *e)
{
	struct parser p = { .s = s, .e = e };
	char shown[SHOW_MAX + 8];

	p.len = strnlen(s, BT_FILTER_MAX_LEN + 1);
	if (p.len > BT_FILTER_MAX_LEN)
		return bt_err_set(e, BT_INVALID_ARGUMENT,
				  "filter \"%s\": too long (%zu bytes, at most %d)",
				  bt_escape(shown, sizeof(shown), s, p.len), strlen(s),
				  BT_FILTER_MAX_LEN);

	skip_space(&p);
	/* containerd: an empty filter matches everything */
	if (p.pos == p.len)
		return 0;
	for (;;) {
		struct selector sel = { 0 };
		char fb[16];

		if (c->nsels == BT_FILTER_MAX_SELECTORS) {
			parse_fail(&p, p.pos, "too many selectors (at most %d)",
				   BT_FILTER_MAX_SELECTORS);
			goto fail;
		}
		if (parse_selector(&p, &sel) < 0) {
			selector_clear(&sel);
			goto fail;
		}
		c->sels = bt_xrealloc(c->sels, (c->nsels + 1) * sizeof(*c->sels));
		c->sels[c->nsels++] = sel;

		skip_space(&p);
		if (p.pos == p.len)
			return 0;
		if (!at(&p, ',')) {
			parse_fail(&p, p.pos, "expected ',' or end of filter, found %s",
				   found(&p, p.pos, fb, sizeof(fb)));
			goto fail;
		}
		p.pos++;
	}

fail:
	conjunction_clear(c);
	return -1;
}

int bt_filter_parse(const char *const *filters, size_t n, bt_filter **out, bt_err *e)
{
	bt_filter *f;

	assert(out);
	assert(filters || n == 0);
	if (n > BT_FILTER_MAX_FILTERS)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "too many filters (%zu, at most %d)", n,
				  BT_FILTER_MAX_FILTERS);

	f = bt_xzalloc(sizeof(*f));
	if (n > 0)
		f->alts = bt_xcalloc(n, sizeof(*f->alts));
	for (size_t i = 0; i < n; i++) {
		if (!filters[i]) {
			bt_err_set(e, BT_INVALID_ARGUMENT, "filter %zu: missing", i + 1);
			goto fail;
		}
		if (parse_one(filters[i], &f->alts[i], e) < 0)
			goto fail;
		f->nalts++;
	}
	*out = f;
	return 0;

fail:
	bt_filter_free(&f);
	return -1;
}

void bt_filter_free(bt_filter **fp)
{
	bt_filter *f = *fp;

	if (!f)
		return;
	for (size_t i = 0; i < f->nalts; i++)
		conjunction_clear(&f->alts[i]);
	free(f->alts);
	free(f);
	*fp = NULL;
}

static bool selector_match(const struct selector *sel, bt_filter_get_fn get, void *obj)
{
	const char *v = get(obj, (const char *const *)sel->path, sel->npath);

	switch (sel->op) {
	case OP_PRESENT:
		return v && v[0] != '\0';
	case OP_EQ:
		return v && strcmp(v, sel->value) == 0;
	case OP_NE:
		return !v || strcmp(v, sel->value) != 0;
	case OP_MATCH:
		return v && regexec(&sel->re, v, 0, NULL, 0) == 0;
	}
	return false;
}

bool bt_filter_match(const bt_filter *f, bt_filter_get_fn get, void *obj)
{
	assert(f);
	assert(get);
	if (f->nalts == 0)
		return true;
	for (size_t i = 0; i < f->nalts; i++) {
		const struct conjunction *c = &f->alts[i];
		bool all = true;

		for (size_t j = 0; j < c->nsels && all; j++)
			all = selector_match(&c->sels[j], get, obj);
		if (all)
			return true;
	}
	return false;
}
