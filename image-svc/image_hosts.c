/*
 * image_hosts — per-host registry configuration (hosts.toml, certs.d),
 * credentials (config.json and berth's own), and the parsing of
 * authentication challenges and token answers.  See image_hosts.h for the
 * rules; containerd's config/hosts.go was read for the behaviour.
 */
#define _GNU_SOURCE
#include "image_hosts.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <pwd.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bt_toml.h"
#include "bt_util.h"

#define DOCKER_CONFIG_MAX (1 << 20)
#define CHALLENGE_MAX 8192

/* ---- small string helpers ------------------------------------------------------------------ */

static void strv_free_null(char ***v)
{
	bt_strv_free(*v);
	*v = NULL;
}

static bool is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *abs_path(const char *p, const char *base)
{
	return p[0] == '/' ? bt_xstrdup(p) : bt_xasprintf("%s/%s", base, p);
}

/* The port of "host:port" or "[v6]:port", or NULL. */
static const char *host_port(const char *host)
{
	const char *c;

	if (host[0] == '[') {
		const char *end = strchr(host, ']');
		return end && end[1] == ':' ? end + 2 : NULL;
	}
	c = strchr(host, ':');
	/* a bare IPv6 address has several colons and no port */
	return c && !strchr(c + 1, ':') ? c + 1 : NULL;
}

bool img_host_is_local(const char *host)
{
	char name[256];
	const char *port = host_port(host);
	size_t n = port ? (size_t)(port - 1 - host) : strlen(host);

	if (n >= sizeof(name))
		return false;
	memcpy(name, host, n);
	name[n] = '\0';
	if (strcasecmp(name, "localhost") == 0 || strcmp(name, "::1") == 0 || strcmp(name, "[::1]") == 0)
		return true;
	/* 127.0.0.0/8 in dotted-quad form */
	if (bt_startswith(name, "127.")) {
		int dots = 0;
		for (const char *c = name; *c; c++) {
			if (*c == '.')
				dots++;
			else if (*c < '0' || *c > '9')
				return false;
		}
		return dots == 3;
	}
	return false;
}

/* path.Clean for an absolute URL path: no empty, "." or ".." segments, no trailing '/'. */
static char *clean_path(const char *p)
{
	char *out = bt_xmalloc(strlen(p) + 2);
	size_t o = 0;
	const char *s = p;

	while (*s) {
		const char *seg;
		size_t n;
		while (*s == '/')
			s++;
		seg = s;
		while (*s && *s != '/')
			s++;
		n = (size_t)(s - seg);
		if (n == 0 || (n == 1 && seg[0] == '.'))
			continue;
		if (n == 2 && seg[0] == '.' && seg[1] == '.') {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
			continue;
		}
		out[o++] = '/';
		memcpy(out + o, seg, n);
		o += n;
	}
	out[o] = '\0';
	return out;
}

/* Splits "scheme://host[:port][/path]" (https:// added when no scheme is given). */
static int parse_url(const char *url, char **scheme, char **host, char **path, bt_err *e)
{
	_cleanup_free_ char *full = strstr(url, "://") ? bt_xstrdup(url) : bt_xasprintf("https://%s", url);
	char *sep = strstr(full, "://");
	char *auth = sep + 3;
	size_t hn = strcspn(auth, "/?#");

	*sep = '\0';
	for (char *c = full; *c; c++)
		*c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
	if (strcmp(full, "http") != 0 && strcmp(full, "https") != 0)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "URL \"%s\": scheme must be http or https", url);
	if (hn == 0 || memchr(auth, '@', hn))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "URL \"%s\": bad host", url);
	for (size_t i = 0; i < hn; i++) {
		char c = auth[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr(".-_:[]", c)))
			return bt_err_set(e, BT_INVALID_ARGUMENT, "URL \"%s\": bad host", url);
	}
	*scheme = bt_xstrdup(full);
	*host = bt_xstrndup(auth, hn);
	{
		const char *p = auth + hn;
		size_t pn = strcspn(p, "?#");
		_cleanup_free_ char *raw = bt_xstrndup(p, pn);
		*path = clean_path(raw);
	}
	return 0;
}

