#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# More of berth's tasks end to end (issue 5, beyond tasks.bats), with real
# runc and real crun: a terminal session driven through tmux (tty, resize,
# typed input, exit code), exit codes of a foreground task and of an exec
# killed with SIGKILL, limits updated on a running task (cgroup files), 50
# containers started at once, bad input (stdio paths that do not exist, kill
# of a stopped task, a runtime that is neither runc nor crun), and 100 (runc)
# or 50 (crun) concurrent execs into one container whose init is killed -9
# meanwhile.

load helpers
source "$REPO/tests/images/fixtures.sh"

# crun on this hybrid cgroup host: hugetlb_v1_mount (helpers.bash)
setup_file() {
	hugetlb_v1_mount "$BATS_FILE_TMPDIR"
	suite_setup
	export SUITE_DIR
	export FX=$SUITE_DIR/fx
	export TOOLS=$REPO/$BUILD/tests/tools
	mkdir -p "$FX"
	fx_base "$FX/oci" v1
	skopeo copy --quiet "oci:$FX/oci:v1" "oci-archive:$FX/img.tar:example.org/bb:v1"
	(cd "$FX" && runc spec)
}

teardown_file() { tasks_suite_teardown; }

setup() {
	NS=$(fresh_ns)
	B="berth -n $NS"
	TM=$BATS_TEST_TMPDIR/tmux.sock
	berth -n "$NS" images import "$FX/img.tar" >/dev/null
}

teardown() {
	[ -z "${BATS_TEST_COMPLETED:-}" ] && dump_logs
	tmux -S "$TM" kill-server 2>/dev/null || true
	# CLI processes a failed test left running
	jobs -p | xargs -r kill 2>/dev/null || true
	wait 2>/dev/null || true
	local id
	for id in $($B tasks ls -q 2>/dev/null); do $B tasks rm -f "$id" >/dev/null 2>&1 || true; done
	for id in $($B containers ls -q 2>/dev/null); do $B containers rm "$id" >/dev/null 2>&1 || true; done
	return 0
}

# spec ARGS_JSON [TERMINAL] — a spec file (runc spec with ARGS, without
# CAP_SYS_RESOURCE, which this host's bounding set lacks).
spec() {
	local f=$BATS_TEST_TMPDIR/spec.$RANDOM.json
	jq --argjson args "$1" --argjson tty "${2:-false}" \
		'.process.terminal=$tty | .process.args=$args
		 | .process.capabilities |= with_entries(.value |= map(select(. != "CAP_SYS_RESOURCE")))' \
		"$FX/config.json" >"$f"
	echo "$f"
}

# ctr RUNTIME ID ARGS_JSON [TERMINAL] — a container.
ctr() {
	run $B containers create --runtime "$1" --spec "$(spec "$3" "${4:-false}")" example.org/bb:v1 "$2"
	assert_success
}

# Nothing of task ID is left: no bundle, no mount, no shim, no container in
# either runtime's default root.
nothing_left() {
	[ ! -e "$BERTH_RUN/tasks/$NS/$1" ]
	! grep -q "$BERTH_RUN/tasks/$NS/$1/" /proc/self/mountinfo
	! pgrep -f "berth-shim --namespace $NS --id $1( |\$)" >/dev/null
	local rt
	for rt in runc crun; do
		[ -d "$BERTH_RUN/$rt/$NS" ] || continue
		! "$rt" --root "$BERTH_RUN/$rt/$NS" list -q | grep -qx "$1"
	done
}

# Nothing of the namespace's tasks is left at all.
namespace_empty() {
	run $B tasks ls -q
	assert_success
	assert_output ""
	[ -z "$(ls -A "$BERTH_RUN/tasks/$NS" 2>/dev/null)" ]
	! grep -q "$BERTH_RUN/tasks/$NS/" /proc/self/mountinfo
	! pgrep -f "berth-shim --namespace $NS " >/dev/null
	local rt
	for rt in runc crun; do
		[ -d "$BERTH_RUN/$rt/$NS" ] || continue
		run "$rt" --root "$BERTH_RUN/$rt/$NS" list -q
		assert_success
		assert_output ""
	done
}

