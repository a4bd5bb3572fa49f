/*
 * bt_mount — mount(2) of snapshotter mounts: option parsing into flags and
 * data, bind and overlay mounts, overlays too long for one page (new mount
 * API with "lowerdir+", or relative paths from a forked child), rollback,
 * and unmounting with a bounded retry on EBUSY.
 */
#define _GNU_SOURCE
#include "bt_mount.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bt_log.h"
#include "bt_util.h"

#define UNMOUNT_TRIES 50     /* × UNMOUNT_PAUSE_MS: how long EBUSY is retried */
#define UNMOUNT_PAUSE_MS 20
#define MAX_STACK 64         /* mounts bt_unmount_all undoes at one target */

void bt_mount_init(bt_mount *m, const char *type, const char *source)
{
	memset(m, 0, sizeof(*m));
	m->type = bt_xstrdup(type);
	m->source = bt_xstrdup(source);
}

void bt_mount_add_option(bt_mount *m, const char *opt)
{
	m->options = bt_xrealloc(m->options, (m->n_options + 1) * sizeof(char *));
	m->options[m->n_options++] = bt_xstrdup(opt);
}

void bt_mount_add_optionf(bt_mount *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	char *s = bt_xvasprintf(fmt, ap);
	va_end(ap);
	m->options = bt_xrealloc(m->options, (m->n_options + 1) * sizeof(char *));
	m->options[m->n_options++] = s;
}

void bt_mount_clear(bt_mount *m)
{
	if (!m)
		return;
	free(m->type);
	free(m->source);
	free(m->target);
	for (size_t i = 0; i < m->n_options; i++)
		free(m->options[i]);
	free(m->options);
	memset(m, 0, sizeof(*m));
}

void bt_mounts_free(bt_mount *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		bt_mount_clear(&v[i]);
	free(v);
}

const char *bt_mount_option(const bt_mount *m, const char *key)
{
	size_t k = strlen(key);

	for (size_t i = 0; i < m->n_options; i++)
		if (strncmp(m->options[i], key, k) == 0 && m->options[i][k] == '=')
			return m->options[i] + k + 1;
	return NULL;
}

void bt_mount_from_pb(const Berth__Types__V1__Mount *pb, bt_mount *out)
{
	bt_mount_init(out, pb->type ? pb->type : "", pb->source ? pb->source : "");
	if (pb->target && *pb->target)
		out->target = bt_xstrdup(pb->target);
	for (size_t i = 0; i < pb->n_options; i++)
		bt_mount_add_option(out, pb->options[i] ? pb->options[i] : "");
}

Berth__Types__V1__Mount **bt_mounts_to_pb(const bt_mount *v, size_t n)
{
	Berth__Types__V1__Mount **pb;

	if (n == 0)
		return NULL;
	pb = bt_xcalloc(n, sizeof(*pb));
	for (size_t i = 0; i < n; i++) {
		pb[i] = bt_xzalloc(sizeof(**pb));
		berth__types__v1__mount__init(pb[i]);
		pb[i]->type = v[i].type;
		pb[i]->source = v[i].source;
		pb[i]->target = v[i].target ? v[i].target : (char *)"";
		pb[i]->n_options = v[i].n_options;
		pb[i]->options = v[i].options;
	}
	return pb;
}

void bt_mounts_pb_free(Berth__Types__V1__Mount **pb, size_t n)
{
	for (size_t i = 0; pb && i < n; i++)
		free(pb[i]);
	free(pb);
}

/* --- options ------------------------------------------------------------------ */

typedef struct parsed {
	unsigned long flags;   /* for mount(2) */
	unsigned long prop;    /* propagation, applied by a separate call */
	bt_buf data;           /* the filesystem's options, comma-separated */
	char **fs_opts;        /* the same, one per entry (for fsconfig) */
	size_t n_fs_opts;
} parsed;

