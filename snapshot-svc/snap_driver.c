/*
 * snap_driver — the table of drivers and what they share: disk usage.
 */
#define _GNU_SOURCE
#include "snap_driver.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bt_map.h"
#include "bt_util.h"

#define DU_MAX_DEPTH 1024

static const snap_driver *const drivers[] = {
	&snap_overlay_driver,
	&snap_native_driver,
};

const snap_driver *snap_driver_find(const char *name)
{
	for (size_t i = 0; i < BT_ARRAY_LEN(drivers); i++)
		if (strcmp(drivers[i]->name, name) == 0)
			return drivers[i];
	/* containerd's plugin is "overlayfs"; accept the filesystem's name too */
	if (strcmp(name, "overlay") == 0)
		return &snap_overlay_driver;
	return NULL;
}

typedef struct du {
	dev_t dev;
	bt_map *seen; /* dev+ino of inodes with several links */
	int64_t size;
	int64_t inodes;
} du;

/* Counts st once; 1 when it was new. */
static void du_count(du *d, const struct stat *st)
{
	if (!S_ISDIR(st->st_mode) && st->st_nlink > 1) {
		uint64_t key[2] = { (uint64_t)st->st_dev, (uint64_t)st->st_ino };
		if (bt_map_get(d->seen, key, sizeof(key)))
			return;
		bt_map_put(d->seen, key, sizeof(key), (void *)1);
	}
	d->size += (int64_t)st->st_blocks * 512;
	d->inodes++;
}

static int du_dir(du *d, int fd, const char *path, int depth, bt_err *e)
{
	DIR *dir;
	struct dirent *de;
	int rc = 0;

	if (depth > DU_MAX_DEPTH) {
		close(fd);
		return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "usage of %s: directories nested deeper than %d", path,
				  DU_MAX_DEPTH);
	}
	dir = fdopendir(fd);
	if (!dir) {
		int err = errno;
		close(fd);
		return bt_err_errno(e, err, "usage: open %s", path);
	}
	while (rc == 0 && (errno = 0, de = readdir(dir))) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue; /* removed meanwhile */
			rc = bt_err_errno(e, errno, "usage: stat %s/%s", path, de->d_name);
			break;
		}
		if (st.st_dev != d->dev)
			continue; /* a mount point inside: not this layer's */
		du_count(d, &st);
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(dir), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				if (errno == ENOENT)
					continue;
				rc = bt_err_errno(e, errno, "usage: open %s/%s", path, de->d_name);
				break;
			}
			_cleanup_free_ char *p = bt_xasprintf("%s/%s", path, de->d_name);
			rc = du_dir(d, sub, p, depth + 1, e);
		}
	}
	if (rc == 0 && errno != 0)
		rc = bt_err_errno(e, errno, "usage: read %s", path);
	closedir(dir);
	return rc;
}

int snap_disk_usage(const char *path, int64_t *size, int64_t *inodes, bt_err *e)
{
	du d = { 0 };
	struct stat st;
	int fd, rc;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return bt_err_errno(e, errno, "usage: open %s", path);
	if (fstat(fd, &st) < 0) {
		int err = errno;
		close(fd);
		return bt_err_errno(e, err, "usage: stat %s", path);
	}
	d.dev = st.st_dev;
	d.seen = bt_map_new();
	du_count(&d, &st);
	rc = du_dir(&d, fd, path, 0, e);
	bt_map_free(&d.seen);
	if (rc < 0)
		return -1;
	*size = d.size;
	*inodes = d.inodes;
	return 0;
}