/* ---- endpoints ----------------------------------------------------------------------------- */

static void endpoint_clear(img_endpoint *ep)
{
	free(ep->scheme);
	free(ep->host);
	free(ep->path);
	strv_free_null(&ep->ca_files);
	free(ep->client_cert);
	free(ep->client_key);
	strv_free_null(&ep->headers);
	memset(ep, 0, sizeof(*ep));
}

void img_hosts_clear(img_hosts *h)
{
	for (size_t i = 0; i < h->n; i++)
		endpoint_clear(&h->v[i]);
	free(h->v);
	free(h->source);
	memset(h, 0, sizeof(*h));
}

static img_endpoint *hosts_push(img_hosts *h)
{
	h->v = bt_xrealloc(h->v, (h->n + 1) * sizeof(*h->v));
	memset(&h->v[h->n], 0, sizeof(*h->v));
	return &h->v[h->n++];
}

/* A string or an array of strings, into a vector (paths made absolute when base is given). */
static int strings_of(const bt_toml *v, const char *base, const char *what, char ***out, bt_err *e)
{
	if (bt_toml_kind(v) == BT_TOML_STRING) {
		const char *s = bt_toml_str(v);
		_cleanup_free_ char *p = base ? abs_path(s, base) : bt_xstrdup(s);
		bt_strv_push(out, p);
		return 0;
	}
	if (bt_toml_kind(v) != BT_TOML_ARRAY)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "\"%s\" must be a string or an array of strings", what);
	for (size_t i = 0; i < bt_toml_len(v); i++) {
		const bt_toml *s = bt_toml_at(v, i);
		if (bt_toml_kind(s) != BT_TOML_STRING)
			return bt_err_set(e, BT_INVALID_ARGUMENT, "\"%s\" must be a string or an array of strings", what);
		_cleanup_free_ char *p = base ? abs_path(bt_toml_str(s), base) : bt_xstrdup(bt_toml_str(s));
		bt_strv_push(out, p);
	}
	return 0;
}