static const struct flag_opt {
	const char *name;
	bool clear;
	unsigned long flag;
} flag_opts[] = {
	{ "async", true, MS_SYNCHRONOUS },   { "atime", true, MS_NOATIME },
	{ "bind", false, MS_BIND },          { "defaults", false, 0 },
	{ "dev", true, MS_NODEV },           { "diratime", true, MS_NODIRATIME },
	{ "dirsync", false, MS_DIRSYNC },    { "exec", true, MS_NOEXEC },
	{ "mand", false, MS_MANDLOCK },      { "noatime", false, MS_NOATIME },
	{ "nodev", false, MS_NODEV },        { "nodiratime", false, MS_NODIRATIME },
	{ "noexec", false, MS_NOEXEC },      { "nomand", true, MS_MANDLOCK },
	{ "norelatime", true, MS_RELATIME }, { "nostrictatime", true, MS_STRICTATIME },
	{ "nosuid", false, MS_NOSUID },      { "rbind", false, MS_BIND | MS_REC },
	{ "relatime", false, MS_RELATIME },  { "remount", false, MS_REMOUNT },
	{ "ro", false, MS_RDONLY },          { "rw", true, MS_RDONLY },
	{ "strictatime", false, MS_STRICTATIME }, { "suid", true, MS_NOSUID },
	{ "sync", false, MS_SYNCHRONOUS },
};

static const struct prop_opt {
	const char *name;
	unsigned long flag;
} prop_opts[] = {
	{ "private", MS_PRIVATE },         { "rprivate", MS_PRIVATE | MS_REC },
	{ "shared", MS_SHARED },           { "rshared", MS_SHARED | MS_REC },
	{ "slave", MS_SLAVE },             { "rslave", MS_SLAVE | MS_REC },
	{ "unbindable", MS_UNBINDABLE },   { "runbindable", MS_UNBINDABLE | MS_REC },
};

static void parsed_free(parsed *p)
{
	bt_buf_free(&p->data);
	for (size_t i = 0; i < p->n_fs_opts; i++)
		free(p->fs_opts[i]);
	free(p->fs_opts);
	memset(p, 0, sizeof(*p));
}

static void parse_options(const bt_mount *m, parsed *p)
{
	memset(p, 0, sizeof(*p));
	if (m->type && strcmp(m->type, "bind") == 0)
		p->flags |= MS_BIND;
	for (size_t i = 0; i < m->n_options; i++) {
		const char *o = m->options[i];
		bool known = false;

		for (size_t k = 0; k < BT_ARRAY_LEN(flag_opts) && !known; k++) {
			if (strcmp(o, flag_opts[k].name) != 0)
				continue;
			known = true;
			if (flag_opts[k].clear)
				p->flags &= ~flag_opts[k].flag;
			else
				p->flags |= flag_opts[k].flag;
		}
		for (size_t k = 0; k < BT_ARRAY_LEN(prop_opts) && !known; k++) {
			if (strcmp(o, prop_opts[k].name) == 0) {
				known = true;
				p->prop |= prop_opts[k].flag;
			}
		}
		if (known || !*o)
			continue;
		if (p->data.len)
			bt_buf_append(&p->data, ",", 1);
		bt_buf_append(&p->data, o, strlen(o));
		p->fs_opts = bt_xrealloc(p->fs_opts, (p->n_fs_opts + 1) * sizeof(char *));
		p->fs_opts[p->n_fs_opts++] = bt_xstrdup(o);
	}
}

/* Splits an overlay lowerdir value at unescaped ':' and removes the escapes. */
static size_t split_lowerdir(const char *v, char ***out)
{
	char **dirs = NULL;
	size_t n = 0;
	bt_buf cur = { 0 };

	for (const char *c = v;; c++) {
		if (*c == '\\' && c[1]) {
			c++;
			bt_buf_append(&cur, c, 1);
			continue;
		}
		if (*c == ':' || !*c) {
			dirs = bt_xrealloc(dirs, (n + 1) * sizeof(char *));
			dirs[n++] = cur.data ? bt_buf_steal(&cur) : bt_xstrdup("");
			if (!*c)
				break;
			continue;
		}
		bt_buf_append(&cur, c, 1);
	}
	bt_buf_free(&cur);
	*out = dirs;
	return n;
}

static void free_dirs(char **dirs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(dirs[i]);
	free(dirs);
}

static size_t page_size(void)
{
	long p = sysconf(_SC_PAGESIZE);
	return p > 0 ? (size_t)p : 4096;
}

