#!/usr/bin/env bash
# Cold pull + unpack of an image with one large gzip layer of many files (a
# Debian bookworm minbase root filesystem made by debootstrap) from a
# loopback docker-registry, side by side in one run:
#
#   berth      `berth images pull --plain-http` on a fresh suite (fresh root) each time
#   containerd `ctr images pull --plain-http` on a fresh scratch containerd each time
#   floor      curl blob | igzip -d | tar -x (and the same followed by syncfs)
#
# The rootfs and the OCI layout built from it are cached in $BENCH_CACHE
# (default /var/cache/berth-bench), so only the first run needs debootstrap
# and the network (Debian's archive, $BENCH_MIRROR).  Each measurement starts
# with no image, content or snapshots, after a sync so the previous round's
# writeback does not weigh on it; the registry's blob file is in the page
# cache for all three alike.
#
#   BENCH_REPS=5 BENCH_PROFILE=1 bench/bench_pull.sh
# BENCH_PROFILE=1 adds, per berth run, when each layer state began (from the
# CLI's progress lines), to tell download from unpack.
#
# Beside the wall time, each puller's CPU time (user + system) is measured:
# the commands' (the shell's reaped children) plus, for berth, its daemons'
# and, for containerd, the daemon's.  Work the kernel does in its own
# threads (writeback) is in no one's.  On this machine's two cores, CPU time
# / 2 is a bound below which no wall time can go.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
REPS=${BENCH_REPS:-5}
CACHE=${BENCH_CACHE:-/var/cache/berth-bench}
MIRROR=${BENCH_MIRROR:-http://deb.debian.org/debian}
TESTS=$(cd "$(dirname "$0")/../tests" && pwd)
for c in debootstrap skopeo docker-registry containerd ctr curl igzip jq; do
	command -v "$c" >/dev/null || { echo "bench_pull: $c is not installed (make deps)" >&2; exit 1; }
done

# --- the image (cached) --------------------------------------------------------------
layout=$CACHE/minbase-oci
if [ ! -f "$layout/index.json" ]; then
	mkdir -p "$CACHE"
	if [ ! -f "$CACHE/rootfs/.complete" ]; then
		rm -rf "$CACHE/rootfs"
		echo "bench_pull: debootstrap --variant=minbase bookworm (once, cached in $CACHE)" >&2
		debootstrap --variant=minbase bookworm "$CACHE/rootfs.tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
			{ tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
		mv "$CACHE/rootfs.tmp" "$CACHE/rootfs"
		touch "$CACHE/rootfs/.complete"
	fi
	tmp=$CACHE/minbase-oci.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp/blobs/sha256"
	# one layer: the whole tree in name order, numeric owners, gzip -6 as registries usually hold
	tar -C "$CACHE/rootfs" --numeric-owner --sort=name --exclude=./.complete -cf "$tmp/layer.tar" .
	diff_id=$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
	usize=$(stat -c %s "$tmp/layer.tar")
	gzip -n -6 "$tmp/layer.tar"
	layer=$(sha256sum "$tmp/layer.tar.gz" | cut -d' ' -f1)
	lsize=$(stat -c %s "$tmp/layer.tar.gz")
	mv "$tmp/layer.tar.gz" "$tmp/blobs/sha256/$layer"
	blob() { # writes stdin as a blob, prints "digest size"
		local f=$tmp/blob.tmp d
		cat >"$f"
		d=$(sha256sum "$f" | cut -d' ' -f1)
		mv "$f" "$tmp/blobs/sha256/$d"
		echo "$d $(stat -c %s "$tmp/blobs/sha256/$d")"
	}
	read -r cfg csize < <(jq -cn --arg d "sha256:$diff_id" '{architecture: "amd64", os: "linux",
		config: {Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["bash"]},
		rootfs: {type: "layers", diff_ids: [$d]}}' | tr -d '\n' | blob)
	read -r man msize < <(jq -cn --arg c "sha256:$cfg" --argjson cs "$csize" --arg l "sha256:$layer" \
		--argjson ls "$lsize" '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
		config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
		layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $l, size: $ls}]}' |
		tr -d '\n' | blob)
	echo '{"imageLayoutVersion":"1.0.0"}' >"$tmp/oci-layout"
	jq -cn --arg m "sha256:$man" --argjson s "$msize" '{schemaVersion: 2, manifests: [{
		mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m, size: $s,
		annotations: {"org.opencontainers.image.ref.name": "bookworm"}}]}' >"$tmp/index.json"
	echo "$usize" >"$tmp/uncompressed-size"
	find "$CACHE/rootfs" -mindepth 1 ! -name .complete | wc -l >"$tmp/entries"
	rm -rf "$layout"
	mv "$tmp" "$layout"
