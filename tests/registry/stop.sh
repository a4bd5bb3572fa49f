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
	# only the registry this directory started (its command line names our config).  It is
	# not our child: once it has exited it may stay a zombie until init reaps it, and a
	# zombie's command line is empty, so "ours and alive" is the same test.
	ours() { grep -qsF "$dir/config.yml" "/proc/$pid/cmdline"; }
	if ours; then
		kill "$pid" 2>/dev/null
		for _ in $(seq 1 50); do
			ours || break
			sleep 0.1
		done
		! ours || kill -9 "$pid" 2>/dev/null
	fi
	rm -f "$dir/pid"
fi
[ "${2:-}" = --keep ] || rm -rf "$dir"
exit 0
