#!/usr/bin/env bash
# Tasks: the life of a short container, shim memory, and execs under a kill,
# side by side in one run:
#
#   lifecycle  busybox /bin/true, N times each, the variants interleaved:
#              berth run --rm (runc, crun): one CLI process, as ctr run;
#              berth (runc, then crun): containers create + tasks start
#              (attached: start, wait, task delete) + containers rm, through
#              the gateway with the CLI; bare `runc run` and `crun run` of a
#              prepared bundle (the same spec, the image's root filesystem on
#              an overlay mount made once); `ctr run --rm` of the same image
#              (imported from the same OCI archive) in a scratch containerd
#   memory     20 idle containers (sleep) in berth and in the scratch
#              containerd: PSS (smaps_rollup) and threads of each shim
#   execs      500 concurrent `berth tasks exec` into one container whose main
#              process gets kill -9 in the middle: every exec's status is
#              accounted for, the task ends stopped; wall time
#
#   BENCH_N=20 BENCH_IDLE=20 BENCH_EXECS=500 BENCH_EXEC_TIMEOUT=10m bench/bench_tasks.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${BENCH_N:-20}
IDLE=${BENCH_IDLE:-20}
EXECS=${BENCH_EXECS:-500}
# the exec CLIs' deadline per call: the execs queue behind the runtime (one
# `runc exec` at a time is what the machine can do), so the CLI default (30s)
# expires for the last ones on a slow machine
EXEC_TIMEOUT=${BENCH_EXEC_TIMEOUT:-10m}
TESTS=$(cd "$(dirname "$0")/../tests" && pwd)
for c in runc crun containerd ctr skopeo umoci jq; do
	command -v "$c" >/dev/null || { echo "bench_tasks: $c is not installed (make deps)" >&2; exit 1; }
done
. "$TESTS/images/fixtures.sh"

NS=bench
B="berth -n $NS"
ctrd= hugetlb= ovl= bare_ids=()
cleanup() {
	set +e
	if [ -n "${BERTH_RUN:-}" ]; then
		local id
		for id in $($B tasks ls -q 2>/dev/null); do $B tasks rm -f "$id" >/dev/null 2>&1; done
		for id in $($B containers ls -q 2>/dev/null); do $B containers rm "$id" >/dev/null 2>&1; done
	fi
	for id in "${bare_ids[@]}"; do
		runc --root "$BENCH_DIR/runc" delete -f "$id" >/dev/null 2>&1
		crun --root "$BENCH_DIR/crun" delete -f "$id" >/dev/null 2>&1
	done
	[ -z "$ctrd" ] || "$TESTS/containerd/stop.sh" "$ctrd" >/dev/null 2>&1
	[ -z "$ovl" ] || umount "$ovl" 2>/dev/null
	bench_suite_stop
	if [ -n "$hugetlb" ]; then umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb; fi
}
trap cleanup EXIT
# crun 1.8 refuses a hybrid cgroup host whose v2 hierarchy holds a controller
# (docs/tasks.md, host note): give hugetlb a v1 hierarchy for the run.
if [ -e /sys/fs/cgroup/unified/cgroup.controllers ] &&
	grep -qx hugetlb /sys/fs/cgroup/unified/cgroup.controllers && ! [ -e /sys/fs/cgroup/hugetlb ]; then
	mkdir /sys/fs/cgroup/hugetlb
	mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
	hugetlb=1
fi
bench_suite_start
trap cleanup EXIT

# --- the image, the spec, the bundle -------------------------------------------------------
fx=$BENCH_DIR/fx
mkdir -p "$fx"
fx_base "$fx/oci" v1
skopeo copy --quiet "oci:$fx/oci:v1" "oci-archive:$fx/img.tar:example.org/bb:v1"
$B images import "$fx/img.tar" >/dev/null
(cd "$fx" && runc spec)
# spec ARGS_JSON: runc's default spec running ARGS (no terminal; without
# CAP_SYS_RESOURCE, which this host's bounding set may lack)
spec() {
	jq --argjson args "$1" '.process.terminal=false | .process.args=$args
		| .process.capabilities |= with_entries(.value |= map(select(. != "CAP_SYS_RESOURCE")))' "$fx/config.json"
}
spec '["/bin/true"]' >"$fx/true.json"
spec '["sleep","100000"]' >"$fx/sleep.json"
# the bare runtimes' bundle: the image's root filesystem as an overlay's
# lower layer, the same spec (a read-only root, as runc spec says)
umoci raw unpack --image "$fx/oci:v1" "$fx/lower" >/dev/null 2>&1
bundle=$fx/bundle
mkdir -p "$bundle/rootfs" "$fx/upper" "$fx/work"
mount -t overlay overlay -o "lowerdir=$fx/lower,upperdir=$fx/upper,workdir=$fx/work" "$bundle/rootfs"
ovl=$bundle/rootfs
cp "$fx/true.json" "$bundle/config.json"

