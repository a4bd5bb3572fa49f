/*
 * berth_inspect — what an image holds, read from the content store: its
 * platforms, its size for a platform, and which of its blobs are stored
 * (`berth images ls` and `check`).
 */
#define _GNU_SOURCE
#include <string.h>

#include "berth_internal.h"
#include "bt_oci.h"
#include "bt_util.h"

void berth_image_report_clear(berth_image_report *r)
{
	bt_strv_free(r->platforms);
	memset(r, 0, sizeof(*r));
}

typedef struct walker {
	berth_client *c;
	const char *ns;
	bt_oci_platform want;
	berth_image_report *r;
	bt_err err;  /* a document that does not parse: the image reads as incomplete */
	bt_err fail; /* the content store could not be asked: the report would be false */
} walker;

/* Counts a blob: present or missing. */
static bool count_blob(walker *w, const char *digest, int64_t size)
{
	berth_content_info info;
	berth_error err;

	w->r->blobs++;
	w->r->size += size;
	if (berth_content_get_info(w->c, w->ns, digest, &info, &err) == 0) {
		berth_content_info_clear(&info);
		w->r->present++;
		w->r->present_size += size;
		return true;
	}
	/* missing is an answer; a store that cannot be asked is an error */
	if (err.code != BERTH_NOT_FOUND && !w->fail.code)
		bt_err_set(&w->fail, err.code, "content %s: %s", digest, err.message);
	return false;
}

/* Reads a stored document; false when it is not stored (or unreadable). */
static bool read_doc(walker *w, const char *digest, bt_buf *b)
{
	bt_err e;
	return berth_read_doc(w->c, w->ns, "document", digest, OCI_MAX_CONFIG, b, &e) == 0;
}

static void add_platform(walker *w, const bt_oci_platform *p)
{
	_cleanup_free_ char *s = bt_oci_platform_str(p);
	for (size_t i = 0; w->r->platforms && w->r->platforms[i]; i++)
		if (!strcmp(w->r->platforms[i], s))
			return;
	bt_strv_push(&w->r->platforms, s);
}

static void walk_manifest(walker *w, const bt_oci_desc *d, bool from_index)
{
	bt_buf doc = { 0 };
	bt_oci_manifest m;

	if (!count_blob(w, d->digest, d->size) || !read_doc(w, d->digest, &doc)) {
		bt_buf_free(&doc);
		return;
	}
	if (bt_oci_parse_manifest(doc.data, doc.len, &m, &w->err) == 0) {
		bool cfg = count_blob(w, m.config.digest, m.config.size);
		for (size_t i = 0; i < m.n_layers; i++)
			count_blob(w, m.layers[i].digest, m.layers[i].size);
		if (!from_index && cfg) {
			bt_buf c = { 0 };
			bt_oci_config oc;
			bt_err e;
			if (read_doc(w, m.config.digest, &c) && bt_oci_parse_config(c.data, c.len, &oc, &e) == 0) {
				add_platform(w, &oc.platform);
				bt_oci_config_clear(&oc);
			}
			bt_buf_free(&c);
		}
		bt_oci_manifest_clear(&m);
	}
	bt_buf_free(&doc);
}

