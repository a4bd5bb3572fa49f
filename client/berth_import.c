/*
 * berth_import — `berth images import`: an OCI layout archive (as skopeo,
 * ctr and berth export write it) or a `docker save` archive (manifest.json
 * with RepoTags, configs and layer tars beside it), read as one stream.
 *
 * The archive is read once, in order, and never held whole: every blob is
 * streamed into the content store as its entry goes by (its digest checked
 * when the path names one), small documents (index.json, manifest.json,
 * oci-layout) are kept, bounded.  Only when the whole archive has been read
 * and every image it names is complete in the content store are the image
 * records written, so a truncated or inconsistent archive names nothing.
 */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <inttypes.h>
#include <jansson.h>
#include <stddef.h>
#include <string.h>

#include "berth_internal.h"
#include "bt_oci.h"
#include "bt_util.h"
#include "image_ref.h"

#define IMPORT_CHUNK (1 << 20)
/* The import's lease expires after a day, as containerd's pull lease. */
#define IMPORT_LEASE_MS (24LL * 3600 * 1000)
/* Entries an archive may hold (blobs, directories, links, the rest). */
#define IMPORT_MAX_ENTRIES 100000

/* A file of the archive that went into the content store, or a link to one. */
typedef struct member {
	char *path;
	char *link; /* a symlink's or hard link's target path, resolved; NULL for a file */
	char digest[72];
	int64_t size;
	unsigned char magic[4]; /* its first bytes: tells a compressed layer from a plain one */
	size_t n_magic;
} member;

/* A name and what it points at, written once everything checks out. */
typedef struct named {
	char *name;
	bt_oci_desc target;
} named;

typedef struct importer {
	berth_client *c;
	const char *ns;
	const berth_import_opts *o;
	struct archive *a;
	char *inbuf; /* the archive source's bytes */
	member *members;
	size_t n_members;
	bt_buf index_json, manifest_json, layout;
	bool has_index, has_manifest;
	named *names;
	size_t n_names;
	char *lease; /* holds every blob against garbage collection until the images stand */
	bt_err err;
} importer;

/* The import's lease holds digest (added before the blob is written, where
 * the digest is known first). */
static int hold(importer *x, const char *digest)
{
	berth_error err;
	if (x->lease && berth_lease_add_resource(x->c, x->ns, x->lease, "content", digest, &err) < 0)
		return bt_err_set(&x->err, err.code, "import: lease %s: %s", x->lease, err.message);
	return 0;
}

/* --- reading the archive -------------------------------------------------------------- */

static la_ssize_t src_read(struct archive *a, void *arg, const void **buf)
{
	importer *x = arg;
	int64_t n = x->o->source(x->o->arg, x->inbuf, IMPORT_CHUNK);

	(void)a;
	if (n < 0) {
		if (!x->err.code)
			bt_err_set(&x->err, BT_CANCELLED, "import: reading the archive failed");
		return -1;
	}
	*buf = x->inbuf;
	return (la_ssize_t)n;
}

/* libarchive's error for the current archive, unless ours says more. */
static int ar_fail(importer *x, const char *what)
{
	if (x->err.code)
		return -1;
	const char *m = archive_error_string(x->a);
	return bt_err_set(&x->err, BT_INVALID_ARGUMENT, "import: %s: %s", what, m ? m : "unreadable archive");
}

/* "./a//b/" → "a/b"; NULL for paths with ".." or nothing left (they name nothing we use). */
static char *clean_path(const char *p)
{
	bt_buf b = { 0 };
	const char *s = p;

	while (*s) {
		while (*s == '/')
			s++;
		const char *e = strchrnul(s, '/');
		size_t n = (size_t)(e - s);
		if (n == 2 && s[0] == '.' && s[1] == '.') {
			bt_buf_free(&b);
			return NULL;
		}
		if (n && !(n == 1 && s[0] == '.')) {
			if (b.len)
				bt_buf_append(&b, "/", 1);
			bt_buf_append(&b, s, n);
		}
		s = e;
	}
	if (!b.len) {
		bt_buf_free(&b);
		return NULL;
	}
	bt_buf_append(&b, "", 1);
	return b.data;
}

