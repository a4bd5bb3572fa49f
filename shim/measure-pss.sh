#!/bin/bash
# Memory of berth-shim: N shims (default 20), each with an idle busybox
# container (`sleep`) whose stdout and stderr go to FIFOs; prints each
# shim's PSS from /proc/PID/smaps_rollup and the mean, then cleans up.
#   shim/measure-pss.sh [N] [runc|crun]     (root; BUILD=build)
set -eu
N=${1:-20}
RT=${2:-runc}
BIN=$(cd "$(dirname "$0")/.." && pwd)/${BUILD:-build}/bin
T=$(mktemp -d /tmp/bpss.XXXXXX)
chmod 0700 "$T"
cp /bin/busybox "$T/busybox"
cleanup() {
	for d in "$T"/c*; do
		[ -d "$d" ] || continue
		kill -9 "$(cat "$d/shim.pid" 2>/dev/null)" 2>/dev/null || true
		"$RT" --root "$T/root" delete -f "$(basename "$d")-$$" >/dev/null 2>&1 || true
	done
	jobs -p | xargs -r kill 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
for i in $(seq "$N"); do
	B=$T/c$i
	mkdir -m 0700 "$B"
	mkdir -p "$B/rootfs/bin"
	ln "$T/busybox" "$B/rootfs/bin/busybox"
	ln -s busybox "$B/rootfs/bin/sleep"
	(cd "$B" && runc spec)
	jq '.process.terminal=false | .process.args=["sleep","100000"]
	    | .process.capabilities |= with_entries(.value |= map(select(. != "CAP_SYS_RESOURCE")))' \
		"$B/config.json" >"$B/c.tmp" && mv "$B/c.tmp" "$B/config.json"
	mkfifo "$B/out" "$B/err"
	cat "$B/out" >/dev/null & cat "$B/err" >/dev/null &
	"$BIN/berth-shim" --namespace pss --id "c$i-$$" --state-dir "$B" --runtime "$RT" --runtime-root "$T/root" >/dev/null
	"$BIN/berth-shim-ctl" "$B/shim.sock" Create stdio.stdout="$B/out" stdio.stderr="$B/err" >/dev/null
	"$BIN/berth-shim-ctl" "$B/shim.sock" Start >/dev/null
done
sleep 1
total=0
for i in $(seq "$N"); do
	pid=$(cat "$T/c$i/shim.pid")
	pss=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup")
	thr=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")
	echo "shim $i pid $pid: PSS ${pss} kB, threads $thr"
	total=$((total + pss))
done
echo "mean PSS over $N shims: $((total / N)) kB"
grep -E '^(Rss|Pss|Pss_Anon|Pss_File|Private_Dirty|Shared_Clean)' "/proc/$(cat "$T/c1/shim.pid")/smaps_rollup"
