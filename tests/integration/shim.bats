#!/usr/bin/env bats
# berth-shim on its own, driven through berth-shim-ctl, with real runc and
# real crun: a busybox bundle per test, stdio through FIFOs, exits, execs,
# stdin and CloseIO, a terminal, pause/resume, bad input, and a shim killed
# with -9.  No berth daemon is involved.

load helpers

SHIM=$REPO/$BUILD/bin/berth-shim
CTL=$REPO/$BUILD/bin/berth-shim-ctl

# crun on this hybrid cgroup host (helpers.bash)
setup_file() {
	hugetlb_v1_mount "$BATS_FILE_TMPDIR"
}

teardown_file() {
	hugetlb_v1_unmount "$BATS_FILE_TMPDIR"
}

setup() {
	T=$(mktemp -d /tmp/bs.XXXXXX)
	chmod 0700 "$T"
	cp /bin/busybox "$T/busybox"
	BUNDLES=()
}

teardown() {
	local d id rt pid
	# FIFO readers still waiting for a writer
	jobs -p | xargs -r kill 2>/dev/null
	local san=""
	for d in "${BUNDLES[@]}"; do
		id=$(cat "$d/.id"); rt=$(cat "$d/.rt")
		# a sanitizer build of the shim reports into its log
		if grep -q -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$d/shim.log" 2>/dev/null; then
			cat "$d/shim.log" >&2
			san=1
		fi
		pid=$(cat "$d/shim.pid" 2>/dev/null) && kill -9 "$pid" 2>/dev/null
		"$rt" --root "$T/root-$rt" delete -f "$id" >/dev/null 2>&1 || true
		pid=$(cat "$d/init.pid" 2>/dev/null) && kill -9 "$pid" 2>/dev/null
	done
	local left=""
	for rt in runc crun; do
		[ -d "$T/root-$rt" ] || continue
		left+=$("$rt" --root "$T/root-$rt" list -q 2>/dev/null)
	done
	grep -q " $T" /proc/self/mountinfo && { echo "mounts left under $T" >&2; left+=mounts; }
	rm -rf "$T"
	[ -z "$left" ] || { echo "containers left behind: $left" >&2; return 1; }
	[ -z "$san" ]
}

# bundle NAME RUNTIME ARGS_JSON [TERMINAL] — a 0700 bundle/state dir with a
# busybox rootfs and a `runc spec` config (no CAP_SYS_RESOURCE: this host's
# bounding set lacks it).  Sets B (the directory) and ID.
bundle() {
	B=$T/$1
	ID=bs-$1-$$
	mkdir -m 0700 "$B"
	mkdir -p "$B/rootfs/bin"
	ln "$T/busybox" "$B/rootfs/bin/busybox"
	for x in sh cat sleep echo true tty; do ln -s busybox "$B/rootfs/bin/$x"; done
	(cd "$B" && runc spec)
	jq --argjson args "$3" --argjson tty "${4:-false}" \
		'.process.terminal=$tty | .process.args=$args
		 | .process.capabilities |= with_entries(.value |= map(select(. != "CAP_SYS_RESOURCE")))' \
		"$B/config.json" >"$B/config.tmp"
	mv "$B/config.tmp" "$B/config.json"
	echo "$ID" >"$B/.id"
	echo "$2" >"$B/.rt"
	BUNDLES+=("$B")
}

# start_shim RUNTIME — a shim for $B/$ID; S is its socket.
start_shim() {
	run "$SHIM" --namespace test --id "$ID" --state-dir "$B" --runtime "$1" --runtime-root "$T/root-$1"
	assert_success
	S=$B/shim.sock
	assert_output "$S"
}

ctl() { "$CTL" -t 20000 -n test "$S" "$@"; }

# fifo NAME — a FIFO in the bundle and a reader copying it to NAME.txt.
fifo() {
	mkfifo "$B/$1"
	cat "$B/$1" >"$B/$1.txt" 3>&- &
}

# A process spec for an exec: the bundle's process with other args.
exec_spec() { jq --argjson args "$1" --argjson tty "${2:-false}" '.process | .args=$args | .terminal=$tty' "$B/config.json"; }

# freezer state of a process (cgroup v1).
freezer() {
	local path
	path=$(awk -F: '$2 == "freezer" {print $3}' "/proc/$1/cgroup")
	cat "/sys/fs/cgroup/freezer$path/freezer.state"
}

shim_gone() {
	local pid=$1 i
	for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	return 1
}

