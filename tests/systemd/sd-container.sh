#!/bin/bash
# Boots a real systemd as PID 1 in a runc container, with berth installed
# from this tree, for tests of the systemd bundle (tests/integration/systemd.bats).
#
#   sd-container.sh up DIR      root filesystem = the cached Debian rootfs
#                               (tests/systemd/rootfs.sh) under an overlay
#                               in DIR, `make install` into it, boot; waits
#                               until systemd has finished booting
#   sd-container.sh exec DIR CMD…   run CMD inside (stdin/stdout/stderr passed)
#   sd-container.sh down DIR    halt systemd, delete the container, unmount,
#                               remove DIR; safe to repeat and after a
#                               failed up
#
# Exit status 3 from up: the Debian archive cannot be reached to build the
# rootfs (callers skip).  /var/lib/berth inside is DIR/state, a directory
# of the host's filesystem (overlayfs cannot use an overlay as its upper).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)

cid() { echo "berth-sd-$(basename "$1" | tr -c 'A-Za-z0-9_.\n-' _)"; }

# Every capability in this host's bounding set but CAP_SYS_RESOURCE (which
# it lacks anyway: runc fails on one it cannot grant).
caps_json() {
	local names=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
		LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
		SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
		SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
		MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
		CHECKPOINT_RESTORE)
	local bnd i out=()
	bnd=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)))
	for i in "${!names[@]}"; do
		[ "${names[$i]}" = SYS_RESOURCE ] && continue
		(((bnd >> i) & 1)) && out+=("\"CAP_${names[$i]}\"")
	done
	local IFS=,
	echo "[${out[*]}]"
}

up() {
	local dir=$1 base id caps
	base=$("$HERE/rootfs.sh") || return $?
	id=$(cid "$dir")
	mkdir -p "$dir"/{upper,work,rootfs,state}
	mount -t overlay overlay -o "lowerdir=$base,upperdir=$dir/upper,workdir=$dir/work" "$dir/rootfs"
	# the plain build (a sanitizer build's binaries would need its runtime)
	make -C "$SRC" -s install BUILD=build DESTDIR="$dir/rootfs" PREFIX=/usr >"$dir/install.log" 2>&1 || {
		cat "$dir/install.log" >&2
		return 1
	}
	(cd "$dir" && runc spec)
	caps=$(caps_json)
	jq --argjson caps "$caps" --arg state "$dir/state" --arg host "$id" '
		.process.terminal = false
		| .process.args = ["/lib/systemd/systemd", "--log-target=console"]
		| .process.env += ["container=oci"]
		| .process.noNewPrivileges = false
		| .process.capabilities = {bounding: $caps, effective: $caps, permitted: $caps}
		| del(.process.rlimits)
		| .root = {path: "rootfs", readonly: false}
		| .hostname = $host
		| .mounts |= map(select(.destination != "/sys/fs/cgroup"))
		| .mounts += [
			{destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup",
			 options: ["nosuid", "noexec", "nodev", "relatime", "rw"]},
			{destination: "/run", type: "tmpfs", source: "tmpfs",
			 options: ["nosuid", "nodev", "mode=755"]},
			{destination: "/tmp", type: "tmpfs", source: "tmpfs",
			 options: ["nosuid", "nodev", "mode=1777"]},
			{destination: "/var/lib/berth", type: "bind", source: $state,
			 options: ["rbind", "rw"]}]
		| .linux.namespaces += [{type: "cgroup"}]
		| .linux.resources.devices = [{allow: true, access: "rwm"}]
		| .linux.maskedPaths = []
		| .linux.readonlyPaths = []
		' "$dir/config.json" >"$dir/config.json.new"
	mv "$dir/config.json.new" "$dir/config.json"
	runc run -d --bundle "$dir" "$id" </dev/null >"$dir/console.log" 2>&1 || {
		cat "$dir/console.log" >&2
		return 1
	}
	# is-system-running --wait returns once start-up is over: running, or
	# degraded when a unit unrelated to berth failed in this container
	# (systemctl fails while the bus is not up yet: retry)
	local st i
	for ((i = 0; i < 300; i++)); do
		st=$(timeout 60 runc exec "$id" systemctl is-system-running --wait 2>&1) || true
		case "$st" in running | degraded | maintenance | stopping | offline) break ;; esac
		sleep 0.2
	done
	case "$st" in
	running | degraded) ;;
	*)
		echo "systemd in $id did not finish booting: $st" >&2
		tail -30 "$dir/console.log" >&2
		return 1
		;;
	esac
}

cexec() {
	local dir=$1
	shift
	runc exec "$(cid "$dir")" "$@"
}

down() {
	local dir=$1 id
	id=$(cid "$dir")
	if runc state "$id" >/dev/null 2>&1; then
		# no orderly halt: SIGKILL to everything in it (systemd, the daemons,
		# shims and nested containers) and its cgroups removed; its mounts
		# go with its mount namespace
		runc delete -f "$id" >/dev/null 2>&1 || true
	fi
	# whatever the container left mounted below DIR, deepest first
	if [ -d "$dir" ]; then
		awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r |
			while read -r m; do umount -l "$m" 2>/dev/null || true; done
		rm -rf "$dir"
	fi
}

cmd=${1:-}
[ $# -ge 2 ] || {
	echo "usage: $0 up|exec|down DIR [CMD…]" >&2
	exit 2
}
shift
case "$cmd" in
up) up "$@" ;;
exec) cexec "$@" ;;
down) down "$@" ;;
*)
	echo "usage: $0 up|exec|down DIR [CMD…]" >&2
	exit 2
	;;
esac
