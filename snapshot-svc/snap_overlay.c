/*
 * snap_overlay — the overlayfs driver: each snapshot is an upper directory
 * (DIR/fs) plus a work directory for active ones (DIR/work); its parents'
 * fs/ directories are the lower layers.  Mounts as containerd's overlay
 * snapshotter returns them:
 *
 *   no parent             bind DIR/fs (rw, or ro for a view), rbind
 *   active with parents   overlay workdir=DIR/work,upperdir=DIR/fs,lowerdir=P0/fs:P1/fs:…
 *   view with one parent  bind P0/fs ro
 *   view with more        overlay lowerdir=P0/fs:P1/fs:… (read-only by itself)
 *
 * The lower layers are listed nearest first, as overlay wants them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "bt_util.h"
#include "snap_driver.h"

/* overlay refuses more lower layers than this */
#define OVERLAY_MAX_LOWER 500

static int overlay_create(const char *dir, const char *parent_dir, snap_kind kind, bt_err *e)
{
	_cleanup_free_ char *fs = bt_xasprintf("%s/fs", dir);
	_cleanup_free_ char *work = bt_xasprintf("%s/work", dir);

	(void)parent_dir; /* the parent is a lower layer, nothing is copied */
	/* 0755: the root directory of the container's filesystem when there
	 * is no parent (an overlay takes the lower root's mode otherwise). */
	if (mkdir(fs, 0755) < 0)
		return bt_err_errno(e, errno, "create %s", fs);
	if (kind == SNAP_ACTIVE && mkdir(work, 0700) < 0)
		return bt_err_errno(e, errno, "create %s", work);
	return 0;
}

/* Appends path with overlay's escape for ':' (a layer separator). */
static void append_layer(bt_buf *b, const char *path)
{
	for (const char *c = path; *c; c++) {
		if (*c == ':' || *c == '\\')
			bt_buf_append(b, "\\", 1);
		bt_buf_append(b, c, 1);
	}
}

static int overlay_mounts(const char *dir, snap_kind kind, char *const *parents, size_t nparents, bt_mount **out,
			  size_t *nout, bt_err *e)
{
	bt_mount *m;

	if (nparents + 1 > OVERLAY_MAX_LOWER)
		return bt_err_set(e, BT_FAILED_PRECONDITION, "overlay: %zu layers exceed overlay's limit of %d",
				  nparents + 1, OVERLAY_MAX_LOWER);
	m = bt_xzalloc(sizeof(*m));
	if (nparents == 0) {
		_cleanup_free_ char *fs = bt_xasprintf("%s/fs", dir);
		bt_mount_init(m, "bind", fs);
		bt_mount_add_option(m, kind == SNAP_ACTIVE ? "rw" : "ro");
		bt_mount_add_option(m, "rbind");
	} else if (kind != SNAP_ACTIVE && nparents == 1) {
		_cleanup_free_ char *fs = bt_xasprintf("%s/fs", parents[0]);
		bt_mount_init(m, "bind", fs);
		bt_mount_add_option(m, "ro");
		bt_mount_add_option(m, "rbind");
	} else {
		bt_buf lower = { 0 };
		bt_mount_init(m, "overlay", "overlay");
		if (kind == SNAP_ACTIVE) {
			bt_mount_add_optionf(m, "workdir=%s/work", dir);
			bt_mount_add_optionf(m, "upperdir=%s/fs", dir);
		}
		bt_buf_append(&lower, "lowerdir=", 9);
		for (size_t i = 0; i < nparents; i++) {
			if (i)
				bt_buf_append(&lower, ":", 1);
			append_layer(&lower, parents[i]);
			bt_buf_append(&lower, "/fs", 3);
		}
		bt_mount_add_option(m, lower.data);
		bt_buf_free(&lower);
	}
	*out = m;
	*nout = 1;
	return 0;
}

const snap_driver snap_overlay_driver = {
	.name = "overlayfs",
	.max_depth = OVERLAY_MAX_LOWER - 1,
	.create = overlay_create,
	.mounts = overlay_mounts,
};
