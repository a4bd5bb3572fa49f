#!/usr/bin/env bash
# Runs the benchmarks (bench/bench_*.sh, or the ones named) and prints their
# results as markdown for docs/benchmarks.md.  Benchmarks are not tests: they
# measure, side by side in one run, berth and the floors it is compared with.
#
#   BUILD=build bench/run.sh [NAME...]     e.g. bench/run.sh rpc content, bench/run.sh tasks
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
export BENCH_BIN=$PWD/$BUILD/bench BERTH_BIN=$PWD/$BUILD/bin
export PATH=$BERTH_BIN:$PATH

echo "## Run of $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(. /etc/os-release && echo "$PRETTY_NAME")."
echo "Load average (1, 5, 15 min) at the start: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
if [ $# -eq 0 ]; then set -- $(ls bench/bench_*.sh | sed 's|bench/bench_||; s|\.sh$||'); fi
for name in "$@"; do
	bash "bench/bench_$name.sh"
	echo
done
# the machine may be shared: say how busy it was
echo "Load average (1, 5, 15 min) at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