ctrd=$BENCH_DIR/containerd
sock=$("$TESTS/containerd/start.sh" "$ctrd")
C="ctr --address $sock -n $NS"
$C images import "$fx/img.tar" >/dev/null
$C images ls -q | grep -qx example.org/bb:v1 || { echo "bench_tasks: containerd did not import example.org/bb:v1" >&2; exit 1; }

# --- lifecycle -----------------------------------------------------------------------------
us() { echo "${EPOCHREALTIME/./}"; }
declare -A T
timed() { # NAME CMD... — runs CMD, appends its time (µs) to T[NAME]; CMD must succeed
	local t0 t1
	t0=$(us)
	"$@" >/dev/null || { echo "bench_tasks: $1 failed: $*" >&2; exit 1; }
	t1=$(us)
	T[$name]+="$((t1 - t0)) "
}
berth_once() { # RUNTIME ID
	$B containers create --runtime "$1" --spec "$fx/true.json" example.org/bb:v1 "$2" &&
		$B tasks start --null-io "$2" && $B containers rm "$2"
}
# berth run --rm: one CLI process, the spec built from the image (as ctr run)
run_once() { # RUNTIME ID
	$B run --rm --null-io --runtime "$1" example.org/bb:v1 "$2" /bin/true
}
bare_once() { # RUNTIME ID
	"$1" --root "$BENCH_DIR/$1" run --bundle "$bundle" "$2" </dev/null
}
ctr_once() { $C run --rm --null-io example.org/bb:v1 "$1" /bin/true; }
# the runtime calls berth's shim makes (create, start, wait for the exit,
# delete), bare: the process is not our child, so its exit is seen in /proc
# (gone, or a zombie its parent has not reaped yet)
split_once() { # RUNTIME ID
	local rt=$1 pid st
	"$rt" --root "$BENCH_DIR/$rt" create --bundle "$bundle" --pid-file "$BENCH_DIR/split.pid" "$2" </dev/null &&
		"$rt" --root "$BENCH_DIR/$rt" start "$2" || return 1
	pid=$(<"$BENCH_DIR/split.pid")
	while read -r _ _ st _ <"/proc/$pid/stat" 2>/dev/null && [ "$st" != Z ]; do sleep 0.001; done
	"$rt" --root "$BENCH_DIR/$rt" delete "$2"
}
# what three CLI calls cost by themselves: start, connect, one round trip
cli3() { $B containers ls -q && $B containers ls -q && $B containers ls -q; }
bare_ids=(bench-bare)
variants=(berth-runc berth-crun run-runc run-crun runc crun runc-split crun-split containerd cli3)
# one warm-up round each, not counted
berth_once runc warm-r >/dev/null && berth_once crun warm-c >/dev/null &&
	bare_once runc bench-bare && bare_once crun bench-bare && ctr_once warm-ctr >/dev/null
for i in $(seq "$N"); do
	for v in "${variants[@]}"; do
		name=$v
		case $v in
		berth-runc) timed berth_once runc "r$i" ;;
		berth-crun) timed berth_once crun "c$i" ;;
		run-runc) timed run_once runc "rr$i" ;;
		run-crun) timed run_once crun "rc$i" ;;
		runc | crun) timed bare_once "$v" bench-bare ;;
		runc-split | crun-split) timed split_once "${v%-split}" bench-bare ;;
		containerd) timed ctr_once "t$i" ;;
		cli3) timed cli3 ;;
		esac
	done
done
stats() { # µs values → "median p90" in ms
	tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END {
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		p = int(NR * 0.9); if (p < NR * 0.9) p++
		printf "%.1f %.1f\n", m / 1000, v[p] / 1000 }'
}
declare -A MED P90
for v in "${variants[@]}"; do
	read -r MED[$v] P90[$v] < <(echo "${T[$v]}" | stats)
done

# --- memory: idle shims --------------------------------------------------------------------
pss() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }
mem_rows() { # PIDS... → "n pss_mean_kb pss_min pss_max threads_min threads_max rss_mean_kb"
	local p
	for p in "$@"; do echo "$(pss "$p") $(threads "$p") $(awk '/^Rss:/ {print $2}' "/proc/$p/smaps_rollup")"; done |
		awk '{ n++; s += $1; r += $3; if (n == 1 || $1 < lo) lo = $1; if ($1 > hi) hi = $1
			if (n == 1 || $2 < tlo) tlo = $2; if ($2 > thi) thi = $2 }
			END { printf "%d %.0f %d %d %d %d %.0f\n", n, s / n, lo, hi, tlo, thi, r / n }'
}
for i in $(seq "$IDLE"); do
	$B containers create --spec "$fx/sleep.json" example.org/bb:v1 "idle$i" >/dev/null
	$B tasks start -d --null-io "idle$i" >/dev/null
	$C run -d --null-io example.org/bb:v1 "idle$i" sleep 100000 >/dev/null
