#!/usr/bin/env bash
# Starts a scratch containerd (Debian's package) on its own root, state and
# socket under DIR — never the system instance — for interoperability tests
# and benchmarks.
#
#   tests/containerd/start.sh DIR      → prints the socket path
#   ctr --address "$(cat DIR/address)" …
#   tests/containerd/stop.sh DIR
#
# The CRI plugin is disabled; snapshotter overlayfs, runtime runc (shim v2).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
command -v containerd >/dev/null || { echo "$0: containerd is not installed" >&2; exit 1; }
mkdir -p "$1"
dir=$(cd "$1" && pwd)
mkdir -p "$dir/root" "$dir/state"
cat >"$dir/config.toml" <<CONF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$dir/c.sock"
[ttrpc]
  address = "$dir/c.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
CONF
containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
echo $! >"$dir/pid"
echo "$dir/c.sock" >"$dir/address"
for _ in $(seq 1 200); do
	if ctr --address "$dir/c.sock" version >/dev/null 2>&1; then
		echo "$dir/c.sock"
		exit 0
	fi
	kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
	sleep 0.05
done
echo "$0: containerd did not come up; its log:" >&2
cat "$dir/containerd.log" >&2
exit 1
