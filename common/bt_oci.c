/*
 * bt_oci — parsing of indexes, manifests and configs with jansson,
 * platforms and their matching, chain IDs.
 */
#define _GNU_SOURCE
#include "bt_oci.h"

#include <jansson.h>
#include <string.h>
#include <sys/utsname.h>

#include "bt_util.h"

#define MAX_STR 4096

bool bt_oci_is_index(const char *mt)
{
	return mt && (!strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST));
}

bool bt_oci_is_manifest(const char *mt)
{
	return mt && (!strcmp(mt, MT_OCI_MANIFEST) || !strcmp(mt, MT_DOCKER_MANIFEST));
}

bool bt_oci_is_config(const char *mt)
{
	return mt && (!strcmp(mt, MT_OCI_CONFIG) || !strcmp(mt, MT_DOCKER_CONFIG));
}

bool bt_oci_is_layer(const char *mt)
{
	static const char *const layers[] = {
		MT_OCI_LAYER,
		MT_OCI_LAYER_GZIP,
		MT_OCI_LAYER_ZSTD,
		"application/vnd.oci.image.layer.nondistributable.v1.tar",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
		MT_DOCKER_LAYER,
		MT_DOCKER_LAYER_GZIP,
		MT_DOCKER_LAYER_ZSTD,
		MT_DOCKER_FOREIGN_LAYER,
	};
	for (size_t i = 0; mt && i < BT_ARRAY_LEN(layers); i++)
		if (!strcmp(mt, layers[i]))
			return true;
	return false;
}

void bt_oci_platform_clear(bt_oci_platform *p)
{
	free(p->os);
	free(p->arch);
	free(p->variant);
	free(p->os_version);
	memset(p, 0, sizeof(*p));
}

void bt_oci_desc_clear(bt_oci_desc *d)
{
	free(d->media_type);
	bt_labels_clear(&d->annotations);
	bt_strv_free(d->urls);
	bt_oci_platform_clear(&d->platform);
	memset(d, 0, sizeof(*d));
}

static void platform_copy(bt_oci_platform *dst, const bt_oci_platform *src)
{
	dst->os = bt_xstrdup(src->os);
	dst->arch = bt_xstrdup(src->arch);
	dst->variant = bt_xstrdup(src->variant);
	dst->os_version = bt_xstrdup(src->os_version);
}

void bt_oci_desc_copy(bt_oci_desc *dst, const bt_oci_desc *src)
{
	bt_oci_desc_clear(dst);
	dst->media_type = bt_xstrdup(src->media_type);
	memcpy(dst->digest, src->digest, sizeof(dst->digest));
	dst->size = src->size;
	bt_labels_copy(&dst->annotations, &src->annotations);
	for (size_t i = 0; src->urls && src->urls[i]; i++)
		bt_strv_push(&dst->urls, src->urls[i]);
	dst->has_platform = src->has_platform;
	if (src->has_platform)
		platform_copy(&dst->platform, &src->platform);
}

void bt_oci_index_clear(bt_oci_index *x)
{
	for (size_t i = 0; i < x->n; i++)
		bt_oci_desc_clear(&x->manifests[i]);
	free(x->manifests);
	memset(x, 0, sizeof(*x));
}

void bt_oci_manifest_clear(bt_oci_manifest *m)
{
	bt_oci_desc_clear(&m->config);
	for (size_t i = 0; i < m->n_layers; i++)
		bt_oci_desc_clear(&m->layers[i]);
	free(m->layers);
	memset(m, 0, sizeof(*m));
}

void bt_oci_config_clear(bt_oci_config *c)
{
	bt_oci_platform_clear(&c->platform);
	for (size_t i = 0; i < c->n_diff_ids; i++)
		free(c->diff_ids[i]);
	free(c->diff_ids);
	memset(c, 0, sizeof(*c));
}

/* --- JSON helpers -------------------------------------------------------------- */