/* The keys shared by the root and each [host."…"] table. */
static int endpoint_settings(img_endpoint *ep, const bt_toml *t, const char *base, bool *explicit_tls, bt_err *e)
{
	const bt_toml *v;

	ep->caps = IMG_CAP_ALL;
	if ((v = bt_toml_get(t, "capabilities"))) {
		_cleanup_strv_ char **caps = NULL;
		if (strings_of(v, NULL, "capabilities", &caps, e) < 0)
			return -1;
		ep->caps = 0;
		for (char **c = caps; c && *c; c++) {
			if (strcasecmp(*c, "pull") == 0)
				ep->caps |= IMG_CAP_PULL;
			else if (strcasecmp(*c, "resolve") == 0)
				ep->caps |= IMG_CAP_RESOLVE;
			else if (strcasecmp(*c, "push") == 0)
				ep->caps |= IMG_CAP_PUSH;
			else if (strcasecmp(*c, "referrers") != 0)
				return bt_err_set(e, BT_INVALID_ARGUMENT, "unknown capability \"%s\"", *c);
		}
	}
	if ((v = bt_toml_get(t, "skip_verify"))) {
		if (bt_toml_bool(v, &ep->skip_verify) < 0)
			return bt_err_set(e, BT_INVALID_ARGUMENT, "\"skip_verify\" must be a boolean");
		*explicit_tls = true;
	}
	if ((v = bt_toml_get(t, "ca"))) {
		if (strings_of(v, base, "ca", &ep->ca_files, e) < 0)
			return -1;
		*explicit_tls = true;
	}
	if ((v = bt_toml_get(t, "client"))) {
		/* "both.pem" | ["both.pem", …] | [["cert", "key"], …]: curl presents one, the first */
		const bt_toml *first = bt_toml_kind(v) == BT_TOML_ARRAY ? bt_toml_at(v, 0) : v;
		if (first && bt_toml_kind(first) == BT_TOML_STRING) {
			ep->client_cert = abs_path(bt_toml_str(first), base);
		} else if (first && bt_toml_kind(first) == BT_TOML_ARRAY && bt_toml_len(first) == 2 &&
			   bt_toml_str(bt_toml_at(first, 0)) && bt_toml_str(bt_toml_at(first, 1))) {
			ep->client_cert = abs_path(bt_toml_str(bt_toml_at(first, 0)), base);
			ep->client_key = abs_path(bt_toml_str(bt_toml_at(first, 1)), base);
		} else if (first || bt_toml_kind(v) != BT_TOML_ARRAY) {
			return bt_err_set(e, BT_INVALID_ARGUMENT,
					  "\"client\" must be a file, a list of files or a list of [cert, key] pairs");
		}
		*explicit_tls = true;
	}
	if ((v = bt_toml_get(t, "header"))) {
		if (bt_toml_kind(v) != BT_TOML_TABLE)
			return bt_err_set(e, BT_INVALID_ARGUMENT, "\"header\" must be a table");
		for (size_t i = 0; i < bt_toml_len(v); i++) {
			const char *name = bt_toml_key_at(v, i);
			_cleanup_strv_ char **vals = NULL;
			if (!*name || strpbrk(name, ":\r\n ") )
				return bt_err_set(e, BT_INVALID_ARGUMENT, "bad header name \"%s\"", name);
			if (strings_of(bt_toml_at(v, i), NULL, "header", &vals, e) < 0)
				return -1;
			for (char **s = vals; s && *s; s++) {
				if (strpbrk(*s, "\r\n"))
					return bt_err_set(e, BT_INVALID_ARGUMENT, "header \"%s\": value has a line break", name);
				_cleanup_free_ char *line = bt_xasprintf("%s: %s", name, *s);
				bt_strv_push(&ep->headers, line);
			}
		}
	}
	if ((v = bt_toml_get(t, "dial_timeout"))) {
		if (!bt_toml_str(v) || bt_parse_duration_ms(bt_toml_str(v), &ep->dial_timeout_ms) < 0)
			return bt_err_set(e, BT_INVALID_ARGUMENT, "\"dial_timeout\" must be a duration such as \"5s\"");
	}
	return 0;
}

/* URL, override_path and the shared keys of one table. */
static int endpoint_from_table(img_endpoint *ep, const char *url, const bt_toml *t, const char *base, bt_err *e)
{
	bool explicit_tls = false, override = false;
	const bt_toml *v;
	_cleanup_free_ char *path = NULL;

	if ((v = bt_toml_get(t, "override_path")) && bt_toml_bool(v, &override) < 0)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "\"override_path\" must be a boolean");
	if (url && parse_url(url, &ep->scheme, &ep->host, &path, e) < 0)
		return -1;
	if (url) {
		if (override)
			ep->path = path[0] ? BT_STEAL(path) : bt_xstrdup("/");
		else if (bt_endswith(path, "/v2"))
			ep->path = BT_STEAL(path);
		else
			ep->path = bt_xasprintf("%s/v2", path);
	}
	if (endpoint_settings(ep, t, base, &explicit_tls, e) < 0)
		return -1;
	/* plain http with TLS settings: try TLS first (containerd's HTTP fallback) */
	if (url && strcmp(ep->scheme, "http") == 0 && explicit_tls) {
		const char *port = host_port(ep->host);
		if (!port || strcmp(port, "80") != 0) {
			free(ep->scheme);
			ep->scheme = bt_xstrdup("https");
			ep->http_fallback = true;
		}
	}
	return 0;
}

/* Docker's certs.d layout: *.crt CAs, X.cert + X.key client pairs (sorted by name). */
static int load_cert_files(const char *dir, img_endpoint *ep, bt_err *e)
{
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, alphasort);

	if (n < 0) {
		if (errno == ENOENT)
			return 0;
		return bt_err_errno(e, errno, "read %s", dir);
	}
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		_cleanup_free_ char *p = bt_xasprintf("%s/%s", dir, name);
		if (name[0] != '.' && !is_dir(p)) {
			if (bt_endswith(name, ".crt")) {
				bt_strv_push(&ep->ca_files, p);
			} else if (bt_endswith(name, ".cert") && !ep->client_cert) {
				_cleanup_free_ char *key = bt_xasprintf("%s/%.*s.key", dir, (int)(strlen(name) - 5), name);
				ep->client_cert = BT_STEAL(p);
				if (access(key, F_OK) == 0)
					ep->client_key = BT_STEAL(key);
			}
		}
		free(names[i]);
	}
	free(names);
	return 0;
}

