/*
 * bt_util — allocation that aborts on exhaustion, cleanup helpers, clocks,
 * and the durable-write primitives (temp file, fsync, rename, fsync dir).
 */
#define _GNU_SOURCE
#include "bt_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void bt_freep(void *p)
{
	free(*(void **)p);
}

void bt_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

void bt_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

void bt_closedirp(void *d)
{
	DIR **dp = d;
	if (*dp)
		closedir(*dp);
}

void bt_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

void bt_strv_freep(char ***v)
{
	bt_strv_free(*v);
	*v = NULL;
}

size_t bt_strv_len(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

void bt_strv_push(char ***v, const char *s)
{
	size_t n = bt_strv_len(*v);
	*v = bt_xrealloc(*v, (n + 2) * sizeof(char *));
	(*v)[n] = bt_xstrdup(s);
	(*v)[n + 1] = NULL;
}

_Noreturn void bt_oom(void)
{
	static const char msg[] = "berth: out of memory\n";
	ssize_t r = write(2, msg, sizeof(msg) - 1);
	(void)r;
	abort();
}

void *bt_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		bt_oom();
	return p;
}

void *bt_xzalloc(size_t n)
{
	return bt_xcalloc(1, n);
}

void *bt_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		bt_oom();
	return p;
}

void *bt_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		bt_oom();
	return q;
}

char *bt_xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");
	if (!p)
		bt_oom();
	return p;
}

char *bt_xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (!p)
		bt_oom();
	return p;
}

char *bt_xvasprintf(const char *fmt, va_list ap)
{
	char *p;
	if (vasprintf(&p, fmt, ap) < 0)
		bt_oom();
	return p;
}

char *bt_xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = bt_xvasprintf(fmt, ap);
	va_end(ap);
	return p;
}

static void buf_grow(bt_buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	b->data = bt_xrealloc(b->data, cap);
	b->cap = cap;
}

void bt_buf_append(bt_buf *b, const void *p, size_t n)
{
	buf_grow(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void bt_buf_appendf(bt_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	buf_grow(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void bt_buf_free(bt_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

char *bt_buf_steal(bt_buf *b)
{
	char *p = b->data ? b->data : bt_xstrdup("");
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

int64_t bt_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct timespec bt_timespec_in(int clk, int64_t ns)
{
	struct timespec ts;
	clock_gettime((clockid_t)clk, &ts);
	int64_t at = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + (ns > 0 ? ns : 0);
	ts.tv_sec = (time_t)(at / 1000000000LL);
	ts.tv_nsec = (long)(at % 1000000000LL);
	return ts;
}

int64_t bt_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t bt_mono_ms(void)
{
	return bt_mono_ns() / 1000000LL;
}

const char *bt_time_fmt(int64_t ns, char *buf, size_t len)
{
	time_t s = (time_t)(ns / 1000000000LL);
	long frac = (long)(ns % 1000000000LL);
	struct tm tm;
	char date[32];

	if (frac < 0) {
		frac += 1000000000L;
		s -= 1;
	}
	gmtime_r(&s, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%09ldZ", date, frac);
	return buf;
}

int bt_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -1 : 0;
}

int bt_mkdir_p(const char *path, mode_t mode, bt_err *e)
{
	_cleanup_free_ char *p = bt_xstrdup(path);
	size_t n = strlen(p);

	if (n == 0)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "mkdir: empty path");
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return bt_err_errno(e, errno, "mkdir %s", p);
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return bt_err_errno(e, errno, "mkdir %s", p);
	return 0;
}

int bt_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int bt_pwrite_all(int fd, const void *p, size_t n, off_t off)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = pwrite(fd, c, n, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

ssize_t bt_pread_all(int fd, void *p, size_t n, off_t off)
{
	char *c = p;
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, c + got, n - got, off + (off_t)got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int bt_fsync_dir(const char *dir, bt_err *e)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return bt_err_errno(e, errno, "open %s", dir);
	if (fsync(fd) < 0)
		return bt_err_errno(e, errno, "fsync %s", dir);
	return 0;
}

int bt_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, bt_err *e)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -1;
	const char *slash = strrchr(path, '/');

	if (!slash)
		dir = bt_xstrdup(".");
	else if (slash == path)
		dir = bt_xstrdup("/");
	else
		dir = bt_xstrndup(path, (size_t)(slash - path));
	_cleanup_free_ char *rnd = bt_random_hex(4);
	tmp = bt_xasprintf("%s.tmp.%s", path, rnd);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return bt_err_errno(e, errno, "create %s", tmp);
	if (bt_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		int err = errno;
		unlink(tmp);
		return bt_err_errno(e, err, "write %s", tmp);
	}
	if (rename(tmp, path) < 0) {
		int err = errno;
		unlink(tmp);
		return bt_err_errno(e, err, "rename %s", path);
	}
	return bt_fsync_dir(dir, e);
}

int bt_read_file(const char *path, size_t max, char **out, size_t *len, bt_err *e)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	size_t n = 0, cap = 4096;

	if (fd < 0)
		return bt_err_errno(e, errno, "open %s", path);
	buf = bt_xmalloc(cap);
	for (;;) {
		if (n + 1 >= cap) {
			if (cap > max + 1)
				return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "%s: larger than %zu bytes", path, max);
			cap *= 2;
			buf = bt_xrealloc(buf, cap);
		}
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return bt_err_errno(e, errno, "read %s", path);
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max)
			return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "%s: larger than %zu bytes", path, max);
	}
	buf[n] = '\0';
	if (len)
		*len = n;
	*out = BT_STEAL(buf);
	return 0;
}