/* --- overlay beyond one page: the new mount API --------------------------------- */

/* Appends the kernel's messages about the filesystem context fd to e. */
static void add_fs_log(int fd, bt_err *e)
{
	char buf[512];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		if (n > 0 && buf[n - 1] == '\n')
			buf[n - 1] = '\0';
		size_t l = strlen(e->msg);
		snprintf(e->msg + l, sizeof(e->msg) - l, " (kernel: %s)", buf[0] && buf[1] == ' ' ? buf + 2 : buf);
	}
}

static const struct {
	unsigned long ms;
	unsigned int attr;
} attr_map[] = {
	{ MS_RDONLY, MOUNT_ATTR_RDONLY },     { MS_NOSUID, MOUNT_ATTR_NOSUID },
	{ MS_NODEV, MOUNT_ATTR_NODEV },       { MS_NOEXEC, MOUNT_ATTR_NOEXEC },
	{ MS_NOATIME, MOUNT_ATTR_NOATIME },   { MS_STRICTATIME, MOUNT_ATTR_STRICTATIME },
	{ MS_NODIRATIME, MOUNT_ATTR_NODIRATIME },
};

/*
 * Mounts an overlay with fsopen/fsconfig/fsmount/move_mount, each lower
 * layer passed on its own with "lowerdir+".  Returns 1 when this kernel
 * lacks the new API or the lowerdir+ key (the caller falls back), 0 on
 * success, -1 on error.
 */
static int overlay_new_api(const bt_mount *m, const parsed *p, const char *target, bt_err *e)
{
	_cleanup_close_ int fs = fsopen(m->type, FSOPEN_CLOEXEC);
	_cleanup_close_ int mnt = -1;
	unsigned int attrs = 0;
	bool first_lower = true;

	if (fs < 0) {
		if (errno == ENOSYS || errno == EPERM)
			return 1;
		return bt_err_errno(e, errno, "fsopen %s", m->type);
	}
	if (m->source && *m->source && fsconfig(fs, FSCONFIG_SET_STRING, "source", m->source, 0) < 0) {
		bt_err_errno(e, errno, "fsconfig source=%s", m->source);
		add_fs_log(fs, e);
		return -1;
	}
	for (size_t i = 0; i < p->n_fs_opts; i++) {
		char *o = p->fs_opts[i];
		char *eq = strchr(o, '=');

		if (eq && (size_t)(eq - o) == 8 && strncmp(o, "lowerdir", 8) == 0) {
			char **dirs;
			size_t n = split_lowerdir(eq + 1, &dirs);
			for (size_t k = 0; k < n; k++) {
				if (fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir+", dirs[k], 0) < 0) {
					int err = errno;
					if (first_lower && err == EINVAL) {
						free_dirs(dirs, n);
						return 1; /* kernel < 6.8: no lowerdir+ */
					}
					bt_err_errno(e, err, "fsconfig lowerdir+=%s", dirs[k]);
					add_fs_log(fs, e);
					free_dirs(dirs, n);
					return -1;
				}
				first_lower = false;
			}
			free_dirs(dirs, n);
			continue;
		}
		int rc;
		if (eq) {
			*eq = '\0';
			rc = fsconfig(fs, FSCONFIG_SET_STRING, o, eq + 1, 0);
			*eq = '=';
		} else {
			rc = fsconfig(fs, FSCONFIG_SET_FLAG, o, NULL, 0);
		}
		if (rc < 0) {
			bt_err_errno(e, errno, "fsconfig %s", o);
			add_fs_log(fs, e);
			return -1;
		}
	}
	if ((p->flags & MS_RDONLY) && fsconfig(fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0) {
		bt_err_errno(e, errno, "fsconfig ro");
		add_fs_log(fs, e);
		return -1;
	}
	if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
		bt_err_errno(e, errno, "create %s filesystem", m->type);
		add_fs_log(fs, e);
		return -1;
	}
	for (size_t i = 0; i < BT_ARRAY_LEN(attr_map); i++)
		if (p->flags & attr_map[i].ms)
			attrs |= attr_map[i].attr;
	mnt = fsmount(fs, FSMOUNT_CLOEXEC, attrs);
	if (mnt < 0) {
		bt_err_errno(e, errno, "fsmount %s", m->type);
		add_fs_log(fs, e);
		return -1;
	}
	if (move_mount(mnt, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return bt_err_errno(e, errno, "move the %s mount onto %s", m->type, target);
	return 0;
}

/* --- overlay beyond one page: relative paths from a child ----------------------- */

/* Length of the longest common directory prefix of the absolute paths
 * (ending before a '/'), or 0 when there is none beyond "/". */
static size_t common_dir(char *const *paths, size_t n)
{
	size_t len;

	if (n == 0 || paths[0][0] != '/')
		return 0;
	len = strlen(paths[0]);
	for (size_t i = 1; i < n; i++) {
		size_t k = 0;
		if (paths[i][0] != '/')
			return 0;
		while (k < len && paths[i][k] && paths[i][k] == paths[0][k])
			k++;
		len = k;
	}
	/* back up to a directory boundary that every path continues after */
	for (;;) {
		while (len > 0 && paths[0][len] != '/' && paths[0][len] != '\0')
			len--;
		bool ok = true;
		for (size_t i = 0; i < n && ok; i++)
			ok = paths[i][len] == '/';
		if (ok || len == 0)
			break;
		len--;
	}
	return len;
}

/* Appends s to b with overlay's escapes for ',' ':' and '\\'. */
static void append_escaped(bt_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == ',' || *s == ':' || *s == '\\')
			bt_buf_append(b, "\\", 1);
		bt_buf_append(b, s, 1);
	}
}

