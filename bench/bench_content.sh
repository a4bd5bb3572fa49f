#!/usr/bin/env bash
# Blob ingest and read throughput through the gateway, 200 MiB.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SIZE_MIB=${BENCH_BLOB_MIB:-200}
bench_suite_start
blob=$BENCH_DIR/blob
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$blob"
cat "$blob" >/dev/null # in the page cache, like the store's side
want="sha256:$(sha256sum "$blob" | cut -d' ' -f1)"

best_in=0 best_out=0
for i in 1 2 3; do
	t0=$(date +%s%N)
	d=$(berth -n bench content ingest "bench-$i" <"$blob")
	t1=$(date +%s%N)
	[ "$d" = "$want" ] || { echo "ingest returned $d, want $want" >&2; exit 1; }
	berth -n bench content get "$d" >/dev/null
	t2=$(date +%s%N)
	in=$((SIZE_MIB * 1024 * 1024 * 1000 / ((t1 - t0) / 1000)))
	out=$((SIZE_MIB * 1024 * 1024 * 1000 / ((t2 - t1) / 1000)))
	[ $in -gt $best_in ] && best_in=$in
	[ $out -gt $best_out ] && best_out=$out
	berth -n bench content rm "$d" >/dev/null
done
floor_t0=$(date +%s%N)
cat "$blob" | sha256sum >/dev/null
floor_t1=$(date +%s%N)
floor=$((SIZE_MIB * 1024 * 1024 * 1000 / ((floor_t1 - floor_t0) / 1000)))
echo "### Blob throughput through the gateway ($SIZE_MIB MiB, best of 3)"
echo
echo "| operation | MB/s |"
echo "| --- | --- |"
echo "| berth content ingest (stdin → gateway → contentd: sha256, write, fsync, commit) | $((best_in / 1000)) |"
echo "| berth content get (contentd → gateway → stdout) | $((best_out / 1000)) |"
echo "| floor: cat file \| sha256sum (one pass of hashing) | $((floor / 1000)) |"
echo
echo "Target ≥ 500 MB/s both ways."