/* The registry's own server when nothing names it (containerd's ConfigureHosts defaults). */
static void default_server(img_endpoint *ep, const char *domain, bool plain_http)
{
	if (!ep->host) {
		if (strcmp(domain, "docker.io") == 0) {
			ep->scheme = bt_xstrdup("https");
			ep->host = bt_xstrdup("registry-1.docker.io");
		} else {
			ep->host = bt_xstrdup(domain);
			if (plain_http) {
				ep->scheme = bt_xstrdup("http");
			} else if (img_host_is_local(domain)) {
				const char *port = host_port(domain);
				if (port && strcmp(port, "80") == 0) {
					ep->scheme = bt_xstrdup("http");
				} else {
					/* TLS without verification, and plain HTTP when the handshake fails */
					ep->scheme = bt_xstrdup("https");
					ep->skip_verify = true;
					ep->http_fallback = port && strcmp(port, "443") != 0;
				}
			} else {
				ep->scheme = bt_xstrdup("https");
			}
		}
		free(ep->path);
		ep->path = bt_xstrdup("/v2");
	}
	ep->is_server = true;
}

static int load_hosts_toml(const char *file, const char *dir, const char *domain, img_hosts *h, bt_err *e)
{
	bt_toml *t = NULL;
	const bt_toml *hosts, *server;
	int rc = -1;

	if (bt_toml_parse_file(file, &t, e) < 0)
		return bt_err_wrap(e, "%s", file);
	hosts = bt_toml_get(t, "host");
	if (hosts && bt_toml_kind(hosts) != BT_TOML_TABLE) {
		bt_err_set(e, BT_INVALID_ARGUMENT, "%s: \"host\" must be a table of URLs", file);
		goto out;
	}
	for (size_t i = 0; i < bt_toml_len(hosts); i++) {
		const char *url = bt_toml_key_at(hosts, i);
		const bt_toml *ht = bt_toml_at(hosts, i);
		if (bt_toml_kind(ht) != BT_TOML_TABLE) {
			bt_err_set(e, BT_INVALID_ARGUMENT, "%s: host \"%s\" must be a table", file, url);
			goto out;
		}
		if (endpoint_from_table(hosts_push(h), url, ht, dir, e) < 0) {
			bt_err_wrap(e, "%s: host \"%s\"", file, url);
			goto out;
		}
	}
	server = bt_toml_get(t, "server");
	if (server && !bt_toml_str(server)) {
		bt_err_set(e, BT_INVALID_ARGUMENT, "%s: \"server\" must be a string", file);
		goto out;
	}
	if (endpoint_from_table(hosts_push(h), server ? bt_toml_str(server) : NULL, t, dir, e) < 0) {
		bt_err_wrap(e, "%s", file);
		goto out;
	}
	(void)domain;
	rc = 0;
out:
	bt_toml_free(&t);
	return rc;
}

