/*
 * snap_native — the native driver, for filesystems without overlay: every
 * active snapshot and view is a full copy of its parent in DIR/fs, shown by
 * a bind mount (read-only for a view).  Committing copies nothing.
 *
 * The copy keeps what a root filesystem needs: file types (directories,
 * regular files, symlinks, devices, fifos, sockets), owners, modes
 * (setuid included: chown first, chmod after), timestamps, extended
 * attributes and hard links.  Data is cloned (FICLONE) where the filesystem
 * shares extents, else copied in the kernel (copy_file_range).  The copy is
 * synced before the snapshot is recorded, so a crash never leaves a
 * snapshot with half-written files.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "bt_map.h"
#include "bt_util.h"
#include "snap_driver.h"

#define COPY_MAX_DEPTH 512
#define XATTR_LIST_MAX_BYTES 65536
#define XATTR_VALUE_MAX_BYTES 65536

typedef struct copier {
	dev_t dev;      /* the source tree's device: mount points inside are not copied */
	int dst_root;   /* for hard links: paths relative to it */
	bt_map *links;  /* dev+ino of multiply linked files → first copy's relative path */
	bt_buf rel;     /* relative path of the directory being copied */
} copier;

/* xattrs through a path (symlinks, devices, fifos) or an fd (files, directories). */
static int copy_xattrs(int sfd, int dfd, const char *spath, const char *dpath, bt_err *e)
{
	_cleanup_free_ char *names = bt_xmalloc(XATTR_LIST_MAX_BYTES);
	_cleanup_free_ char *val = bt_xmalloc(XATTR_VALUE_MAX_BYTES);
	ssize_t n = sfd >= 0 ? flistxattr(sfd, names, XATTR_LIST_MAX_BYTES)
			     : llistxattr(spath, names, XATTR_LIST_MAX_BYTES);

	if (n < 0) {
		if (errno == ENOTSUP)
			return 0;
		return bt_err_errno(e, errno, "list xattrs");
	}
	for (ssize_t off = 0; off < n; off += (ssize_t)strlen(names + off) + 1) {
		const char *name = names + off;
		ssize_t v = sfd >= 0 ? fgetxattr(sfd, name, val, XATTR_VALUE_MAX_BYTES)
				     : lgetxattr(spath, name, val, XATTR_VALUE_MAX_BYTES);
		if (v < 0) {
			if (errno == ENODATA)
				continue;
			return bt_err_errno(e, errno, "read xattr %s", name);
		}
		int rc = dfd >= 0 ? fsetxattr(dfd, name, val, (size_t)v, 0)
				  : lsetxattr(dpath, name, val, (size_t)v, 0);
		if (rc < 0) {
			/* symlinks refuse user.* xattrs: nothing to keep there */
			if (errno == EPERM && dfd < 0 && bt_startswith(name, "user."))
				continue;
			return bt_err_errno(e, errno, "set xattr %s", name);
		}
	}
	return 0;
}

static int copy_data(int in, int out, off_t size, bt_err *e)
{
	off_t done = 0;

	if (size == 0)
		return 0;
	if (ioctl(out, FICLONE, in) == 0)
		return 0;
	while (done < size) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)(size - done), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP))
			break; /* fall back to read and write */
		if (n < 0)
			return bt_err_errno(e, errno, "copy");
		if (n == 0)
			return 0; /* the file shrank meanwhile */
		done += n;
	}
	if (done >= size)
		return 0;
	_cleanup_free_ char *buf = bt_xmalloc(1 << 20);
	for (;;) {
		ssize_t n = pread(in, buf, 1 << 20, done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return bt_err_errno(e, errno, "read");
		if (n == 0)
			return 0;
		if (bt_pwrite_all(out, buf, (size_t)n, done) < 0)
			return bt_err_errno(e, errno, "write");
		done += n;
	}
}

