/*
 * berth_export — `berth images export`: images as an OCI layout archive
 * (with Docker's manifest.json beside it, as ctr writes), streamed from the
 * content store into a tar stream without holding any blob in memory.
 */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "berth_internal.h"
#include "bt_oci.h"
#include "bt_util.h"

typedef struct blob {
	char digest[72];
	int64_t size;
} blob;

/* What goes in the archive for one image. */
typedef struct exp_image {
	char *name;
	bt_oci_desc root;   /* the index.json entry */
	char *config;       /* manifest.json: config digest (single-manifest images) */
	char **layers;      /* manifest.json: layer digests */
} exp_image;

typedef struct exporter {
	berth_client *c;
	const char *ns;
	blob *blobs;
	size_t n_blobs;
	exp_image *images;
	size_t n_images;
	struct archive *a;
	berth_sink_fn sink;
	void *arg;
	bt_err err;
} exporter;

static void add_blob(exporter *x, const char *digest, int64_t size)
{
	for (size_t i = 0; i < x->n_blobs; i++)
		if (!strcmp(x->blobs[i].digest, digest))
			return;
	x->blobs = bt_xrealloc(x->blobs, (x->n_blobs + 1) * sizeof(*x->blobs));
	snprintf(x->blobs[x->n_blobs].digest, 72, "%s", digest);
	x->blobs[x->n_blobs].size = size;
	x->n_blobs++;
}

/* Reads a small document (index or manifest) from the content store. */
static int read_doc(exporter *x, const char *digest, bt_buf *out)
{
	return berth_read_doc(x->c, x->ns, "blob", digest, OCI_MAX_MANIFEST, out, &x->err);
}

/* Adds a manifest and the blobs it names; records config and layers for manifest.json. */
static int add_manifest(exporter *x, const bt_oci_desc *d, exp_image *img)
{
	bt_buf doc = { 0 };
	bt_oci_manifest m;

	if (read_doc(x, d->digest, &doc) < 0)
		return -1;
	if (bt_oci_parse_manifest(doc.data, doc.len, &m, &x->err) < 0) {
		bt_buf_free(&doc);
		return bt_err_wrap(&x->err, "manifest %s", d->digest);
	}
	bt_buf_free(&doc);
	add_blob(x, d->digest, d->size);
	add_blob(x, m.config.digest, m.config.size);
	if (img) {
		img->config = bt_xstrdup(m.config.digest);
		for (size_t i = 0; i < m.n_layers; i++)
			bt_strv_push(&img->layers, m.layers[i].digest);
	}
	for (size_t i = 0; i < m.n_layers; i++)
		add_blob(x, m.layers[i].digest, m.layers[i].size);
	bt_oci_manifest_clear(&m);
	return 0;
}

static int add_image(exporter *x, const char *name, const bt_oci_platform *want)
{
	berth_image img;
	berth_error err;
	exp_image *e;

	if (berth_image_get(x->c, x->ns, name, &img, &err) < 0)
		return bt_err_set(&x->err, err.code, "%s", err.message);
	x->images = bt_xrealloc(x->images, (x->n_images + 1) * sizeof(*x->images));
	e = &x->images[x->n_images++];
	memset(e, 0, sizeof(*e));
	e->name = bt_xstrdup(img.name);
	e->root.media_type = bt_xstrdup(img.target.media_type);
	snprintf(e->root.digest, sizeof(e->root.digest), "%s", img.target.digest);
	e->root.size = img.target.size;
	berth_labels_from_public(img.target.annotations, img.target.n_annotations, &e->root.annotations);
	berth_image_clear(&img);

	if (bt_oci_is_manifest(e->root.media_type))
		return add_manifest(x, &e->root, e);
	if (!bt_oci_is_index(e->root.media_type))
		return bt_err_set(&x->err, BT_UNIMPLEMENTED, "image %s: target media type %s cannot be exported", name,
				  e->root.media_type);
	bt_buf doc = { 0 };
	bt_oci_index idx;
	if (read_doc(x, e->root.digest, &doc) < 0)
		return -1;
	if (bt_oci_parse_index(doc.data, doc.len, &idx, &x->err) < 0) {
		bt_buf_free(&doc);
		return bt_err_wrap(&x->err, "index %s", e->root.digest);
	}
	bt_buf_free(&doc);
	int rc = 0;
	if (want) {
		/* one platform: the archive names its manifest, self-contained */
		int i = bt_oci_index_choose(&idx, want, &x->err);
		if (i < 0) {
			rc = bt_err_wrap(&x->err, "image %s", name);
		} else {
			bt_labels keep = { 0 };
			bt_labels_copy(&keep, &e->root.annotations);
			bt_oci_desc_copy(&e->root, &idx.manifests[i]);
			bt_labels_copy(&e->root.annotations, &keep);
			bt_labels_clear(&keep);
			e->root.has_platform = false;
			rc = add_manifest(x, &e->root, e);
		}
	} else {
		add_blob(x, e->root.digest, e->root.size);
		for (size_t i = 0; i < idx.n && rc == 0; i++) {
			if (bt_oci_is_manifest(idx.manifests[i].media_type))
				rc = add_manifest(x, &idx.manifests[i], NULL);
			else
				add_blob(x, idx.manifests[i].digest, idx.manifests[i].size);
		}
	}
	bt_oci_index_clear(&idx);
	return rc;
}

