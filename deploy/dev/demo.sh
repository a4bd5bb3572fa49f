#!/usr/bin/env bash
# The README's main job: start the suite, store a blob through the gateway,
# read it back, show the suite's health, stop the suite cleanly.
#
# It runs on its own root and runtime directories (removed afterwards) unless
# BERTH_ROOT / BERTH_RUN are set.
set -euo pipefail

cd "$(dirname "$0")/../.."
BIN=$PWD/${BUILD:-build}/bin
export PATH=$BIN:$PATH BERTH_BIN=$BIN
own=0
if [ -z "${BERTH_ROOT:-}" ] || [ -z "${BERTH_RUN:-}" ]; then
	own=1
	DEMO=$(mktemp -d /tmp/berth-demo.XXXXXX)
	export BERTH_ROOT=$DEMO/root BERTH_RUN=$DEMO/run
fi
export BERTH_ADDRESS=ipc://$BERTH_RUN/berth.sock
cleanup() {
	berth-dev stop || true
	[ "$own" = 1 ] && rm -rf "$DEMO"
}
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step berth-dev start
step berth version
blob=$(mktemp)
head -c $((16 * 1024 * 1024)) /dev/urandom >"$blob"
echo
echo "\$ berth content ingest demo-blob < (16 MiB of random bytes)"
digest=$(berth content ingest --label demo=yes demo-blob <"$blob")
echo "$digest"
step berth content ls
echo
echo "\$ berth content get $digest | cmp - (the original)"
berth content get "$digest" | cmp - "$blob"
echo "identical: the blob went through the gateway into berth-contentd and back"
rm -f "$blob"
step berth-dev stop
trap - EXIT
[ "$own" = 1 ] && rm -rf "$DEMO"
echo
echo "demo finished"
