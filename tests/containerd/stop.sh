#!/usr/bin/env bash
# Stops a scratch containerd started by start.sh, its shims and containers,
# unmounts what it mounted and removes DIR.
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$(cd "$1" 2>/dev/null && pwd) || exit 0
if [ -f "$dir/address" ] && [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
	a=$(cat "$dir/address")
	for ns in $(ctr --address "$a" namespaces ls -q 2>/dev/null); do
		for t in $(ctr --address "$a" -n "$ns" tasks ls -q 2>/dev/null); do
			ctr --address "$a" -n "$ns" tasks kill -s KILL "$t" >/dev/null 2>&1
			ctr --address "$a" -n "$ns" tasks rm -f "$t" >/dev/null 2>&1
		done
		for c in $(ctr --address "$a" -n "$ns" containers ls -q 2>/dev/null); do
			ctr --address "$a" -n "$ns" containers rm "$c" >/dev/null 2>&1
		done
	done
	kill "$(cat "$dir/pid")" 2>/dev/null
	for _ in $(seq 1 100); do kill -0 "$(cat "$dir/pid")" 2>/dev/null || break; sleep 0.05; done
	kill -9 "$(cat "$dir/pid")" 2>/dev/null
fi
# shims started for this instance name its state directory on their command line
pkill -9 -f "containerd-shim.*$dir" 2>/dev/null
grep " $dir" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
rm -rf "$dir"
