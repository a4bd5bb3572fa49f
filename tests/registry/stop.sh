#!/usr/bin/env bash
# Stops a registry started by tests/registry/start.sh DIR and removes DIR
# (--keep leaves it).
#
#   tests/registry/stop.sh DIR [--keep]
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DIR [--keep]" >&2; exit 2; }
dir=$1
[ -d "$dir" ] || exit 0
dir=$(cd "$dir" && pwd)
if [ -f "$dir/pid" ]; then
	pid=$(cat "$dir/pid")
	# only the registry this directory started (its command line names our config)
	if grep -qsF "$dir/config.yml" "/proc/$pid/cmdline"; then
		kill "$pid" 2>/dev/null
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null
	fi
	rm -f "$dir/pid"
fi
[ "${2:-}" = --keep ] || rm -rf "$dir"
exit 0