static member *add_member(importer *x, char *path)
{
	for (size_t i = 0; i < x->n_members; i++)
		if (!strcmp(x->members[i].path, path)) {
			/* a later entry of the same path replaces the earlier one, as tar does */
			free(path);
			free(x->members[i].link);
			memset(&x->members[i].link, 0, sizeof(*x->members) - offsetof(member, link));
			return &x->members[i];
		}
	x->members = bt_xrealloc(x->members, (x->n_members + 1) * sizeof(*x->members));
	member *m = &x->members[x->n_members++];
	memset(m, 0, sizeof(*m));
	m->path = path;
	return m;
}

/* The file a path names, following links (bounded). */
static const member *find_member(const importer *x, const char *path)
{
	_cleanup_free_ char *p = clean_path(path);

	for (int hops = 0; p && hops < 16; hops++) {
		const member *m = NULL;
		for (size_t i = 0; i < x->n_members && !m; i++)
			if (!strcmp(x->members[i].path, p))
				m = &x->members[i];
		if (!m || !m->link)
			return m;
		free(p);
		p = bt_xstrdup(m->link);
	}
	return NULL;
}

/* Reads the current entry whole into b, within max bytes. */
static int read_small(importer *x, const char *path, bt_buf *b, size_t max)
{
	char buf[65536];
	la_ssize_t n;

	b->len = 0;
	while ((n = archive_read_data(x->a, buf, sizeof(buf))) > 0) {
		if (b->len + (size_t)n > max)
			return bt_err_set(&x->err, BT_RESOURCE_EXHAUSTED, "import: %s is larger than %zu bytes", path, max);
		bt_buf_append(b, buf, (size_t)n);
	}
	return n < 0 ? ar_fail(x, path) : 0;
}

typedef struct entry_src {
	importer *x;
	member *m;
	int64_t got;
} entry_src;

static int64_t entry_read(void *arg, void *buf, size_t len)
{
	entry_src *s = arg;
	la_ssize_t n = archive_read_data(s->x->a, buf, len);

	if (n < 0) {
		ar_fail(s->x, s->m->path);
		return -1;
	}
	for (la_ssize_t i = 0; i < n && s->m->n_magic < sizeof(s->m->magic); i++)
		s->m->magic[s->m->n_magic++] = ((unsigned char *)buf)[i];
	s->got += n;
	return n;
}

static void report(importer *x, const char *kind, const member *m, const char *state, int64_t offset)
{
	if (!x->o->progress)
		return;
	berth_descriptor d = { .media_type = (char *)"", .size = m->size };
	snprintf(d.digest, sizeof(d.digest), "%s", m->digest);
	berth_progress p = { .kind = kind, .desc = &d, .state = state, .offset = offset, .total = m->size };
	x->o->progress(x->o->progress_arg, &p, 1);
}

/* Streams the current entry into the content store; expected (may be NULL) is the digest its path names. */
static int ingest_entry(importer *x, member *m, const char *expected)
{
	berth_content_info info;
	berth_error err;
	char digest[72];

	if (expected) {
		snprintf(m->digest, sizeof(m->digest), "%s", expected);
		if (hold(x, expected) < 0)
			return -1;
		if (berth_content_get_info(x->c, x->ns, expected, &info, &err) == 0) {
			bool same = info.size == m->size;
			berth_content_info_clear(&info);
			if (!same)
				return bt_err_set(&x->err, BT_INVALID_ARGUMENT,
						  "import: %s holds %" PRId64 " bytes, but %s is stored with a different size",
						  m->path, m->size, expected);
			/* stored already: only its first bytes are needed */
			la_ssize_t n = archive_read_data(x->a, m->magic, sizeof(m->magic));
			if (n < 0)
				return ar_fail(x, m->path);
			m->n_magic = (size_t)n;
			report(x, "blob", m, "exists", m->size);
			return 0;
		}
	}
	_cleanup_free_ char *rnd = bt_random_hex(8);
	_cleanup_free_ char *ref = expected ? bt_xasprintf("import-%s", expected)
					    : bt_xasprintf("import-%s-%s", m->path, rnd);
	entry_src s = { .x = x, .m = m };
	berth_ingest_opts io = {
		.ref = ref,
		.expected_digest = expected,
		.expected_size = m->size,
		.source = entry_read,
		.arg = &s,
		.retry_ms = -1, /* the archive cannot be rewound */
	};
	if (expected) /* otherwise its digest is known only once stored */
		report(x, "blob", m, "importing", 0);
	if (berth_content_ingest(x->c, x->ns, &io, digest, &err) < 0) {
		if (x->err.code)
			return -1;
		return bt_err_set(&x->err, err.code, "import: %s: %s", m->path, err.message);
	}
	if (s.got != m->size)
		return bt_err_set(&x->err, BT_INVALID_ARGUMENT, "import: %s: read %" PRId64 " of %" PRId64 " bytes", m->path,
				  s.got, m->size);
	snprintf(m->digest, sizeof(m->digest), "%s", digest);
	if (!expected && hold(x, digest) < 0)
		return -1;
	report(x, "blob", m, "done", m->size);
	return 0;
}

