/*
 * content_store — berth-contentd's state: blobs by digest on disk, their
 * per-namespace records and the ingests in progress, in one sqlite database.
 *
 * Layout under the store's directory:
 *   blobs/sha256/<hex>   committed bytes, shared by every namespace
 *   ingest/<id>/data     bytes of an ingest in progress (id = sha256 of ns + ref)
 *   meta.db              records: blobs (ns, digest), labels, ingests
 *
 * A commit writes the ingest's digest into its record, renames the bytes
 * into blobs/, then links the blob to the namespace and drops the ingest in
 * one transaction, so a crash at any instant leaves either the ingest or the
 * committed blob, and start-up finishes any commit a crash interrupted.
 */
#ifndef CONTENT_STORE_H
#define CONTENT_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "bt_digest.h"
#include "bt_err.h"
#include "bt_filter.h"
#include "bt_labels.h"

typedef struct content_store content_store;

typedef struct content_opts {
	int64_t lock_timeout_ms; /* a writer's hold on a ref lapses after this idle time */
	int64_t max_ingests;     /* per namespace */
} content_opts;

typedef struct content_info {
	char digest[BT_DIGEST_STR_LEN];
	int64_t size;
	int64_t created; /* ns since the epoch */
	int64_t updated;
	bt_labels labels;
} content_info;

typedef struct content_status {
	char *ref;
	int64_t offset;
	int64_t total;
	char expected[BT_DIGEST_STR_LEN]; /* "" when unknown */
	int64_t started;
	int64_t updated;
} content_status;

typedef enum { CONTENT_STAT, CONTENT_WRITE, CONTENT_COMMIT } content_action;

typedef struct content_write_req {
	content_action action;
	const char *ref;
	const char *writer;
	int64_t total;        /* 0: unknown */
	const char *expected; /* "" or NULL: unknown */
	int64_t offset;
	const void *data;
	size_t len;
	const bt_labels *labels; /* applied on commit; may be NULL */
} content_write_req;

typedef struct content_write_res {
	int64_t started;
	int64_t updated;
	int64_t offset;
	int64_t total;
	char digest[BT_DIGEST_STR_LEN]; /* on commit */
	bool existed;                   /* on commit: the namespace held it already */
} content_write_res;

/* Opens (creating) the store at dir and finishes what a crash interrupted. */
int content_store_open(const char *dir, const content_opts *o, content_store **out, bt_err *e);
void content_store_free(content_store **s);

void content_info_clear(content_info *i);
void content_status_clear(content_status *s);

int content_info_get(content_store *s, const char *ns, const char *digest, content_info *out, bt_err *e);
/* Updates labels (mask rules of bt_labels_update); fills out with the result. */
int content_update(content_store *s, const char *ns, const char *digest, const bt_labels *labels,
		   char *const *mask, size_t nmask, content_info *out, bt_err *e);
/* Calls cb for every blob of ns matching f (fields digest, size, labels.*); cb returning -1 stops. */
int content_list(content_store *s, const char *ns, const bt_filter *f,
		 int (*cb)(const content_info *i, void *arg), void *arg, bt_err *e);
/* Unlinks digest from ns; the bytes go when no namespace holds them. */
int content_delete(content_store *s, const char *ns, const char *digest, bt_err *e);
/* Opens the bytes of a blob ns holds; *fd is the caller's. */
int content_open(content_store *s, const char *ns, const char *digest, int *fd, int64_t *size, bt_err *e);

int content_status_get(content_store *s, const char *ns, const char *ref, content_status *out, bt_err *e);
/* Calls cb for every ingest of ns matching f (fields ref, expected). */
int content_list_statuses(content_store *s, const char *ns, const bt_filter *f,
			  int (*cb)(const content_status *st, void *arg), void *arg, bt_err *e);
int content_write(content_store *s, const char *ns, const content_write_req *w, content_write_res *out, bt_err *e);
int content_abort(content_store *s, const char *ns, const char *ref, bt_err *e);

/* system.NamespaceUsage (a bt_ns_usage_fn; arg is the store): what the store holds in ns. */
int content_store_ns_usage(void *arg, const char *ns, char ***holds, bt_err *e);

#endif