int img_hosts_load(const char *dir, const char *domain, bool plain_http, img_hosts *out, bt_err *e)
{
	img_hosts h = { 0 };
	_cleanup_free_ char *found = NULL;

	memset(out, 0, sizeof(*out));
	if (!domain || !*domain || strchr(domain, '/') || domain[0] == '.' || strlen(domain) > 255)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "bad registry host \"%.100s\"", domain ? domain : "");
	if (dir && *dir) {
		const char *colon = strrchr(domain, ':');
		if (colon && colon != domain) {
			/* containerd's hostDirectory(): "host:port" → "host_port_" */
			_cleanup_free_ char *p = bt_xasprintf("%s/%.*s_%s_", dir, (int)(colon - domain), domain, colon + 1);
			if (is_dir(p))
				found = BT_STEAL(p);
		}
		if (!found) {
			_cleanup_free_ char *p = bt_xasprintf("%s/%s", dir, domain);
			if (is_dir(p))
				found = BT_STEAL(p);
		}
		if (!found) {
			_cleanup_free_ char *p = bt_xasprintf("%s/_default", dir);
			if (is_dir(p))
				found = BT_STEAL(p);
		}
	}
	if (found) {
		_cleanup_free_ char *file = bt_xasprintf("%s/hosts.toml", found);
		if (access(file, F_OK) == 0) {
			if (load_hosts_toml(file, found, domain, &h, e) < 0) {
				img_hosts_clear(&h);
				return -1;
			}
			h.source = BT_STEAL(file);
		} else {
			img_endpoint *ep = hosts_push(&h);
			ep->caps = IMG_CAP_ALL;
			if (load_cert_files(found, ep, e) < 0) {
				img_hosts_clear(&h);
				return -1;
			}
			h.source = BT_STEAL(found);
		}
	} else {
		hosts_push(&h)->caps = IMG_CAP_ALL;
		h.source = bt_xstrdup("");
	}
	default_server(&h.v[h.n - 1], domain, plain_http);
	for (size_t i = 0; i < h.n; i++) {
		img_endpoint *ep = &h.v[i];
		bool same = strcasecmp(ep->host, domain) == 0 ||
			    (strcmp(domain, "docker.io") == 0 && strcasecmp(ep->host, "registry-1.docker.io") == 0);
		ep->proxy = !same;
	}
	*out = h;
	return 0;
}

/* ---- credentials --------------------------------------------------------------------------- */

char *img_creds_key(const char *s)
{
	const char *p = strstr(s, "://");
	char *k;

	p = p ? p + 3 : s;
	k = bt_xstrndup(p, strcspn(p, "/"));
	for (char *c = k; *c; c++)
		*c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
	if (strcmp(k, "index.docker.io") == 0 || strcmp(k, "registry-1.docker.io") == 0 ||
	    strcmp(k, "registry.hub.docker.com") == 0) {
		free(k);
		k = bt_xstrdup("docker.io");
	}
	return k;
}

void img_creds_add(img_creds *c, const char *host, const char *username, const char *password,
		   const char *identity_token)
{
	img_cred *n;

	c->v = bt_xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
	n = &c->v[c->n++];
	n->host = img_creds_key(host);
	n->username = bt_xstrdup(username ? username : "");
	n->password = bt_xstrdup(password ? password : "");
	n->identity_token = identity_token && *identity_token ? bt_xstrdup(identity_token) : NULL;
}

void img_creds_clear(img_creds *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].host);
		free(c->v[i].username);
		if (c->v[i].password)
			explicit_bzero(c->v[i].password, strlen(c->v[i].password));
		free(c->v[i].password);
		free(c->v[i].identity_token);
	}
	free(c->v);
	memset(c, 0, sizeof(*c));
}

