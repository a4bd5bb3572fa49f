/*
 * bt_mount — performing the mounts a snapshotter returns, and undoing them.
 *
 * A bt_mount mirrors berth.types.v1.Mount: what mount(8) would be given as
 * `mount -t TYPE -o OPTIONS SOURCE TARGET`.  Options that are mount flags
 * (ro, rbind, nosuid, private, …) become flags; the rest is the
 * filesystem's data string.
 *
 * overlay's data string is limited to one page.  A deep chain of layers
 * (128 and more) does not fit, so when the data is too long an overlay is
 * mounted with the new mount API, one "lowerdir+" layer at a time (Linux
 * ≥ 6.8), and where that key is unknown, from a forked child that chdir()s
 * to the layers' common parent and passes relative paths.
 *
 * Used by the tests today and by the image and task services (unpacking,
 * container root filesystems).
 */
#ifndef BT_MOUNT_H
#define BT_MOUNT_H

#include <stdbool.h>
#include <stddef.h>

#include "berth/types/v1/types.pb-c.h"
#include "bt_err.h"

typedef struct bt_mount {
	char *type;     /* "overlay", "bind", "tmpfs", … */
	char *source;   /* path or device; "overlay" for overlays */
	char *target;   /* path below bt_mount_all's target; NULL or "" for the target itself */
	char **options; /* n_options strings ("ro", "lowerdir=a:b", …) */
	size_t n_options;
} bt_mount;

/* Sets type and source (copied); no options. */
void bt_mount_init(bt_mount *m, const char *type, const char *source);
/* Appends a copy of opt, or a formatted option. */
void bt_mount_add_option(bt_mount *m, const char *opt);
void bt_mount_add_optionf(bt_mount *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees what m holds and zeroes it. */
void bt_mount_clear(bt_mount *m);
/* Clears each of v[0..n) and frees v. */
void bt_mounts_free(bt_mount *v, size_t n);
/* The value of option key ("upperdir" → "/x/fs") in m, or NULL (borrowed). */
const char *bt_mount_option(const bt_mount *m, const char *key);

/* Copies a protobuf Mount into out. */
void bt_mount_from_pb(const Berth__Types__V1__Mount *pb, bt_mount *out);
/* An array of n protobuf Mounts borrowing v's strings (v must outlive it);
 * free with bt_mounts_pb_free. NULL when n is 0. */
Berth__Types__V1__Mount **bt_mounts_to_pb(const bt_mount *v, size_t n);
void bt_mounts_pb_free(Berth__Types__V1__Mount **pb, size_t n);

/* Flags of bt_mount_all_flags: how an overlay too long for one page is
 * mounted (tests use them to reach each way on any kernel). */
#define BT_MOUNT_NO_NEW_API 0x1u   /* never the new mount API: relative paths from a child */
#define BT_MOUNT_FORCE_NEW_API 0x2u /* the new mount API even when the data fits a page */

/*
 * Mounts mounts[0..n) one after the other onto target (plus each mount's
 * own target, which must stay below it).  On failure, what was mounted is
 * unmounted again and e says which mount failed and why.
 */
int bt_mount_all(const bt_mount *mounts, size_t n, const char *target, bt_err *e);
int bt_mount_all_flags(const bt_mount *mounts, size_t n, const char *target, unsigned flags, bt_err *e);

/*
 * Unmounts the topmost mount at target.  EBUSY is retried for about a
 * second; then the error is returned (never a silent lazy detach).
 * NOT_FOUND when target is not a mount point.
 */
int bt_unmount(const char *target, bt_err *e);
/* Unmounts every mount stacked at target; nothing mounted is success. */
int bt_unmount_all(const char *target, bt_err *e);
/* Detaches target lazily (MNT_DETACH), logging a warning that it did:
 * only for callers that decided to leave a busy mount behind. */
int bt_unmount_detach(const char *target, bt_err *e);

/* 1 when path is a mount point, 0 when not, -1 with e on error. */
int bt_is_mountpoint(const char *path, bt_err *e);

#endif
