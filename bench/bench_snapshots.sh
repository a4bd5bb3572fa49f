#!/usr/bin/env bash
# Snapshot service latency through the gateway: Prepare + Mounts of empty
# snapshots, and Prepare on top of a 64-layer chain, for overlayfs and
# native, beside the floor of a durable creation on the same filesystem.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${BENCH_N:-500}
DEPTH=${BENCH_DEPTH:-64}
bench_suite_start
# a native snapshotter next to the default overlayfs one
mkdir -p "$BENCH_DIR/native-root"
printf '[snapshots]\ndriver = "native"\nname = "native"\n' >"$BENCH_DIR/native.toml"
( setsid "$BERTH_BIN/berth-snapshotd" --config "$BENCH_DIR/native.toml" --root "$BENCH_DIR/native-root" \
	--address "ipc://$BENCH_DIR/n.sock" </dev/null >"$BENCH_DIR/native.log" 2>&1 &
  echo $! >"$BENCH_DIR/native.pid" )
trap 'kill "$(cat "$BENCH_DIR/native.pid")" 2>/dev/null || true; bench_suite_stop' EXIT
printf '[snapshotters.native]\naddress = "ipc://%s/n.sock"\n' "$BENCH_DIR" >"$BERTH_CONFIG"
berth-dev restart berth-gatewayd >/dev/null
for _ in $(seq 50); do berth --timeout 1s -a "ipc://$BENCH_DIR/n.sock" health >/dev/null 2>&1 && break; sleep 0.1; done

ov=$("$BENCH_BIN/snap_bench" prepare "$N" "$BERTH_ADDRESS" bench)
ovc=$("$BENCH_BIN/snap_bench" chain "$((N / 5))" "$DEPTH" "$BERTH_ADDRESS" bench)
na=$("$BENCH_BIN/snap_bench" prepare "$N" "$BERTH_ADDRESS" bench native)
nac=$("$BENCH_BIN/snap_bench" chain "$((N / 5))" "$DEPTH" "$BERTH_ADDRESS" bench native)
direct=$("$BENCH_BIN/snap_bench" prepare "$N" "ipc://$BERTH_RUN/svc/snapshots.sock" bench)
floor=$("$BENCH_BIN/snap_bench" floor "$N" "$BENCH_DIR")
rtt=$("$BENCH_BIN/snap_bench" health "$N" "ipc://$BERTH_RUN/svc/snapshots.sock")

row() { # label, result line
	echo "| $1 | $(field prep_med_us "$2") / $(field prep_p99_us "$2") | $(field mounts_med_us "$2") / $(field mounts_p99_us "$2") | $(field both_med_us "$2") / $(field both_p99_us "$2") |"
}
echo "### Snapshots: Prepare + Mounts through the gateway ($N empty snapshots; $((N / 5)) on a $DEPTH-layer chain)"
echo
echo "| snapshotter, case | Prepare µs (median / p99) | Mounts µs | Prepare + Mounts µs |"
echo "| --- | --- | --- | --- |"
row "overlayfs, empty" "$ov"
row "overlayfs, on $DEPTH layers" "$ovc"
row "native, empty" "$na"
row "native, on $DEPTH layers (empty layers: nothing to copy)" "$nac"
row "overlayfs, empty, straight to berth-snapshotd (no gateway)" "$direct"
echo "| floor: mkdir ×3 + rename + fsync dir + sqlite commit (WAL, FULL), no RPC | $(field floor_med_us "$floor") / $(field floor_p99_us "$floor") | – | – |"
echo "| floor: system.Health round trip to berth-snapshotd (RPC alone) | – | $(field health_med_us "$rtt") / $(field health_p99_us "$rtt") | – |"
echo
echo "Building the $DEPTH-layer chain (Prepare + Commit each): $(field chain_build_ms "$ovc") ms (overlayfs), $(field chain_build_ms "$nac") ms (native)."
echo "Prepare on $DEPTH layers / empty Prepare (overlayfs, median): **$(ratio "$(field prep_med_us "$ovc")" "$(field prep_med_us "$ov")")×**;"
echo "Prepare straight to the daemon / its durable floor (median): **$(ratio "$(field prep_med_us "$direct")" "$(field floor_med_us "$floor")")×**."
echo "Prepare is bound by its two syncs (the directory, then the database's commit): it cannot be durable for less."
