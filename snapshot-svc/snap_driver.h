/*
 * snap_driver — what a snapshot driver provides to the store: how to fill a
 * new snapshot's directory and which mounts show a snapshot.  A driver is a
 * struct of function pointers chosen by name (config snapshots.driver).
 *
 * Every snapshot owns one directory, DIR = <state>/snapshots/<id>, whose
 * fs/ holds its own layer (the overlay upper directory, or native's full
 * copy).  The store builds it under a temporary name and renames it in; the
 * driver only fills it.
 */
#ifndef SNAP_DRIVER_H
#define SNAP_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bt_err.h"
#include "bt_mount.h"

typedef enum snap_kind {
	SNAP_UNKNOWN = 0,
	SNAP_VIEW = 1,
	SNAP_ACTIVE = 2,
	SNAP_COMMITTED = 3,
} snap_kind;

typedef struct snap_driver {
	const char *name; /* "overlayfs", "native" */
	/* Layers a snapshot may sit on (its ancestors); 0 for no limit. */
	size_t max_depth;
	/* Fills dir, a new empty directory, for a snapshot of kind on top of
	 * parent_dir (the parent's directory, NULL for none). */
	int (*create)(const char *dir, const char *parent_dir, snap_kind kind, bt_err *e);
	/* The mounts showing a snapshot of kind in dir whose ancestors live in
	 * parents[0..nparents) (nearest first). *out is the caller's. */
	int (*mounts)(const char *dir, snap_kind kind, char *const *parents, size_t nparents, bt_mount **out,
		      size_t *nout, bt_err *e);
} snap_driver;

extern const snap_driver snap_overlay_driver;
extern const snap_driver snap_native_driver;

/* The driver called name, or NULL. */
const snap_driver *snap_driver_find(const char *name);

/*
 * Disk usage of the tree at path, not crossing mount points: bytes
 * allocated (st_blocks × 512) and inodes, the root included, each inode
 * counted once however many hard links it has.
 */
int snap_disk_usage(const char *path, int64_t *size, int64_t *inodes, bt_err *e);

#endif