# until N CMD... — runs CMD until it succeeds, at most N times, 0.1 s apart.
until_ok() {
	local n=$1 i
	shift
	for i in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
	"$@"
}

tm() { tmux -S "$TM" "$@"; }
# the tmux pane shows a line matching the extended regexp
pane_has() { tm capture-pane -p -S - 2>/dev/null | grep -qE "$1"; }
# waits until it does (printing the pane if it never does)
pane_wait() { until_ok 100 pane_has "$1" || { echo "pane without $1:"; tm capture-pane -p -S -; return 1; }; }

# the host path of a v1 controller's (or the v2) cgroup directory of PID
# The cgroup files of process PID hold memory limit MEM, pids limit PIDS,
# and CPU quota QUOTA per 100000 µs (v1 controllers, or the v2 hierarchy).
limits_are() {
	local pid=$1 mem=$2 pids=$3 quota=$4
	if [ -e "$(cgdir "$pid" memory)/memory.limit_in_bytes" ]; then
		[ "$(cat "$(cgdir "$pid" memory)/memory.limit_in_bytes")" = "$mem" ]
		[ "$(cat "$(cgdir "$pid" pids)/pids.max")" = "$pids" ]
		[ "$(cat "$(cgdir "$pid" cpu)/cpu.cfs_quota_us")" = "$quota" ]
		[ "$(cat "$(cgdir "$pid" cpu)/cpu.cfs_period_us")" = 100000 ]
	else
		[ "$(cat "$(cgdir "$pid")/memory.max")" = "$mem" ]
		[ "$(cat "$(cgdir "$pid")/pids.max")" = "$pids" ]
		[ "$(cat "$(cgdir "$pid")/cpu.max")" = "$quota 100000" ]
	fi
}

