/*
 * image_apply — applies one image layer (a tar stream, gzip, zstd or plain)
 * onto a snapshot directory, as REFERENCE §6 describes: whiteouts and opaque
 * directories in overlayfs's upper-dir format or as deletions on a merged
 * view, every entry type, owners, modes, xattrs and times; while computing
 * the layer's digests (compressed bytes and diffID).
 *
 * Every name in the layer is resolved inside the root (openat2 with
 * RESOLVE_IN_ROOT): "..", absolute symlinks, symlinks inside paths and hard
 * links cannot reach outside it.  The layer is hostile input: names with ".."
 * components, whiteouts of "." or "..", reserved ".wh..wh." names and
 * trusted.overlay.* xattrs (overlay mode) are refused with an error naming
 * the entry; counts and sizes are bounded.
 *
 * Hard links: the target is resolved like any name and linked without being
 * followed; a missing target, a directory or (overlay mode) a whiteout is an
 * error, while symlinks, devices and fifos may be targets (Docker's archiver
 * writes hard links to any non-directory that has several names).
 * A directory entry over an existing directory only updates its metadata; any
 * other entry replaces what is in its way (a whole tree if need be).  In
 * overlay mode a parent missing from the upper dir is made with the metadata
 * of the nearest lower copy, and a directory that replaces a whiteout made
 * earlier in the layer is made opaque.  Symlinks of the lower layers are not
 * followed in overlay mode (the upper dir is resolved on its own, as
 * containerd does); use merged mode on an overlay mount for that.
 */
#ifndef IMAGE_APPLY_H
#define IMAGE_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bt_digest.h"
#include "bt_err.h"
#include "image_decompress.h"

typedef enum {
	IMG_APPLY_OVERLAY, /* root is an overlay upper directory: whiteouts become 0/0 char devices, opaque dirs get trusted.overlay.opaque=y */
	IMG_APPLY_MERGED,  /* root is the full merged filesystem (native snapshotter, or an overlay mount): whiteouts delete, opaque dirs are emptied of entries not written earlier in this layer */
} img_apply_mode;

/* Defaults of the bounds (used where the options hold 0). */
#define IMG_APPLY_MAX_ENTRIES 2000000
#define IMG_APPLY_MAX_TOTAL (64LL << 30)
#define IMG_APPLY_MAX_PATH 4096
#define IMG_APPLY_MAX_XATTR (64 << 10)

typedef struct img_apply_opts {
	img_apply_mode mode;
	/* OVERLAY mode: directory fds of the layers below, nearest first (may be 0): a parent directory missing
	 * in the upper dir is created with the metadata of the nearest lower copy (REFERENCE §6). Borrowed. */
	const int *lower_fds;
	size_t n_lower;
	/* Pulls compressed layer bytes: returns bytes read (0 at end), -1 with e set on error. Called from the
	 * thread that runs img_apply. */
	ssize_t (*read)(void *arg, void *buf, size_t len, bt_err *e);
	void *arg;
	/* Optional: called with progress (compressed bytes consumed so far), from the thread that runs img_apply. */
	void (*progress)(void *arg, int64_t consumed);
	/* Bounds against hostile layers: 0 = defaults (entries ≤ 2,000,000; total uncompressed ≤ 64 GiB).
	 * One path is always ≤ 4096 bytes and one xattr value ≤ 64 KiB. */
	int64_t max_entries, max_total;
	/* Decompress and hash on a second thread while this one writes files (default on; off for
	 * deterministic single-threaded runs such as the fuzzer). */
	bool single_thread;
} img_apply_opts;

typedef struct img_apply_result {
	char diff_id[BT_DIGEST_STR_LEN];           /* sha256 of the uncompressed tar stream */
	char compressed_digest[BT_DIGEST_STR_LEN]; /* sha256 of the bytes read */
	int64_t compressed_size, uncompressed_size;
	int64_t entries; /* tar entries applied (root, files, dirs, links, whiteouts, markers) */
	img_comp compression;
	int64_t xattrs_skipped; /* xattrs the file system refused (not supported here, or not permitted) */
} img_apply_result;

/*
 * Applies one layer onto the directory rootfd (borrowed; any open mode,
 * O_PATH included).  Everything the layer names is resolved inside rootfd
 * (openat2 with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, kernel ≥ 5.6; without
 * it the call fails with UNIMPLEMENTED).  A layer that tries to reach outside
 * gets PERMISSION_DENIED or INVALID_ARGUMENT naming the entry, and what was
 * applied stays inside root (the caller discards the snapshot).  The whole
 * stream is always read to its end (so the digests cover all of it) unless an
 * error stops it.  out is filled on success (and holds what was counted so far
 * on failure).
 */
int img_apply(int rootfd, const img_apply_opts *o, img_apply_result *out, bt_err *e);

/*
 * Cleans a layer entry's name into out (at most IMG_APPLY_MAX_PATH bytes):
 * leading "/" and "./" removed, repeated "/" and "." components dropped, a
 * trailing "/" removed ("./a//b/" → "a/b"; "." and "" → "").  A ".."
 * component anywhere is refused (PERMISSION_DENIED), as GNU tar refuses it.
 */
int img_apply_clean_name(const char *name, char *out, size_t cap, bt_err *e);

#endif
