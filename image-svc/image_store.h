/*
 * image_store — berth-imaged's records: per namespace, an image name
 * pointing at a root descriptor (manifest or index), with labels and times,
 * in one sqlite database ($ROOT/images/meta.db).  The blobs themselves live
 * in the content service.
 */
#ifndef IMAGE_STORE_H
#define IMAGE_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "bt_digest.h"
#include "bt_err.h"
#include "bt_filter.h"
#include "bt_labels.h"

typedef struct image_store image_store;

typedef struct image_rec {
	char *name;
	bt_labels labels;
	char *media_type; /* of the target */
	char digest[BT_DIGEST_STR_LEN];
	int64_t size;
	bt_labels annotations; /* the target descriptor's */
	int64_t created;       /* ns since the epoch */
	int64_t updated;
} image_rec;

void image_rec_clear(image_rec *r);
void image_rec_copy(image_rec *dst, const image_rec *src);
/* Checks a record a client sent: name, target digest, media type, size, labels. */
int image_rec_validate(const image_rec *r, bt_err *e);
/* An image name: 1..1024 printable characters, no whitespace. */
int image_name_validate(const char *name, bt_err *e);

int image_store_open(const char *dir, image_store **out, bt_err *e);
void image_store_free(image_store **s);

int image_store_get(image_store *s, const char *ns, const char *name, image_rec *out, bt_err *e);
/* Calls cb per image of ns matching f (name, target.digest, target.media_type, labels.KEY), by name. */
int image_store_list(image_store *s, const char *ns, const bt_filter *f, int (*cb)(const image_rec *r, void *arg),
		     void *arg, bt_err *e);
/* ALREADY_EXISTS when the name is taken. Fills out (may be NULL). */
int image_store_create(image_store *s, const char *ns, const image_rec *r, image_rec *out, bt_err *e);
/* mask: "labels", "labels.KEY", "target"; none: labels and target. */
int image_store_update(image_store *s, const char *ns, const image_rec *r, char *const *mask, size_t nmask,
		       image_rec *out, bt_err *e);
/* Creates the image, or points an existing one at r's target (keeping its
 * labels, adding r's): what a pull does. */
int image_store_put(image_store *s, const char *ns, const image_rec *r, image_rec *out, bt_err *e);
int image_store_delete(image_store *s, const char *ns, const char *name, bt_err *e);

/* system.NamespaceUsage (a bt_ns_usage_fn; arg is the store): what the store holds in ns. */
int image_store_ns_usage(void *arg, const char *ns, char ***holds, bt_err *e);

#endif