cgdir() {
	local path
	path=$(awk -F: -v c="$2" '$1 == "0" && $2 == "" && c == "" {print $3}
		$2 ~ ("(^|,)" c "(,|$)") && c != "" {print $3}' "/proc/$1/cgroup")
	if [ -z "$2" ]; then
		local root=/sys/fs/cgroup
		[ -e /sys/fs/cgroup/unified/cgroup.controllers ] && root=/sys/fs/cgroup/unified
		echo "$root$path"
	else
		echo "/sys/fs/cgroup/$2$path"
	fi
}

tty_session() {
	local rt=$1
	ctr "$rt" t '["sh","-c","tty; stty size; read x; echo got-$x; while read l; do [ \"$l\" = q ] && exit 4; stty size; done"]' true
	tm new-session -d -x 100 -y 30 "$B tasks start -t t; echo rc=\$? >$BATS_TEST_TMPDIR/rc"
	pane_wait '^30 100$'
	pane_has '^/dev/pts/[0-9]+$'
	# typed input reaches the process through the CLI
	tm send-keys hello Enter
	pane_wait '^got-hello$'
	# a resize of the CLI's terminal reaches the task's (SIGWINCH → ResizePty):
	# ask the process again until it sees it
	tm resize-window -x 120 -y 40
	local i
	for i in $(seq 100); do
		pane_has '^40 120$' && break
		tm send-keys Enter
		sleep 0.1
	done
	pane_has '^40 120$'
	# and the exit code flows back through the CLI
	tm send-keys q Enter
	until_ok 100 test -s "$BATS_TEST_TMPDIR/rc"
	[ "$(cat "$BATS_TEST_TMPDIR/rc")" = rc=4 ]
	tm kill-server 2>/dev/null || true
	nothing_left t
	# exec -t into a running task: its own terminal, input, exit code
	ctr "$rt" s '["sleep","1000"]'
	$B tasks start -d s >/dev/null
	rm -f "$BATS_TEST_TMPDIR/rc"
	tm new-session -d -x 90 -y 20 "$B tasks exec -t --exec-id e s sh -c 'tty; stty size; read x; exit \$x'; echo rc=\$? >$BATS_TEST_TMPDIR/rc"
	pane_wait '^20 90$'
	pane_has '^/dev/pts/[0-9]+$'
	tm send-keys 6 Enter
	until_ok 100 test -s "$BATS_TEST_TMPDIR/rc"
	[ "$(cat "$BATS_TEST_TMPDIR/rc")" = rc=6 ]
	tm kill-server 2>/dev/null || true
	run $B tasks ps s
	refute_output --partial " e"
	$B tasks kill -s KILL s
	run $B tasks wait s
	assert_equal "$status" 137
	$B tasks rm s >/dev/null
	nothing_left s
	$B containers rm t s
}

@test "runc: a terminal session through tmux: tty, size and resize, typed input, exit code; exec -t" { tty_session runc; }
@test "crun: a terminal session through tmux: tty, size and resize, typed input, exit code; exec -t" { tty_session crun; }

# running ID — the task is listed RUNNING
is_running() { $B tasks ls | grep -qE "^$1 +[0-9]+ +RUNNING"; }
# has_exec ID EXEC — tasks ps lists the exec
has_exec() { $B tasks ps "$1" | grep -qE "^[0-9]+ +$2$"; }

sigkill_codes() {
	local rt=$1
	# a foreground task killed from elsewhere: the CLI exits 137 and deletes it
	ctr "$rt" f '["sleep","1000"]'
	$B tasks start f </dev/null >/dev/null 2>&1 &
	local cli=$!
	until_ok 100 is_running f
	$B tasks kill -s KILL f
	local rc=0
	wait "$cli" || rc=$?
	assert_equal "$rc" 137
	nothing_left f
	# a foreground exec killed with SIGKILL: 137 from its CLI; the task runs on
	ctr "$rt" s '["sleep","1000"]'
	$B tasks start -d s >/dev/null
	$B tasks exec --exec-id k s sleep 1000 </dev/null >/dev/null 2>&1 &
	cli=$!
	until_ok 100 has_exec s k
	$B tasks kill --exec-id k -s KILL s
	rc=0
	wait "$cli" || rc=$?
	assert_equal "$rc" 137
	is_running s
	# exit 0 of an exec and of a task, foreground, no stdin
	run $B tasks exec --exec-id z s true
	assert_success
	$B tasks kill -s KILL s
	run $B tasks wait s
	assert_equal "$status" 137
	$B tasks rm s >/dev/null
	nothing_left s
	$B containers rm f s
}

@test "runc: SIGKILL gives 137 through a foreground start and a foreground exec" { sigkill_codes runc; }
@test "crun: SIGKILL gives 137 through a foreground start and a foreground exec" { sigkill_codes crun; }

update_limits() {
	local rt=$1
	ctr "$rt" u '["sleep","1000"]'
	local pid
	pid=$($B tasks start -d u)
	run $B tasks update --memory-limit 64MiB --cpu-quota 25000 --cpu-period 100000 --pids-limit 42 u
	assert_success
	limits_are "$pid" 67108864 42 25000
	run $B tasks metrics u
	assert_line --regexp "^MEMORY_LIMIT +67108864$"
	assert_line --regexp "^PIDS_LIMIT +42$"
	# a second update changes what it names and keeps the rest
	run $B tasks update --memory-limit 33554432 --pids-limit 7 --cpu-quota 50000 u
	assert_success
	limits_are "$pid" 33554432 7 50000
	run $B tasks metrics u
	assert_line --regexp "^MEMORY_LIMIT +33554432$"
	assert_line --regexp "^PIDS_LIMIT +7$"
	# bad input
	run $B tasks update --pids-limit lots u
	assert_failure
	assert_output --partial 'invalid value for --pids-limit: "lots"'
	run $B tasks update u
	assert_failure
	assert_output --partial "nothing to update"
	run $B tasks update --pids-limit 5 nope
	assert_failure
	assert_output --partial "nope"
	assert_output --partial "not found"
	$B tasks kill -s KILL u
	run $B tasks wait u
	assert_equal "$status" 137
	# a stopped task has no limits to change
	run $B tasks update --pids-limit 5 u
	assert_failure
	assert_output --partial "not running"
	$B tasks rm u >/dev/null
	nothing_left u
	$B containers rm u
}

@test "runc: tasks update changes memory, cpu and pids limits of a running task (cgroup files)" { update_limits runc; }
@test "crun: tasks update changes memory, cpu and pids limits of a running task (cgroup files)" { update_limits crun; }

# mk50 I — container cI: runc for even I, crun for odd
mk50() {
	local rt=runc
	[ $(($1 % 2)) = 1 ] && rt=crun
	$B containers create --runtime "$rt" --spec "$SPEC50" example.org/bb:v1 "c$1" >/dev/null
}

@test "50 containers (runc and crun) started at once: all running, all listed, all killed and deleted, nothing left" {
	export SPEC50 B
	SPEC50=$(spec '["sleep","1000"]')
	export -f mk50
	seq 0 49 | xargs -P 4 -I{} bash -c 'mk50 {}'
	run $B containers ls -q
	assert_equal "$(echo "$output" | wc -l)" 50
	# all 50 starts at once
	seq 0 49 | xargs -P 50 -I{} $B tasks start -d c{} >"$BATS_TEST_TMPDIR/pids"
	assert_equal "$(grep -cE '^[0-9]+$' "$BATS_TEST_TMPDIR/pids")" 50
	run $B tasks ls
	assert_success
	assert_equal "$(grep -cE '^c[0-9]+ +[0-9]+ +RUNNING$' <<<"$output")" 50
	local i pid
	for i in $(seq 0 49); do
		pid=$(awk -v id="c$i" '$1 == id {print $2}' <<<"$output")
		kill -0 "$pid"
	done
	[ "$(runc --root "$BERTH_RUN/runc/$NS" list -q | wc -l)" = 25 ]
	[ "$(crun --root "$BERTH_RUN/crun/$NS" list -q | wc -l)" = 25 ]
	# all killed at once, then deleted
	seq 0 49 | xargs -P 50 -I{} $B tasks kill -s KILL c{}
	all_stopped() { [ "$($B tasks ls | grep -cE '^c[0-9]+ +[0-9]+ +STOPPED \(exit 137\)$')" = 50 ]; }
	until_ok 300 all_stopped
	seq 0 49 | sed 's/^/c/' | xargs -P 10 -n 5 $B tasks rm >"$BATS_TEST_TMPDIR/rm"
	assert_equal "$(grep -c ': exit status 137$' "$BATS_TEST_TMPDIR/rm")" 50
	namespace_empty
	seq 0 49 | sed 's/^/c/' | xargs $B containers rm
	run $B containers ls -q
	assert_output ""
}

# pb FIELD STRING — a protobuf length-delimited field (tag and length < 128)
pb() {
	local n=${#2}
	printf "\\x$(printf %02x $(($1 << 3 | 2)))\\x$(printf %02x "$n")%s" "$2"
}

@test "bad input: stdio paths that do not exist, kill of a stopped task, a runtime neither runc nor crun; nothing left" {
	ctr runc s '["sleep","1000"]'
	# Create with a stdout FIFO that does not exist (a hand-made CreateTaskRequest)
	local st body
	st=$(pb 2 /nonexistent/dir/stdout)
	body=$(pb 1 s; pb 2 "$st")
	run "$TOOLS/zmqsend" "$BERTH_ADDRESS" "hdr:version=1,service=tasks,method=Create,ns=$NS,id=1" "raw:$body"
	assert_output --partial "code=NOT_FOUND"
	assert_output --partial "/nonexistent/dir/stdout"
	# a relative one
	st=$(pb 1 relative/stdin)
	body=$(pb 1 s; pb 2 "$st")
	run "$TOOLS/zmqsend" "$BERTH_ADDRESS" "hdr:version=1,service=tasks,method=Create,ns=$NS,id=2" "raw:$body"
	assert_output --partial "code=INVALID_ARGUMENT"
	assert_output --partial "relative/stdin"
	nothing_left s
	run $B tasks ls -q
	assert_output ""
	# the container can still have a task; an exec whose stdin does not exist
	# is refused and not registered
	$B tasks start -d s >/dev/null
	st=$(pb 1 /nonexistent/stdin)
	body=$(pb 1 s; pb 2 x1; pb 3 '{"args":["true"],"cwd":"/"}'; pb 4 "$st")
	run "$TOOLS/zmqsend" "$BERTH_ADDRESS" "hdr:version=1,service=tasks,method=Exec,ns=$NS,id=3" "raw:$body"
	assert_output --partial "code=NOT_FOUND"
	assert_output --partial "/nonexistent/stdin"
	run $B tasks ps s
	refute_output --partial x1
	run $B tasks exec --exec-id x1 s true
	assert_success
	# kill of a stopped task: a clear error (the process already exited)
	$B tasks kill -s KILL s
	run $B tasks wait s
	assert_equal "$status" 137
	run $B tasks kill s
	assert_failure
	assert_output --partial "already exited"
	run $B tasks kill -s KILL --exec-id x1 s
	assert_failure
	assert_output --partial "x1"
	$B tasks rm s >/dev/null
	run $B tasks kill s
	assert_failure
	assert_output --regexp 'task "?s"?: not found'
	nothing_left s
	$B containers rm s
	# a runtime that is neither runc nor crun: refused, and its snapshot goes again
	run $B containers create --runtime kata --spec "$(spec '["true"]')" example.org/bb:v1 k
	assert_failure
	assert_output --partial "must be runc or crun"
	run $B containers ls -q
	assert_output ""
	run berth -n "$NS" snapshots ls
	refute_output --regexp "(^| )k( |$)"
	# runc by name whose binary does not exist: its task fails with a clear error
	run $B containers create --runtime runc --runtime-binary /no/such/runtime --spec "$(spec '["true"]')" example.org/bb:v1 m
	assert_success
	run $B tasks start m
	assert_failure
	assert_output --partial "/no/such/runtime"
	nothing_left m
	run $B tasks ls -q
	assert_output ""
	$B containers rm m
}

# exec_reported I — exec I reported: 137 (killed with the init) or a clear error
exec_reported() {
	local i=$1 rc
	rc=$(cat "$BATS_TEST_TMPDIR/rc.$i")
	case $rc in
	137) return 0 ;;
	124) echo "exec $i hung" >&2; return 1 ;;
	*) grep -q "error: " "$BATS_TEST_TMPDIR/err.$i" || { echo "exec $i: exit $rc without an error" >&2; return 1; } ;;
	esac
}

