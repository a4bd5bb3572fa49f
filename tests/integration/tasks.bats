#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# berth containers and tasks end to end, with real runc and real crun: a
# busybox image imported from an OCI archive, specs from `runc spec`;
# output, exit codes, exec, stdin, pause/resume with the freezer, metrics,
# restarts of berth-taskd and a killed or stopped shim, bad input.

load helpers
source "$REPO/tests/images/fixtures.sh"

# crun on this hybrid cgroup host: hugetlb_v1_mount (helpers.bash)
setup_file() {
	hugetlb_v1_mount "$BATS_FILE_TMPDIR"
	suite_setup
	export SUITE_DIR
	export FX=$SUITE_DIR/fx
	mkdir -p "$FX"
	fx_base "$FX/oci" v1
	skopeo copy --quiet "oci:$FX/oci:v1" "oci-archive:$FX/img.tar:example.org/bb:v1"
	(cd "$FX" && runc spec)
}

teardown_file() { tasks_suite_teardown; }

setup() {
	NS=$(fresh_ns)
	B="berth -n $NS"
	berth -n "$NS" images import "$FX/img.tar" >/dev/null
}

teardown() {
	[ -z "${BATS_TEST_COMPLETED:-}" ] && dump_logs
	local id
	for id in $($B tasks ls -q 2>/dev/null); do
		kill -CONT "$(cat "$BERTH_RUN/tasks/$NS/$id/shim.pid" 2>/dev/null)" 2>/dev/null || true
		$B tasks rm -f "$id" >/dev/null 2>&1 || true
	done
	for id in $($B containers ls -q 2>/dev/null); do $B containers rm "$id" >/dev/null 2>&1 || true; done
	rm -f /tmp/tasks-bats-spec.$$.json
	return 0
}

# spec ARGS_JSON [TERMINAL] — a spec file (runc spec without a terminal,
# with ARGS, without CAP_SYS_RESOURCE, which this host's bounding set lacks).
spec() {
	local f=$BATS_TEST_TMPDIR/spec.$RANDOM.json
	jq --argjson args "$1" --argjson tty "${2:-false}" \
		'.process.terminal=$tty | .process.args=$args
		 | .process.capabilities |= with_entries(.value |= map(select(. != "CAP_SYS_RESOURCE")))' \
		"$FX/config.json" >"$f"
	echo "$f"
}

# ctr RUNTIME ID ARGS_JSON — a container.
ctr() {
	run $B containers create --runtime "$1" --spec "$(spec "$3")" example.org/bb:v1 "$2"
	assert_success
}

# freezer state of a task's init (cgroup v1 here; v2 hosts: cgroup.freeze).
freezer() {
	$B tasks metrics "$1" | awk '$1 == "FREEZER_STATE" {print $2}'
}

# Nothing of task ID is left: no bundle, no mount, no shim.
nothing_left() {
	[ ! -e "$BERTH_RUN/tasks/$NS/$1" ]
	! grep -q "$BERTH_RUN/tasks/$NS/$1/" /proc/self/mountinfo
	! pgrep -f "berth-shim --namespace $NS --id $1( |\$)" >/dev/null
}

lifecycle() {
	local rt=$1
	ctr "$rt" a '["sh","-c","echo to-out; echo to-err >&2; exit 3"]'
	run --separate-stderr $B tasks start a
	assert_equal "$status" 3
	assert_equal "$output" to-out
	assert_equal "$stderr" to-err
	nothing_left a
	# stdin piped in, exit 0
	ctr "$rt" b '["sh","-c","read x; echo got-$x"]'
	run bash -c "echo hello | $B tasks start b"
	assert_success
	assert_output got-hello
	nothing_left b
	$B containers rm a b
	run $B containers ls -q
	assert_output ""
}

@test "runc: output captured, exit code 3, stdin piped in, nothing left" { lifecycle runc; }
@test "crun: output captured, exit code 3, stdin piped in, nothing left" { lifecycle crun; }

running() {
	local rt=$1
	ctr "$rt" s '["sleep","1000"]'
	run $B tasks start -d s
	assert_success
	local pid=$output
	run $B tasks ls
	assert_line --regexp "^s +$pid +RUNNING"
	# the container record cannot go while its task lives
	run $B containers rm s
	assert_failure
	assert_output --partial "has a task"
	# exec, with its own output and exit code
	run $B tasks exec --exec-id e1 s sh -c 'echo in-exec; exit 7'
	assert_equal "$status" 7
	assert_output in-exec
	run bash -c "echo piped | $B tasks exec --exec-id e2 s cat"
	assert_success
	assert_output piped
	# pause freezes, resume thaws
	run $B tasks pause s
	assert_success
	[ "$(freezer s)" = FROZEN ]
	run $B tasks ls
	assert_line --regexp "^s +$pid +PAUSED"
	run $B tasks resume s
	assert_success
	[ "$(freezer s)" = THAWED ]
	# the execs' processes leave the cgroup once reaped: wait for that, not a moment
	for _ in $(seq 1 50); do
		$B tasks metrics s | grep -qE "^PIDS_CURRENT +1$" && break
		sleep 0.1
	done
	run $B tasks metrics s
	assert_success
	assert_line --regexp "^PIDS_CURRENT +1$"
	assert_line --regexp "^MEMORY_USAGE +[1-9]"
	run $B tasks ps s
	assert_line --regexp "^$pid "
	# the listings as JSON
	run bash -c "$B tasks ps --format json s | jq -r '.[] | select(.execId == \"\") | .pid'"
	assert_output "$pid"
	run bash -c "$B tasks ls --format json | jq -r '.[] | select(.id == \"s\") | \"\\(.pid) \\(.status)\"'"
	assert_output "$pid running"
	# SIGKILL: 137, waited for by two waiters at once
	$B tasks wait s >/dev/null 2>&1 &
	local w1=$!
	$B tasks kill -s KILL s
	run $B tasks wait s
	assert_equal "$status" 137
	wait "$w1" || assert_equal "$?" 137
	run $B tasks ls
	assert_line --regexp "^s +$pid +STOPPED \(exit 137\)"
	run bash -c "$B tasks ls --format json | jq -r '.[] | select(.id == \"s\") | \"\\(.status) \\(.exitStatus)\"'"
	assert_output "stopped 137"
	# killing a stopped task is an error
	run $B tasks kill s
	assert_failure
	run $B tasks rm s
	assert_success
	assert_output "s: exit status 137"
	nothing_left s
}

