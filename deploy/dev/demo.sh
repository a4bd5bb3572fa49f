#!/usr/bin/env bash
# The README's main job: start the suite, import the busybox image the build
# made from busybox-static (build/images/busybox.tar, `make image`), run a
# container of it that prints a greeting, list the images, stop the suite
# cleanly.
#
# It runs on its own root and runtime directories (removed afterwards) unless
# BERTH_ROOT / BERTH_RUN are set.
set -euo pipefail

cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
BIN=$PWD/$BUILD/bin
IMAGE_TAR=$PWD/$BUILD/images/busybox.tar
export PATH=$BIN:$PATH BERTH_BIN=$BIN
[ -f "$IMAGE_TAR" ] || {
	echo "demo: $IMAGE_TAR is missing: run make image (make demo does)" >&2
	exit 1
}
own=0
if [ -z "${BERTH_ROOT:-}" ] || [ -z "${BERTH_RUN:-}" ]; then
	own=1
	DEMO=$(mktemp -d /tmp/berth-demo.XXXXXX)
	export BERTH_ROOT=$DEMO/root BERTH_RUN=$DEMO/run
	export BERTH_CONFIG=$DEMO/config.toml
	: >"$BERTH_CONFIG"
fi
export BERTH_ADDRESS=unix://$BERTH_RUN/berth-unix.sock
unset BERTH_NAMESPACE
cleanup() {
	berth tasks rm -f hello >/dev/null 2>&1 || true
	berth containers rm hello >/dev/null 2>&1 || true
	berth-dev stop || true
	if [ "$own" = 1 ]; then rm -rf "$DEMO"; fi
}
trap cleanup EXIT

# Shows a command (arguments with blanks or $ quoted) and runs it.
step() {
	local shown="" a
	for a in "$@"; do
		case $a in *[[:space:]\$\"]*) a="'$a'" ;; esac
		shown+="${shown:+ }$a"
	done
	printf '\n\033[1m$ %s\033[0m\n' "$shown"
	"$@"
}

step berth-dev start
step berth version
step berth images import "$IMAGE_TAR"
step berth run --rm berth.dev/busybox:latest hello sh -c 'echo "Hello from berth: $(hostname) runs $(uname -s) as $(id -un)"'
step berth images ls
step berth containers ls
step berth-dev stop
trap - EXIT
if [ "$own" = 1 ]; then rm -rf "$DEMO"; fi
echo
echo "demo finished"
