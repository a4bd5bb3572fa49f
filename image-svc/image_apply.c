/*
 * image_apply — one layer's tar entries onto a snapshot directory.
 *
 * libarchive only reads the tar (format tar, with pax and GNU extensions);
 * it is fed the plain bytes of an img_stream, which hashes them.  Files are
 * written here, each operation relative to the fd of the entry's parent
 * directory, which is resolved inside the root with openat2(RESOLVE_IN_ROOT)
 * and cached while entries stay in one directory.  The final component is
 * never followed: files are created O_EXCL|O_NOFOLLOW, metadata is set
 * through the new file's fd or with AT_SYMLINK_NOFOLLOW, and whatever was in
 * the way (of another type) is removed first.  A cached parent is dropped
 * whenever anything is removed, since a removal can change what a path
 * resolves to.
 *
 * Directory times are set at the end, once nothing more is written in them.
 */
#define _GNU_SOURCE
#include "image_apply.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <locale.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "bt_util.h"

#define PATH_BUF (IMG_APPLY_MAX_PATH + 1)
#define MAX_XATTRS 128 /* per entry */
#define SHOW_MAX 160 /* bytes of a name quoted in an error message */
#define OPQ_XATTR "trusted.overlay.opaque"
#define WH_PREFIX ".wh."
#define WH_META_PREFIX ".wh..wh."
#define WH_OPAQUE ".wh..wh..opq"

/* ---- a set of paths (merged mode: what this layer wrote) ------------------ */

typedef struct pathset {
	char **slot;
	size_t cap, n;
} pathset;

static uint64_t path_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

static char **pathset_find(const pathset *ps, const char *s, size_t n)
{
	size_t mask = ps->cap - 1;
	for (size_t i = path_hash(s, n) & mask;; i = (i + 1) & mask) {
		char *p = ps->slot[i];
		if (!p || (strncmp(p, s, n) == 0 && p[n] == '\0'))
			return &ps->slot[i];
	}
}

static bool pathset_has(const pathset *ps, const char *s, size_t n)
{
	return ps->cap && *pathset_find(ps, s, n) != NULL;
}

/* Adds s[0..n); returns false when it was there already. */
static bool pathset_add(pathset *ps, const char *s, size_t n)
{
	if (2 * (ps->n + 1) > ps->cap) {
		pathset old = *ps;
		ps->cap = old.cap ? 2 * old.cap : 1024;
		ps->slot = bt_xcalloc(ps->cap, sizeof(char *));
		for (size_t i = 0; i < old.cap; i++)
			if (old.slot[i])
				*pathset_find(ps, old.slot[i], strlen(old.slot[i])) = old.slot[i];
		free(old.slot);
	}
	char **at = pathset_find(ps, s, n);
	if (*at)
		return false;
	*at = bt_xstrndup(s, n);
	ps->n++;
	return true;
}

static void pathset_clear(pathset *ps)
{
	for (size_t i = 0; i < ps->cap; i++)
		free(ps->slot[i]);
	free(ps->slot);
	memset(ps, 0, sizeof(*ps));
}

/* ---- the applier ------------------------------------------------------------ */

typedef struct dirtime {
	char *path; /* cleaned name; "" is the root */
	struct timespec ts[2];
} dirtime;

typedef struct entry {
	struct archive_entry *ae;
	const char *raw; /* the name as the layer spells it */
	bool cleaned;    /* name holds the cleaned raw name */
	char name[PATH_BUF];
	char parent[PATH_BUF];
	const char *base; /* last component of name ("" for the root) */
	uid_t uid;
	gid_t gid;
	mode_t perm;
	struct timespec ts[2]; /* atime, mtime */
} entry;

typedef struct applier {
	int rootfd;
	const img_apply_opts *o;
	img_apply_result *res;
	bt_err *e;
	img_stream *st;
	struct archive *ar;
	const void *pending; /* the first plain chunk, read before libarchive starts */
	size_t pending_len;
	bool stream_failed;

	/* the last parent directory resolved; fds dropped from it stay open until the next entry, since the
	 * entry that dropped one may still be using it */
	char *pc_path;
	int pc_fd;
	int *retired;
	size_t n_retired, cap_retired;
	char scratch[2 * PATH_BUF];

	dirtime *dts;
	size_t n_dts, cap_dts;
	pathset written; /* merged mode: names written by this layer and their ancestors */
	int64_t opq_budget;
	int64_t max_entries;
	entry en;
} applier;

/* Quotes a layer name for a message: printable bytes, the rest as \xNN, long names cut. */
static const char *show(const char *s, char buf[SHOW_MAX + 8])
{
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (o >= SHOW_MAX) {
			memcpy(buf + o, "...", 4);
			return buf;
		}
		if (*p >= 0x20 && *p < 0x7f) {
			buf[o++] = (char)*p;
		} else {
			static const char hex[] = "0123456789abcdef";
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[*p >> 4];
			buf[o++] = hex[*p & 15];
		}
	}
	buf[o] = '\0';
	return buf;
}

/* Fails the current entry: "entry NAME: what[: strerror]"; errnum 0 for none. Returns -1. */
__attribute__((format(printf, 4, 5))) static int efail(applier *ap, int code, int errnum, const char *fmt, ...)
{
	char what[512], shown[SHOW_MAX + 8];
	va_list va;

	va_start(va, fmt);
	vsnprintf(what, sizeof(what), fmt, va);
	va_end(va);
	if (ap->en.cleaned)
		show(ap->en.name[0] ? ap->en.name : ".", shown);
	else
		show(ap->en.raw ? ap->en.raw : "", shown);
	if (errnum)
		bt_err_errno(ap->e, errnum, "entry %s: %s", shown, what);
	else
		bt_err_set(ap->e, code, "entry %s: %s", shown, what);
	if (errnum && code)
		ap->e->code = code;
	return -1;
}