@test "runc: detached task, exec, pause/resume (freezer), metrics, ps, kill 137, two waiters" { running runc; }
@test "crun: detached task, exec, pause/resume (freezer), metrics, ps, kill 137, two waiters" { running crun; }

@test "metrics change under load" {
	ctr runc m '["sh","-c","while :; do :; done"]'
	$B tasks start -d m >/dev/null
	local c1 c2
	c1=$($B tasks metrics m | awk '$1 == "CPU_USAGE_NS" {print $2}')
	sleep 0.5
	c2=$($B tasks metrics m | awk '$1 == "CPU_USAGE_NS" {print $2}')
	[ "$c2" -gt "$c1" ]
}

@test "bad input: unknown container, invalid spec JSON, missing binary (runtime error passed back), second task, duplicate exec id; nothing left" {
	run $B tasks start nope
	assert_failure
	assert_output --partial 'container "nope": not found'
	echo '{"process": ' >"$BATS_TEST_TMPDIR/bad.json"
	run $B containers create --spec "$BATS_TEST_TMPDIR/bad.json" example.org/bb:v1 bad
	assert_failure
	assert_output --partial "not valid JSON"
	# the snapshot prepared for it went again
	run berth -n "$NS" snapshots ls
	refute_output --partial " bad "
	ctr runc nobin '["/bin/no-such-binary"]'
	run $B tasks start nobin
	assert_failure
	assert_output --partial "no-such-binary"
	nothing_left nobin
	ctr runc s '["sleep","1000"]'
	$B tasks start -d s >/dev/null
	run $B tasks start -d s
	assert_failure
	assert_output --partial "has a task already"
	run berth-task -n "$NS" tasks ls
	assert_line --regexp "^s +[0-9]+ +RUNNING"
	run $B tasks exec --exec-id x1 -d s sleep 100
	assert_success
	run $B tasks exec --exec-id x1 -d s sleep 100
	assert_failure
	assert_output --partial "x1"
	$B tasks kill --exec-id x1 -s KILL s
}

@test "a task with --null-io runs and leaves nothing behind" {
	ctr runc s '["true"]'
	run $B tasks start --null-io s
	assert_success
	nothing_left s
}

@test "restart of berth-taskd: running task, one that exits while it is down, exec in flight" {
	ctr runc r '["sleep","1000"]'
	ctr crun x '["sh","-c","sleep 2; exit 5"]'
	$B tasks start -d r >/dev/null
	$B tasks start -d x >/dev/null
	$B tasks exec --exec-id e -d r sh -c 'sleep 2; exit 9' >/dev/null
	kill -9 "$(daemon_pid berth-taskd)"
	sleep 3
	berth-dev start berth-taskd >/dev/null
	run $B tasks ls
	assert_line --regexp "^r +[0-9]+ +RUNNING"
	assert_line --regexp "^x +[0-9]+ +STOPPED \(exit 5\)"
	run $B tasks wait x
	assert_equal "$status" 5
	run $B tasks wait --exec-id e r
	assert_equal "$status" 9
	run $B tasks rm x
	assert_output "x: exit status 5"
	nothing_left x
	$B tasks kill -s KILL r
	run $B tasks wait r
	assert_equal "$status" 137
}

@test "a shim killed with -9: its task stopped with a reason, cleaned up; a stopped shim delays only its own task" {
	ctr runc k '["sleep","1000"]'
	ctr runc h '["sleep","1000"]'
	ctr runc o '["sleep","1000"]'
	$B tasks start -d k >/dev/null
	$B tasks start -d h >/dev/null
	$B tasks start -d o >/dev/null
	kill -9 "$(cat "$BERTH_RUN/tasks/$NS/k/shim.pid")"
	local i
	for i in $(seq 50); do $B tasks ls | grep -q '^k .*STOPPED' && break; sleep 0.1; done
	run $B tasks ls
	assert_line --regexp "^k +[0-9]+ +STOPPED \(exit 255\): shim .* died"
	! grep -q "$BERTH_RUN/tasks/$NS/k/rootfs" /proc/self/mountinfo
	run $B tasks rm k
	assert_success
	nothing_left k
	# SIGSTOP one shim: list and the other task answer; its own calls time out
	local hp
	hp=$(cat "$BERTH_RUN/tasks/$NS/h/shim.pid")
	kill -STOP "$hp"
	run $B tasks ls
	assert_success
	assert_line --regexp "^o +[0-9]+ +RUNNING"
	run $B tasks ps o
	assert_success
	run $B --timeout 2s tasks ps h
	assert_failure
	kill -CONT "$hp"
	run $B tasks ps h
	assert_success
}