int berth_image_inspect(berth_client *c, const char *ns, const berth_image *img, const char *platform,
			berth_image_report *out, berth_error *err)
{
	walker w = { .c = c, .ns = ns, .r = out };
	bt_oci_desc root = { 0 };

	memset(out, 0, sizeof(*out));
	if (bt_oci_platform_parse(platform ? platform : "", &w.want, &w.err) < 0)
		return berth_fail(err, &w.err);
	root.media_type = bt_xstrdup(img->target.media_type);
	snprintf(root.digest, sizeof(root.digest), "%s", img->target.digest);
	root.size = img->target.size;
	if (bt_oci_is_index(root.media_type)) {
		bt_buf doc = { 0 };
		bt_oci_index idx;
		if (count_blob(&w, root.digest, root.size) && read_doc(&w, root.digest, &doc) &&
		    bt_oci_parse_index(doc.data, doc.len, &idx, &w.err) == 0) {
			for (size_t i = 0; i < idx.n; i++)
				if (idx.manifests[i].has_platform)
					add_platform(&w, &idx.manifests[i].platform);
			bt_err ignore;
			int i = bt_oci_index_choose(&idx, &w.want, &ignore);
			if (i >= 0)
				walk_manifest(&w, &idx.manifests[i], true);
			bt_oci_index_clear(&idx);
		}
		bt_buf_free(&doc);
	} else if (bt_oci_is_manifest(root.media_type)) {
		walk_manifest(&w, &root, false);
	} else {
		count_blob(&w, root.digest, root.size);
	}
	out->complete = out->blobs > 0 && out->present == out->blobs;
	bt_oci_desc_clear(&root);
	bt_oci_platform_clear(&w.want);
	if (w.fail.code) {
		berth_image_report_clear(out);
		return berth_fail(err, &w.fail);
	}
	return 0;
}

int berth_image_unpacked(berth_client *c, const char *ns, const berth_image *img, const char *platform,
			 const char *snapshotter, char chain_out[72], berth_error *err)
{
	walker w = { .c = c, .ns = ns };
	bt_oci_desc cur = { 0 };
	bt_oci_manifest m = { 0 };
	bt_oci_config cfg = { 0 };
	bt_buf doc = { 0 };
	int rc = -1;

	chain_out[0] = '\0';
	if (bt_oci_platform_parse(platform ? platform : "", &w.want, &w.err) < 0)
		return berth_fail(err, &w.err);
	cur.media_type = bt_xstrdup(img->target.media_type);
	snprintf(cur.digest, sizeof(cur.digest), "%s", img->target.digest);
	if (bt_oci_is_index(cur.media_type)) {
		bt_oci_index idx;
		if (!read_doc(&w, cur.digest, &doc) || bt_oci_parse_index(doc.data, doc.len, &idx, &w.err) < 0) {
			rc = 0;
			goto out;
		}
		int i = bt_oci_index_choose(&idx, &w.want, &w.err);
		if (i >= 0)
			bt_oci_desc_copy(&cur, &idx.manifests[i]);
		bt_oci_index_clear(&idx);
		if (i < 0) {
			rc = 0;
			goto out;
		}
		bt_buf_free(&doc);
	}
	if (!read_doc(&w, cur.digest, &doc) || bt_oci_parse_manifest(doc.data, doc.len, &m, &w.err) < 0) {
		rc = 0;
		goto out;
	}
	bt_buf_free(&doc);
	if (!read_doc(&w, m.config.digest, &doc) || bt_oci_parse_config(doc.data, doc.len, &cfg, &w.err) < 0 ||
	    cfg.n_diff_ids == 0) {
		rc = 0;
		goto out;
	}
	char (*chain)[BT_DIGEST_STR_LEN] = bt_xcalloc(cfg.n_diff_ids, sizeof(*chain));
	bt_oci_chain_ids(cfg.diff_ids, cfg.n_diff_ids, chain);
	snprintf(chain_out, 72, "%s", chain[cfg.n_diff_ids - 1]);
	free(chain);
	berth_snapshot_info info;
	if (berth_snapshot_stat(c, ns, snapshotter, chain_out, &info, err) == 0) {
		rc = info.kind == BERTH_SNAPSHOT_COMMITTED;
		berth_snapshot_info_clear(&info);
	} else {
		rc = err->code == BERTH_NOT_FOUND ? 0 : -1;
	}
out:
	bt_buf_free(&doc);
	bt_oci_desc_clear(&cur);
	bt_oci_manifest_clear(&m);
	bt_oci_config_clear(&cfg);
	bt_oci_platform_clear(&w.want);
	return rc;
}