static int set_meta_fd(int fd, const struct stat *st, bt_err *e)
{
	struct timespec t[2] = { st->st_atim, st->st_mtim };

	if (fchown(fd, st->st_uid, st->st_gid) < 0)
		return bt_err_errno(e, errno, "chown");
	if (fchmod(fd, st->st_mode & 07777) < 0)
		return bt_err_errno(e, errno, "chmod");
	if (futimens(fd, t) < 0)
		return bt_err_errno(e, errno, "set times");
	return 0;
}

static int copy_dir(copier *c, int sdir, int ddir, int depth, bt_err *e);

/* Copies the entry name of sdir into ddir. */
static int copy_entry(copier *c, int sdir, int ddir, const char *name, int depth, bt_err *e)
{
	struct stat st;
	_cleanup_free_ char *rel = bt_xasprintf("%s%s%s", c->rel.data ? c->rel.data : "", c->rel.len ? "/" : "", name);

	if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return bt_err_errno(e, errno, "stat %s", rel);
	if (st.st_dev != c->dev)
		return bt_err_set(e, BT_FAILED_PRECONDITION, "%s: a mount point inside a snapshot", rel);

	if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
		uint64_t key[2] = { (uint64_t)st.st_dev, (uint64_t)st.st_ino };
		const char *first = bt_map_get(c->links, key, sizeof(key));
		if (first) {
			if (linkat(c->dst_root, first, ddir, name, 0) < 0)
				return bt_err_errno(e, errno, "link %s to %s", rel, first);
			return 0;
		}
		bt_map_put(c->links, key, sizeof(key), bt_xstrdup(rel));
	}

	if (S_ISDIR(st.st_mode)) {
		if (mkdirat(ddir, name, 0700) < 0)
			return bt_err_errno(e, errno, "create %s", rel);
		_cleanup_close_ int s = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		_cleanup_close_ int d = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (s < 0 || d < 0)
			return bt_err_errno(e, errno, "open %s", rel);
		size_t saved = c->rel.len;
		if (c->rel.len)
			bt_buf_append(&c->rel, "/", 1);
		bt_buf_append(&c->rel, name, strlen(name));
		int rc = copy_dir(c, s, d, depth + 1, e);
		c->rel.len = saved;
		c->rel.data[saved] = '\0';
		if (rc < 0)
			return -1;
		/* metadata last: the directory's mtime and a read-only mode must
		 * not be disturbed by the copy of its contents */
		if (copy_xattrs(s, d, NULL, NULL, e) < 0 || set_meta_fd(d, &st, e) < 0)
			return bt_err_wrap(e, "%s", rel);
		return 0;
	}
	if (S_ISREG(st.st_mode)) {
		_cleanup_close_ int s = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (s < 0)
			return bt_err_errno(e, errno, "open %s", rel);
		_cleanup_close_ int d = openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (d < 0)
			return bt_err_errno(e, errno, "create %s", rel);
		if (copy_data(s, d, st.st_size, e) < 0 || copy_xattrs(s, d, NULL, NULL, e) < 0 ||
		    set_meta_fd(d, &st, e) < 0)
			return bt_err_wrap(e, "%s", rel);
		return 0;
	}

	/* symlinks, devices, fifos, sockets: by path (opening them is not safe) */
	_cleanup_free_ char *spath = bt_xasprintf("/proc/self/fd/%d/%s", sdir, name);
	_cleanup_free_ char *dpath = bt_xasprintf("/proc/self/fd/%d/%s", ddir, name);
	if (S_ISLNK(st.st_mode)) {
		_cleanup_free_ char *target = bt_xmalloc((size_t)st.st_size + 2);
		ssize_t n = readlinkat(sdir, name, target, (size_t)st.st_size + 1);
		if (n < 0)
			return bt_err_errno(e, errno, "read link %s", rel);
		if (n > st.st_size)
			return bt_err_set(e, BT_ABORTED, "link %s changed while copied", rel);
		target[n] = '\0';
		if (symlinkat(target, ddir, name) < 0)
			return bt_err_errno(e, errno, "create link %s", rel);
	} else if (mknodat(ddir, name, st.st_mode & (S_IFMT | 0600), st.st_rdev) < 0) {
		return bt_err_errno(e, errno, "create %s", rel);
	}
	if (fchownat(ddir, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return bt_err_errno(e, errno, "chown %s", rel);
	if (!S_ISLNK(st.st_mode) && fchmodat(ddir, name, st.st_mode & 07777, 0) < 0)
		return bt_err_errno(e, errno, "chmod %s", rel);
	if (copy_xattrs(-1, -1, spath, dpath, e) < 0)
		return bt_err_wrap(e, "%s", rel);
	struct timespec t[2] = { st.st_atim, st.st_mtim };
	if (utimensat(ddir, name, t, AT_SYMLINK_NOFOLLOW) < 0)
		return bt_err_errno(e, errno, "set times of %s", rel);
	return 0;
}

static int copy_dir(copier *c, int sdir, int ddir, int depth, bt_err *e)
{
	int fd;
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (depth > COPY_MAX_DEPTH)
		return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "directories nested deeper than %d", COPY_MAX_DEPTH);
	/* a reading handle of its own: sdir stays usable for the *at calls */
	fd = openat(sdir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return bt_err_errno(e, errno, "open directory");
	d = fdopendir(fd);
	if (!d) {
		int err = errno;
		close(fd);
		return bt_err_errno(e, err, "open directory");
	}
	while (rc == 0 && (errno = 0, de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rc = copy_entry(c, sdir, ddir, de->d_name, depth, e);
	}
	if (rc == 0 && errno != 0)
		rc = bt_err_errno(e, errno, "read directory");
	closedir(d);
	return rc;
}

/* Copies the tree at src into the existing directory dst (its root's
 * metadata included). */
static int copy_tree(const char *src, const char *dst, bt_err *e)
{
	copier c = { 0 };
	struct stat st;
	_cleanup_close_ int s = open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int d = open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc;

	if (s < 0)
		return bt_err_errno(e, errno, "open %s", src);
	if (d < 0)
		return bt_err_errno(e, errno, "open %s", dst);
	if (fstat(s, &st) < 0)
		return bt_err_errno(e, errno, "stat %s", src);
	c.dev = st.st_dev;
	c.dst_root = d;
	c.links = bt_map_new();
	rc = copy_dir(&c, s, d, 0, e);
	if (rc == 0 && (copy_xattrs(s, d, NULL, NULL, e) < 0 || set_meta_fd(d, &st, e) < 0))
		rc = -1;
	if (rc == 0 && syncfs(d) < 0)
		rc = bt_err_errno(e, errno, "sync the copy");
	bt_map_iter it;
	void *v;
	bt_map_iter_init(&it, c.links);
	while (bt_map_iter_next(&it, NULL, NULL, &v))
		free(v);
	bt_map_free(&c.links);
	bt_buf_free(&c.rel);
	if (rc < 0)
		return bt_err_wrap(e, "copy %s", src);
	return 0;
}

static int native_create(const char *dir, const char *parent_dir, snap_kind kind, bt_err *e)
{
	_cleanup_free_ char *fs = bt_xasprintf("%s/fs", dir);

	(void)kind;
	if (mkdir(fs, 0755) < 0)
		return bt_err_errno(e, errno, "create %s", fs);
	if (!parent_dir)
		return 0;
	_cleanup_free_ char *pfs = bt_xasprintf("%s/fs", parent_dir);
	return copy_tree(pfs, fs, e);
}

static int native_mounts(const char *dir, snap_kind kind, char *const *parents, size_t nparents, bt_mount **out,
			 size_t *nout, bt_err *e)
{
	_cleanup_free_ char *fs = bt_xasprintf("%s/fs", dir);
	bt_mount *m = bt_xzalloc(sizeof(*m));

	(void)parents;
	(void)nparents;
	(void)e;
	bt_mount_init(m, "bind", fs);
	bt_mount_add_option(m, kind == SNAP_ACTIVE ? "rw" : "ro");
	bt_mount_add_option(m, "rbind");
	*out = m;
	*nout = 1;
	return 0;
}

const snap_driver snap_native_driver = {
	.name = "native",
	.max_depth = 0,
	.create = native_create,
	.mounts = native_mounts,
};
