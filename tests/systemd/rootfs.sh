#!/bin/bash
# Builds (once) a Debian 12 root filesystem with systemd and the libraries
# berth's binaries need, for booting the systemd bundle inside a runc
# container.  Cached under $BERTH_SYSTEMD_CACHE (default
# /var/cache/berth-systemd): later runs reuse it.
#
# Usage: rootfs.sh            print the cached rootfs path, building it first
# Exit status 3: the Debian archive cannot be reached (callers skip).
set -euo pipefail

CACHE=${BERTH_SYSTEMD_CACHE:-/var/cache/berth-systemd}
MIRROR=${BERTH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# systemd as PID 1, and the run-time libraries of berth's binaries (see
# `ldd build/bin/berth-*`), runc and crun for the tasks.
PKGS=systemd,systemd-sysv,dbus,libzmq5,libprotobuf-c1,libsodium23,libsqlite3-0,libsystemd0,libjansson4,libarchive13,libcurl4,libzstd1,libisal2,libseccomp2,runc,crun,procps
STAMP="$CACHE/rootfs.ok"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$SUITE $PKGS" ] && [ -x "$CACHE/rootfs/lib/systemd/systemd" ]; then
	echo "$CACHE/rootfs"
	exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$SUITE $PKGS" ] && [ -x "$CACHE/rootfs/lib/systemd/systemd" ]; then
	echo "$CACHE/rootfs"
	exit 0
fi
if ! curl -fsS -o /dev/null --max-time 20 "$MIRROR/dists/$SUITE/Release"; then
	echo "the Debian archive ($MIRROR) cannot be reached" >&2
	exit 3
fi
rm -f "$STAMP"
rm -rf "$CACHE/rootfs.new"
echo "debootstrap $SUITE into $CACHE/rootfs (once; a few minutes)" >&2
if ! debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$CACHE/rootfs.new" "$MIRROR" \
	>"$CACHE/debootstrap.log" 2>&1; then
	tail -20 "$CACHE/debootstrap.log" >&2
	exit 1
fi
# a container needs no getty, no udev-driven units, no networkd: keep the
# boot short and quiet
chroot "$CACHE/rootfs.new" systemctl mask \
	getty.target console-getty.service systemd-udevd.service systemd-udev-trigger.service \
	systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
	apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
	>/dev/null 2>&1 || true
echo berth-systemd >"$CACHE/rootfs.new/etc/hostname"
rm -rf "$CACHE/rootfs"
mv "$CACHE/rootfs.new" "$CACHE/rootfs"
echo "$SUITE $PKGS" >"$STAMP"
echo "$CACHE/rootfs"
