/*
 * test_image_apply — layer decompression and application: every entry type
 * and attribute, both modes (overlay upper dir and merged view), digests,
 * gzip/zstd/plain streams good and bad, bounds, and every way a layer might
 * try to reach outside its root (checked against a sentinel directory beside
 * the root).  Runs as root: owners, devices and trusted.* xattrs need it.
 *
 * Layers are built here with libarchive's writer (pax) into memory, then
 * compressed with isa-l or libzstd.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <isa-l/igzip_lib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zstd.h>

#include "bt_digest.h"
#include "bt_util.h"
#include "image_apply.h"
#include "image_decompress.h"

static char base[256]; /* per-run temp dir: root*, sentinel, lower* */
static int seq;

/* ---- layers ------------------------------------------------------------------ */

typedef struct ent {
	const char *name;
	mode_t type; /* AE_IFREG (default), AE_IFDIR, … */
	mode_t perm; /* 0 → 0644 / 0755 */
	const char *data;
	size_t len; /* data length; 0 → strlen(data) */
	const char *link;     /* symlink target */
	const char *hardlink; /* hard link target */
	int64_t uid, gid;
	time_t mtime;
	long nsec;
	dev_t rdev;
	const char *xname, *xval; /* one xattr */
	size_t xlen;
	bool sparse; /* data at 1 MiB, a hole before it */
} ent;

typedef struct layer {
	struct archive *a;
	bt_buf tar;
} layer;

static la_ssize_t lw_write(struct archive *a, void *arg, const void *p, size_t n)
{
	(void)a;
	bt_buf_append(arg, p, n);
	return (la_ssize_t)n;
}

static layer *layer_new(void)
{
	layer *l = bt_xzalloc(sizeof(*l));
	l->a = archive_write_new();
	assert_int_equal(archive_write_set_format_pax(l->a), ARCHIVE_OK);
	assert_int_equal(archive_write_open(l->a, &l->tar, NULL, lw_write, NULL), ARCHIVE_OK);
	return l;
}

static void layer_add(layer *l, ent s)
{
	struct archive_entry *e = archive_entry_new();
	mode_t type = s.type ? s.type : AE_IFREG;
	size_t len = s.data ? (s.len ? s.len : strlen(s.data)) : 0;

	archive_entry_set_pathname(e, s.name);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, s.perm ? s.perm : (type == AE_IFDIR ? 0755 : 0644));
	archive_entry_set_uid(e, s.uid);
	archive_entry_set_gid(e, s.gid);
	archive_entry_set_mtime(e, s.mtime ? s.mtime : 1600000000, s.nsec);
	if (s.link)
		archive_entry_set_symlink(e, s.link);
	if (s.hardlink)
		archive_entry_set_hardlink(e, s.hardlink);
	if (s.rdev)
		archive_entry_set_rdev(e, s.rdev);
	if (s.xname)
		archive_entry_xattr_add_entry(e, s.xname, s.xval, s.xlen ? s.xlen : strlen(s.xval));
	if (s.sparse) {
		archive_entry_set_size(e, (1 << 20) + (la_int64_t)len);
		archive_entry_sparse_add_entry(e, 1 << 20, (la_int64_t)len);
	} else {
		archive_entry_set_size(e, type == AE_IFREG && !s.hardlink ? (la_int64_t)len : 0);
	}
	/* WARN: a name that is not UTF-8 is written as its bytes */
	assert_true(archive_write_header(l->a, e) >= ARCHIVE_WARN);
	if (len && type == AE_IFREG && !s.hardlink)
		assert_int_equal(archive_write_data(l->a, s.data, len), (la_ssize_t)len);
	archive_entry_free(e);
}

/* Closes the archive; the plain tar is in l->tar. */
static void layer_close(layer *l)
{
	assert_int_equal(archive_write_close(l->a), ARCHIVE_OK);
	archive_write_free(l->a);
	l->a = NULL;
}

static void layer_free(layer *l)
{
	if (l->a)
		archive_write_free(l->a);
	bt_buf_free(&l->tar);
	free(l);
}

static void gzip_into(const void *p, size_t n, bt_buf *out)
{
	struct isal_zstream z;
	size_t cap = n + n / 2 + 4096;
	char *buf = bt_xmalloc(cap);

	isal_deflate_init(&z);
	z.gzip_flag = IGZIP_GZIP;
	z.end_of_stream = 1;
	z.next_in = (uint8_t *)p;
	z.avail_in = (uint32_t)n;
	z.next_out = (uint8_t *)buf;
	z.avail_out = (uint32_t)cap;
	assert_int_equal(isal_deflate(&z), COMP_OK);
	assert_int_equal(z.internal_state.state, ZSTATE_END);
	bt_buf_append(out, buf, z.total_out);
	free(buf);
}

static void zstd_into(const void *p, size_t n, bt_buf *out)
{
	size_t cap = ZSTD_compressBound(n);
	char *buf = bt_xmalloc(cap);
	ZSTD_CCtx *c = ZSTD_createCCtx();
	/* with a checksum, as the zstd tool writes */
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)));
	size_t r = ZSTD_compress2(c, buf, cap, p, n);
	ZSTD_freeCCtx(c);
	assert_false(ZSTD_isError(r));
	bt_buf_append(out, buf, r);
	free(buf);
}

/* ---- applying ------------------------------------------------------------------ */

typedef struct memsrc {
	const char *p;
	size_t n, off, chunk;
	int fail_at; /* fail the read that would pass this offset (−1 never) */
	int64_t progress;
} memsrc;

static ssize_t mem_read(void *arg, void *buf, size_t len, bt_err *e)
{
	memsrc *m = arg;
	size_t k = BT_MIN(BT_MIN(len, m->chunk), m->n - m->off);
	if (m->fail_at >= 0 && m->off + k > (size_t)m->fail_at)
		return bt_err_set(e, BT_UNAVAILABLE, "connection reset by test");
	memcpy(buf, m->p + m->off, k);
	m->off += k;
	return (ssize_t)k;
}

static void mem_progress(void *arg, int64_t consumed)
{
	memsrc *m = arg;
	assert_true(consumed >= m->progress);
	m->progress = consumed;
}

/* How tests drive img_apply: alternated between threaded and single, big and tiny reads. */
static int variant;

static int apply_ex(int rootfd, const void *p, size_t n, img_apply_mode mode, const int *lowers, size_t nl,
		    img_apply_result *r, bt_err *e)
{
	static const size_t chunks[] = { 1 << 20, 7, 65536, 4093 };
	memsrc m = { .p = p, .n = n, .chunk = chunks[variant % 4], .fail_at = -1 };
	img_apply_opts o = {
		.mode = mode,
		.lower_fds = lowers,
		.n_lower = nl,
		.read = mem_read,
		.arg = &m,
		.progress = mem_progress,
		.single_thread = variant % 2 == 1,
	};
	img_apply_result tmp;
	variant++;
	bt_err_clear(e);
	int rc = img_apply(rootfd, &o, r ? r : &tmp, e);
	if (rc == 0) {
		assert_int_equal(m.off, n); /* the stream is always read to its end */
		assert_int_equal(m.progress, (int64_t)n);
	}
	return rc;
}

static int apply(int rootfd, layer *l, img_apply_mode mode, bt_err *e)
{
	return apply_ex(rootfd, l->tar.data, l->tar.len, mode, NULL, 0, NULL, e);
}