static json_t *load(const char *json, size_t len, const char *what, bt_err *e)
{
	json_error_t je;
	json_t *j = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);

	if (!j) {
		bt_err_set(e, BT_INVALID_ARGUMENT, "%s: invalid JSON at line %d column %d: %s", what, je.line, je.column,
			   je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		bt_err_set(e, BT_INVALID_ARGUMENT, "%s: not a JSON object", what);
		return NULL;
	}
	return j;
}

/* A string member (missing: dflt), bounded; NULL with e set when of the wrong type. */
static const char *str_member(json_t *o, const char *key, const char *dflt, const char *what, bt_err *e)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return dflt;
	if (!json_is_string(v) || json_string_length(v) > MAX_STR) {
		bt_err_set(e, BT_INVALID_ARGUMENT, "%s: \"%s\" must be a string (at most %d bytes)", what, key, MAX_STR);
		return NULL;
	}
	return json_string_value(v);
}

static int parse_platform(json_t *o, bt_oci_platform *p, const char *what, bt_err *e)
{
	const char *os = str_member(o, "os", "", what, e);
	const char *arch = os ? str_member(o, "architecture", "", what, e) : NULL;
	const char *variant = arch ? str_member(o, "variant", "", what, e) : NULL;
	const char *osv = variant ? str_member(o, "os.version", "", what, e) : NULL;

	if (!osv)
		return -1;
	p->os = bt_xstrdup(os);
	p->arch = bt_xstrdup(arch);
	p->variant = bt_xstrdup(variant);
	p->os_version = bt_xstrdup(osv);
	return 0;
}

static int parse_desc(json_t *o, bt_oci_desc *d, const char *what, bt_err *e)
{
	const char *mt, *dg;
	json_t *size, *ann, *urls, *plat;

	if (!json_is_object(o))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: a descriptor must be an object", what);
	if (!(mt = str_member(o, "mediaType", NULL, what, e)) && e->code)
		return -1;
	if (!mt || !*mt)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: descriptor without mediaType", what);
	if (!(dg = str_member(o, "digest", NULL, what, e)))
		return e->code ? -1 : bt_err_set(e, BT_INVALID_ARGUMENT, "%s: descriptor without digest", what);
	if (bt_digest_validate(dg, NULL, e) < 0)
		return bt_err_wrap(e, "%s", what);
	size = json_object_get(o, "size");
	if (!json_is_integer(size) || json_integer_value(size) < 0)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: descriptor %s: size must be a non-negative integer", what,
				  dg);
	d->media_type = bt_xstrdup(mt);
	snprintf(d->digest, sizeof(d->digest), "%s", dg);
	d->size = json_integer_value(size);
	ann = json_object_get(o, "annotations");
	if (ann && !json_is_null(ann)) {
		const char *k;
		json_t *v;
		if (!json_is_object(ann))
			return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: annotations must be an object", what);
		json_object_foreach(ann, k, v)
		{
			if (!json_is_string(v))
				return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: annotation %.100s must be a string", what, k);
			bt_labels_set(&d->annotations, k, json_string_value(v));
		}
		if (bt_labels_validate(&d->annotations, true, e) < 0)
			return bt_err_wrap(e, "%s: annotations", what);
	}
	urls = json_object_get(o, "urls");
	if (urls && !json_is_null(urls)) {
		size_t i;
		json_t *u;
		if (!json_is_array(urls) || json_array_size(urls) > 16)
			return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: urls must be an array of at most 16", what);
		json_array_foreach(urls, i, u)
		{
			if (!json_is_string(u) || json_string_length(u) > MAX_STR)
				return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: urls must hold strings", what);
			bt_strv_push(&d->urls, json_string_value(u));
		}
	}
	plat = json_object_get(o, "platform");
	if (plat && !json_is_null(plat)) {
		if (!json_is_object(plat))
			return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: platform must be an object", what);
		if (parse_platform(plat, &d->platform, what, e) < 0)
			return -1;
		d->has_platform = true;
	}
	return 0;
}