static int openat2_in(int dirfd, const char *path, int flags, uint64_t resolve)
{
	struct open_how how = { .flags = (uint64_t)flags | O_CLOEXEC, .mode = 0, .resolve = resolve };
	int fd;

	do
		fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	while (fd < 0 && (errno == EAGAIN || errno == EINTR));
	return fd;
}

#define IN_ROOT (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)
#define BENEATH (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)

static void pc_drop(applier *ap)
{
	free(ap->pc_path);
	ap->pc_path = NULL;
	if (ap->pc_fd < 0)
		return;
	if (ap->n_retired == ap->cap_retired) {
		ap->cap_retired = ap->cap_retired ? 2 * ap->cap_retired : 8;
		ap->retired = bt_xrealloc(ap->retired, ap->cap_retired * sizeof(int));
	}
	ap->retired[ap->n_retired++] = ap->pc_fd;
	ap->pc_fd = -1;
}

static void close_retired(applier *ap)
{
	for (size_t i = 0; i < ap->n_retired; i++)
		close(ap->retired[i]);
	ap->n_retired = 0;
}

/* Makes fd (owned) the cached parent for path. */
static void pc_set(applier *ap, const char *path, int fd)
{
	pc_drop(ap);
	ap->pc_path = bt_xstrdup(path);
	ap->pc_fd = fd;
}

/* Records that this layer wrote path (merged mode), and its ancestors as on the way to it. */
static void note_written(applier *ap, const char *path)
{
	if (ap->o->mode != IMG_APPLY_MERGED || !*path)
		return;
	size_t n = strlen(path);
	if (!pathset_add(&ap->written, path, n))
		return;
	while (n > 0) {
		while (n > 0 && path[n - 1] != '/')
			n--;
		if (n == 0)
			break;
		n--; /* drop the '/' */
		if (!pathset_add(&ap->written, path, n))
			break;
	}
}

static void defer_times(applier *ap, const char *path, const struct timespec ts[2])
{
	if (ap->n_dts == ap->cap_dts) {
		ap->cap_dts = ap->cap_dts ? 2 * ap->cap_dts : 256;
		ap->dts = bt_xrealloc(ap->dts, ap->cap_dts * sizeof(*ap->dts));
	}
	ap->dts[ap->n_dts].path = bt_xstrdup(path);
	ap->dts[ap->n_dts].ts[0] = ts[0];
	ap->dts[ap->n_dts].ts[1] = ts[1];
	ap->n_dts++;
}

/* ---- names ------------------------------------------------------------------ */

int img_apply_clean_name(const char *name, char *out, size_t cap, bt_err *e)
{
	size_t o = 0;
	const char *p = name;

	if (cap == 0)
		return bt_err_set(e, BT_INTERNAL, "no room for a name");
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *s = p;
		while (*p && *p != '/')
			p++;
		size_t n = (size_t)(p - s);
		if (n == 1 && s[0] == '.')
			continue;
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return bt_err_set(e, BT_PERMISSION_DENIED, "name has a \"..\" component");
		if (n > NAME_MAX)
			return bt_err_set(e, BT_INVALID_ARGUMENT, "name has a component longer than %d bytes", NAME_MAX);
		if (o + (o ? 1 : 0) + n + 1 > cap)
			return bt_err_set(e, BT_INVALID_ARGUMENT, "name longer than %zu bytes", cap - 1);
		if (o)
			out[o++] = '/';
		memcpy(out + o, s, n);
		o += n;
	}
	out[o] = '\0';
	return 0;
}

/* Splits a cleaned name into its parent (written to parent) and last component. */
static const char *split_name(const char *name, char *parent)
{
	const char *slash = strrchr(name, '/');

	if (!slash) {
		parent[0] = '\0';
		return name;
	}
	memcpy(parent, name, (size_t)(slash - name));
	parent[slash - name] = '\0';
	return slash + 1;
}

/* ---- removal ---------------------------------------------------------------- */

/*
 * rm -rf of dirfd/name without following symlinks or crossing mounts, with
 * one directory open at a time (depth is bounded by the path length, not by
 * the fd limit): descend into the first non-empty subdirectory, and when a
 * directory is empty remove it and reopen its parent from the top.
 */
static int rm_tree(applier *ap, int dirfd, const char *name)
{
	_cleanup_close_ int top = -1;
	char rel[PATH_BUF] = "";

	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR)
		return efail(ap, 0, errno, "remove %s", name);
	top = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (top < 0)
		return efail(ap, 0, errno, "open %s to remove it", name);
	for (;;) {
		int cur = rel[0] ? openat2_in(top, rel, O_RDONLY | O_DIRECTORY, BENEATH)
				 : openat(top, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cur < 0)
			return efail(ap, 0, errno, "open %s/%s to remove it", name, rel);
		DIR *d = fdopendir(cur);
		if (!d) {
			close(cur);
			return efail(ap, 0, errno, "read %s/%s", name, rel);
		}
		bool descended = false;
		struct dirent *de;
		errno = 0;
		while (!descended && (de = readdir(d))) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if (de->d_type != DT_DIR && (unlinkat(cur, de->d_name, 0) == 0 || errno == ENOENT))
				continue;
			if (de->d_type != DT_DIR && errno != EISDIR) {
				int err = errno;
				closedir(d);
				return efail(ap, 0, err, "remove %s/%s/%s", name, rel, de->d_name);
			}
			if (unlinkat(cur, de->d_name, AT_REMOVEDIR) == 0)
				continue;
			if (errno != ENOTEMPTY && errno != EEXIST) {
				int err = errno;
				closedir(d);
				return efail(ap, 0, err, "remove %s/%s/%s", name, rel, de->d_name);
			}
			size_t rl = strlen(rel), nl = strlen(de->d_name);
			if (rl + 1 + nl + 1 > sizeof(rel)) {
				closedir(d);
				return efail(ap, BT_INVALID_ARGUMENT, 0, "remove %s: tree too deep", name);
			}
			if (rl)
				rel[rl++] = '/';
			memcpy(rel + rl, de->d_name, nl + 1);
			descended = true;
		}
		closedir(d);
		if (descended)
			continue;
		/* rel is empty now: remove it and go back up */
		if (!rel[0])
			break;
		char *slash = strrchr(rel, '/');
		const char *last = slash ? slash + 1 : rel;
		_cleanup_close_ int up = slash ? (*slash = '\0', openat2_in(top, rel, O_PATH | O_DIRECTORY, BENEATH)) : -1;
		if (slash && up < 0)
			return efail(ap, 0, errno, "open %s/%s to remove it", name, rel);
		int r = unlinkat(slash ? up : top, last, AT_REMOVEDIR);
		int err = errno;
		if (r < 0 && err != ENOENT)
			return efail(ap, 0, err, "remove %s/%s/%s", name, rel, last);
		if (!slash)
			rel[0] = '\0';
	}
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return efail(ap, 0, errno, "remove %s", name);
	return 0;
}

