# Shared set-up for the integration tests: a private suite per test file,
# on its own root and runtime directories, started with berth-dev and
# stopped afterwards, checking that nothing it made is left behind.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

: "${BUILD:=build}"
REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
BIN=$REPO/$BUILD/bin
export PATH=$BIN:$PATH
export BERTH_BIN=$BIN

# Starts a suite for this file: BERTH_ROOT, BERTH_RUN (short: unix socket
# paths are limited to 107 bytes) and BERTH_ADDRESS point at it: the
# gateway's unix stream door, as for the CLI by default; BERTH_ZMQ_ADDRESS
# is its ZeroMQ door, for the tests of that one.
suite_setup() {
	SUITE_DIR=$(mktemp -d /tmp/bt.XXXXXX)
	export BERTH_ROOT=$SUITE_DIR/root
	export BERTH_RUN=$SUITE_DIR/run
	export BERTH_ADDRESS=unix://$BERTH_RUN/berth-unix.sock
	export BERTH_ZMQ_ADDRESS=ipc://$BERTH_RUN/berth.sock
	export BERTH_CONFIG=$SUITE_DIR/config.toml
	export BERTH_LOG_LEVEL=${BERTH_LOG_LEVEL:-info}
	suite_config
	mkdir -p "$BERTH_ROOT" "$BERTH_RUN"
	berth-dev start "$@" >"$SUITE_DIR/start.log" 2>&1 || {
		cat "$SUITE_DIR/start.log" >&2
		cat "$BERTH_RUN"/dev/*.log >&2 2>/dev/null
		return 1
	}
}

# Writes the suite's configuration: collections on demand only (a test of
# the stores must not be raced by a collection of the unreferenced things it
# just made; gc.bats tests the default), then printf "$@" when given.
suite_config() {
	printf '[gc]\ndelay = "0s"\n' >"$BERTH_CONFIG"
	[ $# -eq 0 ] || printf "$@" >>"$BERTH_CONFIG"
}

# Stops the suite and checks it left no process and no mount behind.
suite_teardown() {
	[ -n "${SUITE_DIR:-}" ] || return 0
	berth-dev stop >/dev/null 2>&1 || true
	local left
	left=$(pgrep -f "^$BIN/berth-" -a | while read -r pid cmd; do
		if tr '\0' '\n' </proc/"$pid"/environ 2>/dev/null | grep -qx "BERTH_RUN=$BERTH_RUN"; then echo "$pid $cmd"; fi
	done)
	if [ -n "$left" ]; then
		echo "processes left behind: $left" >&2
		kill -9 $(echo "$left" | awk '{print $1}') 2>/dev/null || true
	fi
	# a sanitizer build's daemons report into their logs
	local san
	san=$(grep -l -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$BERTH_RUN"/dev/*.log 2>/dev/null)
	if [ -n "$san" ]; then
		echo "sanitizer reports in: $san" >&2
		grep -h -A 30 -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" $san >&2
	fi
	if grep -q " $SUITE_DIR" /proc/self/mountinfo; then
		echo "mounts left behind under $SUITE_DIR" >&2
		grep " $SUITE_DIR" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l
	fi
	rm -rf "$SUITE_DIR"
	[ -z "$left" ] && [ -z "$san" ]
}

# The pid of a running daemon of this suite.
daemon_pid() { cat "$BERTH_RUN/dev/$1.pid"; }

# Prints the daemon logs when a test fails (bats shows output of failed tests).
dump_logs() {
	for f in "$BERTH_RUN"/dev/*.log; do
		[ -e "$f" ] || continue
		echo "--- $f"
		tail -n 30 "$f"
	done
}

# A random namespace name per test keeps tests of one file apart.
fresh_ns() { echo "t$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"; }

# crun 1.8 refuses a hybrid cgroup host whose v2 hierarchy holds a
# controller, and this kernel leaves hugetlb there when no v1 hierarchy has
# it (docs/tasks.md, host note).  hugetlb_v1_mount mounts hugetlb's v1
# hierarchy, only when needed, remembering it in directory $1;
# hugetlb_v1_unmount undoes what it did.
hugetlb_v1_mount() {
	if [ -r /sys/fs/cgroup/unified/cgroup.controllers ] &&
		grep -qx hugetlb /sys/fs/cgroup/unified/cgroup.controllers &&
		! mountpoint -q /sys/fs/cgroup/hugetlb; then
		mkdir -p /sys/fs/cgroup/hugetlb
		mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
		touch "$1/hugetlb-mounted"
	fi
}
hugetlb_v1_unmount() {
	if [ -e "$1/hugetlb-mounted" ] && mountpoint -q /sys/fs/cgroup/hugetlb; then
		umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb
	fi
	rm -f "$1/hugetlb-mounted"
}

# Starts tests/registry/faultproxy.py in DIR in front of registry UPSTREAM
# (HOST:PORT), detached from bats' file descriptors; prints its address.
# Stop it with: kill "$(cat DIR/pid)".
faultproxy_start() {
	local dir=$1 upstream=$2
	mkdir -p "$dir"
	(
		setsid python3 "$REPO/tests/registry/faultproxy.py" "$dir" "$upstream" \
			</dev/null >"$dir/out" 2>&1 3>&- &
	)
	for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.05; done
	echo "127.0.0.1:$(cat "$dir/port")"
}

# Stops a suite that ran tasks: whatever a failed test left (every task of
# every namespace), then the suite, then the crun hugetlb mount.
tasks_suite_teardown() {
	local ns id
	for ns in $(ls "$BERTH_RUN/tasks" 2>/dev/null); do
		for id in $(ls "$BERTH_RUN/tasks/$ns"); do
			berth -n "$ns" tasks rm -f "$id" >/dev/null 2>&1 || true
		done
	done
	suite_teardown
	hugetlb_v1_unmount "$BATS_FILE_TMPDIR"
}
