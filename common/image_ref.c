/*
 * image_ref — parsing and normalizing image references by Docker's grammar:
 *
 *   reference  := name [ ":" tag ] [ "@" digest ]
 *   name       := [ domain "/" ] path
 *   domain     := host [ ":" port ]          host: dns labels or "[" ipv6 "]"
 *   path       := component ( "/" component )*
 *   component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
 *   digest     := algorithm ":" hex          (sha256, sha384, sha512; lower-case hex of the right length)
 *
 * The grammar is checked by hand, piece by piece, so each error can say
 * which piece is wrong.
 */
#include "image_ref.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "bt_util.h"

/* The input, printable and bounded, for error messages. */
static const char *quoted(const char *s, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; s[i] && o + 8 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (i >= 160) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
}

#define QBUF 720

static int ref_err(bt_err *e, const char *input, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int ref_err(bt_err *e, const char *input, const char *fmt, ...)
{
	char q[QBUF], what[BT_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return bt_err_set(e, BT_INVALID_ARGUMENT, "reference \"%s\": %s", quoted(input, q, sizeof(q)), what);
}

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static bool is_word(char c)
{
	return is_alnum(c) || c == '_';
}

static bool is_hex_lower(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool is_hex(char c)
{
	return is_hex_lower(c) || (c >= 'A' && c <= 'F');
}

/* One path component of n bytes: alnum runs joined by '.', '_', "__" or runs of '-'. */
static bool component_ok(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0 || !is_lower_alnum(s[0]))
		return false;
	while (i < n) {
		while (i < n && is_lower_alnum(s[i]))
			i++;
		if (i == n)
			return true;
		/* a separator */
		if (s[i] == '.') {
			i++;
		} else if (s[i] == '_') {
			i++;
			if (i < n && s[i] == '_')
				i++;
		} else if (s[i] == '-') {
			while (i < n && s[i] == '-')
				i++;
		} else {
			return false;
		}
		if (i == n || !is_lower_alnum(s[i]))
			return false;
	}
	return true;
}

static bool path_ok(const char *s, size_t n)
{
	size_t start = 0;

	if (n == 0)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '/') {
			if (!component_ok(s + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return true;
}

static bool has_upper(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			return true;
	return false;
}

/* A DNS-ish label: [A-Za-z0-9] or [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]. */
static bool label_ok(const char *s, size_t n)
{
	if (n == 0 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

/* host [":" port] where host is labels joined by '.', or "[" hex and ':' "]". */
static bool domain_ok(const char *s, size_t n)
{
	size_t host_end;

	if (n == 0)
		return false;
	if (s[0] == '[') {
		size_t i = 1;
		while (i < n && (is_hex(s[i]) || s[i] == ':'))
			i++;
		if (i == 1 || i >= n || s[i] != ']')
			return false;
		host_end = i + 1;
	} else {
		size_t i = 0, start = 0;
		while (i < n && s[i] != ':')
			i++;
		host_end = i;
		for (size_t j = 0; j <= host_end; j++) {
			if (j == host_end || s[j] == '.') {
				if (!label_ok(s + start, j - start))
					return false;
				start = j + 1;
			}
		}
	}
	if (host_end == n)
		return true;
	if (s[host_end] != ':' || host_end + 1 == n)
		return false;
	for (size_t i = host_end + 1; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static bool tag_ok(const char *s, size_t n)
{
	if (n == 0 || n > IMG_REF_TAG_MAX || !is_word(s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!is_word(s[i]) && s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

/* algorithm ":" hex, with a known algorithm and its exact length in lower-case hex. */
static int digest_check(const char *input, const char *s, bt_err *e)
{
	static const struct {
		const char *alg;
		size_t hex;
	} algs[] = { { "sha256", 64 }, { "sha384", 96 }, { "sha512", 128 } };
	const char *colon = strchr(s, ':');
	size_t alen, hlen;

	/* the grammar first: components of [A-Za-z][A-Za-z0-9]* joined by [-_+.], then at least 32 hex */
	if (!colon)
		return ref_err(e, input, "invalid digest format (want algorithm:hex)");
	alen = (size_t)(colon - s);
	for (size_t i = 0; i < alen; i++) {
		bool first = i == 0 || strchr("-_+.", s[i - 1]);
		char c = s[i];
		if (first ? !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
			  : !(is_alnum(c) || (strchr("-_+.", c) && i + 1 < alen)))
			return ref_err(e, input, "invalid digest format");
	}
	if (alen == 0)
		return ref_err(e, input, "invalid digest format");
	hlen = strlen(colon + 1);
	for (size_t i = 0; i < hlen; i++)
		if (!is_hex(colon[1 + i]))
			return ref_err(e, input, "invalid digest format");
	if (hlen < 32)
		return ref_err(e, input, "invalid digest format (too short)");
	for (size_t a = 0; a < BT_ARRAY_LEN(algs); a++) {
		if (strlen(algs[a].alg) != alen || memcmp(s, algs[a].alg, alen) != 0)
			continue;
		if (hlen != algs[a].hex)
			return ref_err(e, input, "invalid checksum digest length for %s", algs[a].alg);
		for (size_t i = 0; i < hlen; i++)
			if (!is_hex_lower(colon[1 + i]))
				return ref_err(e, input, "invalid checksum digest format (hex must be lower case)");
		return 0;
	}
	return ref_err(e, input, "unsupported digest algorithm");
}

int img_ref_check_path(const char *path, bt_err *e)
{
	size_t n = strlen(path);

	if (n > IMG_REF_NAME_MAX)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "repository name must not be more than %d characters",
				  IMG_REF_NAME_MAX);
	if (has_upper(path, n))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "repository name must be lowercase");
	if (!path_ok(path, n))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "invalid repository name");
	return 0;
}

int img_ref_parse(const char *s, img_ref *out, bt_err *e)
{
	const char *at, *name_end, *slash, *last_slash, *tag = NULL, *path;
	size_t len, name_len, dom_len, path_len;
	char domain[IMG_REF_NAME_MAX + 1];
	bool docker_hub = false;

	memset(out, 0, sizeof(*out));
	if (!s || !*s)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "reference \"\": repository name must have at least one component");
	len = strnlen(s, IMG_REF_INPUT_MAX + 1);
	if (len > IMG_REF_INPUT_MAX)
		return ref_err(e, s, "longer than %d bytes", IMG_REF_INPUT_MAX);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return ref_err(e, s, "invalid reference format (unexpected character at offset %zu)", i);
	if (len == 64) {
		bool hex = true;
		for (size_t i = 0; i < 64 && hex; i++)
			hex = is_hex_lower(s[i]);
		if (hex)
			return ref_err(e, s, "cannot specify 64-byte hexadecimal strings as a repository name");
	}

	/* "@digest" ends the reference; "@" appears nowhere else */
	at = strchr(s, '@');
	name_end = at ? at : s + len;
	if (at) {
		if (at[1] == '\0')
			return ref_err(e, s, "invalid digest format (empty)");
		if (strchr(at + 1, '@'))
			return ref_err(e, s, "invalid reference format (more than one '@')");
		if (digest_check(s, at + 1, e) < 0)
			return -1;
		if (strlen(at + 1) > IMG_REF_DIGEST_MAX)
			return ref_err(e, s, "unsupported digest algorithm");
	}

	/* ":tag" is a ':' after the last '/' of the name */
	last_slash = NULL;
	for (const char *p = s; p < name_end; p++)
		if (*p == '/')
			last_slash = p;
	for (const char *p = name_end; p > (last_slash ? last_slash : s); p--)
		if (p[-1] == ':') {
			tag = p;
			break;
		}
	name_len = (size_t)((tag ? tag - 1 : name_end) - s);
	if (tag && !tag_ok(tag, (size_t)(name_end - tag))) {
		char q[QBUF];
		char t[IMG_REF_INPUT_MAX + 1];
		memcpy(t, tag, (size_t)(name_end - tag));
		t[name_end - tag] = '\0';
		return ref_err(e, s, "invalid tag \"%s\"", quoted(t, q, sizeof(q)));
	}
	if (name_len == 0)
		return ref_err(e, s, "repository name must have at least one component");

	/* the domain: a first component that looks like a host */
	slash = memchr(s, '/', name_len);
	if (!slash) {
		docker_hub = true;
		path = s;
	} else {
		size_t first = (size_t)(slash - s);
		bool host = (first == 9 && memcmp(s, "localhost", 9) == 0) || memchr(s, '.', first) ||
			    memchr(s, ':', first) || has_upper(s, first);
		if (!host) {
			docker_hub = true;
			path = s;
		} else if (first == 15 && memcmp(s, "index.docker.io", 15) == 0) {
			docker_hub = true;
			path = slash + 1;
		} else if (first == 9 && memcmp(s, "docker.io", 9) == 0) {
			docker_hub = true;
			path = slash + 1;
		} else {
			if (first > IMG_REF_NAME_MAX)
				return ref_err(e, s, "repository name must not be more than %d characters",
					       IMG_REF_NAME_MAX);
			if (!domain_ok(s, first)) {
				char q[QBUF];
				char d[IMG_REF_NAME_MAX + 1];
				memcpy(d, s, first);
				d[first] = '\0';
				return ref_err(e, s, "invalid registry host \"%s\"", quoted(d, q, sizeof(q)));
			}
			path = slash + 1;
		}
		if (!docker_hub) {
			memcpy(domain, s, first);
			domain[first] = '\0';
		}
	}
	if (docker_hub)
		snprintf(domain, sizeof(domain), "%s", IMG_REF_DEFAULT_DOMAIN);
	dom_len = strlen(domain);
	path_len = name_len - (size_t)(path - s);

	if (has_upper(path, path_len)) {
		char q[QBUF];
		char p[IMG_REF_INPUT_MAX + 1];
		memcpy(p, path, path_len);
		p[path_len] = '\0';
		return ref_err(e, s, "repository name \"%s\" must be lowercase", quoted(p, q, sizeof(q)));
	}
	if (!path_ok(path, path_len)) {
		char q[QBUF];
		char p[IMG_REF_INPUT_MAX + 1];
		memcpy(p, path, path_len);
		p[path_len] = '\0';
		return ref_err(e, s, "invalid repository name \"%s\"", quoted(p, q, sizeof(q)));
	}
	{
		/* "library/" for official images: a one-component path on Docker Hub */
		bool library = docker_hub && !memchr(path, '/', path_len);
		size_t full = dom_len + 1 + (library ? 8 : 0) + path_len;
		if (full > IMG_REF_NAME_MAX)
			return ref_err(e, s, "repository name must not be more than %d characters", IMG_REF_NAME_MAX);
		memcpy(out->domain, domain, dom_len + 1);
		snprintf(out->path, sizeof(out->path), "%s%.*s", library ? "library/" : "", (int)path_len, path);
	}
	if (tag)
		snprintf(out->tag, sizeof(out->tag), "%.*s", (int)(name_end - tag), tag);
	if (at)
		snprintf(out->digest, sizeof(out->digest), "%s", at + 1);
	if (!tag && !at)
		snprintf(out->tag, sizeof(out->tag), "latest");
	return 0;
}

const char *img_ref_name(const img_ref *r, char buf[IMG_REF_STR_MAX])
{
	snprintf(buf, IMG_REF_STR_MAX, "%s/%s", r->domain, r->path);
	return buf;
}

const char *img_ref_string(const img_ref *r, char buf[IMG_REF_STR_MAX])
{
	if (r->digest[0])
		snprintf(buf, IMG_REF_STR_MAX, "%s/%s@%s", r->domain, r->path, r->digest);
	else
		snprintf(buf, IMG_REF_STR_MAX, "%s/%s:%s", r->domain, r->path, r->tag);
	return buf;
}

/* Whether a docker.io path would read as host/path once "docker.io/" is dropped ("lindux.dy/x"):
 * such names keep the domain in their short form (Docker drops it and so names another registry). */
static bool first_looks_like_host(const char *path)
{
	const char *slash = strchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;

	return slash && (memchr(path, '.', n) || (n == 9 && memcmp(path, "localhost", 9) == 0));
}

const char *img_ref_familiar(const img_ref *r, char buf[IMG_REF_STR_MAX])
{
	const char *path = r->path;
	size_t o;

	if (strcmp(r->domain, IMG_REF_DEFAULT_DOMAIN) == 0 && !first_looks_like_host(path)) {
		if (bt_startswith(path, "library/") && !strchr(path + 8, '/'))
			path += 8;
		o = (size_t)snprintf(buf, IMG_REF_STR_MAX, "%s", path);
	} else {
		o = (size_t)snprintf(buf, IMG_REF_STR_MAX, "%s/%s", r->domain, path);
	}
	if (r->tag[0] && o < IMG_REF_STR_MAX)
		o += (size_t)snprintf(buf + o, IMG_REF_STR_MAX - o, ":%s", r->tag);
	if (r->digest[0] && o < IMG_REF_STR_MAX)
		snprintf(buf + o, IMG_REF_STR_MAX - o, "@%s", r->digest);
	return buf;
}

const char *img_ref_object(const img_ref *r)
{
	return r->digest[0] ? r->digest : r->tag;
}

const char *img_ref_host(const img_ref *r)
{
	return strcmp(r->domain, IMG_REF_DEFAULT_DOMAIN) == 0 ? IMG_REF_DOCKER_HUB_HOST : r->domain;
}

const char *img_ref_repository(const img_ref *r)
{
	return r->path;
}