static int check_schema(json_t *j, const char *what, bt_err *e)
{
	json_t *v = json_object_get(j, "schemaVersion");
	if (!json_is_integer(v))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: schemaVersion missing", what);
	if (json_integer_value(v) == 1)
		return bt_err_set(e, BT_UNIMPLEMENTED, "%s: Docker schema 1 manifests are not supported", what);
	if (json_integer_value(v) != 2)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: schemaVersion %lld not supported", what,
				  (long long)json_integer_value(v));
	return 0;
}

char *bt_oci_sniff_media_type(const char *json, size_t len)
{
	json_t *j = json_loadb(json, len, 0, NULL);
	char *mt = NULL;

	if (j && json_is_object(j)) {
		json_t *v = json_object_get(j, "mediaType");
		if (json_is_string(v))
			mt = bt_xstrdup(json_string_value(v));
		else if (json_object_get(j, "manifests"))
			mt = bt_xstrdup(MT_OCI_INDEX);
		else if (json_object_get(j, "layers"))
			mt = bt_xstrdup(MT_OCI_MANIFEST);
	}
	json_decref(j);
	return mt;
}

int bt_oci_parse_index(const char *json, size_t len, bt_oci_index *out, bt_err *e)
{
	json_t *j = load(json, len, "index", e);
	json_t *arr, *v;
	size_t i;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!j)
		return -1;
	if (check_schema(j, "index", e) < 0)
		goto out;
	arr = json_object_get(j, "manifests");
	if (!json_is_array(arr)) {
		bt_err_set(e, BT_INVALID_ARGUMENT, "index: \"manifests\" must be an array");
		goto out;
	}
	if (json_array_size(arr) > OCI_MAX_MANIFESTS) {
		bt_err_set(e, BT_RESOURCE_EXHAUSTED, "index: %zu manifests (at most %d)", json_array_size(arr),
			   OCI_MAX_MANIFESTS);
		goto out;
	}
	out->manifests = bt_xcalloc(json_array_size(arr) + 1, sizeof(bt_oci_desc));
	json_array_foreach(arr, i, v)
	{
		if (parse_desc(v, &out->manifests[out->n++], "index", e) < 0)
			goto out;
	}
	rc = 0;
out:
	json_decref(j);
	if (rc < 0)
		bt_oci_index_clear(out);
	return rc;
}

int bt_oci_parse_manifest(const char *json, size_t len, bt_oci_manifest *out, bt_err *e)
{
	json_t *j = load(json, len, "manifest", e);
	json_t *cfg, *arr, *v;
	size_t i;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!j)
		return -1;
	if (check_schema(j, "manifest", e) < 0)
		goto out;
	cfg = json_object_get(j, "config");
	if (!cfg) {
		bt_err_set(e, BT_INVALID_ARGUMENT, "manifest: no config");
		goto out;
	}
	if (parse_desc(cfg, &out->config, "manifest config", e) < 0)
		goto out;
	arr = json_object_get(j, "layers");
	if (!json_is_array(arr)) {
		bt_err_set(e, BT_INVALID_ARGUMENT, "manifest: \"layers\" must be an array");
		goto out;
	}
	if (json_array_size(arr) > OCI_MAX_LAYERS) {
		bt_err_set(e, BT_RESOURCE_EXHAUSTED, "manifest: %zu layers (at most %d)", json_array_size(arr),
			   OCI_MAX_LAYERS);
		goto out;
	}
	out->layers = bt_xcalloc(json_array_size(arr) + 1, sizeof(bt_oci_desc));
	json_array_foreach(arr, i, v)
	{
		if (parse_desc(v, &out->layers[out->n_layers++], "manifest layer", e) < 0)
			goto out;
		if (!bt_oci_is_layer(out->layers[i].media_type)) {
			bt_err_set(e, BT_UNIMPLEMENTED, "manifest: layer %s: unknown media type %s", out->layers[i].digest,
				   out->layers[i].media_type);
			goto out;
		}
	}
	rc = 0;