static bool is_hex64(const char *s, size_t n)
{
	if (n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* One entry of the archive. */
static int take_entry(importer *x, struct archive_entry *en)
{
	const char *raw = archive_entry_pathname(en);
	char *path = raw ? clean_path(raw) : NULL;
	mode_t type = archive_entry_filetype(en);
	const char *hard = archive_entry_hardlink(en);

	if (!path)
		return 0;
	if (hard || type == AE_IFLNK) {
		/* docker save links identical layers to the first copy */
		const char *t = hard ? hard : archive_entry_symlink(en);
		char *target = NULL;
		if (t && hard) {
			target = clean_path(t);
		} else if (t && *t != '/') {
			const char *slash = strrchr(path, '/');
			_cleanup_free_ char *joined = slash ? bt_xasprintf("%.*s/%s", (int)(slash - path), path, t)
							    : bt_xstrdup(t);
			target = clean_path(joined);
		}
		if (!target) {
			free(path);
			return 0;
		}
		add_member(x, path)->link = target;
		return 0;
	}
	if (type != AE_IFREG) {
		free(path);
		return 0;
	}
	int64_t size = archive_entry_size(en);
	if (!strcmp(path, "index.json") || !strcmp(path, "manifest.json") || !strcmp(path, "oci-layout")) {
		bt_buf *b = path[0] == 'i' ? &x->index_json : path[0] == 'm' ? &x->manifest_json : &x->layout;
		int rc = read_small(x, path, b, OCI_MAX_MANIFEST);
		if (path[0] == 'i')
			x->has_index = true;
		else if (path[0] == 'm')
			x->has_manifest = true;
		free(path);
		return rc;
	}
	const char *expected = NULL;
	char want[72];
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	size_t blen = strlen(base);
	if (bt_startswith(path, "blobs/sha256/") && !strchr(path + 13, '/')) {
		if (!is_hex64(path + 13, strlen(path + 13))) {
			int rc = bt_err_set(&x->err, BT_INVALID_ARGUMENT, "import: %s is not named by a sha256 digest",
					    path);
			free(path);
			return rc;
		}
		snprintf(want, sizeof(want), "sha256:%s", path + 13);
		expected = want;
	} else if (!strchr(path, '/') && blen == 69 && !strcmp(base + 64, ".json") && is_hex64(base, 64)) {
		/* docker save: a config named by its digest */
		snprintf(want, sizeof(want), "sha256:%.64s", base);
		expected = want;
	} else if (!(blen > 4 && !strcmp(base + blen - 4, ".tar")) && !(blen > 5 && !strcmp(base + blen - 5, ".json"))) {
		/* docker save's per-layer json, VERSION, repositories: not needed */
		free(path);
		return 0;
	}
	member *m = add_member(x, path);
	m->size = size;
	return ingest_entry(x, m, expected);
}

static int read_archive(importer *x)
{
	struct archive_entry *en;
	size_t n = 0;
	int r;

	x->a = archive_read_new();
	if (!x->a)
		bt_oom();
	archive_read_support_filter_gzip(x->a);
	archive_read_support_filter_zstd(x->a);
	archive_read_support_filter_xz(x->a);
	archive_read_support_format_tar(x->a);
	x->inbuf = bt_xmalloc(IMPORT_CHUNK);
	if (archive_read_open(x->a, x, NULL, src_read, NULL) != ARCHIVE_OK)
		return ar_fail(x, "not a tar archive");
	while ((r = archive_read_next_header(x->a, &en)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
		if (++n > IMPORT_MAX_ENTRIES)
			return bt_err_set(&x->err, BT_RESOURCE_EXHAUSTED, "import: more than %d entries in the archive",
					  IMPORT_MAX_ENTRIES);
		if (take_entry(x, en) < 0)
			return -1;
	}
	if (r != ARCHIVE_EOF)
		return ar_fail(x, n ? "archive" : "not a tar archive");
	if (n == 0)
		return bt_err_set(&x->err, BT_INVALID_ARGUMENT, "import: the archive is empty");
	return 0;
}

/* --- naming -------------------------------------------------------------------------- */

/* A name as it will be stored: references normalized ("busybox:1" → docker.io/library/busybox:1). */
static int normalize(importer *x, const char *name, char **out)
{
	img_ref r;
	char buf[IMG_REF_STR_MAX];
	bt_err e;

	if (img_ref_parse(name, &r, &e) < 0)
		return bt_err_set(&x->err, BT_INVALID_ARGUMENT, "import: image name \"%s\": %s", name, e.msg);
	*out = bt_xstrdup(img_ref_string(&r, buf));
	return 0;
}

static bool is_tag(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 128 || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == '_' || s[i] == '.' || s[i] == '-' || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

static int add_name(importer *x, const char *name, const bt_oci_desc *target)
{
	char *n;

	if (normalize(x, name, &n) < 0)
		return -1;
	for (size_t i = 0; i < x->n_names; i++)
		if (!strcmp(x->names[i].name, n)) {
			bool same = !strcmp(x->names[i].target.digest, target->digest);
			free(n);
			if (same)
				return 0;
			return bt_err_set(&x->err, BT_INVALID_ARGUMENT, "import: the archive names two images %s",
					  x->names[i].name);
		}
	x->names = bt_xrealloc(x->names, (x->n_names + 1) * sizeof(*x->names));
	named *d = &x->names[x->n_names++];
	memset(d, 0, sizeof(*d));
	d->name = n;
	bt_oci_desc_copy(&d->target, target);
	return 0;
}

/* The config digest of a stored manifest, "" when it is not a manifest. */
static int manifest_config(importer *x, const bt_oci_desc *d, char out[72])
{
	bt_buf b = { 0 };
	bt_oci_manifest m;

	out[0] = 0;
	if (!bt_oci_is_manifest(d->media_type))
		return 0;
	if (berth_read_doc(x->c, x->ns, "import: manifest", d->digest, OCI_MAX_MANIFEST, &b, &x->err) < 0)
		return -1;
	if (bt_oci_parse_manifest(b.data, b.len, &m, &x->err) < 0) {
		bt_buf_free(&b);
		return bt_err_wrap(&x->err, "import: manifest %s", d->digest);
	}
	snprintf(out, 72, "%s", m.config.digest);
	bt_oci_manifest_clear(&m);
	bt_buf_free(&b);
	return 0;
}

/* manifest.json of a docker save archive, parsed and checked. */
static json_t *docker_manifest(importer *x)
{
	json_error_t je;
	json_t *j = json_loadb(x->manifest_json.data, x->manifest_json.len, JSON_REJECT_DUPLICATES, &je);

	if (!j || !json_is_array(j)) {
		bt_err_set(&x->err, BT_INVALID_ARGUMENT, "import: manifest.json is not a JSON array%s%s",
			   j ? "" : ": ", j ? "" : je.text);
		json_decref(j);
		return NULL;
	}
	return j;
}

/* The stored file an archive path names, or an error naming it. */
static const member *need_member(importer *x, const char *what, json_t *path)
{
	const member *m = json_is_string(path) ? find_member(x, json_string_value(path)) : NULL;

	if (!m)
		bt_err_set(&x->err, BT_INVALID_ARGUMENT, "import: manifest.json: %s %s is not in the archive", what,
			   json_is_string(path) ? json_string_value(path) : "(not a string)");
	return m;
}

static const char *layer_type(const member *m)
{
	if (m->n_magic >= 2 && m->magic[0] == 0x1f && m->magic[1] == 0x8b)
		return MT_DOCKER_LAYER_GZIP;
	if (m->n_magic >= 4 && m->magic[0] == 0x28 && m->magic[1] == 0xb5 && m->magic[2] == 0x2f && m->magic[3] == 0xfd)
		return MT_DOCKER_LAYER_ZSTD;
	return MT_DOCKER_LAYER;
}

static int64_t doc_source(void *arg, void *buf, size_t len)
{
	bt_buf *b = arg;
	size_t n = b->len < len ? b->len : len;
	memcpy(buf, b->data, n);
	b->data += n;
	b->len -= n;
	return (int64_t)n;
}

/* Writes a docker save image's manifest (Docker schema 2) into the content store. */
static int docker_image(importer *x, json_t *e, size_t idx)
{
	json_t *layers = json_object_get(e, "Layers"), *tags = json_object_get(e, "RepoTags");
	const member *cfg = need_member(x, "Config", json_object_get(e, "Config"));
	_cleanup_free_ char *rnd = NULL, *ref = NULL;
	json_t *man, *ls;
	berth_error err;
	char digest[72];
	int rc = -1;

	if (!cfg)
		return -1;
	if (!json_is_array(layers) || json_array_size(layers) > OCI_MAX_LAYERS)
		return bt_err_set(&x->err, BT_INVALID_ARGUMENT, "import: manifest.json entry %zu: Layers is not a list of at most %d",
				  idx, OCI_MAX_LAYERS);
	man = json_object();
	ls = json_array();
	json_object_set_new(man, "schemaVersion", json_integer(2));
	json_object_set_new(man, "mediaType", json_string(MT_DOCKER_MANIFEST));
	json_object_set_new(man, "config", json_pack("{s:s,s:s,s:I}", "mediaType", MT_DOCKER_CONFIG, "digest",
						     cfg->digest, "size", (json_int_t)cfg->size));
	for (size_t i = 0; i < json_array_size(layers); i++) {
		const member *l = need_member(x, "layer", json_array_get(layers, i));
		if (!l)
			goto out;
		json_array_append_new(ls, json_pack("{s:s,s:s,s:I}", "mediaType", layer_type(l), "digest", l->digest,
						    "size", (json_int_t)l->size));
	}
	json_object_set_new(man, "layers", ls);
	ls = NULL;
	char *s = json_dumps(man, JSON_COMPACT);
	bt_buf doc = { .data = s, .len = strlen(s) }, cursor = doc;
	rnd = bt_random_hex(8);
	ref = bt_xasprintf("import-manifest-%s", rnd);
	berth_ingest_opts io = { .ref = ref, .expected_size = (int64_t)doc.len, .source = doc_source, .arg = &cursor };
	if (berth_content_ingest(x->c, x->ns, &io, digest, &err) < 0) {
		bt_err_set(&x->err, err.code, "import: manifest of manifest.json entry %zu: %s", idx, err.message);
		free(s);
		goto out;
	}
	free(s);
	if (hold(x, digest) < 0)
		goto out;
	bt_oci_desc d = { .media_type = (char *)MT_DOCKER_MANIFEST, .size = (int64_t)doc.len };
	snprintf(d.digest, sizeof(d.digest), "%s", digest);
	size_t named_before = x->n_names;
	for (size_t i = 0; json_is_array(tags) && i < json_array_size(tags); i++) {
		json_t *t = json_array_get(tags, i);
		if (!json_is_string(t)) {
			bt_err_set(&x->err, BT_INVALID_ARGUMENT, "import: manifest.json entry %zu: a RepoTag is not a string", idx);
			goto out;
		}
		if (add_name(x, json_string_value(t), &d) < 0)
			goto out;
	}
	if (x->n_names == named_before) {
		if (!x->o->base_name) {
			bt_err_set(&x->err, BT_INVALID_ARGUMENT,
				   "import: manifest.json entry %zu has no RepoTags: name it with --base-name", idx);
			goto out;
		}
		if (add_name(x, x->o->base_name, &d) < 0)
			goto out;
	}
	rc = 0;
out:
	json_decref(ls);
	json_decref(man);
	return rc;
}

/* RepoTags of the docker manifest.json entry whose config matches (for OCI entries without names). */
static int names_from_docker(importer *x, json_t *dm, const bt_oci_desc *d, bool *found)
{
	char cfg[72];

	*found = false;
	if (!dm || manifest_config(x, d, cfg) < 0 || !cfg[0])
		return x->err.code ? -1 : 0;
	for (size_t i = 0; i < json_array_size(dm); i++) {
		json_t *e = json_array_get(dm, i), *tags = json_object_get(e, "RepoTags");
		const member *m = json_is_string(json_object_get(e, "Config"))
					  ? find_member(x, json_string_value(json_object_get(e, "Config")))
					  : NULL;
		if (!m || strcmp(m->digest, cfg))
			continue;
		for (size_t k = 0; json_is_array(tags) && k < json_array_size(tags); k++)
			if (json_is_string(json_array_get(tags, k))) {
				if (add_name(x, json_string_value(json_array_get(tags, k)), d) < 0)
					return -1;
				*found = true;
			}
	}
	return 0;
}

static int oci_names(importer *x)
{
	bt_oci_index idx;
	json_t *dm = NULL;
	int rc = -1;

	if (x->layout.len) {
		json_t *l = json_loadb(x->layout.data, x->layout.len, 0, NULL);
		const char *v = json_string_value(json_object_get(l, "imageLayoutVersion"));
		bool ok = v && !strcmp(v, "1.0.0");
		json_decref(l);
		if (!ok)
			return bt_err_set(&x->err, BT_INVALID_ARGUMENT, "import: oci-layout does not declare version 1.0.0");
	}
	if (bt_oci_parse_index(x->index_json.data, x->index_json.len, &idx, &x->err) < 0)
		return bt_err_wrap(&x->err, "import: index.json");
	if (x->has_manifest && !(dm = docker_manifest(x)))
		goto out;
	for (size_t i = 0; i < idx.n; i++) {
		const bt_oci_desc *d = &idx.manifests[i];
		const char *full = bt_labels_get(&d->annotations, "io.containerd.image.name");
		const char *ref = bt_labels_get(&d->annotations, "org.opencontainers.image.ref.name");
		bool found = false;

		if (!bt_oci_is_index(d->media_type) && !bt_oci_is_manifest(d->media_type)) {
			bt_err_set(&x->err, BT_INVALID_ARGUMENT, "import: index.json entry %zu has media type %s", i,
				   d->media_type);
			goto out;
		}
		if (full && *full) {
			if (add_name(x, full, d) < 0)
				goto out;
			continue;
		}
		if (ref && *ref && !is_tag(ref)) {
			if (add_name(x, ref, d) < 0)
				goto out;
			continue;
		}
		if (names_from_docker(x, dm, d, &found) < 0)
			goto out;
		if (found)
			continue;
		if (!x->o->base_name) {
			bt_err_set(&x->err, BT_INVALID_ARGUMENT, "import: index.json entry %zu (%s) %s: name it with --base-name",
				   i, d->digest, ref && *ref ? "is named only by a tag" : "has no name");
			goto out;
		}
		_cleanup_free_ char *n = ref && *ref ? bt_xasprintf("%s:%s", x->o->base_name, ref)
						     : bt_xstrdup(x->o->base_name);
		if (add_name(x, n, d) < 0)
			goto out;
	}
	rc = 0;
out:
	json_decref(dm);
	bt_oci_index_clear(&idx);
	return rc;
}

static int docker_names(importer *x)
{
	json_t *dm = docker_manifest(x);
	int rc = dm ? 0 : -1;

	for (size_t i = 0; dm && i < json_array_size(dm) && rc == 0; i++) {
		json_t *e = json_array_get(dm, i);
		if (!json_is_object(e))
			rc = bt_err_set(&x->err, BT_INVALID_ARGUMENT, "import: manifest.json entry %zu is not an object", i);
		else
			rc = docker_image(x, e, i);
	}
	json_decref(dm);
	return rc;
}

/* --- records ------------------------------------------------------------------------- */

static void to_public(const bt_oci_desc *d, berth_descriptor *out)
{
	memset(out, 0, sizeof(*out));
	out->media_type = d->media_type;
	snprintf(out->digest, sizeof(out->digest), "%s", d->digest);
	out->size = d->size;
}

/* Every image complete for the platforms asked for, before any record is written. */
static int check_complete(importer *x, const named *n)
{
	berth_image img = { .name = n->name };
	berth_image_report r;
	berth_error err;

	to_public(&n->target, &img.target);
	if (berth_image_inspect(x->c, x->ns, &img, x->o->all_platforms ? NULL : x->o->platform, &r, &err) < 0)
		return bt_err_set(&x->err, err.code, "import: %s: %s", n->name, err.message);
	for (size_t k = 0; x->o->all_platforms && r.complete && r.platforms && r.platforms[k]; k++) {
		berth_image_report rp;
		if (berth_image_inspect(x->c, x->ns, &img, r.platforms[k], &rp, &err) < 0) {
			berth_image_report_clear(&r);
			return bt_err_set(&x->err, err.code, "import: %s: %s", n->name, err.message);
		}
		r.complete = rp.complete;
		r.blobs = rp.blobs;
		r.present = rp.present;
		berth_image_report_clear(&rp);
	}
	bool ok = r.complete;
	int blobs = r.blobs, present = r.present;
	berth_image_report_clear(&r);
	if (!ok)
		return bt_err_set(&x->err, BT_FAILED_PRECONDITION,
				  "import: %s is incomplete: the archive holds %d of its %d blobs for %s", n->name, present,
				  blobs, x->o->all_platforms ? "every platform" : x->o->platform ? x->o->platform : "this host");
	return 0;
}

static int write_records(importer *x, berth_image **out, size_t *n_out)
{
	berth_image *v = bt_xcalloc(x->n_names ? x->n_names : 1, sizeof(*v));
	size_t k = 0;
	berth_error err;

	for (size_t i = 0; i < x->n_names; i++) {
		berth_image img = { .name = x->names[i].name,
				    .labels = (berth_label *)x->o->labels,
				    .n_labels = x->o->n_labels };
		to_public(&x->names[i].target, &img.target);
		int rc = berth_image_create(x->c, x->ns, &img, &v[k], &err);
		if (rc < 0 && err.code == BERTH_ALREADY_EXISTS) {
			/* as ctr: a name that exists now points at the imported image */
			static const char *const mask[] = { "target", "labels" };
			rc = berth_image_update(x->c, x->ns, &img, mask, x->o->n_labels ? 2 : 1, &v[k], &err);
		}
		if (rc < 0) {
			bt_err_set(&x->err, err.code, "import: %s: %s", img.name, err.message);
			berth_images_free(v, k);
			return -1;
		}
		k++;
	}
	*out = v;
	*n_out = k;
	return 0;
}

int berth_image_import(berth_client *c, const char *ns, const berth_import_opts *o, berth_image **out, size_t *n_out,
		       berth_error *err)
{
	importer x = { .c = c, .ns = ns, .o = o };
	int rc = -1;

	*out = NULL;
	*n_out = 0;
	if (!o->source) {
		bt_err_set(&x.err, BT_INVALID_ARGUMENT, "import: a source is required");
		return berth_fail(err, &x.err);
	}
	berth_lease lease;
	berth_label why = { (char *)"berth.io/lease.for", (char *)"import" };
	/* (a debug CLI talking to one service straight has no leases, nor a collector) */
	if (berth_lease_create(c, ns, NULL, &why, 1, IMPORT_LEASE_MS, &lease, err) == 0) {
		x.lease = BT_STEAL(lease.id);
		berth_lease_clear(&lease);
	} else if (err->code != BERTH_UNIMPLEMENTED) {
		return -1;
	}
	if (read_archive(&x) < 0)
		goto out;
	if (x.has_index)
		rc = oci_names(&x);
	else if (x.has_manifest)
		rc = docker_names(&x);
	else
		rc = bt_err_set(&x.err, BT_INVALID_ARGUMENT,
				"import: neither index.json (OCI layout) nor manifest.json (docker save) is in the archive");
	if (rc < 0)
		goto out;
	rc = -1;
	if (x.n_names == 0) {
		bt_err_set(&x.err, BT_INVALID_ARGUMENT, "import: the archive names no image");
		goto out;
	}
	for (size_t i = 0; i < x.n_names; i++)
		if (check_complete(&x, &x.names[i]) < 0)
			goto out;
	rc = write_records(&x, out, n_out);
out:
	if (x.lease) {
		/* the images reference what stays now; a failed import's blobs are
		 * garbage.  A lease that cannot be deleted expires. */
		berth_error e2;
		berth_lease_delete(c, ns, x.lease, false, &e2);
		free(x.lease);
	}
	if (x.a)
		archive_read_free(x.a);
	free(x.inbuf);
	for (size_t i = 0; i < x.n_members; i++) {
		free(x.members[i].path);
		free(x.members[i].link);
	}
	free(x.members);
	for (size_t i = 0; i < x.n_names; i++) {
		free(x.names[i].name);
		bt_oci_desc_clear(&x.names[i].target);
	}
	free(x.names);
	bt_buf_free(&x.index_json);
	bt_buf_free(&x.manifest_json);
	bt_buf_free(&x.layout);
	return rc < 0 ? berth_fail(err, &x.err) : 0;
}
