/*
 * snap_bench — latency of the snapshot service through libberth, and the
 * floor a durable Prepare cannot go below on this filesystem:
 *
 *   snap_bench prepare N ADDR NS [SNAPSHOTTER]
 *       N times: Prepare an empty snapshot, then ask its Mounts
 *   snap_bench chain N DEPTH ADDR NS [SNAPSHOTTER]
 *       builds a chain of DEPTH committed layers, then N times: Prepare on
 *       top of it, then Mounts
 *   snap_bench health N ADDR
 *       N system.Health round trips to ADDR: the RPC path alone
 *   snap_bench floor N DIR
 *       N times what a durable creation does at least, without any RPC:
 *       mkdir ×3, rename, fsync of the directory, and one sqlite INSERT
 *       committed in WAL mode with synchronous=FULL (as berth's stores run)
 *
 * Prints one line "key=value …" with medians and 99th percentiles in µs
 * (prep_*, mounts_*, both_* for Prepare, Mounts and the pair).  Snapshots
 * made are removed afterwards (not timed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth/berth.h"
#include "bt_db.h"
#include "bt_util.h"

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void stat_line(const char *name, int64_t *ns, int n)
{
	qsort(ns, (size_t)n, sizeof(int64_t), cmp64);
	printf("%s_med_us=%.0f %s_p99_us=%.0f ", name, ns[n / 2] / 1000.0, name, ns[(n * 99) / 100] / 1000.0);
}

static int die(const char *what, const berth_error *err)
{
	fprintf(stderr, "snap_bench: %s: %s\n", what, err->message);
	return 1;
}

/* N Prepare+Mounts on top of parent (NULL: empty snapshots). */
static int run(berth_client *c, const char *ns, const char *sn, const char *parent, int n, const char *prefix)
{
	int64_t *prep = bt_xcalloc((size_t)n, sizeof(int64_t));
	int64_t *mnts = bt_xcalloc((size_t)n, sizeof(int64_t));
	int64_t *both = bt_xcalloc((size_t)n, sizeof(int64_t));
	berth_error err;
	int rc = 0;

	for (int i = 0; i < n && rc == 0; i++) {
		char key[64];
		berth_mount *m = NULL;
		size_t nm = 0;
		snprintf(key, sizeof(key), "%s-%d", prefix, i);
		int64_t t0 = bt_mono_ns();
		if (berth_snapshot_prepare(c, ns, sn, key, parent, NULL, 0, NULL, NULL, &err) < 0) {
			rc = die("prepare", &err);
			break;
		}
		int64_t t1 = bt_mono_ns();
		if (berth_snapshot_mounts(c, ns, sn, key, &m, &nm, &err) < 0) {
			rc = die("mounts", &err);
			break;
		}
		int64_t t2 = bt_mono_ns();
		berth_mounts_free(m, nm);
		prep[i] = t1 - t0;
		mnts[i] = t2 - t1;
		both[i] = t2 - t0;
	}
	if (rc == 0) {
		stat_line("prep", prep, n);
		stat_line("mounts", mnts, n);
		stat_line("both", both, n);
	}
	for (int i = 0; i < n; i++) {
		char key[64];
		snprintf(key, sizeof(key), "%s-%d", prefix, i);
		berth_snapshot_remove(c, ns, sn, key, &err);
	}
	free(prep);
	free(mnts);
	free(both);
	return rc;
}

static int bench_chain(berth_client *c, const char *ns, const char *sn, int n, int depth)
{
	berth_error err;
	char key[64], name[64], parent[64] = "";
	int rc;

	int64_t t0 = bt_mono_ns();
	for (int i = 0; i < depth; i++) {
		snprintf(key, sizeof(key), "chain-k%d", i);
		snprintf(name, sizeof(name), "chain-l%d", i);
		if (berth_snapshot_prepare(c, ns, sn, key, parent[0] ? parent : NULL, NULL, 0, NULL, NULL, &err) < 0)
			return die("prepare a layer", &err);
		if (berth_snapshot_commit(c, ns, sn, name, key, NULL, 0, &err) < 0)
			return die("commit a layer", &err);
		snprintf(parent, sizeof(parent), "%s", name);
	}
	printf("chain_build_ms=%.0f ", (bt_mono_ns() - t0) / 1e6);
	rc = run(c, ns, sn, parent, n, "on-chain");
	for (int i = depth - 1; i >= 0; i--) {
		snprintf(name, sizeof(name), "chain-l%d", i);
		berth_snapshot_remove(c, ns, sn, name, &err);
	}
	return rc;
}