/* --- writing -------------------------------------------------------------------- */

static la_ssize_t sink_write(struct archive *a, void *arg, const void *buf, size_t len)
{
	exporter *x = arg;
	(void)a;
	if (x->sink(x->arg, buf, len) < 0) {
		bt_err_set(&x->err, BT_CANCELLED, "export: writing the archive failed");
		return -1;
	}
	return (la_ssize_t)len;
}

static int write_header(exporter *x, const char *path, int64_t size, bool dir)
{
	struct archive_entry *en = archive_entry_new();

	archive_entry_set_pathname(en, path);
	archive_entry_set_filetype(en, dir ? AE_IFDIR : AE_IFREG);
	archive_entry_set_perm(en, dir ? 0755 : 0644);
	archive_entry_set_size(en, dir ? 0 : size);
	archive_entry_set_mtime(en, time(NULL), 0);
	int rc = archive_write_header(x->a, en);
	archive_entry_free(en);
	if (rc != ARCHIVE_OK)
		return x->err.code ? -1
				   : bt_err_set(&x->err, BT_INTERNAL, "export: %s: %s", path, archive_error_string(x->a));
	return 0;
}

static int write_file(exporter *x, const char *path, const void *data, size_t len)
{
	if (write_header(x, path, (int64_t)len, false) < 0)
		return -1;
	if (len && archive_write_data(x->a, data, len) < 0)
		return x->err.code ? -1 : bt_err_set(&x->err, BT_INTERNAL, "export: %s: %s", path, archive_error_string(x->a));
	return 0;
}

static int blob_data(void *arg, const void *data, size_t len)
{
	exporter *x = arg;
	return archive_write_data(x->a, data, len) < 0 ? -1 : 0;
}

static int write_blob(exporter *x, const blob *b)
{
	_cleanup_free_ char *path = bt_xasprintf("blobs/sha256/%s", b->digest + 7);
	berth_error err;

	if (write_header(x, path, b->size, false) < 0)
		return -1;
	if (berth_content_read(x->c, x->ns, b->digest, 0, 0, blob_data, x, &err) < 0) {
		if (x->err.code)
			return -1;
		if (err.code == BERTH_NOT_FOUND)
			return bt_err_set(&x->err, BT_NOT_FOUND,
					  "blob %s is not stored (pull the image again, or export one platform)", b->digest);
		return bt_err_set(&x->err, err.code, "export blob %s: %s", b->digest, err.message);
	}
	return 0;
}

static json_t *desc_json(const bt_oci_desc *d, const char *name)
{
	json_t *o = json_object(), *ann = json_object();

	json_object_set_new(o, "mediaType", json_string(d->media_type));
	json_object_set_new(o, "digest", json_string(d->digest));
	json_object_set_new(o, "size", json_integer(d->size));
	for (size_t i = 0; i < d->annotations.n; i++)
		json_object_set_new(ann, d->annotations.keys[i], json_string(d->annotations.vals[i]));
	json_object_set_new(ann, "io.containerd.image.name", json_string(name));
	const char *tag = strrchr(name, ':');
	if (tag && !strchr(tag, '/'))
		json_object_set_new(ann, "org.opencontainers.image.ref.name", json_string(tag + 1));
	json_object_set_new(o, "annotations", ann);
	return o;
}