const img_cred *img_creds_find(const img_creds *c, const char *host)
{
	_cleanup_free_ char *k = img_creds_key(host);

	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->v[i].host, k) == 0)
			return &c->v[i];
	return NULL;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *img_base64(const void *p, size_t n)
{
	const unsigned char *s = p;
	char *out = bt_xmalloc((n + 2) / 3 * 4 + 1);
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		out[o++] = b64chars[(v >> 18) & 63];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64chars[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

/* Decodes standard (or URL-safe) base64, padding optional; NULL when malformed. */
static char *base64_decode(const char *s, size_t *len)
{
	size_t n = strlen(s), o = 0;
	char *out = bt_xmalloc(n / 4 * 3 + 4);
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		const char *f;
		int v;
		if (c == '=')
			break;
		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		f = strchr(b64chars, c);
		if (!c || !f) {
			free(out);
			return NULL;
		}
		v = (int)(f - b64chars);
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	*len = o;
	return out;
}

char *img_basic_auth(const char *username, const char *password)
{
	_cleanup_free_ char *up = bt_xasprintf("%s:%s", username, password);
	_cleanup_free_ char *b = img_base64(up, strlen(up));

	explicit_bzero(up, strlen(up));
	return bt_xasprintf("Basic %s", b);
}

static char *docker_config_path(void)
{
	const char *d = getenv("DOCKER_CONFIG");
	const char *home = getenv("HOME");

	if (d && *d)
		return bt_xasprintf("%s/config.json", d);
	if (!home || !*home) {
		struct passwd *pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : NULL;
	}
	return home ? bt_xasprintf("%s/.docker/config.json", home) : NULL;
}

int img_creds_load_docker(img_creds *c, const char *path, bt_err *e)
{
	_cleanup_free_ char *def = path ? NULL : docker_config_path();
	_cleanup_free_ char *text = NULL;
	json_t *root, *auths, *v;
	json_error_t je;
	const char *key;
	size_t len;

	if (!path)
		path = def;
	if (!path || !*path)
		return 0;
	if (bt_read_file(path, DOCKER_CONFIG_MAX, &text, &len, e) < 0) {
		if (e && e->code == BT_NOT_FOUND) {
			bt_err_clear(e);
			return 0;
		}
		return bt_err_wrap(e, "docker config");
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	explicit_bzero(text, len);
	if (!root || !json_is_object(root)) {
		json_decref(root);
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: not a JSON object (line %d: %s)", path, je.line, je.text);
	}
	auths = json_object_get(root, "auths");
	if (auths && !json_is_object(auths)) {
		json_decref(root);
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: \"auths\" must be an object", path);
	}
	json_object_foreach(auths, key, v)
	{
		const char *auth = json_string_value(json_object_get(v, "auth"));
		const char *user = json_string_value(json_object_get(v, "username"));
		const char *pass = json_string_value(json_object_get(v, "password"));
		const char *idt = json_string_value(json_object_get(v, "identitytoken"));
		_cleanup_free_ char *dec = NULL;
		size_t dl = 0;

		if (!json_is_object(v))
			continue;
		if (auth && *auth) {
			char *colon;
			dec = base64_decode(auth, &dl);
			if (!dec || !(colon = memchr(dec, ':', dl)) || memchr(dec, '\0', dl)) {
				if (dec)
					explicit_bzero(dec, dl);
				/* the message before the decref: key lives in root */
				bt_err_set(e, BT_INVALID_ARGUMENT, "%s: auths.\"%.100s\".auth is not base64 of user:password",
					   path, key);
				json_decref(root);
				return -1;
			}
			*colon = '\0';
			user = dec;
			pass = colon + 1;
		}
		if ((user && *user) || (idt && *idt))
			img_creds_add(c, key, user, pass, idt);
		if (dec)
			explicit_bzero(dec, dl);
	}
	json_decref(root);
	return 0;
}

/* ---- challenges and tokens ----------------------------------------------------------------- */

void img_challenge_clear(img_challenge *c)
{
	free(c->realm);
	free(c->service);
	free(c->scope);
	free(c->error);
	memset(c, 0, sizeof(*c));
}

static bool tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c);
}