/*
 * Mounts the overlay from a child process whose working directory is the
 * common parent of every layer, with paths relative to it: the daemon's
 * threads share one working directory, so only a child may change it.
 */
static int overlay_relative(const bt_mount *m, const parsed *p, const char *target, bt_err *e)
{
	char **paths = NULL;
	size_t npaths = 0;
	bt_buf data = { 0 };
	_cleanup_free_ char *base = NULL;
	_cleanup_free_ char *abs_target = NULL;
	int rc = -1, pipefd[2] = { -1, -1 };
	size_t cut;

	/* every path the options name */
	for (size_t i = 0; i < p->n_fs_opts; i++) {
		const char *o = p->fs_opts[i];
		if (bt_startswith(o, "lowerdir=")) {
			char **dirs;
			size_t n = split_lowerdir(o + 9, &dirs);
			for (size_t k = 0; k < n; k++)
				bt_strv_push(&paths, dirs[k]);
			npaths += n;
			free_dirs(dirs, n);
		} else if (bt_startswith(o, "upperdir=") || bt_startswith(o, "workdir=")) {
			bt_strv_push(&paths, strchr(o, '=') + 1);
			npaths++;
		}
	}
	cut = common_dir(paths, npaths);
	if (cut == 0) {
		bt_strv_free(paths);
		return bt_err_set(e, BT_INVALID_ARGUMENT,
				  "%s options of %zu bytes exceed a page and the layers share no parent directory",
				  m->type, p->data.len);
	}
	base = bt_xstrndup(paths[0], cut);
	bt_strv_free(paths);

	/* the data again, relative to base */
	for (size_t i = 0; i < p->n_fs_opts; i++) {
		const char *o = p->fs_opts[i];
		const char *eq = strchr(o, '=');
		bool lower = bt_startswith(o, "lowerdir="), dir = lower || bt_startswith(o, "upperdir=") ||
								 bt_startswith(o, "workdir=");
		if (data.len)
			bt_buf_append(&data, ",", 1);
		if (!dir) {
			bt_buf_append(&data, o, strlen(o));
			continue;
		}
		bt_buf_append(&data, o, (size_t)(eq - o + 1));
		char **dirs = NULL;
		size_t n;
		if (lower) {
			n = split_lowerdir(eq + 1, &dirs);
		} else {
			bt_strv_push(&dirs, eq + 1);
			n = 1;
		}
		for (size_t k = 0; k < n; k++) {
			if (k)
				bt_buf_append(&data, ":", 1);
			append_escaped(&data, dirs[k] + cut + 1);
		}
		free_dirs(dirs, n);
	}
	if (data.len + 1 > page_size()) {
		rc = bt_err_set(e, BT_INVALID_ARGUMENT,
				"%s options of %zu bytes exceed a page even relative to %s (and lowerdir+ is not available)",
				m->type, data.len, base);
		goto out;
	}
	abs_target = realpath(target, NULL);
	if (!abs_target) {
		rc = bt_err_errno(e, errno, "mount target %s", target);
		goto out;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		rc = bt_err_errno(e, errno, "pipe");
		goto out;
	}
	pid_t pid = fork();
	if (pid < 0) {
		rc = bt_err_errno(e, errno, "fork");
		goto out;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls from here: the parent may have threads. */
		int err = 0;
		if (chdir(base) < 0 ||
		    mount(m->source, abs_target, m->type, p->flags & ~(MS_BIND | MS_REC | MS_REMOUNT), data.data) < 0)
			err = errno;
		ssize_t w = write(pipefd[1], &err, sizeof(err));
		_exit(w == (ssize_t)sizeof(err) && err == 0 ? 0 : 1);
	}
	close(pipefd[1]);
	pipefd[1] = -1;
	int err = EIO, status = 0;
	ssize_t got;
	do
		got = read(pipefd[0], &err, sizeof(err));
	while (got < 0 && errno == EINTR);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (got != (ssize_t)sizeof(err))
		err = EIO;
	if (err != 0) {
		rc = bt_err_errno(e, err, "mount %s on %s (relative to %s)", m->type, target, base);
		goto out;
	}
	rc = 0;
out:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	bt_buf_free(&data);
	return rc;
}

