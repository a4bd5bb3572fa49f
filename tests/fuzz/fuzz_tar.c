/*
 * fuzz_tar — libFuzzer harness for image layer application (image_apply,
 * image_decompress).
 *
 * The first input byte chooses how the rest is applied:
 *   bit 0  merged mode (else overlay mode, with a lower layer to copy parents from)
 *   bit 1  gzip the rest first, so mutations of the tar go through the gzip path
 *   bit 2  threaded stream (decompression on a worker thread)
 *   bit 3  start from a populated root (something for whiteouts to delete)
 *   bits 4-5  read size: 1 MiB, 7, 512 or 65536 bytes
 * The rest is the layer, as arbitrary bytes (plain, or gzip/zstd by its magic).
 *
 * The root is a fresh directory nested in a sentinel tree (which also holds
 * the lower layer); whatever the layer does, success or error, every byte and
 * attribute of the sentinel outside the root must be unchanged, the error
 * must have a code and a message, and no fd may leak.
 *
 * Build and run through tests/fuzz/run.sh (clang -fsanitize=fuzzer,address,undefined).
 * Needs root (owners, devices); the work tree lives under /dev/shm.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <isa-l/igzip_lib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../../image-svc/image_apply.h"
#include "bt_digest.h"
#include "bt_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char base[128], sentinel[160], root[200], lower[200];
static char *before;
static int lower_fd = -1;

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_tar: check failed: %s\n", what);
		abort();
	}
}

static const char *at_path(const char *dir, const char *rel)
{
	static char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	return p;
}

static bt_buf *snap_out;

static int snap_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)flag;
	(void)f;
	if (strcmp(p, root) == 0)
		return FTW_SKIP_SUBTREE;
	if (strcmp(p, sentinel) == 0 || strcmp(p, base) == 0) {
		/* the root's parent: its size and times change with the root itself */
		bt_buf_appendf(snap_out, "%s %o %u:%u\n", p, st->st_mode, st->st_uid, st->st_gid);
		return FTW_CONTINUE;
	}
	bt_buf_appendf(snap_out, "%s %o %u:%u %lld %lld.%ld", p, st->st_mode, st->st_uid, st->st_gid,
		       (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	if (S_ISREG(st->st_mode)) {
		char *d = NULL;
		size_t len = 0;
		bt_err e;
		char dg[BT_DIGEST_STR_LEN] = "";
		if (bt_read_file(p, 1 << 20, &d, &len, &e) == 0)
			bt_digest_buf(d, len, dg);
		free(d);
		bt_buf_appendf(snap_out, " %s", dg);
	} else if (S_ISLNK(st->st_mode)) {
		char t[256];
		ssize_t n = readlink(p, t, sizeof(t));
		bt_buf_appendf(snap_out, " -> %.*s", (int)(n > 0 ? n : 0), t);
	}
	char x[256];
	ssize_t xl = llistxattr(p, x, sizeof(x));
	bt_buf_appendf(snap_out, " x%zd\n", xl);
	return FTW_CONTINUE;
}

static char *snapshot(void)
{
	bt_buf b = { 0 };
	snap_out = &b;
	check(nftw(base, snap_one, 16, FTW_PHYS | FTW_ACTIONRETVAL) == 0, "walk the sentinel");
	return bt_buf_steal(&b);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	if (flag == FTW_DP)
		return rmdir(p);
	return unlink(p);
}

static void put(const char *dir, const char *rel, const char *data)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	check(bt_write_file_atomic(p, data, strlen(data), 0644, NULL) == 0, "write a sentinel file");
}

static void sub(const char *dir, const char *rel, mode_t mode)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	check(mkdir(p, mode) == 0, "mkdir in the sentinel");
}

static void setup(void)
{
	snprintf(base, sizeof(base), "/dev/shm/fuzz_tar.XXXXXX");
	if (!mkdtemp(base)) {
		snprintf(base, sizeof(base), "/tmp/fuzz_tar.XXXXXX");
		check(mkdtemp(base) != NULL, "mkdtemp");
	}
	snprintf(sentinel, sizeof(sentinel), "%s/sentinel", base);
	snprintf(root, sizeof(root), "%s/root", sentinel);
	snprintf(lower, sizeof(lower), "%s/lower", sentinel);
	check(mkdir(sentinel, 0755) == 0, "mkdir sentinel");
	sub(sentinel, "etc", 0755);
	put(sentinel, "etc/passwd", "root:x:0:0::/root:/bin/sh\n");
	put(sentinel, "victim", "precious\n");
	sub(sentinel, "a", 0700);
	sub(sentinel, "a/b", 0755);
	put(sentinel, "a/b/c", "c\n");
	check(symlink("etc", at_path(sentinel, "lnk")) == 0, "symlink");
	/* the lower layer (overlay mode copies missing parents' metadata from it) */
	sub(sentinel, "lower", 0755);
	sub(lower, "a", 0710);
	sub(lower, "a/b", 0750);
	sub(lower, "etc", 0755);
	put(lower, "etc/f", "lower\n");
	check(symlink("/etc", at_path(lower, "s")) == 0, "symlink");
	lower_fd = open(lower, O_PATH | O_DIRECTORY | O_CLOEXEC);
	check(lower_fd >= 0, "open lower");
	before = snapshot();
}

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

