/*
 * snap_store — one snapshotter's state: snapshot records (per namespace,
 * in sqlite) and their directories, kept consistent through crashes, with
 * containerd's rules for kinds, parents and removal.
 *
 * Layout under the store's directory ($ROOT/snapshots/<name>/):
 *   meta.db               records: id, namespace, key or name, parent id,
 *                         kind, times, usage at commit; labels
 *   snapshots/<id>/       one per record, filled by the driver (fs/, work/)
 *   snapshots/new-<hex>/  a snapshot being built (renamed to <id> when done)
 *   snapshots/rm-<id>-<hex>/  a removed snapshot's files being deleted
 *
 * Crash safety: a new snapshot's directory is built under a temporary name,
 * then, inside the transaction that inserts its record, renamed to its id
 * and the directory synced; the record commits last.  A removal deletes the
 * record first, then the files.  Commit changes only the record.  So a
 * crash leaves either the old or the new state plus, at worst, directories
 * no record owns, which start-up and snap_cleanup remove.
 */
#ifndef SNAP_STORE_H
#define SNAP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bt_err.h"
#include "bt_filter.h"
#include "bt_labels.h"
#include "bt_mount.h"
#include "snap_driver.h"

#define SNAP_KEY_MAX 1024 /* bytes in a key or name */

typedef struct snap_store snap_store;

typedef struct snap_info {
	char *name;   /* key or name */
	char *parent; /* "" when none */
	snap_kind kind;
	int64_t created; /* ns since the epoch */
	int64_t updated;
	bt_labels labels;
} snap_info;

typedef struct snap_usage_info {
	int64_t size;   /* bytes allocated */
	int64_t inodes;
} snap_usage_info;

/*
 * Test seam: called at the named points of an operation, so tests can stop
 * the process there and check what a crash leaves.  Points:
 *   "create:built"     the new directory is complete under its temporary name
 *   "create:renamed"   renamed to its id, record not yet committed
 *   "create:recorded"  record committed
 *   "commit:synced"    the active snapshot's files are synced, record unchanged
 *   "commit:recorded"  record committed
 *   "remove:unrecorded" record deleted, directory still in place
 *   "remove:renamed"   directory renamed for deletion, not yet deleted
 */
typedef void (*snap_hook_fn)(const char *point, void *arg);

/* Opens (creating) the store at dir for driver, then removes directories
 * no record owns (what a crash left). */
int snap_store_open(const char *dir, const snap_driver *driver, snap_store **out, bt_err *e);
void snap_store_free(snap_store **s);
void snap_store_set_hook(snap_store *s, snap_hook_fn fn, void *arg);
const snap_driver *snap_store_driver(const snap_store *s);

void snap_info_clear(snap_info *i);
/* "active", "view", "committed" ("unknown" for anything else). */
const char *snap_kind_name(snap_kind k);

/*
 * A key or name from a client: 1 to SNAP_KEY_MAX bytes of UTF-8, no
 * control characters or NUL, no "..", '/' only between non-empty segments,
 * no "." segment.  what names it in the message ("key", "parent").
 */
int snap_key_validate(const char *what, const char *s, size_t len, bt_err *e);

/*
 * Makes a snapshot of kind SNAP_ACTIVE (Prepare) or SNAP_VIEW (View) called
 * key on top of parent (NULL or "": none) with labels (may be NULL), and
 * returns its mounts (*mounts is the caller's, free with bt_mounts_free).
 */
int snap_create(snap_store *s, const char *ns, snap_kind kind, const char *key, const char *parent,
		const bt_labels *labels, bt_mount **mounts, size_t *n, bt_err *e);
/* The mounts of an active snapshot or a view. */
int snap_mounts(snap_store *s, const char *ns, const char *key, bt_mount **mounts, size_t *n, bt_err *e);
/* Turns the active snapshot key into the committed snapshot name with labels. */
int snap_commit(snap_store *s, const char *ns, const char *name, const char *key, const bt_labels *labels,
		bt_err *e);
/* Removes a snapshot without children, record first, then its files. */
int snap_remove(snap_store *s, const char *ns, const char *key, bt_err *e);
int snap_stat(snap_store *s, const char *ns, const char *key, snap_info *out, bt_err *e);
/* Updates labels (mask rules of bt_labels_update); fills out with the result. */
int snap_update(snap_store *s, const char *ns, const char *key, const bt_labels *labels, char *const *mask,
		size_t nmask, snap_info *out, bt_err *e);
/* Calls cb for every snapshot of ns matching f (fields name, parent, kind,
 * labels.KEY), by name; cb returning -1 stops. */
int snap_list(snap_store *s, const char *ns, const bt_filter *f, int (*cb)(const snap_info *i, void *arg), void *arg,
	      bt_err *e);
int snap_usage(snap_store *s, const char *ns, const char *key, snap_usage_info *out, bt_err *e);
/* Removes directories no record owns; *removed counts them (may be NULL). */
int snap_cleanup(snap_store *s, int64_t *removed, bt_err *e);

/* system.NamespaceUsage (a bt_ns_usage_fn; arg is the store): what the store holds in ns. */
int snap_store_ns_usage(void *arg, const char *ns, char ***holds, bt_err *e);

#endif
