#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# The systemd bundle (deploy/systemd): the installed units pass
# `systemd-analyze verify`; the gateway serves a socket passed by socket
# activation; and the bundle boots under a real systemd as PID 1 in a runc
# container (tests/systemd/sd-container.sh, a cached Debian 12 rootfs):
# berth.target brings every daemon up, a container runs, and every daemon
# killed with SIGKILL is restarted by systemd while the container keeps
# running.  The boot tests skip only when the Debian archive cannot be
# reached to build the rootfs the first time.

load helpers
source "$REPO/tests/images/fixtures.sh"

SD=$REPO/tests/systemd/sd-container.sh
DAEMONS="berth-contentd berth-snapshotd berth-imaged berth-taskd berth-gatewayd"

setup_file() {
	export SD_DIR
	SD_DIR=$(mktemp -d /tmp/bsd.XXXXXX)
	local rc=0
	"$SD" up "$SD_DIR" >"$BATS_FILE_TMPDIR/up.log" 2>&1 || rc=$?
	echo "$rc" >"$BATS_FILE_TMPDIR/up.rc"
	[ "$rc" = 0 ] || return 0
	# a busybox image and a spec running `sleep`, for berth inside
	local fx
	fx=$(mktemp -d /tmp/bsd-fx.XXXXXX)
	fx_base "$fx/oci" v1
	skopeo copy --quiet "oci:$fx/oci:v1" "oci-archive:$SD_DIR/rootfs/root/bb.tar:example.org/bb:v1"
	(cd "$fx" && runc spec)
	jq '.process.terminal = false | .process.args = ["sleep", "100000"]
	    | .process.capabilities |= with_entries(.value |= map(select(. != "CAP_SYS_RESOURCE")))' \
		"$fx/config.json" >"$SD_DIR/rootfs/root/spec.json"
	rm -rf "$fx"
}