out:
	json_decref(j);
	if (rc < 0)
		bt_oci_manifest_clear(out);
	return rc;
}

int bt_oci_parse_config(const char *json, size_t len, bt_oci_config *out, bt_err *e)
{
	json_t *j = load(json, len, "config", e);
	json_t *rootfs, *ids, *v;
	size_t i;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!j)
		return -1;
	if (parse_platform(j, &out->platform, "config", e) < 0)
		goto out;
	rootfs = json_object_get(j, "rootfs");
	ids = json_is_object(rootfs) ? json_object_get(rootfs, "diff_ids") : NULL;
	if (!json_is_array(ids)) {
		bt_err_set(e, BT_INVALID_ARGUMENT, "config: rootfs.diff_ids must be an array");
		goto out;
	}
	if (json_array_size(ids) > OCI_MAX_LAYERS) {
		bt_err_set(e, BT_RESOURCE_EXHAUSTED, "config: %zu diff_ids (at most %d)", json_array_size(ids),
			   OCI_MAX_LAYERS);
		goto out;
	}
	out->diff_ids = bt_xcalloc(json_array_size(ids) + 1, sizeof(char *));
	json_array_foreach(ids, i, v)
	{
		if (!json_is_string(v) || bt_digest_validate(json_string_value(v), NULL, e) < 0) {
			if (!json_is_string(v))
				bt_err_set(e, BT_INVALID_ARGUMENT, "config: diff_ids[%zu] must be a digest string", i);
			else
				bt_err_wrap(e, "config: diff_ids[%zu]", i);
			goto out;
		}
		out->diff_ids[out->n_diff_ids++] = bt_xstrdup(json_string_value(v));
	}
	rc = 0;
out:
	json_decref(j);
	if (rc < 0)
		bt_oci_config_clear(out);
	return rc;
}

/* --- platforms ----------------------------------------------------------------- */

static const char *norm_arch(const char *a, const char **variant)
{
	static const struct {
		const char *from, *to, *variant;
	} map[] = {
		{ "x86_64", "amd64", NULL }, { "x86-64", "amd64", NULL }, { "i386", "386", NULL },
		{ "i686", "386", NULL },     { "aarch64", "arm64", NULL }, { "armhf", "arm", "v7" },
		{ "armel", "arm", "v6" },    { "armv7l", "arm", "v7" },    { "armv6l", "arm", "v6" },
	};
	for (size_t i = 0; i < BT_ARRAY_LEN(map); i++) {
		if (!strcmp(a, map[i].from)) {
			if (map[i].variant && (!*variant || !**variant))
				*variant = map[i].variant;
			return map[i].to;
		}
	}
	return a;
}

int bt_oci_platform_parse(const char *s, bt_oci_platform *out, bt_err *e)
{
	_cleanup_free_ char *copy = NULL;
	char *parts[4] = { 0 };
	int n = 0;

	memset(out, 0, sizeof(*out));
	if (!s || !*s) {
		bt_oci_platform_host(out);
		return 0;
	}
	if (strlen(s) > 128)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "platform \"%.100s…\": too long", s);
	copy = bt_xstrdup(s);
	for (char *p = copy, *save = NULL, *tok; (tok = strtok_r(p, "/", &save)); p = NULL) {
		if (n == 3)
			return bt_err_set(e, BT_INVALID_ARGUMENT, "platform \"%s\": expected os/arch[/variant]", s);
		parts[n++] = tok;
	}
	if (n < 2 || strchr(s, ' '))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "platform \"%s\": expected os/arch[/variant]", s);
	const char *variant = n == 3 ? parts[2] : "";
	const char *arch = norm_arch(parts[1], &variant);
	out->os = bt_xstrdup(parts[0]);
	out->arch = bt_xstrdup(arch);
	out->variant = bt_xstrdup(variant);
	out->os_version = bt_xstrdup("");
	return 0;
}

