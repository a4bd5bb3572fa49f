#!/usr/bin/env bash
# Makes the demo's image: an OCI archive of one layer holding busybox-static
# with a link for every applet, /etc/passwd and /etc/group (root, nobody,
# berth), named berth.dev/busybox:latest, with Cmd sh.
#
#   deploy/dev/busybox-image.sh OUT.tar
#
# Built with umoci and skopeo, the tools the tests' fixture images use
# (tests/images/fixtures.sh); needs only /bin/busybox (busybox-static).
set -euo pipefail

out=${1:?usage: busybox-image.sh OUT.tar}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../tests/images/fixtures.sh
. "$here/../../tests/images/fixtures.sh"

work=$(mktemp -d /tmp/berth-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
umoci init --layout "$work/oci" >/dev/null
umoci new --image "$work/oci:latest" >/dev/null
umoci unpack --image "$work/oci:latest" "$work/b" >/dev/null
fx_rootfs "$work/b/rootfs"
for a in $(/bin/busybox --list); do
	[ -e "$work/b/rootfs/bin/$a" ] || ln -s busybox "$work/b/rootfs/bin/$a"
done
umoci repack --image "$work/oci:latest" "$work/b" >/dev/null
umoci config --image "$work/oci:latest" --os linux --architecture "$(dpkg --print-architecture)" \
	--config.cmd sh --config.env PATH=/bin --config.workingdir / \
	--config.label org.opencontainers.image.title=busybox >/dev/null
mkdir -p "$(dirname "$out")"
rm -f "$out.tmp"
skopeo copy --quiet "oci:$work/oci:latest" "oci-archive:$out.tmp:berth.dev/busybox:latest"
mv "$out.tmp" "$out"