/* --- one mount ------------------------------------------------------------------ */

static int mount_one(const bt_mount *m, const char *target, unsigned how, bt_err *e)
{
	parsed p;
	int rc = -1;

	if (!m->type || !*m->type)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "mount on %s: no filesystem type", target);
	parse_options(m, &p);
	if (p.flags & MS_BIND) {
		if (mount(m->source, target, NULL, MS_BIND | (p.flags & MS_REC), NULL) < 0) {
			rc = bt_err_errno(e, errno, "bind %s on %s", m->source, target);
			goto out;
		}
		/* A bind takes flags like ro only through a remount of itself. */
		unsigned long extra = p.flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
		if (extra && mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | extra, NULL) < 0) {
			rc = bt_err_errno(e, errno, "remount the bind of %s on %s with its options", m->source, target);
			if (umount2(target, UMOUNT_NOFOLLOW) < 0)
				bt_log_warn("undo bind on %s: %s", target, strerror(errno));
			goto out;
		}
	} else {
		bool overlay = strcmp(m->type, "overlay") == 0;
		bool too_long = p.data.len + 1 > page_size();
		int r = 1;

		if (overlay && !(how & BT_MOUNT_NO_NEW_API) && (too_long || (how & BT_MOUNT_FORCE_NEW_API))) {
			r = overlay_new_api(m, &p, target, e);
			if (r < 0)
				goto fail;
		}
		if (r == 1 && overlay && too_long) {
			if (overlay_relative(m, &p, target, e) < 0)
				goto fail;
		} else if (r == 1) {
			if (too_long) {
				rc = bt_err_set(e, BT_INVALID_ARGUMENT, "mount %s on %s: options of %zu bytes exceed a page",
						m->type, target, p.data.len);
				goto out;
			}
			if (mount(m->source, target, m->type, p.flags, p.data.data) < 0) {
				rc = bt_err_errno(e, errno, "mount %s %s on %s%s%s", m->type, m->source, target,
						  p.data.len ? " -o " : "", p.data.len ? p.data.data : "");
				goto out;
			}
		}
	}
	if (p.prop && mount(NULL, target, NULL, p.prop, NULL) < 0) {
		rc = bt_err_errno(e, errno, "set the propagation of %s", target);
		if (umount2(target, UMOUNT_NOFOLLOW) < 0)
			bt_log_warn("undo mount on %s: %s", target, strerror(errno));
		goto out;
	}
	rc = 0;
	goto out;
fail:
	rc = bt_err_wrap(e, "mount %s on %s", m->type, target);
out:
	parsed_free(&p);
	return rc;
}