fi
man=$(jq -r '.manifests[0].digest' "$layout/index.json")
layer=$(jq -r '.layers[0].digest' "$layout/blobs/sha256/${man#sha256:}")
lsize=$(jq -r '.layers[0].size' "$layout/blobs/sha256/${man#sha256:}")
usize=$(cat "$layout/uncompressed-size")
entries=$(cat "$layout/entries")

# --- the registry, berth, the measurements ------------------------------------------------
bench_suite_start
ctrd=
cleanup() {
	[ -z "$ctrd" ] || "$TESTS/containerd/stop.sh" "$ctrd" >/dev/null 2>&1 || true
	"$TESTS/registry/stop.sh" "$BENCH_DIR/registry" >/dev/null 2>&1 || true
	bench_suite_stop
}
trap cleanup EXIT
port=$("$TESTS/registry/start.sh" "$BENCH_DIR/registry")
ref=127.0.0.1:$port/bench/minbase:bookworm
skopeo copy --quiet --dest-tls-verify=false "oci:$layout:bookworm" "docker://$ref"
# the registry must hold the layer byte for byte (no recompression on the way)
curl -sf -o /dev/null "http://127.0.0.1:$port/v2/bench/minbase/blobs/$layer" ||
	{ echo "bench_pull: the registry lacks $layer" >&2; exit 1; }
blob_url=http://127.0.0.1:$port/v2/bench/minbase/blobs/$layer
curl -sf "$blob_url" >/dev/null # the registry's file in the page cache, for everyone