static int bench_floor(int n, const char *dir)
{
	static const char *const mig[] = { "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT UNIQUE)" };
	_cleanup_free_ char *db_path = bt_xasprintf("%s/floor.db", dir);
	_cleanup_free_ char *snaps = bt_xasprintf("%s/floor", dir);
	int64_t *lat = bt_xcalloc((size_t)n, sizeof(int64_t));
	bt_db *db = NULL;
	bt_err e;
	int rc = 1;

	if (bt_mkdir_p(snaps, 0700, &e) < 0 || bt_db_open(db_path, mig, 1, &db, &e) < 0) {
		fprintf(stderr, "snap_bench: %s\n", e.msg);
		free(lat);
		return 1;
	}
	int dfd = open(snaps, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		goto out;
	for (int i = 0; i < n; i++) {
		char tmp[32], id[32], sub[48];
		sqlite3_stmt *st = NULL;
		snprintf(tmp, sizeof(tmp), "new-%d", i);
		snprintf(id, sizeof(id), "%d", i + 1);
		int64_t t0 = bt_mono_ns();
		if (mkdirat(dfd, tmp, 0700) < 0)
			goto out;
		snprintf(sub, sizeof(sub), "%s/fs", tmp);
		if (mkdirat(dfd, sub, 0755) < 0)
			goto out;
		snprintf(sub, sizeof(sub), "%s/work", tmp);
		if (mkdirat(dfd, sub, 0700) < 0)
			goto out;
		if (bt_db_begin(db, &e) < 0 || bt_db_prepare(db, "INSERT INTO t (k) VALUES (?1)", &st, &e) < 0 ||
		    bt_db_bind_text(db, st, 1, id, &e) < 0 || bt_db_step_done(db, st, &e) < 0)
			goto out;
		sqlite3_finalize(st);
		if (renameat(dfd, tmp, dfd, id) < 0 || fsync(dfd) < 0 || bt_db_commit(db, &e) < 0)
			goto out;
		lat[i] = bt_mono_ns() - t0;
	}
	stat_line("floor", lat, n);
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "snap_bench: floor: %s\n", e.msg[0] ? e.msg : strerror(errno));
	if (dfd >= 0)
		close(dfd);
	bt_db_close(&db);
	bt_rm_rf(snaps, &e);
	free(lat);
	return rc;
}

static int bench_health(int n, const char *addr)
{
	berth_options o = { .address = addr };
	berth_error err;
	berth_client *c = berth_client_new(&o, &err);
	int64_t *lat = bt_xcalloc((size_t)n, sizeof(int64_t));
	int rc = 0;

	if (!c) {
		free(lat);
		return die("connect", &err);
	}
	for (int i = 0; i < n && rc == 0; i++) {
		berth_daemon_info d;
		int64_t t0 = bt_mono_ns();
		if (berth_health(c, &d, &err) < 0)
			rc = die("health", &err);
		else
			berth_daemon_info_clear(&d);
		lat[i] = bt_mono_ns() - t0;
	}
	if (rc == 0)
		stat_line("health", lat, n);
	free(lat);
	berth_client_free(&c);
	return rc;
}

int main(int argc, char **argv)
{
	berth_error err;
	int rc;

	if (argc == 4 && strcmp(argv[1], "health") == 0) {
		rc = bench_health(atoi(argv[2]), argv[3]);
		printf("\n");
		return rc;
	}

	if (argc == 4 && strcmp(argv[1], "floor") == 0) {
		rc = bench_floor(atoi(argv[2]), argv[3]);
		printf("\n");
		return rc;
	}
	bool chain = argc >= 6 && strcmp(argv[1], "chain") == 0;
	if (!(argc >= 5 && strcmp(argv[1], "prepare") == 0) && !chain) {
		fprintf(stderr, "usage: snap_bench prepare N ADDR NS [SNAPSHOTTER] | chain N DEPTH ADDR NS [SNAPSHOTTER] | "
				"floor N DIR\n");
		return 2;
	}
	int n = atoi(argv[2]);
	int a = chain ? 4 : 3;
	berth_options o = { .address = argv[a], .namespace_ = argv[a + 1] };
	const char *sn = argc > a + 2 ? argv[a + 2] : NULL;
	berth_client *c = berth_client_new(&o, &err);
	if (!c)
		return die("connect", &err);
	rc = chain ? bench_chain(c, NULL, sn, n, atoi(argv[3])) : run(c, NULL, sn, NULL, n, "bench");
	printf("\n");
	berth_client_free(&c);
	return rc;
}