/* Removes whatever is at pfd/base (a tree if need be); the parent cache is dropped. */
static int remove_entry(applier *ap, int pfd, const char *base, const struct stat *st)
{
	pc_drop(ap);
	if (S_ISDIR(st->st_mode))
		return rm_tree(ap, pfd, base);
	if (unlinkat(pfd, base, 0) < 0 && errno != ENOENT)
		return efail(ap, 0, errno, "remove the existing %s", base);
	return 0;
}

/* ---- metadata --------------------------------------------------------------- */

static bool is_whiteout_dev(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

/* Sets the entry's xattrs on fd, or (fd < 0) on pfd/base without following it. */
static int set_xattrs(applier *ap, int fd, int pfd, const char *base)
{
	struct archive_entry *ae = ap->en.ae;
	const char *name;
	const void *val;
	size_t size;
	const char *seen[MAX_XATTRS];
	size_t n_seen = 0;

	if (archive_entry_xattr_reset(ae) == 0)
		return 0;
	while (archive_entry_xattr_next(ae, &name, &val, &size) == ARCHIVE_OK) {
		char shown[SHOW_MAX + 8];
		bool dup = false;
		int r;

		if (!name || !*name || strlen(name) > XATTR_NAME_MAX)
			return efail(ap, BT_INVALID_ARGUMENT, 0, "bad xattr name");
		/* libarchive's pax writer records each xattr twice (LIBARCHIVE.xattr.* and SCHILY.xattr.*) */
		for (size_t i = 0; i < n_seen && !dup; i++)
			dup = strcmp(seen[i], name) == 0;
		if (dup)
			continue;
		if (n_seen == MAX_XATTRS)
			return efail(ap, BT_INVALID_ARGUMENT, 0, "more than %d xattrs", MAX_XATTRS);
		seen[n_seen++] = name;
		if (size > IMG_APPLY_MAX_XATTR)
			return efail(ap, BT_INVALID_ARGUMENT, 0, "xattr %s: value of %zu bytes (bound %d)", show(name, shown),
				     size, IMG_APPLY_MAX_XATTR);
		if (bt_startswith(name, "trusted.overlay.")) {
			/* overlayfs's own attributes: a layer setting them could forge whiteouts,
			 * opaque directories or redirects */
			if (ap->o->mode == IMG_APPLY_OVERLAY)
				return efail(ap, BT_PERMISSION_DENIED, 0, "xattr %s is reserved for overlayfs",
					     show(name, shown));
			ap->res->xattrs_skipped++;
			continue;
		}
		if (fd >= 0) {
			r = fsetxattr(fd, name, val, size, 0);
		} else {
			char path[64 + NAME_MAX];
			snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", pfd, base);
			r = lsetxattr(path, name, val, size, 0);
		}
		if (r < 0) {
			if (errno == ENOTSUP || errno == EPERM || errno == EACCES) {
				ap->res->xattrs_skipped++;
				continue;
			}
			return efail(ap, 0, errno, "set xattr %s", show(name, shown));
		}
	}
	return 0;
}

/* chown, xattrs, chmod through an open fd (files, directories); chown first since it clears set-id bits and
 * file capabilities. */
static int set_meta_fd(applier *ap, int fd)
{
	if (fchown(fd, ap->en.uid, ap->en.gid) < 0)
		return efail(ap, 0, errno, "chown");
	if (set_xattrs(ap, fd, -1, NULL) < 0)
		return -1;
	if (fchmod(fd, ap->en.perm) < 0)
		return efail(ap, 0, errno, "chmod");
	return 0;
}

/* The same for what cannot be opened safely (symlinks, devices, fifos). */
static int set_meta_at(applier *ap, int pfd, const char *base, bool chmod_too)
{
	if (fchownat(pfd, base, ap->en.uid, ap->en.gid, AT_SYMLINK_NOFOLLOW) < 0)
		return efail(ap, 0, errno, "chown");
	if (set_xattrs(ap, -1, pfd, base) < 0)
		return -1;
	if (chmod_too && fchmodat(pfd, base, ap->en.perm, AT_SYMLINK_NOFOLLOW) < 0)
		return efail(ap, 0, errno, "chmod");
	if (utimensat(pfd, base, ap->en.ts, AT_SYMLINK_NOFOLLOW) < 0)
		return efail(ap, 0, errno, "set times");
	return 0;
}

/* ---- parents ---------------------------------------------------------------- */

/* Copies the xattrs of the lower directory lfd (O_PATH) to dfd, but overlayfs's own. */
static int copy_xattrs(applier *ap, int lfd, int dfd, const char *path)
{
	_cleanup_close_ int rfd = openat(lfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_free_ char *names = NULL;
	_cleanup_free_ char *val = NULL;
	ssize_t n;

	if (rfd < 0)
		return efail(ap, 0, errno, "open %s in a lower layer", path);
	n = flistxattr(rfd, NULL, 0);
	if (n <= 0)
		return 0;
	names = bt_xmalloc((size_t)n + 1);
	n = flistxattr(rfd, names, (size_t)n);
	if (n <= 0)
		return 0;
	names[n] = '\0';
	val = bt_xmalloc(IMG_APPLY_MAX_XATTR);
	for (ssize_t off = 0; off < n; off += (ssize_t)strlen(names + off) + 1) {
		const char *xn = names + off;
		if (!*xn || bt_startswith(xn, "trusted.overlay."))
			continue; /* opaque below is not opaque here */
		ssize_t vl = fgetxattr(rfd, xn, val, IMG_APPLY_MAX_XATTR);
		if (vl >= 0 && fsetxattr(dfd, xn, val, (size_t)vl, 0) < 0 && errno != ENOTSUP && errno != EPERM)
			return efail(ap, 0, errno, "copy xattr %s of %s", xn, path);
	}
	return 0;
}

/* Copies the metadata of the nearest lower copy of path onto the new directory dfd (overlay mode); without one,
 * root-owned 0755.  Lower directory times are deferred like the layer's own. */
static int copy_lower_meta(applier *ap, const char *path, int dfd)
{
	for (size_t i = 0; i < ap->o->n_lower; i++) {
		_cleanup_close_ int lfd = openat2_in(ap->o->lower_fds[i], path, O_PATH | O_NOFOLLOW, IN_ROOT);
		struct stat st;

		if (lfd < 0) {
			if (errno == ENOENT || errno == ENOTDIR)
				continue;
			return efail(ap, 0, errno, "look up %s in lower layer %zu", path, i);
		}
		if (fstat(lfd, &st) < 0)
			return efail(ap, 0, errno, "stat %s in lower layer %zu", path, i);
		if (!S_ISDIR(st.st_mode))
			break; /* deleted or replaced below: nothing to copy */
		if (fchown(dfd, st.st_uid, st.st_gid) < 0 || fchmod(dfd, st.st_mode & 07777) < 0)
			return efail(ap, 0, errno, "copy the metadata of %s from lower layer %zu", path, i);
		if (copy_xattrs(ap, lfd, dfd, path) < 0)
			return -1;
		struct timespec ts[2] = { st.st_atim, st.st_mtim };
		defer_times(ap, path, ts);
		return 0;
	}
	if (fchmod(dfd, 0755) < 0)
		return efail(ap, 0, errno, "chmod %s", path);
	return 0;
}

/* Creates the missing directories of path (a cleaned name) and returns an fd of it. */
static int make_parents(applier *ap, const char *path)
{
	char prefix[PATH_BUF];
	_cleanup_close_ int prev = -1;
	size_t len = strlen(path);

	for (size_t end = 0; end <= len; end++) {
		if (end < len && path[end] != '/')
			continue;
		memcpy(prefix, path, end);
		prefix[end] = '\0';
		int fd = openat2_in(ap->rootfd, prefix, O_PATH | O_DIRECTORY, IN_ROOT);
		const char *comp = strrchr(prefix, '/');
		comp = comp ? comp + 1 : prefix;
		int pfd = prev >= 0 ? prev : ap->rootfd;
		bool opaque = false;
		if (fd < 0 && errno == ENOTDIR && ap->o->mode == IMG_APPLY_OVERLAY) {
			/* a whiteout made earlier in this layer, now a parent: it becomes an opaque directory,
			 * as the whiteout-then-directory pair would */
			struct stat st;
			if (fstatat(pfd, comp, &st, AT_SYMLINK_NOFOLLOW) < 0 || !is_whiteout_dev(&st))
				return efail(ap, BT_INVALID_ARGUMENT, 0, "parent %s is not a directory", prefix);
			if (remove_entry(ap, pfd, comp, &st) < 0)
				return -1;
			opaque = true;
			errno = ENOENT;
		}
		if (fd < 0 && errno != ENOENT)
			return efail(ap, 0, errno, "resolve parent %s", prefix);
		if (fd < 0) {
			/* prefix's last component is missing in prev (its resolved parent) */
			if (mkdirat(pfd, comp, 0700) < 0) {
				if (errno == EEXIST)
					return efail(ap, BT_INVALID_ARGUMENT, 0, "parent %s is a dangling symlink", prefix);
				return efail(ap, 0, errno, "create parent %s", prefix);
			}
			fd = openat(pfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0)
				return efail(ap, 0, errno, "open new parent %s", prefix);
			if (ap->o->mode == IMG_APPLY_OVERLAY) {
				if (copy_lower_meta(ap, prefix, fd) < 0 ||
				    (opaque && fsetxattr(fd, OPQ_XATTR, "y", 1, 0) < 0 &&
				     efail(ap, 0, errno, "set " OPQ_XATTR " on %s", prefix))) {
					close(fd);
					return -1;
				}
			} else if (fchmod(fd, 0755) < 0) {
				close(fd);
				return efail(ap, 0, errno, "chmod new parent %s", prefix);
			}
			note_written(ap, prefix);
		}
		bt_closep(&prev);
		prev = fd;
	}
	return BT_STEAL_FD(prev);
}

/*
 * An fd of the directory path (a cleaned name, "" for the root) resolved
 * inside the root, borrowed from the cache.  create: make what is missing;
 * else a missing directory yields -2 (no error set).
 */
static int get_dir(applier *ap, const char *path, bool create)
{
	int fd;

	if (!*path)
		return ap->rootfd;
	if (ap->pc_path && strcmp(ap->pc_path, path) == 0)
		return ap->pc_fd;
	fd = openat2_in(ap->rootfd, path, O_PATH | O_DIRECTORY, IN_ROOT);
	if (fd < 0 && (errno == ENOENT || (errno == ENOTDIR && create && ap->o->mode == IMG_APPLY_OVERLAY))) {
		if (!create)
			return -2;
		fd = make_parents(ap, path);
		if (fd < 0)
			return -1;
	} else if (fd < 0) {
		if (errno == ENOTDIR)
			return create ? efail(ap, BT_INVALID_ARGUMENT, 0, "parent %s is not a directory", path) : -2;
		if (errno == EXDEV)
			return efail(ap, BT_PERMISSION_DENIED, errno, "parent %s crosses a mount point", path);
		return efail(ap, 0, errno, "resolve parent %s", path);
	}
	pc_set(ap, path, fd);
	return fd;
}

/* ---- entries ---------------------------------------------------------------- */

/* Makes room for a new entry at pfd/base: removes what is there.  Returns 1 when the caller should retry. */
static int clear_way(applier *ap, int pfd, const char *base)
{
	struct stat st;

	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 1;
		return efail(ap, 0, errno, "stat the existing %s", base);
	}
	if (remove_entry(ap, pfd, base, &st) < 0)
		return -1;
	return 1;
}

static int apply_dir(applier *ap, int pfd, const char *base)
{
	_cleanup_close_ int dfd = -1;
	bool make_opaque = false;

	if (!*base) {
		dfd = openat(ap->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		for (int tries = 0; mkdirat(pfd, base, 0700) < 0; tries++) {
			struct stat st;
			if (errno != EEXIST || tries > 0)
				return efail(ap, 0, errno, "mkdir");
			if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
				return efail(ap, 0, errno, "stat the existing entry");
			if (S_ISDIR(st.st_mode))
				break; /* an existing directory keeps its contents and gets new metadata */
			/* a directory over a whiteout made earlier in this layer hides the lower one */
			make_opaque = ap->o->mode == IMG_APPLY_OVERLAY && is_whiteout_dev(&st);
			if (remove_entry(ap, pfd, base, &st) < 0)
				return -1;
		}
		dfd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (dfd < 0)
		return efail(ap, 0, errno, "open the directory");
	if (set_meta_fd(ap, dfd) < 0)
		return -1;
	if (make_opaque && fsetxattr(dfd, OPQ_XATTR, "y", 1, 0) < 0)
		return efail(ap, 0, errno, "set " OPQ_XATTR);
	defer_times(ap, ap->en.name, ap->en.ts);
	/* the next entries are most likely inside this directory */
	if (*base)
		pc_set(ap, ap->en.name, BT_STEAL_FD(dfd));
	return 0;
}

static int write_data(applier *ap, int fd)
{
	int64_t end = 0;

	for (;;) {
		const void *buf;
		size_t size;
		la_int64_t off;
		int r = archive_read_data_block(ap->ar, &buf, &size, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			if (ap->stream_failed)
				return -1;
			return efail(ap, BT_INVALID_ARGUMENT, 0, "malformed tar stream: %s",
				     archive_error_string(ap->ar) ? archive_error_string(ap->ar) : "unknown error");
		}
		if (size == 0)
			continue;
		/* at the block's offset: sparse files leave holes between blocks */
		if (off < 0 || bt_pwrite_all(fd, buf, size, off) < 0)
			return efail(ap, 0, off < 0 ? EINVAL : errno, "write");
		end = BT_MAX(end, off + (int64_t)size);
	}
	int64_t size = archive_entry_size_is_set(ap->en.ae) ? archive_entry_size(ap->en.ae) : end;
	if (size > end && ftruncate(fd, size) < 0)
		return efail(ap, 0, errno, "extend to %" PRId64 " bytes", size);
	return 0;
}

static int apply_file(applier *ap, int pfd, const char *base)
{
	_cleanup_close_ int fd = -1;

	for (int tries = 0;; tries++) {
		fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			break;
		if (errno != EEXIST || tries > 0)
			return efail(ap, 0, errno, "create");
		if (clear_way(ap, pfd, base) < 0)
			return -1;
	}
	if (write_data(ap, fd) < 0)
		return -1;
	if (set_meta_fd(ap, fd) < 0)
		return -1;
	if (futimens(fd, ap->en.ts) < 0)
		return efail(ap, 0, errno, "set times");
	return 0;
}

static int apply_symlink(applier *ap, int pfd, const char *base)
{
	const char *target = archive_entry_symlink(ap->en.ae);

	if (!target || !*target)
		return efail(ap, BT_INVALID_ARGUMENT, 0, "symlink without a target");
	if (strlen(target) > IMG_APPLY_MAX_PATH)
		return efail(ap, BT_INVALID_ARGUMENT, 0, "symlink target longer than %d bytes", IMG_APPLY_MAX_PATH);
	for (int tries = 0; symlinkat(target, pfd, base) < 0; tries++) {
		if (errno != EEXIST || tries > 0)
			return efail(ap, 0, errno, "create symlink");
		if (clear_way(ap, pfd, base) < 0)
			return -1;
	}
	return set_meta_at(ap, pfd, base, false);
}

static int apply_node(applier *ap, int pfd, const char *base, mode_t type)
{
	dev_t dev = type == S_IFIFO ? 0 : archive_entry_rdev(ap->en.ae);

	for (int tries = 0; mknodat(pfd, base, type | 0600, dev) < 0; tries++) {
		if (errno != EEXIST || tries > 0)
			return efail(ap, 0, errno, "mknod");
		if (clear_way(ap, pfd, base) < 0)
			return -1;
	}
	return set_meta_at(ap, pfd, base, true);
}

/*
 * A hard link: the target is named like any entry and resolved inside the
 * root; linkat never follows it, so a target that is a symlink is linked as
 * the symlink.  Directories (and overlay whiteouts) cannot be targets.
 */
static int apply_hardlink(applier *ap, int pfd, const char *base, const char *target_raw)
{
	char target[PATH_BUF], tparent[PATH_BUF];
	bt_err ce = { 0 };
	struct stat tst, st;
	_cleanup_close_ int tpfd_owned = -1;
	int tpfd;

	if (img_apply_clean_name(target_raw, target, sizeof(target), &ce) < 0)
		return efail(ap, ce.code, 0, "hard link target: %s", ce.msg);
	if (!*target)
		return efail(ap, BT_INVALID_ARGUMENT, 0, "hard link to the root");
	if (strcmp(target, ap->en.name) == 0)
		return efail(ap, BT_INVALID_ARGUMENT, 0, "hard link to itself");
	const char *tbase = split_name(target, tparent);
	if (!*tparent) {
		tpfd = ap->rootfd;
	} else if (ap->pc_path && strcmp(ap->pc_path, tparent) == 0) {
		tpfd = ap->pc_fd;
	} else {
		tpfd = tpfd_owned = openat2_in(ap->rootfd, tparent, O_PATH | O_DIRECTORY, IN_ROOT);
		if (tpfd < 0)
			return efail(ap, BT_INVALID_ARGUMENT, errno, "hard link target %s", target);
	}
	if (fstatat(tpfd, tbase, &tst, AT_SYMLINK_NOFOLLOW) < 0)
		return efail(ap, BT_INVALID_ARGUMENT, errno, "hard link target %s", target);
	if (S_ISDIR(tst.st_mode))
		return efail(ap, BT_INVALID_ARGUMENT, 0, "hard link target %s is a directory", target);
	if (ap->o->mode == IMG_APPLY_OVERLAY && is_whiteout_dev(&tst))
		return efail(ap, BT_INVALID_ARGUMENT, 0, "hard link target %s is a whiteout", target);
	for (int tries = 0; linkat(tpfd, tbase, pfd, base, 0) < 0; tries++) {
		if (errno != EEXIST || tries > 0)
			return efail(ap, 0, errno, "link to %s", target);
		if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == tst.st_dev &&
		    st.st_ino == tst.st_ino)
			return 0; /* already that file */
		if (clear_way(ap, pfd, base) < 0)
			return -1;
	}
	return 0;
}

/* .wh.NAME: NAME is gone from the layers below. */
static int apply_whiteout(applier *ap, const char *victim)
{
	struct stat st;

	if (!*victim || strcmp(victim, ".") == 0 || strcmp(victim, "..") == 0)
		return efail(ap, BT_PERMISSION_DENIED, 0, "whiteout outside its directory");
	if (ap->o->mode == IMG_APPLY_MERGED) {
		int pfd = get_dir(ap, ap->en.parent, false);
		if (pfd == -2)
			return 0; /* nothing there to delete */
		if (pfd < 0)
			return -1;
		if (fstatat(pfd, victim, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				return 0;
			return efail(ap, 0, errno, "stat %s", victim);
		}
		return remove_entry(ap, pfd, victim, &st);
	}
	int pfd = get_dir(ap, ap->en.parent, true);
	if (pfd < 0)
		return -1;
	for (int tries = 0; mknodat(pfd, victim, S_IFCHR, makedev(0, 0)) < 0; tries++) {
		if (errno != EEXIST || tries > 0)
			return efail(ap, 0, errno, "create whiteout %s", victim);
		/* it was written earlier in this layer */
		if (fstatat(pfd, victim, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return efail(ap, 0, errno, "stat %s", victim);
		if (remove_entry(ap, pfd, victim, &st) < 0)
			return -1;
	}
	if (fchownat(pfd, victim, ap->en.uid, ap->en.gid, AT_SYMLINK_NOFOLLOW) < 0)
		return efail(ap, 0, errno, "chown whiteout %s", victim);
	return 0;
}

/*
 * Merged mode: empties rel (relative to the opaque directory dfd) of what this
 * layer did not write; the directories it wrote into are visited too, since
 * nothing below an opaque directory shows through from lower layers.
 */
static int empty_unwritten(applier *ap, int dfd, const char *dir, char *rel)
{
	_cleanup_strv_ char **names = NULL;
	_cleanup_strv_ char **subdirs = NULL;
	int fd = rel[0] ? openat2_in(dfd, rel, O_RDONLY | O_DIRECTORY, BENEATH)
			: openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR || errno == ELOOP ? 0 : efail(ap, 0, errno, "open %s", dir);
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return efail(ap, 0, errno, "read %s", dir);
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (--ap->opq_budget < 0) {
			closedir(d);
			return efail(ap, BT_RESOURCE_EXHAUSTED, 0, "too much work for opaque directories");
		}
		char *full = ap->scratch;
		int n = snprintf(full, sizeof(ap->scratch), "%s%s%s%s%s", dir, *dir ? "/" : "", rel, *rel ? "/" : "",
				 de->d_name);
		if (n < 0 || (size_t)n >= sizeof(ap->scratch) || !pathset_has(&ap->written, full, (size_t)n))
			bt_strv_push(&names, de->d_name);
		else if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN)
			bt_strv_push(&subdirs, de->d_name);
	}
	int lfd = dirfd(d);
	for (size_t i = 0; names && names[i]; i++) {
		struct stat st;
		if (fstatat(lfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (remove_entry(ap, lfd, names[i], &st) < 0) {
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	size_t rl = strlen(rel);
	for (size_t i = 0; subdirs && subdirs[i]; i++) {
		size_t nl = strlen(subdirs[i]);
		if (rl + 1 + nl + 1 > PATH_BUF)
			continue;
		if (rl)
			rel[rl] = '/';
		memcpy(rel + rl + (rl ? 1 : 0), subdirs[i], nl + 1);
		int r = empty_unwritten(ap, dfd, dir, rel);
		rel[rl] = '\0';
		if (r < 0)
			return -1;
	}
	return 0;
}

/* .wh..wh..opq: the directory holding it shows nothing from the layers below. */
static int apply_opaque(applier *ap)
{
	const char *dir = ap->en.parent;
	_cleanup_close_ int dfd = -1;

	if (ap->o->mode == IMG_APPLY_OVERLAY) {
		int pfd = get_dir(ap, dir, true);
		if (pfd < 0)
			return -1;
		dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fsetxattr(dfd, OPQ_XATTR, "y", 1, 0) < 0)
			return efail(ap, 0, errno, "set " OPQ_XATTR " on %s", *dir ? dir : "the root");
		return 0;
	}
	int pfd = get_dir(ap, dir, false);
	if (pfd == -2)
		return 0;
	if (pfd < 0)
		return -1;
	dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return efail(ap, 0, errno, "open %s", *dir ? dir : "the root");
	pc_drop(ap);
	char rel[PATH_BUF] = "";
	return empty_unwritten(ap, dfd, dir, rel);
}

/* Fills ap->en from the header: name, owner, mode, times. */
static int read_entry(applier *ap, struct archive_entry *ae)
{
	entry *en = &ap->en;
	bt_err ce = { 0 };

	en->ae = ae;
	en->cleaned = false;
	/* an empty name is the root, like "." */
	en->raw = archive_entry_pathname(ae);
	if (!en->raw)
		en->raw = "";
	if (img_apply_clean_name(en->raw, en->name, sizeof(en->name), &ce) < 0)
		return efail(ap, ce.code, 0, "%s", ce.msg);
	en->cleaned = true;
	en->base = split_name(en->name, en->parent);
	la_int64_t uid = archive_entry_uid(ae), gid = archive_entry_gid(ae);
	/* (uid_t)-1 means "leave as is" to chown, and larger ids must not wrap to root */
	if (uid < 0 || uid >= (la_int64_t)UINT32_MAX || gid < 0 || gid >= (la_int64_t)UINT32_MAX)
		return efail(ap, BT_INVALID_ARGUMENT, 0, "owner %" PRId64 ":%" PRId64 " out of range", (int64_t)uid,
			     (int64_t)gid);
	en->uid = (uid_t)uid;
	en->gid = (gid_t)gid;
	en->perm = archive_entry_perm(ae) & 07777;
	long mns = archive_entry_mtime_nsec(ae);
	en->ts[1].tv_sec = archive_entry_mtime(ae);
	en->ts[1].tv_nsec = mns >= 0 && mns < 1000000000L ? mns : 0;
	en->ts[0] = en->ts[1];
	if (archive_entry_atime_is_set(ae)) {
		long ans = archive_entry_atime_nsec(ae);
		struct timespec at = { archive_entry_atime(ae), ans >= 0 && ans < 1000000000L ? ans : 0 };
		if (at.tv_sec > en->ts[1].tv_sec || (at.tv_sec == en->ts[1].tv_sec && at.tv_nsec > en->ts[1].tv_nsec))
			en->ts[0] = at;
	}
	return 0;
}

static int apply_entry(applier *ap, struct archive_entry *ae)
{
	entry *en = &ap->en;
	const char *link;
	mode_t type;
	int pfd;

	if (read_entry(ap, ae) < 0)
		return -1;
	if (bt_startswith(en->base, WH_PREFIX)) {
		if (strcmp(en->base, WH_OPAQUE) == 0)
			return apply_opaque(ap);
		if (bt_startswith(en->base, WH_META_PREFIX))
			return efail(ap, BT_INVALID_ARGUMENT, 0, "reserved whiteout name");
		return apply_whiteout(ap, en->base + strlen(WH_PREFIX));
	}
	link = archive_entry_hardlink(ae);
	type = archive_entry_filetype(ae);
	if (!*en->base) {
		if (link || type != AE_IFDIR)
			return efail(ap, BT_INVALID_ARGUMENT, 0, "the root can only be a directory");
		return apply_dir(ap, ap->rootfd, "");
	}
	pfd = get_dir(ap, en->parent, true);
	if (pfd < 0)
		return -1;
	int r;
	if (link) {
		r = apply_hardlink(ap, pfd, en->base, link);
	} else {
		switch (type) {
		case AE_IFDIR:
			r = apply_dir(ap, pfd, en->base);
			break;
		case AE_IFREG:
			r = apply_file(ap, pfd, en->base);
			break;
		case AE_IFLNK:
			r = apply_symlink(ap, pfd, en->base);
			break;
		case AE_IFCHR:
		case AE_IFBLK:
		case AE_IFIFO:
			r = apply_node(ap, pfd, en->base, type);
			break;
		case AE_IFSOCK:
			return 0; /* tar cannot carry a socket; skip as tar does */
		default:
			return efail(ap, BT_INVALID_ARGUMENT, 0, "unknown entry type 0%o", (unsigned)type);
		}
	}
	if (r < 0)
		return -1;
	note_written(ap, en->name);
	return 0;
}

/* Directory times, now that nothing more is written in them. */
static int set_dir_times(applier *ap)
{
	for (size_t i = 0; i < ap->n_dts; i++) {
		const dirtime *dt = &ap->dts[i];
		struct stat st;
		if (!dt->path[0]) {
			if (utimensat(ap->rootfd, "", dt->ts, AT_EMPTY_PATH) < 0)
				return bt_err_errno(ap->e, errno, "set the times of the root");
			continue;
		}
		_cleanup_close_ int fd = openat2_in(ap->rootfd, dt->path, O_PATH | O_NOFOLLOW, IN_ROOT);
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode))
			continue; /* replaced or removed by a later entry */
		if (utimensat(fd, "", dt->ts, AT_EMPTY_PATH) < 0) {
			char shown[SHOW_MAX + 8];
			return bt_err_errno(ap->e, errno, "set the times of %s", show(dt->path, shown));
		}
	}
	return 0;
}

/* libarchive's reader: the plain chunks of the stream. */
static la_ssize_t tar_read(struct archive *a, void *arg, const void **buf)
{
	applier *ap = arg;
	ssize_t n;

	if (ap->pending_len) {
		*buf = ap->pending;
		n = (ssize_t)ap->pending_len;
		ap->pending_len = 0;
		return n;
	}
	n = img_stream_next(ap->st, buf, ap->e);
	if (n < 0) {
		ap->stream_failed = true;
		archive_set_error(a, EIO, "layer stream failed");
	}
	return n;
}

/* An error from libarchive: the stream's own if it failed, else a malformed tar. */
static int tar_fail(applier *ap, const char *what)
{
	char shown[SHOW_MAX + 8];

	if (ap->stream_failed)
		return -1;
	show(archive_error_string(ap->ar) ? archive_error_string(ap->ar) : "unknown error", shown);
	return bt_err_set(ap->e, BT_INVALID_ARGUMENT, "malformed tar stream after %" PRId64 " entries: %s: %s",
			  ap->res->entries, what, shown);
}

static int apply_entries(applier *ap)
{
	struct archive_entry *ae;
	const void *first;
	ssize_t n = img_stream_next(ap->st, &first, ap->e);

	if (n <= 0)
		return (int)n; /* an empty stream is an empty layer */
	ap->pending = first;
	ap->pending_len = (size_t)n;
	ap->ar = archive_read_new();
	if (!ap->ar)
		bt_oom();
	if (archive_read_support_format_tar(ap->ar) != ARCHIVE_OK)
		return bt_err_set(ap->e, BT_INTERNAL, "libarchive: no tar support");
	if (archive_read_open(ap->ar, ap, NULL, tar_read, NULL) != ARCHIVE_OK)
		return tar_fail(ap, "open");
	for (;;) {
		int r = archive_read_next_header(ap->ar, &ae);
		if (r == ARCHIVE_EOF)
			break;
		/* warnings (names not convertible to the locale, …) keep the raw bytes: apply them */
		if (r < ARCHIVE_WARN)
			return tar_fail(ap, "read header");
		if (++ap->res->entries > ap->max_entries)
			return bt_err_set(ap->e, BT_RESOURCE_EXHAUSTED, "layer has more than %" PRId64 " entries",
					  ap->max_entries);
		ap->en.raw = NULL;
		ap->en.cleaned = false;
		close_retired(ap);
		if (apply_entry(ap, ae) < 0)
			return -1;
	}
	/* the rest of the stream (tar padding, trailing blocks) still counts for the digests */
	const void *buf;
	while ((n = img_stream_next(ap->st, &buf, ap->e)) > 0)
		;
	return n < 0 ? -1 : 0;
}

int img_apply(int rootfd, const img_apply_opts *o, img_apply_result *out, bt_err *e)
{
	applier ap = { .rootfd = rootfd, .o = o, .res = out, .e = e, .pc_fd = -1 };
	_cleanup_close_ int probe = -1;
	int r = -1;

	memset(out, 0, sizeof(*out));
	if (!o->read)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "apply layer: no reader");
	if (o->n_lower && !o->lower_fds)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "apply layer: lower layers without fds");
	probe = openat2_in(rootfd, ".", O_PATH | O_DIRECTORY, IN_ROOT);
	if (probe < 0) {
		if (errno == ENOSYS || errno == E2BIG || errno == EINVAL)
			return bt_err_set(e, BT_UNIMPLEMENTED,
					  "apply layer: openat2 with RESOLVE_IN_ROOT is needed (Linux 5.6 or later)");
		return bt_err_errno(e, errno, "apply layer: root directory");
	}
	ap.max_entries = o->max_entries > 0 ? o->max_entries : IMG_APPLY_MAX_ENTRIES;
	ap.opq_budget = 8 * ap.max_entries + (1 << 20);

	/* libarchive converts pax names from UTF-8 to the locale's charset; in the C locale that fails
	 * harmlessly and leaves the raw bytes, which is what the layer meant */
	locale_t cloc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	locale_t prev = cloc ? uselocale(cloc) : (locale_t)0;

	img_stream_opts so = {
		.read = o->read,
		.arg = o->arg,
		.progress = o->progress,
		.max_total = o->max_total > 0 ? o->max_total : IMG_APPLY_MAX_TOTAL,
		.threaded = !o->single_thread,
	};
	ap.st = img_stream_new(&so, e);
	if (!ap.st)
		goto out;
	out->compression = img_stream_comp(ap.st);
	if (apply_entries(&ap) < 0)
		goto out;
	if (set_dir_times(&ap) < 0)
		goto out;
	img_stream_result(ap.st, out->compressed_digest, &out->compressed_size, out->diff_id,
			  &out->uncompressed_size);
	r = 0;
out:
	if (r < 0 && e->code != BT_OK && !bt_startswith(e->msg, "apply layer"))
		bt_err_wrap(e, "apply layer");
	if (ap.ar)
		archive_read_free(ap.ar);
	img_stream_free(&ap.st);
	pc_drop(&ap);
	close_retired(&ap);
	free(ap.retired);
	for (size_t i = 0; i < ap.n_dts; i++)
		free(ap.dts[i].path);
	free(ap.dts);
	pathset_clear(&ap.written);
	if (cloc) {
		uselocale(prev);
		freelocale(cloc);
	}
	return r;
}