teardown_file() {
	[ -n "${SD_DIR:-}" ] || return 0
	"$SD" down "$SD_DIR"
	# nothing of it left: no container, no mount, no cgroup
	local id
	id=berth-sd-$(basename "$SD_DIR")
	! runc state "$id" >/dev/null 2>&1
	! grep -q " $SD_DIR" /proc/self/mountinfo
	! ls -d /sys/fs/cgroup/*/"$id" 2>/dev/null
}

# Skips when the rootfs could not be built for want of the Debian archive;
# fails (with the log) when the container did not boot for another reason.
need_systemd() {
	local rc
	rc=$(cat "$BATS_FILE_TMPDIR/up.rc")
	[ "$rc" = 3 ] && skip "the Debian archive cannot be reached to debootstrap the systemd rootfs"
	if [ "$rc" != 0 ]; then
		cat "$BATS_FILE_TMPDIR/up.log"
		return 1
	fi
}

# inside CMD… — run CMD inside the systemd container
inside() { "$SD" exec "$SD_DIR" "$@"; }

# show UNIT PROP — one property of a unit
show() { inside systemctl show -p "$2" --value "$1"; }

# wait_for DESC CMD… — retries CMD (quietly) for up to 30 s
wait_for() {
	local desc=$1 i
	shift
	for ((i = 0; i < 100; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.3
	done
	echo "timed out waiting for: $desc" >&2
	"$@" >&2 || true
	return 1
}

all_active() {
	local u
	for u in $DAEMONS; do [ "$(show $u.service ActiveState)" = active ] || return 1; done
}

# restarted UNIT N — UNIT restarted more than N times and active again
restarted() {
	[ "$(show "$1.service" NRestarts)" -gt "$2" ] && [ "$(show "$1.service" ActiveState)" = active ]
}

# task_running ID PID — the task of container ID running, with the pid it started with
task_running() {
	inside berth tasks ls | grep -Eq "^$1 +$2 +RUNNING"
}

@test "systemd-analyze verify: the installed units are clean" {
	local dest=$BATS_TEST_TMPDIR/dest
	make -C "$REPO" -s install BUILD=build DESTDIR="$dest" PREFIX=/usr >/dev/null
	local units=$dest/usr/lib/systemd/system check=$BATS_TEST_TMPDIR/check u
	[ -f "$units/berth.target" ] && [ -f "$units/berth-gatewayd.socket" ]
	for u in $DAEMONS; do [ -f "$units/$u.service" ]; done
	# verify checks that ExecStart binaries exist: point them at the DESTDIR copies
	mkdir "$check"
	for u in "$units"/*; do
		sed "s|^\(Exec[A-Za-z]*=-\?\)/usr/bin/|\1$dest/usr/bin/|" "$u" >"$check/$(basename "$u")"
	done
	run grep -h '^ExecStart=' "$check"/*.service
	refute_output --partial '@BINDIR@'
	run systemd-analyze verify --man=no "$check"/*
	assert_success
	# verify reports bad keys and values on stderr but exits 0: clean means silent
	assert_output ''
	# the properties the bundle is about
	for u in $DAEMONS; do
		grep -qx 'Type=notify' "$check/$u.service"
		grep -qx 'Restart=always' "$check/$u.service"
		grep -q '^WatchdogSec=' "$check/$u.service"
		! grep -Eq '^(PrivateTmp|ProtectSystem|ProtectHome|PrivateMounts|MountFlags)=' "$check/$u.service"
		grep -q "$u.service" "$check/berth.target"
	done
	grep -qx 'KillMode=process' "$check/berth-taskd.service"
}

@test "systemd-analyze verify catches a broken unit (the check can fail)" {
	local check=$BATS_TEST_TMPDIR/check
	mkdir "$check"
	sed -e 's|^Restart=always|Restart=sometimes|' -e "s|@BINDIR@|$BIN|" \
		"$REPO/deploy/systemd/berth-contentd.service" >"$check/berth-contentd.service"
	run systemd-analyze verify --man=no "$check/berth-contentd.service"
	assert_output --partial 'Failed to parse service restart specifier'
}

@test "the gateway serves the public socket it is passed (socket activation)" {
	local d=$BATS_TEST_TMPDIR/sa
	mkdir -p "$d/run"
	: >"$d/config.toml"
	export BERTH_ROOT=$d/root BERTH_RUN=$d/run BERTH_CONFIG=$d/config.toml
	export BERTH_ADDRESS=ipc://$d/run/berth.sock
	systemd-socket-activate -E BERTH_ROOT -E BERTH_RUN -E BERTH_CONFIG -l "$d/run/berth.sock" \
		-l "$d/run/berth-unix.sock" "$BIN/berth-gatewayd" >"$d/gw.log" 2>&1 &
	local sa=$!
	wait_for "the activator's sockets" test -S "$d/run/berth.sock" -a -S "$d/run/berth-unix.sock"
	# the first connection starts the gateway on the passed sockets; no
	# backend runs here, so version lists them DOWN (exit 1) but answers,
	# at both doors
	run berth --timeout 10s version
	assert_output --partial "Address:  ipc://$d/run/berth.sock"
	run berth -a "unix://$d/run/berth-unix.sock" --timeout 10s version
	assert_output --partial "Address:  unix://$d/run/berth-unix.sock"
	kill "$sa"
	wait "$sa" || true
	grep -q "socket activation: serving ipc://$d/run/berth.sock" "$d/gw.log"
	grep -q "socket activation: serving unix://$d/run/berth-unix.sock" "$d/gw.log"
	# the sockets are systemd's: the gateway leaves them in place
	[ -S "$d/run/berth.sock" ]
	[ -S "$d/run/berth-unix.sock" ]
	[ ! -e "$d/run/berth.sock.lock" ]

	# a passed socket that is not the configured endpoint is refused
	systemd-socket-activate -E BERTH_ROOT -E BERTH_RUN -E BERTH_CONFIG -l "$d/other.sock" \
		"$BIN/berth-gatewayd" >"$d/gw2.log" 2>&1 &
	sa=$!
	wait_for "the activator's socket" test -S "$d/other.sock"
	run berth -a "ipc://$d/other.sock" --timeout 3s version
	assert_failure
	wait "$sa" || true
	grep -q "make the socket unit's ListenStream= and gateway.address and gateway.unix_address the same" "$d/gw2.log"
}

@test "under systemd: berth.target starts every daemon, each ready and healthy" {
	need_systemd
	run inside systemctl start berth.target
	assert_success
	# Type=notify and After=: the target is reached once every daemon said READY=1
	for u in $DAEMONS; do
		assert_equal "$(show $u.service ActiveState)" active
		assert_equal "$(show $u.service Type)" notify
	done
	assert_equal "$(show berth-gatewayd.socket ActiveState)" active
	run inside berth version
	assert_success
	refute_output --partial DOWN
	# the gateway serves the socket systemd holds, with the unit's mode
	run inside journalctl -u berth-gatewayd -o cat
	assert_output --partial 'socket activation: serving ipc:///run/berth/berth.sock'
	run inside stat -c %a /run/berth/berth.sock
	assert_output 660
	# the watchdog is armed and pinged (a daemon not pinging within 30 s
	# would be restarted)
	assert_equal "$(show berth-contentd.service WatchdogUSec)" 30s
}

@test "under systemd: a container runs, and survives SIGKILL of every daemon, each restarted by systemd" {
	need_systemd
	inside systemctl start berth.target
	inside berth images import /root/bb.tar >/dev/null
	inside berth containers create --spec /root/spec.json example.org/bb:v1 c1
	run inside berth tasks start -d c1
	assert_success
	local tpid
	tpid=$(inside berth tasks ls | awk '$1 == "c1" {print $2}')
	[ -n "$tpid" ]
	task_running c1 "$tpid"

	local u old new n0
	for u in $DAEMONS; do
		old=$(show $u.service MainPID)
		n0=$(show $u.service NRestarts)
		[ "$old" -gt 0 ]
		inside kill -9 "$old"
		# systemd sees it die and starts it again (RestartSec=1): a new
		# main pid, active once it said READY=1 again
		wait_for "$u restarted" restarted "$u" "$n0"
		new=$(show $u.service MainPID)
		[ "$new" -gt 0 ] && [ "$new" != "$old" ]
		assert_equal "$(show $u.service NRestarts)" $((n0 + 1))
		# the suite is whole again, and the container never stopped
		wait_for "every backend healthy after $u restarted" inside berth version
		task_running c1 "$tpid"
		inside kill -0 "$tpid"
	done
	all_active
	# the restarted berth-taskd found the task again and still drives it
	run inside berth tasks exec --exec-id e1 c1 echo still here
	assert_success
	assert_output 'still here'
}

@test "under systemd: stopping berth-taskd leaves its containers running (KillMode=process)" {
	need_systemd
	inside systemctl start berth.target
	inside berth images import /root/bb.tar >/dev/null
	inside berth containers create --spec /root/spec.json example.org/bb:v1 c2
	inside berth tasks start -d c2
	local tpid shim
	tpid=$(inside berth tasks ls | awk '$1 == "c2" {print $2}')
	shim=$(inside cat /run/berth/tasks/default/c2/shim.pid)
	[ -n "$tpid" ] && [ -n "$shim" ]
	run inside systemctl stop berth-taskd.service
	assert_success
	assert_equal "$(show berth-taskd.service ActiveState)" inactive
	inside kill -0 "$tpid"
	inside kill -0 "$shim"
	inside systemctl start berth-taskd.service
	task_running c2 "$tpid"
	inside kill -0 "$shim"
	inside berth tasks kill -s KILL c2
	wait_for "c2 stopped" eval 'inside berth tasks ls | grep -Eq "^c2 .*STOPPED"'
	inside berth tasks rm c2 >/dev/null
	inside berth containers rm c2 >/dev/null
}

@test "under systemd: the socket unit starts a stopped gateway on the first connection" {
	need_systemd
	inside systemctl start berth.target
	inside systemctl stop berth-gatewayd.service
	assert_equal "$(show berth-gatewayd.service ActiveState)" inactive
	assert_equal "$(show berth-gatewayd.socket ActiveState)" active
	run inside berth version
	assert_success
	refute_output --partial DOWN
	assert_equal "$(show berth-gatewayd.service ActiveState)" active
}