void bt_oci_platform_host(bt_oci_platform *out)
{
	struct utsname u;
	const char *variant = "";
	const char *arch = "amd64";

	if (uname(&u) == 0)
		arch = norm_arch(u.machine, &variant);
	if (!strcmp(arch, "arm64"))
		variant = "v8";
	out->os = bt_xstrdup("linux");
	out->arch = bt_xstrdup(arch);
	out->variant = bt_xstrdup(variant);
	out->os_version = bt_xstrdup("");
}

char *bt_oci_platform_str(const bt_oci_platform *p)
{
	if (p->variant && *p->variant)
		return bt_xasprintf("%s/%s/%s", p->os, p->arch, p->variant);
	return bt_xasprintf("%s/%s", p->os, p->arch);
}

/* arm64's default variant is v8; an empty one matches it. */
static const char *effective_variant(const bt_oci_platform *p)
{
	if (!strcmp(p->arch, "arm64") && (!p->variant || !*p->variant))
		return "v8";
	return p->variant ? p->variant : "";
}

int bt_oci_platform_score(const bt_oci_platform *want, const bt_oci_platform *have)
{
	const char *wv = effective_variant(want), *hv;
	const char *harch;

	if (strcmp(want->os, have->os ? have->os : "") != 0)
		return 0;
	harch = have->arch ? have->arch : "";
	if (!strcmp(want->arch, harch)) {
		hv = effective_variant(have);
		if (!*wv || !strcmp(wv, hv))
			return 10;
		/* an older arm variant runs on a newer one (v7 host runs v6, v5) */
		if (!strcmp(want->arch, "arm") && hv[0] == 'v' && wv[0] == 'v' && hv[1] && hv[1] < wv[1])
			return 5 + (hv[1] - '0');
		return 0;
	}
	/* amd64 runs 386; arm64 runs arm/v7 */
	if (!strcmp(want->arch, "amd64") && !strcmp(harch, "386"))
		return 2;
	if (!strcmp(want->arch, "arm64") && !strcmp(harch, "arm"))
		return 1;
	return 0;
}

int bt_oci_index_choose(const bt_oci_index *x, const bt_oci_platform *want, bt_err *e)
{
	int best = -1, best_score = 0;
	bt_buf have = { 0 };

	for (size_t i = 0; i < x->n; i++) {
		const bt_oci_desc *d = &x->manifests[i];
		if (!bt_oci_is_manifest(d->media_type) && !bt_oci_is_index(d->media_type))
			continue;
		int score = d->has_platform ? bt_oci_platform_score(want, &d->platform) : 1;
		if (score > best_score) {
			best = (int)i;
			best_score = score;
		}
	}
	if (best >= 0)
		return best;
	for (size_t i = 0; i < x->n; i++) {
		if (!x->manifests[i].has_platform)
			continue;
		_cleanup_free_ char *p = bt_oci_platform_str(&x->manifests[i].platform);
		bt_buf_appendf(&have, "%s%s", have.len ? ", " : "", p);
	}
	_cleanup_free_ char *w = bt_oci_platform_str(want);
	bt_err_set(e, BT_NOT_FOUND, "no manifest for platform %s (the image has: %s)", w,
		   have.len ? have.data : "none");
	bt_buf_free(&have);
	return -1;
}

void bt_oci_chain_ids(char *const *diff_ids, size_t n, char (*chain)[BT_DIGEST_STR_LEN])
{
	for (size_t i = 0; i < n; i++) {
		if (i == 0) {
			snprintf(chain[0], BT_DIGEST_STR_LEN, "%s", diff_ids[0]);
			continue;
		}
		_cleanup_free_ char *s = bt_xasprintf("%s %s", chain[i - 1], diff_ids[i]);
		bt_digest_buf(s, strlen(s), chain[i]);
	}
}