# concurrent_execs RUNTIME N
concurrent_execs() {
	local rt=$1 n=$2 i
	ctr "$rt" x '["sleep","1000"]'
	local pid
	pid=$($B tasks start -d x)
	for i in $(seq "$n"); do
		(
			rc=0
			timeout 300 $B tasks exec --exec-id "e$i" x sleep 1000 </dev/null >/dev/null 2>"$BATS_TEST_TMPDIR/err.$i" || rc=$?
			echo "$rc" >"$BATS_TEST_TMPDIR/rc.$i"
		) &
	done
	# kill -9 of the main process once some execs run (the runtime wrote
	# their pid files: docs/tasks.md, state directory)
	some_execs() { [ "$(ls "$BERTH_RUN/tasks/$NS/x" | grep -c '^exec-e[0-9]*\.pid$')" -ge 10 ]; }
	until_ok 600 some_execs
	kill -9 "$pid"
	wait
	local killed=0
	for i in $(seq "$n"); do
		[ -s "$BATS_TEST_TMPDIR/rc.$i" ]
		exec_reported "$i"
		[ "$(cat "$BATS_TEST_TMPDIR/rc.$i")" = 137 ] && killed=$((killed + 1))
	done
	echo "exit codes of the execs (count code):" $(cat "$BATS_TEST_TMPDIR"/rc.* | sort | uniq -c)
	cat "$BATS_TEST_TMPDIR"/err.* | sort | uniq -c | sort -rn | head -5
	[ "$killed" -ge 10 ]
	run $B tasks ls
	assert_line --regexp "^x +$pid +STOPPED \(exit 137\)$"
	run $B tasks rm x
	assert_output "x: exit status 137"
	nothing_left x
	$B containers rm x
}

# (fewer with crun: the file's time; the runtime's part is the same)
@test "runc: 100 concurrent execs, kill -9 of the init meanwhile: every exec reports, the task is stopped" { concurrent_execs runc 100; }
@test "crun: 50 concurrent execs, kill -9 of the init meanwhile: every exec reports, the task is stopped" { concurrent_execs crun 50; }
