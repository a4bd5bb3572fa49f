/*
 * image_gc — gc reference labels on an image's blobs (see image_gc.h).
 */
#define _GNU_SOURCE
#include "image_gc.h"

#include <stdio.h>
#include <stdlib.h>

#include "bt_gc.h"
#include "bt_util.h"
#include "image_unpack.h"

/* Adds labels (keys[i] = vals[i]) to a blob, leaving its others alone. */
static int add_labels(berth_client *content, const char *ns, const char *digest, char **keys, char **vals, size_t n,
		      bt_err *e)
{
	berth_label *l = bt_xcalloc(n ? n : 1, sizeof(*l));
	char **mask = bt_xcalloc(n ? n : 1, sizeof(*mask));
	berth_error err;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		l[i].key = keys[i];
		l[i].value = vals[i];
		mask[i] = bt_xasprintf("labels.%s", keys[i]);
	}
	if (n && berth_content_update(content, ns, digest, l, n, (const char *const *)mask, n, NULL, &err) < 0)
		rc = bt_err_set(e, err.code, "gc labels on %s: %s", digest, err.message);
	for (size_t i = 0; i < n; i++)
		free(mask[i]);
	free(mask);
	free(l);
	return rc;
}

static int label_descs(berth_client *content, const char *ns, const char *digest, const bt_oci_desc *config,
		       const bt_oci_desc *v, size_t n, const char *prefix, bt_err *e)
{
	size_t m = n + (config ? 1 : 0);
	char **keys = bt_xcalloc(m ? m : 1, sizeof(*keys));
	char **vals = bt_xcalloc(m ? m : 1, sizeof(*vals));
	size_t k = 0;

	if (config) {
		keys[k] = bt_xstrdup(BT_GC_REF_CONTENT "config");
		vals[k++] = bt_xstrdup(config->digest);
	}
	for (size_t i = 0; i < n; i++) {
		keys[k] = bt_xasprintf(BT_GC_REF_CONTENT "%s.%zu", prefix, i);
		vals[k++] = bt_xstrdup(v[i].digest);
	}
	int rc = add_labels(content, ns, digest, keys, vals, k, e);
	for (size_t i = 0; i < k; i++) {
		free(keys[i]);
		free(vals[i]);
	}
	free(keys);
	free(vals);
	return rc;
}

int image_gc_label_index(berth_client *content, const char *ns, const char *digest, const bt_oci_index *idx,
			 bt_err *e)
{
	return label_descs(content, ns, digest, NULL, idx->manifests, idx->n, "m", e);
}

int image_gc_label_manifest(berth_client *content, const char *ns, const char *digest, const bt_oci_manifest *m,
			    bt_err *e)
{
	return label_descs(content, ns, digest, &m->config, m->layers, m->n_layers, "l", e);
}

int image_gc_label_config(berth_client *content, const char *ns, const char *config, const char *snapshotter,
			  const char *chain, bt_err *e)
{
	_cleanup_free_ char *key = bt_xasprintf(BT_GC_REF_SNAPSHOT "%s", snapshotter);
	char *keys[] = { key }, *vals[] = { (char *)chain };
	return add_labels(content, ns, config, keys, vals, 1, e);
}

/* 1 with the document, 0 when it is not stored, -1 on error. */
static int read_doc(berth_client *content, const char *ns, const char *digest, char **doc, size_t *len, bt_err *e)
{
	if (image_read_blob(content, ns, digest, OCI_MAX_MANIFEST, doc, len, e) == 0)
		return 1;
	return e->code == BT_NOT_FOUND ? 0 : -1;
}

static int label_manifest_at(berth_client *content, const char *ns, const char *digest, bt_err *e)
{
	_cleanup_free_ char *doc = NULL;
	bt_oci_manifest m = { 0 };
	size_t len;
	int r = read_doc(content, ns, digest, &doc, &len, e);

	if (r <= 0)
		return r;
	if (bt_oci_parse_manifest(doc, len, &m, e) < 0)
		return bt_err_wrap(e, "manifest %s", digest);
	r = image_gc_label_manifest(content, ns, digest, &m, e);
	bt_oci_manifest_clear(&m);
	return r;
}

int image_gc_label_graph(berth_client *content, const char *ns, const char *media_type, const char *digest,
			 bt_err *e)
{
	if (!bt_oci_is_index(media_type))
		return bt_oci_is_manifest(media_type) ? label_manifest_at(content, ns, digest, e) : 0;

	_cleanup_free_ char *doc = NULL;
	bt_oci_index idx = { 0 };
	size_t len;
	int r = read_doc(content, ns, digest, &doc, &len, e);
	if (r <= 0)
		return r;
	if (bt_oci_parse_index(doc, len, &idx, e) < 0)
		return bt_err_wrap(e, "index %s", digest);
	r = image_gc_label_index(content, ns, digest, &idx, e);
	for (size_t i = 0; r >= 0 && i < idx.n; i++)
		if (bt_oci_is_manifest(idx.manifests[i].media_type))
			r = label_manifest_at(content, ns, idx.manifests[i].digest, e);
	bt_oci_index_clear(&idx);
	return r;
}