done
sleep 2 # let the shims settle after their start
shims=$(pgrep -f "berth-shim --namespace $NS --id idle" || true)
cshims=$(pgrep -f "containerd-shim-runc-v2 .*-address $ctrd/" || true)
# shellcheck disable=SC2086
bmem=$(mem_rows $shims)
# shellcheck disable=SC2086
cmem=$(mem_rows $cshims)
for i in $(seq "$IDLE"); do
	$B tasks rm -f "idle$i" >/dev/null
	$B containers rm "idle$i" >/dev/null
	$C tasks kill -s KILL "idle$i" >/dev/null 2>&1 || true
done
for i in $(seq "$IDLE"); do
	for _ in $(seq 50); do $C tasks rm "idle$i" >/dev/null 2>&1 && break; sleep 0.1; done
	$C containers rm "idle$i" >/dev/null
done

# --- execs under kill -9 -------------------------------------------------------------------
$B containers create --spec "$fx/sleep.json" example.org/bb:v1 ex >/dev/null
expid=$($B tasks start -d --null-io ex)
out=$BENCH_DIR/execs
mkdir -p "$out"
# every exec's CLI is forked first and waits at a gate (one line each from a
# FIFO that this shell holds open), so that all of them are let go at once
gate=$BENCH_DIR/gate
mkfifo "$gate"
exec 9<>"$gate"
shopt -s nullglob
tl=$(us)
for i in $(seq "$EXECS"); do
	( exec 9>&-; : >"$out/$i.ready"; read -r _ <"$gate"; rc=0
	  timeout 900 berth -n "$NS" --timeout "$EXEC_TIMEOUT" tasks exec --exec-id "e$i" ex sh -c 'sleep 2; exit 3' \
		</dev/null >/dev/null 2>"$out/$i.err" || rc=$?; echo "$rc" >"$out/$i.rc" ) &