static void skip_ws(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

/* A token or a quoted string at *p (advanced past it); caller frees; NULL when neither. */
static char *param_value(const char **p)
{
	const char *s = *p;
	bt_buf b = { 0 };

	if (*s == '"') {
		s++;
		while (*s && *s != '"') {
			if (*s == '\\' && s[1])
				s++;
			bt_buf_append(&b, s, 1);
			s++;
		}
		if (*s != '"') {
			bt_buf_free(&b);
			return NULL;
		}
		*p = s + 1;
		if (!b.data)
			return bt_xstrdup("");
		return bt_buf_steal(&b);
	}
	while (*s && tchar(*s))
		s++;
	if (s == *p)
		return NULL;
	b.data = bt_xstrndup(*p, (size_t)(s - *p));
	*p = s;
	return b.data;
}

int img_challenge_parse(const char *value, img_challenge *out, bt_err *e)
{
	const char *p = value;
	img_challenge best = { 0 };

	memset(out, 0, sizeof(*out));
	if (!value || strlen(value) > CHALLENGE_MAX)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "WWW-Authenticate missing or too long");
	for (;;) {
		img_challenge cur = { 0 };
		const char *start;
		size_t sl;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		start = p;
		while (*p && tchar(*p))
			p++;
		sl = (size_t)(p - start);
		if (sl == 0)
			goto malformed;
		if (sl == 6 && strncasecmp(start, "bearer", 6) == 0)
			cur.scheme = IMG_AUTH_BEARER;
		else if (sl == 5 && strncasecmp(start, "basic", 5) == 0)
			cur.scheme = IMG_AUTH_BASIC;
		/* auth-params (name=value, comma separated) until a token not followed by '=': the next
		 * challenge's scheme */
		for (;;) {
			const char *mark = p, *name;
			char *val, **slot = NULL;
			size_t nl;

			while (*p == ' ' || *p == '\t' || *p == ',')
				p++;
			name = p;
			while (*p && tchar(*p))
				p++;
			nl = (size_t)(p - name);
			skip_ws(&p);
			if (nl == 0 || *p != '=') {
				p = mark;
				break;
			}
			p++;
			if (*p == '=' || *p == ',' || *p == '\0') {
				/* token68 ("Basic QWxh=="): nothing berth needs */
				while (*p && *p != ',')
					p++;
				continue;
			}
			skip_ws(&p);
			if (!(val = param_value(&p))) {
				img_challenge_clear(&cur);
				goto malformed;
			}
			if (nl == 5 && strncasecmp(name, "realm", 5) == 0)
				slot = &cur.realm;
			else if (nl == 7 && strncasecmp(name, "service", 7) == 0)
				slot = &cur.service;
			else if (nl == 5 && strncasecmp(name, "scope", 5) == 0)
				slot = &cur.scope;
			else if (nl == 5 && strncasecmp(name, "error", 5) == 0)
				slot = &cur.error;
			if (slot) {
				free(*slot);
				*slot = val;
			} else {
				free(val);
			}
			skip_ws(&p);
			if (*p && *p != ',')
				break;
		}
		if (*p && *p != ',' && *p != ' ' && *p != '\t' && !tchar(*p)) {
			img_challenge_clear(&cur);
			goto malformed;
		}
		/* Bearer (with a realm) beats Basic; the first of each kind wins */
		if ((cur.scheme == IMG_AUTH_BEARER && cur.realm && best.scheme != IMG_AUTH_BEARER) ||
		    (cur.scheme == IMG_AUTH_BASIC && best.scheme == IMG_AUTH_NONE)) {
			img_challenge_clear(&best);
			best = cur;
		} else {
			img_challenge_clear(&cur);
		}
	}
	if (best.scheme == IMG_AUTH_NONE)
		return bt_err_set(e, BT_NOT_FOUND, "no supported challenge in WWW-Authenticate \"%.200s\"", value);
	*out = best;
	return 0;
malformed:
	img_challenge_clear(&best);
	return bt_err_set(e, BT_INVALID_ARGUMENT, "malformed WWW-Authenticate \"%.200s\"", value);
}

int img_token_parse(const char *json, size_t len, char **token, int64_t *expires_in_s, bt_err *e)
{
	json_error_t je;
	json_t *root = json_loadb(json, len, 0, &je);
	const char *t;
	json_t *exp;

	*token = NULL;
	*expires_in_s = 60;
	if (!root || !json_is_object(root)) {
		json_decref(root);
		return bt_err_set(e, BT_INVALID_ARGUMENT, "token answer is not a JSON object");
	}
	t = json_string_value(json_object_get(root, "token"));
	if (!t || !*t)
		t = json_string_value(json_object_get(root, "access_token"));
	if (!t || !*t || strpbrk(t, "\r\n")) {
		json_decref(root);
		return bt_err_set(e, BT_INVALID_ARGUMENT, "token answer holds no token");
	}
	exp = json_object_get(root, "expires_in");
	if (json_is_integer(exp) && json_integer_value(exp) > 0)
		*expires_in_s = json_integer_value(exp);
	*token = bt_xstrdup(t);
	json_decref(root);
	return 0;
}