lifecycle_exit_codes() {
	local rt=$1
	bundle a "$rt" '["sh","-c","echo to-out; echo to-err >&2; exit 3"]'
	fifo out; fifo err
	start_shim "$rt"
	local shim_pid; shim_pid=$(cat "$B/shim.pid")
	# detached: another session, not a child of ours
	[ "$(ps -o sid= -p "$shim_pid")" != "$(ps -o sid= -p $$)" ]
	[ "$(ps -o ppid= -p "$shim_pid" | tr -d ' ')" != $$ ]
	run ctl Create stdio.stdout="$B/out" stdio.stderr="$B/err"
	assert_success
	local pid=${output#pid=}
	run ctl State
	assert_line process.status=CREATED
	assert_line "process.pid=$pid"
	run ctl Start
	assert_success
	run ctl Wait
	assert_success
	assert_line exit_status=3
	# the exit is on disk when Wait answers
	run cat "$B/init.exit"
	assert_line exit_status=3
	assert_line "pid=$pid"
	wait
	[ "$(cat "$B/out.txt")" = to-out ]
	[ "$(cat "$B/err.txt")" = to-err ]
	run ctl Kill signal=9
	assert_failure
	assert_output --partial "FAILED_PRECONDITION"
	assert_output --partial "already exited"
	run ctl Shutdown
	assert_failure
	assert_output --partial "not deleted"
	run ctl Delete
	assert_success
	assert_line exit_status=3
	run ctl Shutdown
	assert_success
	shim_gone "$shim_pid"
	[ ! -e "$B/shim.sock" ] && [ ! -e "$B/shim.pid" ]
	run "$rt" --root "$T/root-$rt" list -q
	refute_output --partial "$ID"
}

@test "runc: output through FIFOs, exit code 3 on disk before Wait, delete, shutdown" {
	lifecycle_exit_codes runc
}

@test "crun: output through FIFOs, exit code 3 on disk before Wait, delete, shutdown" {
	lifecycle_exit_codes crun
}

exec_pause_kill() {
	local rt=$1
	bundle b "$rt" '["sleep","1000"]'
	start_shim "$rt"
	run ctl Create
	assert_success
	local pid=${output#pid=}
	run ctl Start
	assert_success
	# an exec with its own output and exit code
	exec_spec '["sh","-c","echo from-exec; exit 5"]' >"$B/spec.json"
	fifo xout
	run ctl Exec exec_id=e1 spec=@"$B/spec.json" stdio.stdout="$B/xout"
	assert_success
	run ctl Exec exec_id=e1 spec=@"$B/spec.json"
	assert_failure
	assert_output --partial ALREADY_EXISTS
	run ctl Start exec_id=e1
	assert_success
	run ctl Wait exec_id=e1
	assert_line exit_status=5
	[ -e "$B/exec-e1.exit" ]
	wait
	[ "$(cat "$B/xout.txt")" = from-exec ]
	run ctl Delete exec_id=e1
	assert_line exit_status=5
	[ ! -e "$B/exec-e1.exit" ] && [ ! -e "$B/exec-e1.json" ]
	run ctl State exec_id=e1
	assert_failure
	assert_output --partial NOT_FOUND
	# an exec that runs while we list pids; then exits 0
	exec_spec '["sleep","1000"]' >"$B/spec2.json"
	run ctl Exec exec_id=e2 spec=@"$B/spec2.json"
	assert_success
	run ctl Start exec_id=e2
	local epid=${output#pid=}
	run ctl Pids
	assert_success
	assert_line "processes[0].pid=$pid" 2>/dev/null || assert_output --partial "pid=$pid"
	assert_output --partial "pid=$epid"
	assert_output --partial "exec_id=e2"
	# pause freezes the cgroup, resume thaws it
	run ctl Pause
	assert_success
	[ "$(freezer "$pid")" = FROZEN ]
	run ctl State
	assert_line process.status=PAUSED
	run ctl Resume
	assert_success
	[ "$(freezer "$pid")" = THAWED ]
	run ctl State
	assert_line process.status=RUNNING
	run ctl Update resources='{"pids":{"limit":50}}'
	assert_success
	run ctl Update resources='{"pids":'
	assert_failure
	assert_output --partial INVALID_ARGUMENT
	run ctl Kill exec_id=e2 signal=15
	run ctl Wait exec_id=e2
	assert_line exit_status=143
	# SIGKILL of the init: 137, announced after the exit of an exec still running
	run ctl Exec exec_id=e3 spec=@"$B/spec2.json"
	run ctl Start exec_id=e3
	assert_success
	run ctl Kill signal=9
	assert_success
	run ctl Wait
	assert_line exit_status=137
	run ctl State exec_id=e3
	assert_line process.status=STOPPED
	assert_line process.exit_status=137
	[ -e "$B/exec-e3.exit" ]
	run ctl Delete
	assert_line exit_status=137
	run ctl Shutdown
	assert_success
}

@test "runc: exec with its own output, pids, pause and resume (freezer), update, kill -9 gives 137" {
	exec_pause_kill runc
}

@test "crun: exec with its own output, pids, pause and resume (freezer), update, kill -9 gives 137" {
	exec_pause_kill crun
}

stdin_closeio() {
	local rt=$1
	bundle c "$rt" '["cat"]'
	mkfifo "$B/in"
	fifo out
	start_shim "$rt"
	run ctl Create stdio.stdin="$B/in" stdio.stdout="$B/out"
	assert_success
	run ctl Start
	assert_success
	echo piped-line >"$B/in"
	run ctl CloseIO stdin=true
	assert_success
	run ctl Wait
	assert_line exit_status=0
	wait
	[ "$(cat "$B/out.txt")" = piped-line ]
	run ctl Delete
	assert_success
	run ctl Shutdown
	assert_success
}

@test "runc: stdin piped in, CloseIO gives EOF, exit 0" {
	stdin_closeio runc
}

@test "crun: stdin piped in, CloseIO gives EOF, exit 0" {
	stdin_closeio crun
}

terminal() {
	local rt=$1
	bundle d "$rt" '["sh","-c","stty size; tty; exit 4"]' true
	mkfifo "$B/in"
	fifo out
	start_shim "$rt"
	run ctl Create stdio.stdin="$B/in" stdio.stdout="$B/out" stdio.terminal=true
	assert_success
	run ctl ResizePty width=100 height=30
	assert_success
	run ctl Start
	assert_success
	run ctl Wait
	assert_line exit_status=4
	wait
	run tr -d '\r' <"$B/out.txt"
	assert_line "30 100"
	assert_line --regexp '^/dev/pts/[0-9]+$'
	run ctl Delete
	run ctl Shutdown
	assert_success
}

@test "runc: a terminal through --console-socket, resized" {
	terminal runc
}

@test "crun: a terminal through --console-socket, resized" {
	terminal crun
}

bad_input() {
	local rt=$1
	bundle e "$rt" '["/no/such/binary"]'
	start_shim "$rt"
	run ctl Create stdio.stdout="$B/missing-fifo"
	assert_failure
	assert_output --partial NOT_FOUND
	assert_output --partial "$B/missing-fifo"
	run ctl Info
	refute_output --partial "processes["
	[ ! -e "$B/init.pid" ]
	# the runtime's own message comes back
	run ctl Create
	assert_failure
	assert_output --regexp "$rt create: .*(/no/such/binary|no such file|No such file)"
	run ctl Info
	refute_output --partial "processes["
	run ctl State exec_id=nope
	assert_failure
	assert_output --partial NOT_FOUND
	run ctl Start exec_id=nope
	assert_output --partial NOT_FOUND
	run ctl Frobnicate
	assert_failure
	run ctl Shutdown
	assert_success
	"$rt" --root "$T/root-$rt" list -q >"$T/list"
	! grep -q "$ID" "$T/list"
	# a missing runtime binary is refused before anything starts
	bundle f "$rt" '["true"]'
	run "$SHIM" --namespace test --id "$ID" --state-dir "$B" --runtime /no/such/runtime
	assert_failure
	assert_output --partial "/no/such/runtime"
	[ ! -e "$B/shim.sock" ] && [ ! -e "$B/shim.pid" ]
	chmod 0755 "$B"
	run "$SHIM" --namespace test --id "$ID" --state-dir "$B" --runtime "$rt"
	assert_failure
	assert_output --partial "0700"
	chmod 0700 "$B"
	# bad exec input against a running task
	bundle g "$rt" '["sleep","1000"]'
	start_shim "$rt"
	ctl Create >/dev/null
	ctl Start >/dev/null
	run ctl Exec exec_id=x1 spec='{"args": ["true"],'
	assert_failure
	assert_output --partial INVALID_ARGUMENT
	assert_output --partial "invalid JSON"
	run ctl Exec exec_id='bad/id' spec='{}'
	assert_failure
	assert_output --partial INVALID_ARGUMENT
	run ctl Exec exec_id=x2 spec="$(exec_spec '["true"]')" stdio.stdin="$B/nope"
	assert_failure
	assert_output --partial NOT_FOUND
	[ ! -e "$B/exec-x2.json" ]
	run ctl State exec_id=x2
	assert_output --partial NOT_FOUND
	run ctl Delete
	assert_failure
	assert_output --partial "kill it first"
	ctl Kill signal=9 >/dev/null
	ctl Wait >/dev/null
	ctl Delete >/dev/null
	ctl Shutdown >/dev/null
}

@test "runc: bad input gets clear errors and leaves nothing behind" {
	bad_input runc
}

@test "crun: bad input gets clear errors and leaves nothing behind" {
	bad_input crun
}

@test "runc: kill -9 of the shim leaves the state dir telling what is known" {
	bundle k runc '["sh","-c","exit 7"]'
	start_shim runc
	local shim_pid; shim_pid=$(cat "$B/shim.pid")
	run ctl Create
	local pid=${output#pid=}
	ctl Start >/dev/null
	run ctl Wait
	assert_line exit_status=7
	kill -9 "$shim_pid"
	shim_gone "$shim_pid"
	# the pid file names a dead shim, nobody answers, and the exit is known
	[ "$(cat "$B/shim.pid")" = "$shim_pid" ]
	run ctl Info
	assert_failure
	assert_output --partial UNAVAILABLE
	[ "$(cat "$B/init.pid")" = "$pid" ]
	run cat "$B/init.exit"
	assert_line exit_status=7
	assert_line "pid=$pid"
	# a second shim on the same directory takes over the stale socket
	start_shim runc
	run ctl Shutdown
	assert_success
}