/* A fresh empty directory base/NAME-N; returns an O_PATH fd of it and its path in path. */
static int mkroot(const char *name, char path[512])
{
	snprintf(path, 512, "%s/%s-%d", base, name, ++seq);
	assert_int_equal(mkdir(path, 0755), 0);
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static char *at(const char *root, const char *rel)
{
	static char buf[4][1024];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", root, rel);
	return buf[i];
}

static bool exists(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0;
}

static char *slurp(const char *p)
{
	char *data = NULL;
	size_t len;
	bt_err e;
	if (bt_read_file(p, 1 << 24, &data, &len, &e) < 0)
		return NULL;
	return data;
}

/* ---- the sentinel: a tree beside the roots whose every byte and attribute is compared ------------ */

static bt_buf *snap_out;

static int snap_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)flag;
	(void)f;
	bt_buf_appendf(snap_out, "%s %o %u:%u %lld %lld.%ld", p, st->st_mode, st->st_uid, st->st_gid,
		       (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	if (S_ISREG(st->st_mode)) {
		char *d = slurp(p);
		char dg[BT_DIGEST_STR_LEN];
		bt_digest_buf(d ? d : "", d ? strlen(d) : 0, dg);
		bt_buf_appendf(snap_out, " %s", dg);
		free(d);
	} else if (S_ISLNK(st->st_mode)) {
		char t[PATH_MAX];
		ssize_t n = readlink(p, t, sizeof(t) - 1);
		bt_buf_appendf(snap_out, " -> %.*s", (int)(n > 0 ? n : 0), t);
	}
	bt_buf_append(snap_out, "\n", 1);
	return 0;
}

static char *snapshot(const char *dir)
{
	bt_buf b = { 0 };
	snap_out = &b;
	assert_int_equal(nftw(dir, snap_one, 16, FTW_PHYS), 0);
	return bt_buf_steal(&b);
}

static char sentinel[512];
static char *sentinel_before;

static void make_sentinel(void)
{
	snprintf(sentinel, sizeof(sentinel), "%s/sentinel", base);
	assert_int_equal(mkdir(sentinel, 0755), 0);
	assert_int_equal(mkdir(at(sentinel, "etc"), 0755), 0);
	assert_int_equal(bt_write_file_atomic(at(sentinel, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n", 26, 0644, NULL), 0);
	assert_int_equal(bt_write_file_atomic(at(sentinel, "victim"), "precious\n", 9, 0600, NULL), 0);
	assert_int_equal(mkdir(at(sentinel, "dir"), 0700), 0);
	assert_int_equal(bt_write_file_atomic(at(sentinel, "dir/f"), "f\n", 2, 0644, NULL), 0);
	sentinel_before = snapshot(sentinel);
}

static void assert_sentinel_intact(void)
{
	char *now = snapshot(sentinel);
	assert_string_equal(now, sentinel_before);
	free(now);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	if (flag == FTW_DP)
		return rmdir(p);
	return unlink(p);
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(base, sizeof(base), "/tmp/test_image_apply.XXXXXX");
	if (!mkdtemp(base))
		return -1;
	chmod(base, 0755);
	make_sentinel();
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	umount2(at(base, "mnt"), MNT_DETACH);
	nftw(base, rm_one, 16, FTW_PHYS | FTW_DEPTH);
	free(sentinel_before);
	return 0;
}

/* ---- names and compression --------------------------------------------------------- */

static void test_clean_name(void **state)
{
	(void)state;
	static const char *const good[][2] = {
		{ "./a//b/", "a/b" }, { "a", "a" },	{ ".", "" },	     { "", "" },	 { "./", "" },
		{ "/etc/x", "etc/x" }, { "a/./b/.", "a/b" }, { "///a", "a" }, { "...", "..." }, { "a/..b", "a/..b" },
	};
	static const char *const bad[] = { "..", "../etc/x", "a/../../b", "a/..", "/..", "a/../b" };
	char out[PATH_MAX + 8];
	bt_err e;

	for (size_t i = 0; i < BT_ARRAY_LEN(good); i++) {
		assert_int_equal(img_apply_clean_name(good[i][0], out, sizeof(out), &e), 0);
		assert_string_equal(out, good[i][1]);
	}
	for (size_t i = 0; i < BT_ARRAY_LEN(bad); i++) {
		assert_int_equal(img_apply_clean_name(bad[i], out, sizeof(out), &e), -1);
		assert_int_equal(e.code, BT_PERMISSION_DENIED);
	}
	char longname[300];
	memset(longname, 'a', 299);
	longname[299] = '\0';
	assert_int_equal(img_apply_clean_name(longname, out, sizeof(out), &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	char *deep = bt_xmalloc(6000);
	for (int i = 0; i < 3000; i++)
		memcpy(deep + 2 * i, "a/", 2);
	deep[5999] = '\0';
	assert_int_equal(img_apply_clean_name(deep, out, IMG_APPLY_MAX_PATH + 1, &e), -1);
	assert_non_null(strstr(e.msg, "longer than 4096"));
	free(deep);
}

static void test_detect(void **state)
{
	(void)state;
	assert_int_equal(img_comp_detect("\x1f\x8b\x08\x00", 4), IMG_COMP_GZIP);
	assert_int_equal(img_comp_detect("\x28\xb5\x2f\xfd", 4), IMG_COMP_ZSTD);
	assert_int_equal(img_comp_detect("\x28\xb5\x2f", 3), IMG_COMP_NONE);
	assert_int_equal(img_comp_detect("ustar", 5), IMG_COMP_NONE);
	assert_int_equal(img_comp_detect("", 0), IMG_COMP_NONE);
}

/* Runs a whole buffer through a decompressor in feeds of `step` bytes into outputs of `ocap` bytes. */
static int decomp_all(img_comp c, const void *p, size_t n, size_t step, size_t ocap, bt_buf *out, bt_err *e)
{
	_cleanup_decomp_ img_decomp *d = img_decomp_new(c, e);
	char *o = bt_xmalloc(ocap);
	size_t off = 0;
	bool eof = false;
	int rc = 0;

	assert_non_null(d);
	while (!eof) {
		size_t feed = BT_MIN(step, n - off), used, made;
		if (img_decomp_run(d, (const char *)p + off, feed, &used, o, ocap, &made, &eof, e) < 0) {
			rc = -1;
			break;
		}
		off += used;
		bt_buf_append(out, o, made);
		assert_true(feed == 0 || used > 0 || made > 0);
	}
	free(o);
	if (rc == 0)
		assert_int_equal(off, n);
	return rc;
}

static void test_decompress(void **state)
{
	(void)state;
	size_t n = 300000;
	char *plain = bt_xmalloc(n);
	bt_buf gz = { 0 }, zs = { 0 }, out = { 0 };
	bt_err e;

	for (size_t i = 0; i < n; i++)
		plain[i] = (char)((i * 7) ^ (i >> 9));
	/* two gzip members, then zero padding */
	gzip_into(plain, 100000, &gz);
	gzip_into(plain + 100000, n - 100000, &gz);
	size_t members_len = gz.len;
	bt_buf_append(&gz, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
	static const size_t steps[][2] = { { 1 << 20, 1 << 20 }, { 1, 4096 }, { 13, 1 }, { 4096, 100 } };
	for (size_t s = 0; s < BT_ARRAY_LEN(steps); s++) {
		out.len = 0;
		assert_int_equal(decomp_all(IMG_COMP_GZIP, gz.data, gz.len, steps[s][0], steps[s][1], &out, &e), 0);
		assert_int_equal(out.len, n);
		assert_memory_equal(out.data, plain, n);
	}
	/* garbage after a member */
	bt_buf bad = { 0 };
	bt_buf_append(&bad, gz.data, members_len);
	bt_buf_append(&bad, "junk", 4);
	out.len = 0;
	assert_int_equal(decomp_all(IMG_COMP_GZIP, bad.data, bad.len, 4096, 4096, &out, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_non_null(strstr(e.msg, "corrupt gzip stream: trailing garbage"));
	/* zeros then garbage */
	bad.len = members_len;
	bt_buf_append(&bad, "\0\0\0x", 4);
	assert_int_equal(decomp_all(IMG_COMP_GZIP, bad.data, bad.len, 4096, 4096, &out, &e), -1);
	assert_non_null(strstr(e.msg, "corrupt gzip stream"));
	/* truncated, in a member and inside the second header */
	out.len = 0;
	assert_int_equal(decomp_all(IMG_COMP_GZIP, gz.data, members_len - 9, 4096, 4096, &out, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_non_null(strstr(e.msg, "corrupt gzip stream: truncated"));
	/* a flipped byte: a bad block or a checksum mismatch */
	memcpy(bad.data, gz.data, members_len);
	bad.data[5000] ^= 0x55;
	out.len = 0;
	assert_int_equal(decomp_all(IMG_COMP_GZIP, bad.data, members_len, 4096, 4096, &out, &e), -1);
	assert_true(bt_startswith(e.msg, "corrupt gzip stream: "));
	/* the error is repeated */
	/* an empty gzip stream is truncated */
	assert_int_equal(decomp_all(IMG_COMP_GZIP, "", 0, 1, 1, &out, &e), -1);

	/* zstd: two frames */
	zstd_into(plain, 1000, &zs);
	zstd_into(plain + 1000, n - 1000, &zs);
	for (size_t s = 0; s < BT_ARRAY_LEN(steps); s++) {
		out.len = 0;
		assert_int_equal(decomp_all(IMG_COMP_ZSTD, zs.data, zs.len, steps[s][0], steps[s][1], &out, &e), 0);
		assert_int_equal(out.len, n);
		assert_memory_equal(out.data, plain, n);
	}
	out.len = 0;
	assert_int_equal(decomp_all(IMG_COMP_ZSTD, zs.data, zs.len - 5, 4096, 4096, &out, &e), -1);
	assert_non_null(strstr(e.msg, "corrupt zstd stream: truncated"));
	bad.len = 0;
	bt_buf_append(&bad, zs.data, zs.len);
	bad.data[zs.len / 2] ^= 0x21;
	bad.data[zs.len / 2 + 1] ^= 0x42;
	out.len = 0;
	assert_int_equal(decomp_all(IMG_COMP_ZSTD, bad.data, bad.len, 4096, 4096, &out, &e), -1);
	assert_true(bt_startswith(e.msg, "corrupt zstd stream: "));
	/* plain */
	out.len = 0;
	assert_int_equal(decomp_all(IMG_COMP_NONE, plain, n, 777, 500, &out, &e), 0);
	assert_memory_equal(out.data, plain, n);

	bt_buf_free(&gz);
	bt_buf_free(&zs);
	bt_buf_free(&out);
	bt_buf_free(&bad);
	free(plain);
}

/* ---- entry types and attributes ---------------------------------------------------- */

static void build_all_types(layer *l)
{
	layer_add(l, (ent){ .name = "./", .type = AE_IFDIR, .perm = 0751, .uid = 7, .gid = 8, .mtime = 1500000000 });
	layer_add(l, (ent){ .name = "etc", .type = AE_IFDIR, .perm = 0755, .mtime = 1500000001, .nsec = 123456789 });
	layer_add(l, (ent){ .name = "etc/passwd", .data = "root:x:0:0\n", .perm = 0644, .mtime = 1500000002, .nsec = 5 });
	layer_add(l, (ent){ .name = "bin/su", .data = "#!su\n", .perm = 04755, .uid = 0, .gid = 0 });
	layer_add(l, (ent){ .name = "bin/wall", .data = "#!wall\n", .perm = 02755, .uid = 1000, .gid = 5 });
	layer_add(l, (ent){ .name = "tmp", .type = AE_IFDIR, .perm = 01777 });
	layer_add(l, (ent){ .name = "home/u/f", .data = "data", .perm = 0600, .uid = 1000, .gid = 1000 });
	layer_add(l, (ent){ .name = "link", .type = AE_IFLNK, .link = "/etc/passwd", .uid = 3, .gid = 4, .mtime = 1400000000 });
	layer_add(l, (ent){ .name = "hard", .hardlink = "etc/passwd" });
	layer_add(l, (ent){ .name = "dev/null", .type = AE_IFCHR, .perm = 0666, .rdev = makedev(1, 3) });
	layer_add(l, (ent){ .name = "dev/loop9", .type = AE_IFBLK, .perm = 0660, .rdev = makedev(7, 9), .gid = 6 });
	layer_add(l, (ent){ .name = "run/fifo", .type = AE_IFIFO, .perm = 0620, .uid = 9, .mtime = 1300000000 });
	layer_add(l, (ent){ .name = "bin/ping", .data = "ping", .perm = 0755, .xname = "security.capability",
			    .xval = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", .xlen = 20 });
	layer_add(l, (ent){ .name = "x", .data = "x", .xname = "user.k", .xval = "v1" });
	layer_add(l, (ent){ .name = "xd", .type = AE_IFDIR, .xname = "trusted.k", .xval = "dir" });
	layer_add(l, (ent){ .name = "big", .data = NULL });
	layer_add(l, (ent){ .name = "sparse", .data = "tail", .sparse = true });
	layer_add(l, (ent){ .name = "caf\xc3\xa9/\xff\xfe", .data = "utf8 and not" });
}

static void check_all_types(const char *r, bool check_root)
{
	struct stat st, st2;
	char buf[64];
	char *d;

	if (check_root) {
		assert_int_equal(lstat(r, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0751);
		assert_int_equal(st.st_uid, 7);
		assert_int_equal(st.st_gid, 8);
		assert_int_equal(st.st_mtim.tv_sec, 1500000000);
	}
	assert_int_equal(lstat(at(r, "etc"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mtim.tv_sec, 1500000001); /* set after etc/passwd was written */
	assert_int_equal(st.st_mtim.tv_nsec, 123456789);
	d = slurp(at(r, "etc/passwd"));
	assert_string_equal(d, "root:x:0:0\n");
	free(d);
	assert_int_equal(lstat(at(r, "etc/passwd"), &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1500000002);
	assert_int_equal(st.st_mtim.tv_nsec, 5);
	assert_int_equal(st.st_nlink, 2);
	assert_int_equal(lstat(at(r, "hard"), &st2), 0);
	assert_int_equal(st.st_ino, st2.st_ino);
	/* set-id bits survive the chown */
	assert_int_equal(lstat(at(r, "bin/su"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 04755);
	assert_int_equal(lstat(at(r, "bin/wall"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 02755);
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(st.st_gid, 5);
	assert_int_equal(lstat(at(r, "tmp"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 01777);
	/* implicit parents: root-owned 0755 */
	assert_int_equal(lstat(at(r, "home/u"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(lstat(at(r, "home/u/f"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, 1000);
	/* symlink: verbatim, own owner and time */
	assert_int_equal(lstat(at(r, "link"), &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(st.st_uid, 3);
	assert_int_equal(st.st_gid, 4);
	assert_int_equal(st.st_mtim.tv_sec, 1400000000);
	ssize_t n = readlink(at(r, "link"), buf, sizeof(buf));
	assert_int_equal(n, 11);
	assert_memory_equal(buf, "/etc/passwd", 11);
	/* devices and fifos */
	assert_int_equal(lstat(at(r, "dev/null"), &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(st.st_rdev, makedev(1, 3));
	assert_int_equal(st.st_mode & 07777, 0666);
	assert_int_equal(lstat(at(r, "dev/loop9"), &st), 0);
	assert_true(S_ISBLK(st.st_mode));
	assert_int_equal(st.st_rdev, makedev(7, 9));
	assert_int_equal(st.st_gid, 6);
	assert_int_equal(lstat(at(r, "run/fifo"), &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0620);
	assert_int_equal(st.st_uid, 9);
	assert_int_equal(st.st_mtim.tv_sec, 1300000000);
	/* xattrs: file capabilities (set after chown, which clears them), user.*, trusted.* on a directory */
	assert_int_equal(lgetxattr(at(r, "bin/ping"), "security.capability", buf, sizeof(buf)), 20);
	assert_int_equal(lgetxattr(at(r, "x"), "user.k", buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "v1", 2);
	assert_int_equal(lgetxattr(at(r, "xd"), "trusted.k", buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "dir", 3);
	assert_int_equal(lstat(at(r, "big"), &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(lstat(at(r, "sparse"), &st), 0);
	assert_int_equal(st.st_size, (1 << 20) + 4);
	assert_true(st.st_blocks * 512 < (1 << 20));
	/* names are bytes */
	d = slurp(at(r, "caf\xc3\xa9/\xff\xfe"));
	assert_string_equal(d, "utf8 and not");
	free(d);
}

static void test_entry_types(void **state)
{
	(void)state;
	for (int mode = 0; mode < 2; mode++) {
		char r[512];
		_cleanup_close_ int fd = mkroot("types", r);
		layer *l = layer_new();
		img_apply_result res;
		bt_err e;

		build_all_types(l);
		layer_close(l);
		assert_int_equal(apply_ex(fd, l->tar.data, l->tar.len, mode ? IMG_APPLY_MERGED : IMG_APPLY_OVERLAY,
					  NULL, 0, &res, &e), 0);
		assert_int_equal(res.entries, 18);
		assert_int_equal(res.compression, IMG_COMP_NONE);
		check_all_types(r, true);
		/* applying it again over itself replaces everything in place */
		assert_int_equal(apply(fd, l, mode ? IMG_APPLY_MERGED : IMG_APPLY_OVERLAY, &e), 0);
		check_all_types(r, true);
		layer_free(l);
	}
	assert_sentinel_intact();
}

/* ---- digests and compressions ----------------------------------------------------------- */

static void test_digests(void **state)
{
	(void)state;
	layer *l = layer_new();
	char big[200000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 31 + (i >> 7));
	layer_add(l, (ent){ .name = "a", .type = AE_IFDIR });
	layer_add(l, (ent){ .name = "a/big", .data = big, .len = sizeof(big) });
	layer_add(l, (ent){ .name = "a/small", .data = "s" });
	layer_close(l);
	char want_diff[BT_DIGEST_STR_LEN];
	bt_digest_buf(l->tar.data, l->tar.len, want_diff);

	for (int c = 0; c < 4; c++) {
		bt_buf blob = { 0 };
		img_comp want = IMG_COMP_NONE;
		if (c == 0) {
			bt_buf_append(&blob, l->tar.data, l->tar.len);
		} else if (c == 1) {
			gzip_into(l->tar.data, l->tar.len, &blob);
			want = IMG_COMP_GZIP;
		} else if (c == 2) {
			/* three members and zero padding, as some tools write */
			gzip_into(l->tar.data, 700, &blob);
			gzip_into(l->tar.data + 700, 100000, &blob);
			gzip_into(l->tar.data + 100700, l->tar.len - 100700, &blob);
			bt_buf_append(&blob, "\0\0\0\0\0\0\0\0", 8);
			want = IMG_COMP_GZIP;
		} else {
			zstd_into(l->tar.data, 5000, &blob);
			zstd_into(l->tar.data + 5000, l->tar.len - 5000, &blob);
			want = IMG_COMP_ZSTD;
		}
		char want_comp[BT_DIGEST_STR_LEN];
		bt_digest_buf(blob.data, blob.len, want_comp);
		for (int v = 0; v < 4; v++) {
			char r[512];
			_cleanup_close_ int fd = mkroot("digest", r);
			img_apply_result res;
			bt_err e;
			assert_int_equal(apply_ex(fd, blob.data, blob.len, IMG_APPLY_MERGED, NULL, 0, &res, &e), 0);
			assert_string_equal(res.diff_id, want_diff);
			assert_string_equal(res.compressed_digest, want_comp);
			assert_int_equal(res.compressed_size, (int64_t)blob.len);
			assert_int_equal(res.uncompressed_size, (int64_t)l->tar.len);
			assert_int_equal(res.compression, want);
			assert_int_equal(res.entries, 3);
			char *d = slurp(at(r, "a/big"));
			assert_memory_equal(d, big, sizeof(big));
			free(d);
		}
		bt_buf_free(&blob);
	}
	/* an empty stream is an empty layer */
	char r[512];
	_cleanup_close_ int fd = mkroot("empty", r);
	img_apply_result res;
	bt_err e;
	char empty[BT_DIGEST_STR_LEN];
	bt_digest_buf("", 0, empty);
	assert_int_equal(apply_ex(fd, "", 0, IMG_APPLY_MERGED, NULL, 0, &res, &e), 0);
	assert_int_equal(res.entries, 0);
	assert_string_equal(res.diff_id, empty);
	/* a tar of nothing but its end blocks, gzipped */
	char zeros[1024] = { 0 };
	bt_buf gz = { 0 };
	gzip_into(zeros, sizeof(zeros), &gz);
	assert_int_equal(apply_ex(fd, gz.data, gz.len, IMG_APPLY_MERGED, NULL, 0, &res, &e), 0);
	assert_int_equal(res.entries, 0);
	bt_digest_buf(zeros, sizeof(zeros), empty);
	assert_string_equal(res.diff_id, empty);
	bt_buf_free(&gz);
	layer_free(l);
}

static void test_bad_streams(void **state)
{
	(void)state;
	layer *l = layer_new();
	char big[100000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 13 + (i >> 5));
	layer_add(l, (ent){ .name = "f", .data = big, .len = sizeof(big) });
	layer_add(l, (ent){ .name = "g", .data = "g" });
	layer_close(l);
	bt_buf gz = { 0 }, zs = { 0 };
	gzip_into(l->tar.data, l->tar.len, &gz);
	zstd_into(l->tar.data, l->tar.len, &zs);
	char r[512];
	_cleanup_close_ int fd = mkroot("bad", r);
	bt_err e;

	for (int v = 0; v < 4; v++) {
		/* corrupt gzip */
		bt_buf bad = { 0 };
		bt_buf_append(&bad, gz.data, gz.len);
		bad.data[gz.len / 2] ^= 0xff;
		bad.data[gz.len / 2 + 1] ^= 0xff;
		assert_int_equal(apply_ex(fd, bad.data, bad.len, IMG_APPLY_MERGED, NULL, 0, NULL, &e), -1);
		assert_int_equal(e.code, BT_INVALID_ARGUMENT);
		assert_non_null(strstr(e.msg, "corrupt gzip stream: "));
		/* truncated gzip */
		assert_int_equal(apply_ex(fd, gz.data, gz.len - 100, IMG_APPLY_MERGED, NULL, 0, NULL, &e), -1);
		assert_int_equal(e.code, BT_INVALID_ARGUMENT);
		assert_true(strstr(e.msg, "corrupt gzip stream: truncated") || strstr(e.msg, "Truncated"));
		/* corrupt and truncated zstd */
		bad.len = 0;
		bt_buf_append(&bad, zs.data, zs.len);
		bad.data[zs.len / 2] ^= 0x5a;
		bad.data[zs.len / 2 + 3] ^= 0x5a;
		assert_int_equal(apply_ex(fd, bad.data, bad.len, IMG_APPLY_MERGED, NULL, 0, NULL, &e), -1);
		assert_non_null(strstr(e.msg, "corrupt zstd stream: "));
		assert_int_equal(apply_ex(fd, zs.data, zs.len - 3, IMG_APPLY_MERGED, NULL, 0, NULL, &e), -1);
		assert_non_null(strstr(e.msg, "corrupt zstd stream: truncated"));
		/* truncated plain tar: inside a file's data */
		assert_int_equal(apply_ex(fd, l->tar.data, 50000, IMG_APPLY_MERGED, NULL, 0, NULL, &e), -1);
		assert_int_equal(e.code, BT_INVALID_ARGUMENT);
		assert_non_null(strstr(e.msg, "malformed tar stream"));
		/* not a tar at all */
		assert_int_equal(apply_ex(fd, "hello, this is not a tar archive at all", 39, IMG_APPLY_MERGED, NULL, 0,
					  NULL, &e),
				 -1);
		assert_non_null(strstr(e.msg, "malformed tar stream"));
		bt_buf_free(&bad);
	}
	/* the reader's own error comes through unchanged */
	memsrc m = { .p = gz.data, .n = gz.len, .chunk = 4096, .fail_at = (int)gz.len / 2 };
	img_apply_opts o = { .mode = IMG_APPLY_MERGED, .read = mem_read, .arg = &m };
	img_apply_result res;
	assert_int_equal(img_apply(fd, &o, &res, &e), -1);
	assert_int_equal(e.code, BT_UNAVAILABLE);
	assert_non_null(strstr(e.msg, "connection reset by test"));
	m.off = 0;
	o.single_thread = true;
	assert_int_equal(img_apply(fd, &o, &res, &e), -1);
	assert_int_equal(e.code, BT_UNAVAILABLE);
	bt_buf_free(&gz);
	bt_buf_free(&zs);
	layer_free(l);
}

static void test_bounds(void **state)
{
	(void)state;
	char r[512];
	_cleanup_close_ int fd = mkroot("bounds", r);
	bt_err e;
	layer *l = layer_new();
	for (int i = 0; i < 10; i++) {
		char n[16];
		snprintf(n, sizeof(n), "f%d", i);
		layer_add(l, (ent){ .name = n, .data = "0123456789" });
	}
	layer_close(l);
	memsrc m = { .p = l->tar.data, .n = l->tar.len, .chunk = 1 << 20, .fail_at = -1 };
	img_apply_opts o = { .mode = IMG_APPLY_MERGED, .read = mem_read, .arg = &m, .max_entries = 5 };
	img_apply_result res;
	assert_int_equal(img_apply(fd, &o, &res, &e), -1);
	assert_int_equal(e.code, BT_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(e.msg, "more than 5 entries"));
	m.off = 0;
	o.max_entries = 0;
	o.max_total = 4096;
	assert_int_equal(img_apply(fd, &o, &res, &e), -1);
	assert_int_equal(e.code, BT_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(e.msg, "expands beyond"));
	layer_free(l);

	/* an xattr value over 64 KiB; an owner that would wrap */
	char *big = bt_xmalloc(70000);
	memset(big, 'v', 70000);
	l = layer_new();
	layer_add(l, (ent){ .name = "x", .data = "x", .xname = "user.big", .xval = big, .xlen = 70000 });
	layer_close(l);
	assert_int_equal(apply(fd, l, IMG_APPLY_MERGED, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	assert_non_null(strstr(e.msg, "entry x: xattr user.big"));
	layer_free(l);
	free(big);
	l = layer_new();
	layer_add(l, (ent){ .name = "o", .data = "x", .uid = 4294967296LL });
	layer_close(l);
	assert_int_equal(apply(fd, l, IMG_APPLY_MERGED, &e), -1);
	assert_non_null(strstr(e.msg, "out of range"));
	layer_free(l);
}

/* ---- whiteouts and opaque directories ---------------------------------------------------- */

static void test_overlay_format(void **state)
{
	(void)state;
	char lower[512], upper[512];
	_cleanup_close_ int lfd = mkroot("lower", lower);
	_cleanup_close_ int ufd = mkroot("upper", upper);
	struct stat st;
	char buf[16];
	bt_err e;

	/* the lower layer has usr/ (0750, 12:34, an xattr, an opaque marker of its own) */
	layer *l = layer_new();
	layer_add(l, (ent){ .name = "usr", .type = AE_IFDIR, .perm = 0750, .uid = 12, .gid = 34, .mtime = 1234567890,
			    .xname = "user.lower", .xval = "yes" });
	layer_add(l, (ent){ .name = "usr/.wh..wh..opq" });
	layer_add(l, (ent){ .name = "usr/old", .data = "old" });
	layer_add(l, (ent){ .name = "file", .type = AE_IFREG, .data = "f" });
	layer_close(l);
	assert_int_equal(apply(lfd, l, IMG_APPLY_OVERLAY, &e), 0);
	layer_free(l);
	assert_int_equal(lgetxattr(at(lower, "usr"), "trusted.overlay.opaque", buf, sizeof(buf)), 1);

	l = layer_new();
	layer_add(l, (ent){ .name = "usr/.wh.old", .uid = 5, .gid = 6 });
	layer_add(l, (ent){ .name = "file/.wh.x" }); /* parent is a file below: created as a plain dir */
	layer_add(l, (ent){ .name = "opq", .type = AE_IFDIR });
	layer_add(l, (ent){ .name = "opq/.wh..wh..opq" });
	layer_add(l, (ent){ .name = "opq/new", .data = "n" });
	layer_add(l, (ent){ .name = "gone", .data = "written then whited out" });
	layer_add(l, (ent){ .name = ".wh.gone" });
	layer_add(l, (ent){ .name = ".wh.redir" });
	layer_add(l, (ent){ .name = "redir", .type = AE_IFDIR });
	layer_add(l, (ent){ .name = ".wh.wparent" });
	layer_add(l, (ent){ .name = "wparent/child", .data = "c" });
	layer_close(l);
	int lowers[] = { lfd };
	assert_int_equal(apply_ex(ufd, l->tar.data, l->tar.len, IMG_APPLY_OVERLAY, lowers, 1, NULL, &e), 0);
	layer_free(l);
	/* usr was created from the lower copy's metadata, without its opaque marker */
	assert_int_equal(lstat(at(upper, "usr"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(st.st_uid, 12);
	assert_int_equal(st.st_gid, 34);
	assert_int_equal(st.st_mtim.tv_sec, 1234567890);
	assert_int_equal(lgetxattr(at(upper, "usr"), "user.lower", buf, sizeof(buf)), 3);
	assert_int_equal(lgetxattr(at(upper, "usr"), "trusted.overlay.opaque", buf, sizeof(buf)), -1);
	/* the whiteout: a 0/0 char device with the header's owner */
	assert_int_equal(lstat(at(upper, "usr/old"), &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(st.st_rdev, makedev(0, 0));
	assert_int_equal(st.st_uid, 5);
	assert_int_equal(st.st_gid, 6);
	assert_false(exists(at(upper, "usr/.wh.old")));
	assert_int_equal(lstat(at(upper, "file"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);
	/* opaque */
	assert_int_equal(lgetxattr(at(upper, "opq"), "trusted.overlay.opaque", buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], 'y');
	assert_false(exists(at(upper, "opq/.wh..wh..opq")));
	assert_true(exists(at(upper, "opq/new")));
	/* written then whited out in the same layer: the whiteout wins */
	assert_int_equal(lstat(at(upper, "gone"), &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	/* whited out then recreated as a directory: an opaque directory */
	assert_int_equal(lstat(at(upper, "redir"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(lgetxattr(at(upper, "redir"), "trusted.overlay.opaque", buf, sizeof(buf)), 1);
	/* a whiteout that later entries use as a parent: an opaque directory too */
	assert_int_equal(lstat(at(upper, "wparent"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(lgetxattr(at(upper, "wparent"), "trusted.overlay.opaque", buf, sizeof(buf)), 1);
	assert_true(exists(at(upper, "wparent/child")));

	/* a layer may not set overlayfs's attributes itself */
	l = layer_new();
	layer_add(l, (ent){ .name = "sneaky", .type = AE_IFDIR, .xname = "trusted.overlay.redirect", .xval = "/etc" });
	layer_close(l);
	char r[512];
	_cleanup_close_ int fd = mkroot("sneaky", r);
	assert_int_equal(apply(fd, l, IMG_APPLY_OVERLAY, &e), -1);
	assert_int_equal(e.code, BT_PERMISSION_DENIED);
	assert_non_null(strstr(e.msg, "entry sneaky: xattr trusted.overlay.redirect"));
	/* merged mode skips it (an overlay mount refuses it anyway) */
	img_apply_result res;
	assert_int_equal(apply_ex(fd, l->tar.data, l->tar.len, IMG_APPLY_MERGED, NULL, 0, &res, &e), 0);
	assert_int_equal(res.xattrs_skipped, 1);
	assert_int_equal(lgetxattr(at(r, "sneaky"), "trusted.overlay.redirect", buf, sizeof(buf)), -1);
	layer_free(l);
	assert_sentinel_intact();
}

static void test_merged_sequence(void **state)
{
	(void)state;
	char r[512];
	_cleanup_close_ int fd = mkroot("merged", r);
	struct stat st;
	bt_err e;

	layer *l1 = layer_new();
	layer_add(l1, (ent){ .name = "etc", .type = AE_IFDIR });
	layer_add(l1, (ent){ .name = "etc/keep", .data = "k" });
	layer_add(l1, (ent){ .name = "etc/del", .data = "d" });
	layer_add(l1, (ent){ .name = "tree/a/b/c", .data = "deep" });
	layer_add(l1, (ent){ .name = "opq/old1", .data = "1" });
	layer_add(l1, (ent){ .name = "opq/sub/old2", .data = "2" });
	layer_add(l1, (ent){ .name = "opq/kept/old3", .data = "3" });
	layer_add(l1, (ent){ .name = "f2d", .data = "file becoming a dir" });
	layer_add(l1, (ent){ .name = "d2f/x/y", .data = "dir becoming a file" });
	layer_add(l1, (ent){ .name = "lnk", .type = AE_IFLNK, .link = "etc" });
	layer_close(l1);
	assert_int_equal(apply(fd, l1, IMG_APPLY_MERGED, &e), 0);

	layer *l2 = layer_new();
	layer_add(l2, (ent){ .name = "etc/.wh.del" });
	layer_add(l2, (ent){ .name = ".wh.tree" });
	layer_add(l2, (ent){ .name = ".wh.nothing-there" });
	layer_add(l2, (ent){ .name = "missing/.wh.x" });
	layer_add(l2, (ent){ .name = "opq/kept/new3", .data = "written before the marker" });
	layer_add(l2, (ent){ .name = "opq", .type = AE_IFDIR });
	layer_add(l2, (ent){ .name = "opq/.wh..wh..opq" });
	layer_add(l2, (ent){ .name = "opq/new", .data = "n" });
	layer_add(l2, (ent){ .name = "f2d", .type = AE_IFDIR });
	layer_add(l2, (ent){ .name = "f2d/in", .data = "i" });
	layer_add(l2, (ent){ .name = "d2f", .data = "now a file" });
	layer_add(l2, (ent){ .name = "lnk", .type = AE_IFDIR, .perm = 0700 });
	layer_add(l2, (ent){ .name = "lnk/inside", .data = "in the new dir, not in etc" });
	layer_close(l2);
	assert_int_equal(apply(fd, l2, IMG_APPLY_MERGED, &e), 0);

	assert_true(exists(at(r, "etc/keep")));
	assert_false(exists(at(r, "etc/del")));
	assert_false(exists(at(r, "etc/.wh.del")));
	assert_false(exists(at(r, "tree")));
	assert_false(exists(at(r, "missing")));
	assert_false(exists(at(r, "opq/old1")));
	assert_false(exists(at(r, "opq/sub")));
	assert_false(exists(at(r, "opq/kept/old3"))); /* below an opaque directory: hidden too */
	assert_true(exists(at(r, "opq/kept/new3")));
	assert_true(exists(at(r, "opq/new")));
	assert_false(exists(at(r, "opq/.wh..wh..opq")));
	assert_int_equal(lstat(at(r, "f2d"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_true(exists(at(r, "f2d/in")));
	assert_int_equal(lstat(at(r, "d2f"), &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(lstat(at(r, "lnk"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_true(exists(at(r, "lnk/inside")));
	assert_false(exists(at(r, "etc/inside")));

	/* a third layer: the opaque root, keeping only what it writes */
	layer *l3 = layer_new();
	layer_add(l3, (ent){ .name = ".wh..wh..opq" });
	layer_add(l3, (ent){ .name = "only", .data = "o" });
	layer_close(l3);
	assert_int_equal(apply(fd, l3, IMG_APPLY_MERGED, &e), 0);
	assert_true(exists(at(r, "only")));
	assert_false(exists(at(r, "etc")));
	assert_false(exists(at(r, "opq")));
	layer_free(l1);
	layer_free(l2);
	layer_free(l3);
	assert_sentinel_intact();
}

/* The overlay-format output mounted for real: the merged view shows deletions and the opaque directory. */
static void test_overlay_mount(void **state)
{
	(void)state;
	char l1[512], l2[512], mnt[512], opts[2048];
	_cleanup_close_ int fd1 = mkroot("ovl-lower", l1);
	_cleanup_close_ int fd2 = mkroot("ovl-upper", l2);
	bt_err e;

	layer *a = layer_new();
	layer_add(a, (ent){ .name = "etc/passwd", .data = "root\n" });
	layer_add(a, (ent){ .name = "etc/shadow", .data = "secret\n" });
	layer_add(a, (ent){ .name = "var/cache/x", .data = "x" });
	layer_add(a, (ent){ .name = "var/cache/y/z", .data = "z" });
	layer_add(a, (ent){ .name = "gonedir/f", .data = "f" });
	layer_close(a);
	assert_int_equal(apply(fd1, a, IMG_APPLY_OVERLAY, &e), 0);
	layer *b = layer_new();
	layer_add(b, (ent){ .name = "etc/.wh.shadow" });
	layer_add(b, (ent){ .name = "var/cache/.wh..wh..opq" });
	layer_add(b, (ent){ .name = "var/cache/fresh", .data = "fresh" });
	layer_add(b, (ent){ .name = ".wh.gonedir" });
	layer_close(b);
	int lowers[] = { fd1 };
	assert_int_equal(apply_ex(fd2, b->tar.data, b->tar.len, IMG_APPLY_OVERLAY, lowers, 1, NULL, &e), 0);

	snprintf(mnt, sizeof(mnt), "%s/mnt", base);
	assert_int_equal(mkdir(mnt, 0755), 0);
	snprintf(opts, sizeof(opts), "lowerdir=%s:%s", l2, l1);
	if (mount("overlay", mnt, "overlay", MS_RDONLY, opts) < 0) {
		int err = errno;
		layer_free(a);
		layer_free(b);
		rmdir(mnt);
		if (err == ENODEV || err == EPERM)
			skip();
		fail_msg("mount overlay: %s", strerror(err));
	}
	char *d = slurp(at(mnt, "etc/passwd"));
	assert_string_equal(d, "root\n");
	free(d);
	assert_false(exists(at(mnt, "etc/shadow")));
	assert_true(exists(at(mnt, "var/cache/fresh")));
	assert_false(exists(at(mnt, "var/cache/x")));
	assert_false(exists(at(mnt, "var/cache/y")));
	assert_false(exists(at(mnt, "gonedir")));
	assert_int_equal(umount2(mnt, 0), 0);
	rmdir(mnt);

	/* merged mode onto a read-write overlay mount (how unpack applies onto a prepared snapshot):
	 * overlayfs turns the deletions into whiteouts in the upper dir */
	char up[512], work[512];
	close(mkroot("ovl-rw-upper", up));
	close(mkroot("ovl-rw-work", work));
	assert_int_equal(mkdir(mnt, 0755), 0);
	snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s", l1, up, work);
	assert_int_equal(mount("overlay", mnt, "overlay", 0, opts), 0);
	_cleanup_close_ int fmnt = open(mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(fmnt >= 0);
	assert_int_equal(apply(fmnt, b, IMG_APPLY_MERGED, &e), 0);
	assert_false(exists(at(mnt, "etc/shadow")));
	assert_true(exists(at(mnt, "etc/passwd")));
	assert_true(exists(at(mnt, "var/cache/fresh")));
	assert_false(exists(at(mnt, "var/cache/x")));
	assert_false(exists(at(mnt, "var/cache/y")));
	assert_false(exists(at(mnt, "gonedir")));
	close(fmnt);
	fmnt = -1;
	assert_int_equal(umount2(mnt, 0), 0);
	rmdir(mnt);
	struct stat st;
	assert_int_equal(lstat(at(up, "etc/shadow"), &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(lstat(at(up, "gonedir"), &st), 0);
	assert_true(S_ISCHR(st.st_mode));

	/* the same two layers in merged mode on a plain directory give the same view */
	char m[512];
	_cleanup_close_ int fm = mkroot("ovl-merged", m);
	assert_int_equal(apply(fm, a, IMG_APPLY_MERGED, &e), 0);
	assert_int_equal(apply(fm, b, IMG_APPLY_MERGED, &e), 0);
	assert_false(exists(at(m, "etc/shadow")));
	assert_true(exists(at(m, "var/cache/fresh")));
	assert_false(exists(at(m, "var/cache/x")));
	assert_false(exists(at(m, "gonedir")));
	layer_free(a);
	layer_free(b);
}

/* ---- escapes ------------------------------------------------------------------------- */

/* Applies a one-off layer in both modes on fresh roots; expect_code BT_OK means it must succeed. */
static void escape_case(const char *what, void (*build)(layer *), int expect_code, const char *expect_msg,
			void (*check)(const char *root))
{
	for (int mode = 0; mode < 2; mode++) {
		char r[512];
		_cleanup_close_ int fd = mkroot("escape", r);
		layer *l = layer_new();
		bt_err e;
		build(l);
		layer_close(l);
		int rc = apply(fd, l, mode ? IMG_APPLY_MERGED : IMG_APPLY_OVERLAY, &e);
		if (expect_code == BT_OK) {
			if (rc != 0)
				fail_msg("%s: %s", what, e.msg);
		} else {
			if (rc != -1)
				fail_msg("%s: applied, expected an error", what);
			if (e.code != expect_code)
				fail_msg("%s: code %s (%s)", what, bt_code_name(e.code), e.msg);
			if (expect_msg && !strstr(e.msg, expect_msg))
				fail_msg("%s: message \"%s\" lacks \"%s\"", what, e.msg, expect_msg);
		}
		if (check)
			check(r);
		layer_free(l);
		assert_sentinel_intact();
	}
}

static char sentinel_rel[600]; /* the sentinel seen from a root: ../sentinel */

static void b_dotdot(layer *l)
{
	layer_add(l, (ent){ .name = "../sentinel/victim", .data = "pwned" });
}
static void b_literal_etc(layer *l)
{
	layer_add(l, (ent){ .name = "/etc/x.berth-test", .data = "inside" });
	layer_add(l, (ent){ .name = "../etc/x.berth-test", .data = "denied" });
}
static void c_literal_etc(const char *r)
{
	assert_true(exists(at(r, "etc/x.berth-test")));
}
static void b_literal_passwd(layer *l)
{
	layer_add(l, (ent){ .name = "etc/passwd", .data = "inside\n" });
	layer_add(l, (ent){ .name = "pw", .hardlink = "/etc/passwd" });
	layer_add(l, (ent){ .name = "pw2", .hardlink = "../../etc/passwd" });
}
static void c_literal_passwd(const char *r)
{
	struct stat a, b;
	assert_int_equal(lstat(at(r, "etc/passwd"), &a), 0);
	assert_int_equal(lstat(at(r, "pw"), &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	assert_false(exists(at(r, "pw2")));
}
static void b_dotdot_deep(layer *l)
{
	layer_add(l, (ent){ .name = "a/../../sentinel/victim", .data = "pwned" });
}
static void b_absolute(layer *l)
{
	char n[700];
	snprintf(n, sizeof(n), "%s/victim", sentinel);
	layer_add(l, (ent){ .name = n, .data = "inside" });
}
static void c_absolute(const char *r)
{
	char n[1200];
	snprintf(n, sizeof(n), "%s%s/victim", r, sentinel);
	char *d = slurp(n);
	assert_string_equal(d, "inside");
	free(d);
}
static void b_symlink_root(layer *l)
{
	layer_add(l, (ent){ .name = "up", .type = AE_IFLNK, .link = "/" });
	layer_add(l, (ent){ .name = "up/etc/passwd.berth-test", .data = "inside" });
	layer_add(l, (ent){ .name = "dots", .type = AE_IFLNK, .link = "../../../../.." });
	layer_add(l, (ent){ .name = "dots/sentinel/victim", .data = "inside too" });
	layer_add(l, (ent){ .name = "rel", .type = AE_IFLNK, .link = sentinel_rel });
	layer_add(l, (ent){ .name = "rel/victim", .data = "inside three" });
}
static void c_symlink_root(const char *r)
{
	char *d = slurp(at(r, "etc/passwd.berth-test"));
	assert_string_equal(d, "inside");
	free(d);
	d = slurp(at(r, "sentinel/victim"));
	assert_string_equal(d, "inside three");
	free(d);
}
static void b_symlink_abs_dir(layer *l)
{
	char t[700];
	snprintf(t, sizeof(t), "%s/dir", sentinel);
	layer_add(l, (ent){ .name = "d", .type = AE_IFLNK, .link = t });
	layer_add(l, (ent){ .name = "d/f", .data = "through an absolute symlink" });
}
static void b_hardlink_out(layer *l)
{
	layer_add(l, (ent){ .name = "pw", .hardlink = "../../sentinel/etc/passwd" });
}
static void b_hardlink_via_symlink(layer *l)
{
	char t[700];
	snprintf(t, sizeof(t), "%s/etc", sentinel);
	layer_add(l, (ent){ .name = "e", .type = AE_IFLNK, .link = t });
	layer_add(l, (ent){ .name = "pw", .hardlink = "e/passwd" });
}
static void b_hardlink_abs(layer *l)
{
	char t[700];
	snprintf(t, sizeof(t), "%s/etc/passwd", sentinel);
	layer_add(l, (ent){ .name = "pw", .hardlink = t });
}
static void b_hardlink_symlink(layer *l)
{
	/* a hard link to a symlink that points outside links the symlink, never its target */
	char t[700];
	snprintf(t, sizeof(t), "%s/victim", sentinel);
	layer_add(l, (ent){ .name = "s", .type = AE_IFLNK, .link = t });
	layer_add(l, (ent){ .name = "h", .hardlink = "s" });
	layer_add(l, (ent){ .name = "h", .data = "replaces the link, does not write through" });
}
static void c_hardlink_symlink(const char *r)
{
	struct stat st;
	assert_int_equal(lstat(at(r, "s"), &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(lstat(at(r, "h"), &st), 0);
	assert_true(S_ISREG(st.st_mode));
}
static void b_write_through_symlink(layer *l)
{
	char t[700];
	snprintf(t, sizeof(t), "%s/victim", sentinel);
	layer_add(l, (ent){ .name = "v", .type = AE_IFLNK, .link = t });
	layer_add(l, (ent){ .name = "v", .data = "must replace the symlink" });
	layer_add(l, (ent){ .name = "w", .type = AE_IFLNK, .link = "../sentinel/victim" });
	layer_add(l, (ent){ .name = "w", .type = AE_IFDIR });
	layer_add(l, (ent){ .name = "x", .type = AE_IFLNK, .link = "../sentinel/dir" });
	layer_add(l, (ent){ .name = "x", .type = AE_IFCHR, .rdev = makedev(1, 3) });
	layer_add(l, (ent){ .name = "y", .type = AE_IFLNK, .link = "../sentinel/etc" });
	layer_add(l, (ent){ .name = "y", .type = AE_IFLNK, .link = "elsewhere" });
	layer_add(l, (ent){ .name = "z", .type = AE_IFLNK, .link = "../sentinel/victim", .perm = 0777 });
	layer_add(l, (ent){ .name = "z2", .hardlink = "z" });
}
static void c_write_through_symlink(const char *r)
{
	struct stat st;
	char *d = slurp(at(r, "v"));
	assert_string_equal(d, "must replace the symlink");
	free(d);
	assert_int_equal(lstat(at(r, "v"), &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(lstat(at(r, "w"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(lstat(at(r, "x"), &st), 0);
	assert_true(S_ISCHR(st.st_mode));
}
static void b_whiteout_dotdot(layer *l)
{
	layer_add(l, (ent){ .name = "a/.wh..." });
}
static void b_whiteout_dot(layer *l)
{
	layer_add(l, (ent){ .name = ".wh.." });
}
static void b_whiteout_via_symlink(layer *l)
{
	layer_add(l, (ent){ .name = "s", .type = AE_IFLNK, .link = "/" });
	layer_add(l, (ent){ .name = "s/.wh.victim" });
	layer_add(l, (ent){ .name = "dots", .type = AE_IFLNK, .link = "../../.." });
	layer_add(l, (ent){ .name = "dots/.wh.sentinel" });
	layer_add(l, (ent){ .name = "dots/.wh..wh..opq" });
}
static void b_whiteout_dotdot_path(layer *l)
{
	layer_add(l, (ent){ .name = "../.wh.sentinel" });
}
static void b_reserved(layer *l)
{
	layer_add(l, (ent){ .name = "d/.wh..wh.plnk" });
}
static void b_root_file(layer *l)
{
	layer_add(l, (ent){ .name = "./", .data = "a file at the root" });
}
static void b_hardlink_missing(layer *l)
{
	layer_add(l, (ent){ .name = "h", .hardlink = "nope" });
}
static void b_hardlink_dir(layer *l)
{
	layer_add(l, (ent){ .name = "d", .type = AE_IFDIR });
	layer_add(l, (ent){ .name = "h", .hardlink = "d" });
}
static void b_dangling_parent(layer *l)
{
	layer_add(l, (ent){ .name = "dl", .type = AE_IFLNK, .link = "/does/not/exist" });
	layer_add(l, (ent){ .name = "dl/f", .data = "f" });
}
static void b_file_parent(layer *l)
{
	layer_add(l, (ent){ .name = "f", .data = "f" });
	layer_add(l, (ent){ .name = "f/g", .data = "g" });
}
static void b_symlink_loop(layer *l)
{
	layer_add(l, (ent){ .name = "l1", .type = AE_IFLNK, .link = "l2" });
	layer_add(l, (ent){ .name = "l2", .type = AE_IFLNK, .link = "l1" });
	layer_add(l, (ent){ .name = "l1/f", .data = "f" });
}
static void b_replace_dir_with_symlink(layer *l)
{
	/* the cached parent must not outlive the directory it names */
	layer_add(l, (ent){ .name = "sentinel", .type = AE_IFDIR });
	layer_add(l, (ent){ .name = "d", .type = AE_IFDIR });
	layer_add(l, (ent){ .name = "d/a", .data = "a" });
	layer_add(l, (ent){ .name = "d", .type = AE_IFLNK, .link = sentinel_rel });
	layer_add(l, (ent){ .name = "d/victim", .data = "resolved inside" });
}
static void c_replace_dir_with_symlink(const char *r)
{
	char *d = slurp(at(r, "sentinel/victim"));
	assert_string_equal(d, "resolved inside");
	free(d);
}

static void test_escapes(void **state)
{
	(void)state;
	snprintf(sentinel_rel, sizeof(sentinel_rel), "../sentinel");
	escape_case("../ name", b_dotdot, BT_PERMISSION_DENIED, "entry ../sentinel/victim: name has a \"..\"", NULL);
	struct stat host_passwd, now;
	assert_int_equal(stat("/etc/passwd", &host_passwd), 0);
	escape_case("/etc/x then ../etc/x", b_literal_etc, BT_PERMISSION_DENIED, "entry ../etc/x.berth-test", c_literal_etc);
	escape_case("hard links to /etc/passwd and ../../etc/passwd", b_literal_passwd, BT_PERMISSION_DENIED,
		    "entry pw2: hard link target", c_literal_passwd);
	escape_case("a/../../ name", b_dotdot_deep, BT_PERMISSION_DENIED, "\"..\"", NULL);
	escape_case("absolute name", b_absolute, BT_OK, NULL, c_absolute);
	escape_case("symlinks to / and ../..", b_symlink_root, BT_OK, NULL, c_symlink_root);
	escape_case("absolute symlink parent", b_symlink_abs_dir, BT_INVALID_ARGUMENT, "dangling symlink", NULL);
	escape_case("hard link to ../..", b_hardlink_out, BT_PERMISSION_DENIED, "entry pw: hard link target", NULL);
	escape_case("hard link through a symlink", b_hardlink_via_symlink, BT_INVALID_ARGUMENT, "hard link target", NULL);
	escape_case("hard link to an absolute path", b_hardlink_abs, BT_INVALID_ARGUMENT, "hard link target", NULL);
	escape_case("hard link to a symlink", b_hardlink_symlink, BT_OK, NULL, c_hardlink_symlink);
	escape_case("writing through a symlink", b_write_through_symlink, BT_OK, NULL, c_write_through_symlink);
	escape_case("whiteout of ..", b_whiteout_dotdot, BT_PERMISSION_DENIED, "whiteout outside its directory", NULL);
	escape_case("whiteout of .", b_whiteout_dot, BT_PERMISSION_DENIED, "whiteout outside", NULL);
	escape_case("whiteouts through symlinks", b_whiteout_via_symlink, BT_OK, NULL, NULL);
	escape_case("whiteout with ../", b_whiteout_dotdot_path, BT_PERMISSION_DENIED, "\"..\"", NULL);
	escape_case("reserved .wh..wh.", b_reserved, BT_INVALID_ARGUMENT, "reserved whiteout name", NULL);
	escape_case("file at the root", b_root_file, BT_INVALID_ARGUMENT, "root can only be a directory", NULL);
	escape_case("hard link to nothing", b_hardlink_missing, BT_INVALID_ARGUMENT, "entry h: hard link target nope", NULL);
	escape_case("hard link to a directory", b_hardlink_dir, BT_INVALID_ARGUMENT, "is a directory", NULL);
	escape_case("dangling symlink parent", b_dangling_parent, BT_INVALID_ARGUMENT, "dangling symlink", NULL);
	escape_case("file as a parent", b_file_parent, BT_INVALID_ARGUMENT, "not a directory", NULL);
	escape_case("symlink loop", b_symlink_loop, BT_INVALID_ARGUMENT, "entry l1/f", NULL);
	escape_case("dir replaced by a symlink", b_replace_dir_with_symlink, BT_OK, NULL, c_replace_dir_with_symlink);
	/* and nothing landed in the host's own directories */
	assert_false(exists("/etc/passwd.berth-test"));
	assert_false(exists("/etc/x.berth-test"));
	assert_int_equal(stat("/etc/passwd", &now), 0);
	assert_int_equal(now.st_ino, host_passwd.st_ino);
	assert_int_equal(now.st_nlink, host_passwd.st_nlink);
	assert_int_equal(now.st_mtim.tv_sec, host_passwd.st_mtim.tv_sec);
}

/* A whole tree replaced, deep, by a file; and big files in many small reads. */
static void test_replace_deep_tree(void **state)
{
	(void)state;
	char r[512];
	_cleanup_close_ int fd = mkroot("deep", r);
	bt_err e;
	layer *l = layer_new();
	char name[4096] = "t";
	for (int i = 0; i < 300; i++) {
		strcat(name, "/d");
		if (i % 50 == 0) {
			char f[4200];
			snprintf(f, sizeof(f), "%s/file", name);
			layer_add(l, (ent){ .name = f, .data = "x" });
		}
	}
	layer_add(l, (ent){ .name = name, .type = AE_IFDIR });
	layer_add(l, (ent){ .name = "t", .data = "a file now" });
	layer_close(l);
	assert_int_equal(apply(fd, l, IMG_APPLY_MERGED, &e), 0);
	struct stat st;
	assert_int_equal(lstat(at(r, "t"), &st), 0);
	assert_true(S_ISREG(st.st_mode));
	layer_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_name),
		cmocka_unit_test(test_detect),
		cmocka_unit_test(test_decompress),
		cmocka_unit_test(test_entry_types),
		cmocka_unit_test(test_digests),
		cmocka_unit_test(test_bad_streams),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_overlay_format),
		cmocka_unit_test(test_merged_sequence),
		cmocka_unit_test(test_overlay_mount),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_replace_deep_tree),
	};
	if (geteuid() != 0) {
		fprintf(stderr, "test_image_apply: needs root (owners, devices, trusted xattrs)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