now() { date +%s%N; }
secs() { awk -v n="$1" 'BEGIN { printf "%.2f", n / 1e9 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
minmax() { sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f–%.2f", lo / 1e9, hi / 1e9 }'; }

# CPU ticks (user + system) of the shell's reaped children, and of processes
ticks_children() { sed 's/^.*) //' /proc/$$/stat | awk '{ print $14 + $15 }'; }
ticks_of() { local p t=0; for p; do t=$((t + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }'))); done; echo "$t"; }
berth_pids() { cat "$BERTH_RUN"/dev/*.pid; }
hz=$(getconf CLK_TCK)
floor_t=() floorsync_t=() berth_t=() ctr_t=() floor_c=() berth_c=() ctr_c=()
profile=
for i in $(seq "$REPS"); do
	# floor: fetch, decompress, extract; then the same made durable
	out=$BENCH_DIR/floor
	rm -rf "$out" && mkdir -p "$out" && sync
	c0=$(ticks_children)
	t0=$(now)
	curl -sf "$blob_url" | igzip -d | tar --numeric-owner -x -C "$out"
	t1=$(now)
	c1=$(ticks_children)
	sync -f "$out"
	t2=$(now)
	floor_t+=($((t1 - t0)))
	floorsync_t+=($((t2 - t0)))
	floor_c+=($(((c1 - c0) * 1000000000 / hz)))
	[ "$(find "$out" -mindepth 1 | wc -l)" -eq "$entries" ] || { echo "bench_pull: floor extracted a different tree" >&2; exit 1; }
	rm -rf "$out"

	# berth, on a fresh root
	bench_suite_reset
	sync
	pids=$(berth_pids)
	c0=$(($(ticks_children) + $(ticks_of $pids)))
	t0=$(now)
	if [ "${BENCH_PROFILE:-}" = 1 ]; then
		berth -n bench images pull --plain-http "$ref" | while IFS= read -r line; do
			echo "$((($(now) - t0) / 1000000)) ms  $line"
		done >"$BENCH_DIR/progress"
	else
		berth -n bench images pull --plain-http "$ref" >/dev/null
	fi
	t1=$(now)
	c1=$(($(ticks_children) + $(ticks_of $pids)))
	berth_t+=($((t1 - t0)))
	berth_c+=($(((c1 - c0) * 1000000000 / hz)))
	berth -n bench images check | grep -Eq "^$ref .*complete .*true$" || {
		echo "bench_pull: berth's pull is not complete and unpacked:" >&2
		berth -n bench images check >&2
		exit 1
	}
	if [ "${BENCH_PROFILE:-}" = 1 ]; then
		profile+="berth run $i:"$'\n'"$(cat "$BENCH_DIR/progress")"$'\n'
	fi

	# containerd, fresh
	ctrd=$BENCH_DIR/containerd
	sock=$("$TESTS/containerd/start.sh" "$ctrd")
	sync
	c0=$(($(ticks_children) + $(ticks_of "$(cat "$ctrd/pid")")))
	t0=$(now)
	ctr -a "$sock" -n bench images pull --plain-http "$ref" >/dev/null
	t1=$(now)
	c1=$(($(ticks_children) + $(ticks_of "$(cat "$ctrd/pid")")))
	ctr_t+=($((t1 - t0)))
	ctr_c+=($(((c1 - c0) * 1000000000 / hz)))
	ctr -a "$sock" -n bench snapshots ls | grep -q Committed ||
		{ echo "bench_pull: containerd did not unpack" >&2; exit 1; }
	"$TESTS/containerd/stop.sh" "$ctrd"
	ctrd=
done
bench_suite_reset # leave no snapshots behind before the suite stops

f=$(printf '%s\n' "${floor_t[@]}" | median)
fs=$(printf '%s\n' "${floorsync_t[@]}" | median)
b=$(printf '%s\n' "${berth_t[@]}" | median)
c=$(printf '%s\n' "${ctr_t[@]}" | median)
mib() { awk -v n="$1" 'BEGIN { printf "%.1f MiB", n / 1048576 }'; }
echo "### Cold pull + unpack: Debian bookworm minbase, one gzip layer ($(mib "$lsize") compressed, $(mib "$usize") of tar, $entries entries), loopback registry, $REPS runs"
echo
cpu() { printf '%s\n' "$@" | median | { read -r v; secs "$v"; }; }
echo "| puller | median s | range s | × floor | CPU s (user + system, median) |"
echo "| --- | --- | --- | --- | --- |"
echo "| floor: curl \| igzip -d \| tar -x | $(secs "$f") | $(printf '%s\n' "${floor_t[@]}" | minmax) | 1.00 | $(cpu "${floor_c[@]}") |"
echo "| floor, then syncfs of the tree (durable, as berth commits) | $(secs "$fs") | $(printf '%s\n' "${floorsync_t[@]}" | minmax) | $(ratio "$fs" "$f") | – |"
echo "| berth images pull (fetch, store, unpack, syncfs, commit) | $(secs "$b") | $(printf '%s\n' "${berth_t[@]}" | minmax) | $(ratio "$b" "$f") | $(cpu "${berth_c[@]}") |"
echo "| ctr images pull, containerd $(containerd --version | awk '{print $3}') (overlayfs) | $(secs "$c") | $(printf '%s\n' "${ctr_t[@]}" | minmax) | $(ratio "$c" "$f") | $(cpu "${ctr_c[@]}") |"
echo
echo "berth / floor: **$(ratio "$b" "$f")×** (target ≤ 1.5×); berth / durable floor: **$(ratio "$b" "$fs")×**;"
echo "containerd / berth: **$(ratio "$c" "$b")×** (target ≥ 3×)."
if [ -n "$profile" ]; then
	echo
	echo "Progress lines of berth's pulls, with the time since the pull began:"
	echo
	echo '```'
	printf '%s' "$profile"
	echo '```'
fi