static int rm_rf_at(int parent, const char *name, dev_t dev, bt_err *e)
{
	struct stat st;

	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return bt_err_errno(e, errno, "stat %s", name);
	}
	if (S_ISDIR(st.st_mode)) {
		if (st.st_dev != dev)
			return bt_err_set(e, BT_FAILED_PRECONDITION, "%s: is a mount point", name);
		int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return bt_err_errno(e, errno, "open %s", name);
		DIR *d = fdopendir(fd);
		if (!d) {
			close(fd);
			return bt_err_errno(e, errno, "opendir %s", name);
		}
		struct dirent *de;
		int rc = 0;
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (rm_rf_at(dirfd(d), de->d_name, dev, e) < 0) {
				rc = -1;
				break;
			}
		}
		closedir(d);
		if (rc < 0)
			return bt_err_wrap(e, "%s", name);
		if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
			return bt_err_errno(e, errno, "rmdir %s", name);
		return 0;
	}
	if (unlinkat(parent, name, 0) < 0 && errno != ENOENT)
		return bt_err_errno(e, errno, "unlink %s", name);
	return 0;
}

int bt_rm_rf(const char *path, bt_err *e)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return bt_err_errno(e, errno, "stat %s", path);
	}
	return rm_rf_at(AT_FDCWD, path, st.st_dev, e);
}

int bt_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

int bt_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (*end) {
		static const struct {
			const char *suffix;
			uint64_t mul;
		} units[] = {
			{ "B", 1 },
			{ "k", 1ULL << 10 }, { "K", 1ULL << 10 }, { "KB", 1ULL << 10 }, { "KiB", 1ULL << 10 },
			{ "m", 1ULL << 20 }, { "M", 1ULL << 20 }, { "MB", 1ULL << 20 }, { "MiB", 1ULL << 20 },
			{ "g", 1ULL << 30 }, { "G", 1ULL << 30 }, { "GB", 1ULL << 30 }, { "GiB", 1ULL << 30 },
		};
		size_t i;
		for (i = 0; i < BT_ARRAY_LEN(units); i++)
			if (!strcmp(end, units[i].suffix))
				break;
		if (i == BT_ARRAY_LEN(units))
			return -1;
		mul = units[i].mul;
	}
	if (v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

int bt_parse_duration_ms(const char *s, int64_t *out)
{
	char *end;
	long long v;
	int64_t mul;

	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (!*end || !strcmp(end, "ms"))
		mul = 1;
	else if (!strcmp(end, "s"))
		mul = 1000;
	else if (!strcmp(end, "m"))
		mul = 60000;
	else if (!strcmp(end, "h"))
		mul = 3600000;
	else
		return -1;
	if (v > INT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

const char *bt_escape(char *buf, size_t size, const char *s, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; s && i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[5];
		size_t n = 1;

		if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			n = 2;
		} else if (c >= 0x20 && c < 0x7f) {
			tmp[0] = (char)c;
		} else {
			snprintf(tmp, sizeof(tmp), "\\x%02x", c);
			n = 4;
		}
		/* keep room for "..." and the NUL */
		if (o + n + 4 > size) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(buf + o, tmp, n);
		o += n;
	}
	buf[o] = '\0';
	return buf;
}

bool bt_startswith(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool bt_endswith(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

void bt_tune_malloc(void)
{
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

void bt_random_bytes(void *buf, size_t n)
{
	char *p = buf;
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			abort();
		}
		p += r;
		n -= (size_t)r;
	}
}

char *bt_random_hex(size_t nbytes)
{
	static const char hex[] = "0123456789abcdef";
	_cleanup_free_ unsigned char *raw = bt_xmalloc(nbytes);
	char *out = bt_xmalloc(nbytes * 2 + 1);

	bt_random_bytes(raw, nbytes);
	for (size_t i = 0; i < nbytes; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[nbytes * 2] = '\0';
	return out;
}