typedef struct src {
	const uint8_t *p;
	size_t n, off, chunk;
} src;

static ssize_t src_read(void *arg, void *buf, size_t len, bt_err *e)
{
	(void)e;
	src *s = arg;
	size_t k = BT_MIN(BT_MIN(len, s->chunk), s->n - s->off);
	memcpy(buf, s->p + s->off, k);
	s->off += k;
	return (ssize_t)k;
}

static uint8_t *gzip_of(const uint8_t *p, size_t n, size_t *out_len)
{
	struct isal_zstream z;
	size_t cap = n + n / 2 + 1024;
	uint8_t *buf = bt_xmalloc(cap);

	isal_deflate_init(&z);
	z.gzip_flag = IGZIP_GZIP;
	z.end_of_stream = 1;
	z.next_in = (uint8_t *)p;
	z.avail_in = (uint32_t)n;
	z.next_out = buf;
	z.avail_out = (uint32_t)cap;
	check(isal_deflate(&z) == COMP_OK && z.internal_state.state == ZSTATE_END, "gzip");
	*out_len = z.total_out;
	return buf;
}

static void populate(void)
{
	sub(root, "a", 0755);
	sub(root, "a/b", 0755);
	put(root, "a/f", "f\n");
	put(root, "a/b/g", "g\n");
	sub(root, "etc", 0755);
	put(root, "etc/passwd", "inside\n");
	check(symlink("/a/b", at_path(root, "ab")) == 0, "symlink");
	check(symlink("../../victim", at_path(root, "up")) == 0, "symlink");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t chunks[] = { 1 << 20, 7, 512, 65536 };
	uint8_t flags = size ? data[0] : 0;
	const uint8_t *layer = size ? data + 1 : data;
	size_t len = size ? size - 1 : 0;
	uint8_t *gz = NULL;

	if (!before)
		setup();
	int fds = count_fds();
	check(mkdir(root, 0755) == 0, "mkdir root");
	if (flags & 8)
		populate();
	if (flags & 2) {
		gz = gzip_of(layer, len, &len);
		layer = gz;
	}
	int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	check(rootfd >= 0, "open root");
	src s = { .p = layer, .n = len, .chunk = chunks[(flags >> 4) & 3] };
	img_apply_opts o = {
		.mode = (flags & 1) ? IMG_APPLY_MERGED : IMG_APPLY_OVERLAY,
		.lower_fds = &lower_fd,
		.n_lower = 1,
		.read = src_read,
		.arg = &s,
		.max_total = 16 << 20,
		.single_thread = !(flags & 4),
	};
	img_apply_result res;
	bt_err e = { 0 };
	int rc = img_apply(rootfd, &o, &res, &e);
	if (getenv("FUZZ_TAR_VERBOSE"))
		fprintf(stderr, "fuzz_tar: flags 0x%02x: rc %d, %lld entries: %s\n", flags, rc, (long long)res.entries,
			rc ? e.msg : res.diff_id);
	if (rc == 0) {
		check(s.off == s.n, "the whole stream is read");
		check(res.compressed_size == (int64_t)len, "compressed size");
		char dg[BT_DIGEST_STR_LEN];
		bt_digest_buf(layer, len, dg);
		check(strcmp(dg, res.compressed_digest) == 0, "compressed digest");
		if (res.compression == IMG_COMP_NONE)
			check(strcmp(res.diff_id, res.compressed_digest) == 0, "plain diffID");
	} else {
		check(rc == -1 && e.code != BT_OK && e.msg[0], "an error has a code and a message");
	}
	close(rootfd);
	free(gz);

	char *now = snapshot();
	if (strcmp(now, before) != 0) {
		fprintf(stderr, "fuzz_tar: the sentinel changed (rc %d: %s)\n--- before\n%s--- after\n%s", rc, e.msg,
			before, now);
		abort();
	}
	free(now);
	check(nftw(root, rm_one, 16, FTW_PHYS | FTW_DEPTH) == 0, "remove the root");
	check(count_fds() == fds, "no fd leaks");
	return 0;
}
