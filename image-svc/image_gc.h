/*
 * image_gc — the garbage collector's references (common/bt_gc.h) on what an
 * image is made of: an index names its manifests, a manifest its config and
 * layers, a config the snapshot its layers were unpacked to.  Labels are
 * added (never replacing others) with one content Update per blob.
 */
#ifndef IMAGE_GC_H
#define IMAGE_GC_H

#include "berth/berth.h"
#include "bt_err.h"
#include "bt_oci.h"

int image_gc_label_index(berth_client *content, const char *ns, const char *digest, const bt_oci_index *idx,
			 bt_err *e);
int image_gc_label_manifest(berth_client *content, const char *ns, const char *digest, const bt_oci_manifest *m,
			    bt_err *e);
/* config → snapshot chain in snapshotter (its name) */
int image_gc_label_config(berth_client *content, const char *ns, const char *config, const char *snapshotter,
			  const char *chain, bt_err *e);
/* Labels the graph under an image's target, reading its documents from the
 * content store; documents that are not stored are skipped (nothing of them
 * can be collected yet). */
int image_gc_label_graph(berth_client *content, const char *ns, const char *media_type, const char *digest,
			 bt_err *e);

#endif