static int write_indexes(exporter *x)
{
	json_t *index = json_object(), *mans = json_array(), *docker = json_array();
	char *s;
	int rc;

	json_object_set_new(index, "schemaVersion", json_integer(2));
	json_object_set_new(index, "mediaType", json_string(MT_OCI_INDEX));
	for (size_t i = 0; i < x->n_images; i++) {
		exp_image *im = &x->images[i];
		json_array_append_new(mans, desc_json(&im->root, im->name));
		if (!im->config)
			continue;
		json_t *d = json_object(), *tags = json_array(), *layers = json_array();
		_cleanup_free_ char *cfg = bt_xasprintf("blobs/sha256/%s", im->config + 7);
		json_object_set_new(d, "Config", json_string(cfg));
		json_array_append_new(tags, json_string(im->name));
		json_object_set_new(d, "RepoTags", tags);
		for (size_t k = 0; im->layers && im->layers[k]; k++) {
			_cleanup_free_ char *p = bt_xasprintf("blobs/sha256/%s", im->layers[k] + 7);
			json_array_append_new(layers, json_string(p));
		}
		json_object_set_new(d, "Layers", layers);
		json_array_append_new(docker, d);
	}
	json_object_set_new(index, "manifests", mans);
	s = json_dumps(index, JSON_COMPACT);
	rc = write_file(x, "index.json", s, strlen(s));
	free(s);
	if (rc == 0) {
		s = json_dumps(docker, JSON_COMPACT);
		rc = write_file(x, "manifest.json", s, strlen(s));
		free(s);
	}
	json_decref(index);
	json_decref(docker);
	return rc;
}

int berth_image_export(berth_client *c, const char *ns, const berth_export_opts *o, berth_error *err)
{
	exporter x = { .c = c, .ns = ns, .sink = o->sink, .arg = o->arg };
	bt_oci_platform want = { 0 };
	int rc = -1;

	if (!o->sink || o->n_names == 0) {
		bt_err_set(&x.err, BT_INVALID_ARGUMENT, "export: names and a sink are required");
		return berth_fail(err, &x.err);
	}
	if (!o->all_platforms && bt_oci_platform_parse(o->platform ? o->platform : "", &want, &x.err) < 0)
		return berth_fail(err, &x.err);
	for (size_t i = 0; i < o->n_names; i++)
		if (add_image(&x, o->names[i], o->all_platforms ? NULL : &want) < 0)
			goto out;
	x.a = archive_write_new();
	if (!x.a)
		bt_oom();
	/* pax_restricted: plain ustar headers unless a field needs more */
	archive_write_set_format_pax_restricted(x.a);
	archive_write_set_bytes_in_last_block(x.a, 1);
	if (archive_write_open2(x.a, &x, NULL, sink_write, NULL, NULL) != ARCHIVE_OK) {
		bt_err_set(&x.err, BT_INTERNAL, "export: %s", archive_error_string(x.a));
		goto out;
	}
	static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
	if (write_file(&x, "oci-layout", layout, sizeof(layout) - 1) < 0 || write_header(&x, "blobs", 0, true) < 0 ||
	    write_header(&x, "blobs/sha256", 0, true) < 0)
		goto out;
	for (size_t i = 0; i < x.n_blobs; i++)
		if (write_blob(&x, &x.blobs[i]) < 0)
			goto out;
	if (write_indexes(&x) < 0)
		goto out;
	if (archive_write_close(x.a) != ARCHIVE_OK) {
		if (!x.err.code)
			bt_err_set(&x.err, BT_INTERNAL, "export: %s", archive_error_string(x.a));
		goto out;
	}
	rc = 0;
out:
	if (x.a)
		archive_write_free(x.a);
	for (size_t i = 0; i < x.n_images; i++) {
		free(x.images[i].name);
		free(x.images[i].config);
		bt_strv_free(x.images[i].layers);
		bt_oci_desc_clear(&x.images[i].root);
	}
	free(x.images);
	free(x.blobs);
	bt_oci_platform_clear(&want);
	return rc < 0 ? berth_fail(err, &x.err) : 0;
}