/* target plus m's own sub-target, which must not climb out of target. */
static char *full_target(const char *target, const bt_mount *m, bt_err *e)
{
	const char *sub = m->target;

	if (!sub || !*sub || strcmp(sub, "/") == 0)
		return bt_xstrdup(target);
	while (*sub == '/')
		sub++;
	for (const char *s = sub; *s;) {
		const char *slash = strchrnul(s, '/');
		if ((slash - s == 2 && strncmp(s, "..", 2) == 0)) {
			bt_err_set(e, BT_INVALID_ARGUMENT, "mount target \"%.200s\" climbs out of %s", m->target, target);
			return NULL;
		}
		s = *slash ? slash + 1 : slash;
	}
	return bt_xasprintf("%s/%s", target, sub);
}

int bt_mount_all_flags(const bt_mount *mounts, size_t n, const char *target, unsigned flags, bt_err *e)
{
	char **done = bt_xcalloc(n + 1, sizeof(char *));
	size_t ndone = 0;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		char *t = full_target(target, &mounts[i], e);
		if (!t || mount_one(&mounts[i], t, flags, e) < 0) {
			free(t);
			rc = -1;
			break;
		}
		done[ndone++] = t;
	}
	if (rc < 0) {
		/* undo in reverse order */
		while (ndone > 0) {
			bt_err ignore;
			ndone--;
			if (bt_unmount(done[ndone], &ignore) < 0)
				bt_log_warn("undo mount: %s", ignore.msg);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(done[i]);
	free(done);
	return rc;
}

int bt_mount_all(const bt_mount *mounts, size_t n, const char *target, bt_err *e)
{
	return bt_mount_all_flags(mounts, n, target, 0, e);
}

/* --- unmounting ------------------------------------------------------------------ */

int bt_unmount(const char *target, bt_err *e)
{
	for (int i = 0;; i++) {
		if (umount2(target, UMOUNT_NOFOLLOW) == 0)
			return 0;
		int err = errno;
		if (err == EINTR)
			continue;
		if (err == EBUSY && i < UNMOUNT_TRIES) {
			struct timespec ts = { .tv_sec = 0, .tv_nsec = UNMOUNT_PAUSE_MS * 1000000L };
			nanosleep(&ts, NULL);
			continue;
		}
		if (err == EINVAL)
			return bt_err_set(e, BT_NOT_FOUND, "unmount %s: not a mount point", target);
		if (err == EBUSY)
			return bt_err_set(e, BT_FAILED_PRECONDITION,
					  "unmount %s: still busy after %d ms (a process uses it; not detaching it lazily)",
					  target, UNMOUNT_TRIES * UNMOUNT_PAUSE_MS);
		return bt_err_errno(e, err, "unmount %s", target);
	}
}

int bt_unmount_all(const char *target, bt_err *e)
{
	for (int i = 0; i < MAX_STACK; i++) {
		bt_err one;
		if (bt_unmount(target, &one) < 0) {
			if (one.code == BT_NOT_FOUND)
				return 0;
			*e = one;
			return -1;
		}
	}
	return bt_err_set(e, BT_FAILED_PRECONDITION, "unmount %s: more than %d mounts stacked there", target,
			  MAX_STACK);
}

int bt_unmount_detach(const char *target, bt_err *e)
{
	if (umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
		if (errno == EINVAL)
			return bt_err_set(e, BT_NOT_FOUND, "detach %s: not a mount point", target);
		return bt_err_errno(e, errno, "detach %s", target);
	}
	bt_log_warn("detached %s lazily: it stays mounted for the processes still using it", target);
	return 0;
}

int bt_is_mountpoint(const char *path, bt_err *e)
{
	struct statx sx;

	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) < 0)
		return bt_err_errno(e, errno, "stat %s", path);
	if (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
		return (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) ? 1 : 0;
	/* older kernels: a different device than the parent's */
	_cleanup_free_ char *parent = bt_xasprintf("%s/..", path);
	struct stat a, b;
	if (stat(path, &a) < 0 || stat(parent, &b) < 0)
		return bt_err_errno(e, errno, "stat %s", path);
	return a.st_dev != b.st_dev || a.st_ino == b.st_ino;
}