done
while ready=("$out"/*.ready) && [ "${#ready[@]}" -lt "$EXECS" ]; do sleep 0.1; done
t0=$(us)
for i in $(seq "$EXECS"); do echo; done >&9
# kill -9 the main process once half the execs have answered (the rest are
# in flight: running, or queued behind the runtime), or 600 s on
for _ in $(seq 6000); do
	answered=("$out"/*.rc)
	[ "${#answered[@]}" -lt $((EXECS / 2)) ] || break
	sleep 0.1
done
# how many execs' processes run in the container at that moment
pidsf=/sys/fs/cgroup/pids$(awk -F: '$2 == "pids" {print $3}' "/proc/$expid/cgroup")/pids.current
[ -r "$pidsf" ] || pidsf=/sys/fs/cgroup/unified$(awk -F: '$1 == "0" {print $3}' "/proc/$expid/cgroup")/pids.current
inside=$(($(cat "$pidsf" 2>/dev/null || echo 0) - 1))
kill -9 "$expid"
tk=$(us)
answered=("$out"/*.rc)
killed_after=${#answered[@]}
wait
t1=$(us)
exec 9>&-
status=$($B tasks ls | awk '$1 == "ex" {print $3, $4, $5}')
# what each exec's CLI said: its exit code, or why it had none
declare -A E
for i in $(seq "$EXECS"); do
	rc=$(cat "$out/$i.rc" 2>/dev/null || echo none)
	case $rc in
	3) k="exit 3 (ran to its end)" ;;
	137) k="exit 137 (killed with the container)" ;;
	124) k="no answer in 900 s (status lost)" ;;
	none) k="no status file" ;;
	*) k="exit $rc: $(head -c 100 "$out/$i.err" | tr '\n' ' ' | sed -E 's/exec e[0-9]+/exec eN/; s|/proc/[0-9]+|/proc/PID|g; s|/tmp/bt-bench\.[A-Za-z0-9]+|$BENCH_DIR|g')…" ;;
	esac
	E[$k]=$((${E[$k]:-0} + 1))
done
rm_out=$($B tasks rm ex 2>&1 || true)
$B containers rm ex >/dev/null || true

# --- report ----------------------------------------------------------------------------------
echo "### Tasks: busybox /bin/true, create + start + wait + delete, $N runs each (interleaved)"
echo
echo "| variant | median ms | p90 ms | berth / this |"
echo "| --- | --- | --- | --- |"
row() { echo "| $1 | ${MED[$2]} | ${P90[$2]} | $3 |"; }
row "berth, runc: containers create + tasks start (attached) + containers rm, CLI through the gateway" berth-runc "–"
row "berth, crun: the same with --runtime crun" berth-crun "–"
row "berth run --rm, runc (one CLI process; the spec from the image, as ctr run)" run-runc "$(ratio "${MED[run-runc]}" "${MED[runc]}")× runc run"
row "berth run --rm, crun" run-crun "$(ratio "${MED[run-crun]}" "${MED[crun]}")× crun run"
row "bare \`runc run\` of the prepared bundle" runc "$(ratio "${MED[berth-runc]}" "${MED[runc]}")× (berth-runc)"
row "bare \`crun run\` of the prepared bundle" crun "$(ratio "${MED[berth-crun]}" "${MED[crun]}")× (berth-crun)"
row "bare \`runc create\`, \`start\`, wait, \`delete\` (the calls berth's shim makes)" runc-split "$(ratio "${MED[berth-runc]}" "${MED[runc-split]}")× (berth-runc)"
row "bare \`crun create\`, \`start\`, wait, \`delete\`" crun-split "$(ratio "${MED[berth-crun]}" "${MED[crun-split]}")× (berth-crun)"
row "\`ctr run --rm\`, containerd $(containerd --version | awk '{print $3}'), runc shim v2, overlayfs" containerd "$(ratio "${MED[berth-runc]}" "${MED[containerd]}")× (berth-runc)"
row "three \`berth containers ls -q\` (the fixed cost of berth's three CLI calls)" cli3 "–"
echo
echo "berth-runc / runc: **$(ratio "${MED[berth-runc]}" "${MED[runc]}")×**, berth-crun / crun: **$(ratio "${MED[berth-crun]}" "${MED[crun]}")×** (target ≤ 1.2×);"
echo "berth run --rm / runc run: **$(ratio "${MED[run-runc]}" "${MED[runc]}")×**, with crun: **$(ratio "${MED[run-crun]}" "${MED[crun]}")×**; berth run --rm (runc) / ctr run --rm: **$(ratio "${MED[run-runc]}" "${MED[containerd]}")×**."
echo "berth-runc / crun: $(ratio "${MED[berth-runc]}" "${MED[crun]}")×; berth-runc / containerd: **$(ratio "${MED[berth-runc]}" "${MED[containerd]}")×**."
less() { awk -v a="$1" -v b="$2" 'BEGIN { print a - b }'; }
echo "Without the CLI's fixed cost (berth − three \`ls\`): berth-runc / runc $(ratio "$(less "${MED[berth-runc]}" "${MED[cli3]}")" "${MED[runc]}")×, berth-crun / crun $(ratio "$(less "${MED[berth-crun]}" "${MED[cli3]}")" "${MED[crun]}")×."
echo
read -r bn bp blo bhi btlo bthi brss <<<"$bmem"
read -r cn cp clo chi ctlo cthi crss <<<"$cmem"
echo "### Tasks: shim memory with $IDLE idle containers (sleep) each"
echo
echo "| shim | shims | PSS per shim, mean KB (min–max) | RSS mean KB | threads |"
echo "| --- | --- | --- | --- | --- |"
echo "| berth-shim | $bn | **$bp** ($blo–$bhi) | $brss | $btlo–$bthi |"
echo "| containerd-shim-runc-v2 | $cn | $cp ($clo–$chi) | $crss | $ctlo–$cthi |"
echo
echo "berth-shim PSS: $bp KB (target ≤ 256 KB); containerd's shim / berth's: $(ratio "$cp" "$bp")×."
echo
echo "### Tasks: $EXECS concurrent execs (\`sh -c 'sleep 2; exit 3'\`, CLI deadline $EXEC_TIMEOUT per call) into one container, kill -9 of its main process after $killed_after had answered, with $inside processes of execs (sh, sleep, runc init) in it ($(awk -v a="$t0" -v b="$tk" 'BEGIN { printf "%.1f", (b - a) / 1e6 }') s in)"
echo
echo "| what the exec's CLI reported | execs |"
echo "| --- | --- |"
for k in "${!E[@]}"; do echo "| $k | ${E[$k]} |"; done | sort
echo
total=0 codes=0
for k in "${!E[@]}"; do
	case $k in "no "*) ;; *) total=$((total + E[$k])) ;; esac
	case $k in "exit 3 "* | "exit 137 "*) codes=$((codes + E[$k])) ;; esac
done
echo "CLIs that answered: **$total / $EXECS**, $codes of them with the exec's exit code, $((total - codes)) with an error;"
echo "the task afterwards: **$status**; \`tasks rm\`: $rm_out."
echo "Forking the $EXECS CLIs (each then waiting at the gate) took $(awk -v a="$tl" -v b="$t0" 'BEGIN { printf "%.1f", (b - a) / 1e6 }') s."
echo "Wall time from the gate's opening: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }') s to the last answer, $(awk -v a="$tk" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }') s from the kill to the last answer."
