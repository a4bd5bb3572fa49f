#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# berth run, end to end with real runc and crun: fixture images imported
# (nothing pulled), the spec built from the image config with users looked
# up in the container's own snapshot, stdio streamed, the exit code passed
# through, --rm leaving nothing, -d leaving a running task, a tty through
# script(1), signals passed on, and bad input refused with nothing lost.

load helpers
source "$REPO/tests/images/fixtures.sh"

setup_file() {
	# crun 1.8 and a hybrid cgroup host: see shim.bats
	hugetlb_v1_mount "$BATS_FILE_TMPDIR"
	suite_setup
	export SUITE_DIR
	export FX=$SUITE_DIR/fx
	mkdir -p "$FX"
	fx_base "$FX/oci" base
	fx_base "$FX/oci" app
	fx_config "$FX/oci" app --config.user berth --config.entrypoint /bin/echo --config.cmd hello \
		--config.workingdir /tmp --config.env FOO=bar --config.label org.example.k=v
	# an image whose /etc/passwd is a symlink to a file of the host's
	fx_base "$FX/oci" evil
	mkdir -p "$FX/evil/etc" "$FX/hostside"
	echo 'hostonly:x:4321:4321::/:/bin/sh' >"$FX/hostside/passwd"
	ln -s "$FX/hostside/passwd" "$FX/evil/etc/passwd"
	tar -C "$FX/evil" -cf "$FX/evil.tar" etc
	fx_append_tar "$FX/oci" evil "$FX/evil.tar"
	local t
	for t in base app evil; do
		skopeo copy --quiet "oci:$FX/oci:$t" "oci-archive:$FX/$t.tar:example.org/run/$t:v1"
	done
}

teardown_file() { tasks_suite_teardown; }

setup() {
	NS=$(fresh_ns)
	B="berth -n $NS"
	local t
	for t in base app evil; do
		$B images import "$FX/$t.tar" >/dev/null
	done
	# the CLI's FIFOs and mount points go in $TMPDIR: this test's own
	export TMPDIR=$BATS_TEST_TMPDIR/tmp
	mkdir -p "$TMPDIR"
}

teardown() {
	[ -z "${BATS_TEST_COMPLETED:-}" ] && dump_logs
	local id
	for id in $($B tasks ls -q 2>/dev/null); do $B tasks rm -f "$id" >/dev/null 2>&1 || true; done
	for id in $($B containers ls -q 2>/dev/null); do $B containers rm "$id" >/dev/null 2>&1 || true; done
	return 0
}

# Nothing of a run is left in the namespace: no task, no container, no
# snapshot but the image's committed layers, no mount, no temporary
# directory of the CLI's.
assert_nothing_left() {
	run $B tasks ls -q
	assert_output ""
	run $B containers ls -q
	assert_output ""
	run $B snapshots ls
	refute_output --regexp 'Active|View'
	run grep -c " $SUITE_DIR/root" /proc/self/mountinfo
	assert_output 0
	run ls -A "$TMPDIR"
	assert_output ""
}

@test "run --rm prints the greeting, exits 0, and leaves nothing behind" {
	run $B run --rm example.org/run/base:v1 hello echo "hello from berth"
	assert_success
	assert_output "hello from berth"
	assert_nothing_left
}

@test "exit codes pass through: 3, and 137 for a process killed by SIGKILL" {
	run $B run --rm example.org/run/base:v1 c3 sh -c 'echo out; echo err >&2; exit 3'
	assert_failure 3
	assert_line out
	assert_line err
	# (PID 1 of a namespace cannot SIGKILL itself: the kill comes from outside)
	$B run --rm example.org/run/base:v1 c9 sleep 300 >"$BATS_TEST_TMPDIR/c9" 2>&1 &
	local cli=$! i st=0
	for i in $(seq 100); do
		$B tasks ls 2>/dev/null | grep -Eq "^c9 +[0-9]+ +RUNNING" && break
		sleep 0.1
	done
	$B tasks kill -s SIGKILL c9
	wait "$cli" || st=$?
	[ "$st" -eq 137 ]
	assert_nothing_left
}

@test "the image config: entrypoint + cmd, CMD replaces cmd, env merged, working dir, its user" {
	run $B run --rm example.org/run/app:v1 a1
	assert_success
	assert_output hello
	run $B run --rm example.org/run/app:v1 a2 replaced args
	assert_success
	assert_output "replaced args"
	# (app's entrypoint is echo: env, cwd and user are shown with base's shell)
	run $B run --rm --env FOO=baz --env X=1 --cwd /root -u 0 example.org/run/base:v1 a3 sh -c \
		'echo "$FOO $X $(pwd) $(id -u)"; env | grep -c ^PATH='
	assert_success
	assert_line "baz 1 /root 0"
	assert_line 1
	assert_nothing_left
}

@test "users: a name and a group from the image's own files, a number; ids beyond 2^32-2 refused" {
	# berth (1000) is in the image's /etc/passwd, and a member of extra (2000)
	run $B run --rm -u berth example.org/run/base:v1 u1 id
	assert_success
	assert_output "uid=1000(berth) gid=1000(berth) groups=1000(berth),2000(extra)"
	run $B run --rm -u nobody:extra example.org/run/base:v1 u2 id
	assert_success
	assert_output "uid=65534(nobody) gid=2000(extra) groups=2000(extra)"
	run $B run --rm -u 1234 example.org/run/base:v1 u3 id -u
	assert_success
	assert_output 1234
	run $B run --rm -u 4294967295 example.org/run/base:v1 u4 id
	assert_failure 1
	assert_output --partial "above the largest id"
	run $B run --rm --user=-1 example.org/run/base:v1 u5 id
	assert_failure 1
	assert_output --partial "negative"
	run $B run --rm -u nosuch example.org/run/base:v1 u6 id
	assert_failure 1
	assert_output --partial '"nosuch" is not in the image'
	assert_nothing_left
}

@test "a symlinked /etc/passwd pointing at a host file is never read through" {
	run $B run --rm -u hostonly example.org/run/evil:v1 e1 id
	assert_failure 1
	refute_output --partial 4321
	assert_nothing_left
}

@test "stdin flows in; crun runs it too; the container keeps the image's labels and --label" {
	run bash -c "printf 'line1\nline2\n' | $B run --runtime crun --label team=a example.org/run/base:v1 s1 sh -c 'wc -l; cat /proc/1/comm'"
	assert_success
	assert_line 2
	run $B containers info s1
	assert_success
	[ "$(jq -r .runtime.name <<<"$output")" = crun ]
	[ "$(jq -r '.labels.team' <<<"$output")" = a ]
	[ "$(jq -r '.labels["org.example.k"]' <<<"$output")" = null ]
	[ "$(jq -r .image <<<"$output")" = example.org/run/base:v1 ]
	[ "$(jq -r .spec.process.args[0] <<<"$output")" = sh ]
	# the task is gone, the container stays (no --rm), as with ctr run
	run $B tasks ls -q
	assert_output ""
	run $B containers rm s1
	assert_success
	run $B run example.org/run/app:v1 s2
	assert_success
	run $B containers info s2
	[ "$(jq -r '.labels["org.example.k"]' <<<"$output")" = v ]
	$B containers rm s2
	assert_nothing_left
}

@test "-d runs detached: exec into it, kill, wait with 137, then rm; --rm with -d refused" {
	run $B run -d example.org/run/base:v1 d1 sleep 300
	assert_success
	run $B tasks ls
	assert_output --regexp "d1 +[0-9]+ +RUNNING"
	run $B tasks exec --exec-id e1 d1 sh -c 'echo in; exit 5'
	assert_failure 5
	assert_output in
	run $B tasks kill -s SIGKILL d1
	assert_success
	run $B tasks wait d1
	assert_failure 137
	run $B tasks rm d1
	assert_success
	run $B containers rm d1
	assert_success
	run $B run -d --rm example.org/run/base:v1 d2 true
	assert_failure 2
	assert_output --partial "--rm and --detach cannot go together"
	assert_nothing_left
}

@test "a tty through script(1): a terminal of the right size, the exit code" {
	run timeout 60 script -qec "stty cols 91 rows 33; $B run -t --rm example.org/run/base:v1 t1 sh -c 'tty; stty size; exit 4'" /dev/null </dev/null
	assert_failure 4
	assert_output --regexp "/dev/pts/[0-9]+"
	assert_output --partial "33 91"
	assert_nothing_left
}

@test "SIGTERM to berth run reaches the task; its exit code is the CLI's" {
	$B run --rm example.org/run/base:v1 sig1 sh -c 'trap "echo got TERM; exit 42" TERM; echo ready; while :; do sleep 0.1; done' \
		>"$BATS_TEST_TMPDIR/out" 2>&1 &
	local cli=$!
	local i
	for i in $(seq 100); do
		grep -q ready "$BATS_TEST_TMPDIR/out" && break
		sleep 0.1
	done
	kill -TERM "$cli"
	local st=0
	wait "$cli" || st=$?
	[ "$st" -eq 42 ]
	grep -q "got TERM" "$BATS_TEST_TMPDIR/out"
	assert_nothing_left
}

@test "an image stored but not unpacked is unpacked by run" {
	# a namespace of its own: snapshots are per namespace
	local B2="berth -n ${NS}late"
	$B2 images import --no-unpack "$FX/base.tar" >/dev/null
	run $B2 images check
	assert_output --regexp "example.org/run/base:v1 .*false"
	run $B2 run --rm example.org/run/base:v1 late1 echo unpacked now
	assert_success
	assert_output "unpacked now"
	run $B2 images check
	assert_output --regexp "example.org/run/base:v1 .*true"
	$B2 images rm example.org/run/base:v1 >/dev/null
}

@test "seccomp: unshare is refused by default, allowed with --privileged" {
	run $B run --rm example.org/run/base:v1 sc1 unshare -m true
	assert_failure
	assert_output --partial "Operation not permitted"
	run $B run --rm --privileged example.org/run/base:v1 sc2 unshare -m true
	assert_success
	assert_nothing_left
}

@test "bad input: a missing image, an id in use, bad options, a missing command; nothing lost" {
	run $B run --rm example.org/run/missing:v1 x1 true
	assert_failure 1
	assert_output --partial "berth images pull example.org/run/missing:v1"
	run $B run -d example.org/run/base:v1 keep sleep 300
	assert_success
	run $B run --rm example.org/run/base:v1 keep true
	assert_failure 1
	assert_output --partial "keep"
	run $B tasks ls
	assert_output --regexp "keep +[0-9]+ +RUNNING"
	run $B tasks exec --exec-id still keep true
	assert_success
	$B tasks kill -s SIGKILL keep
	$B tasks wait keep || true
	$B tasks rm keep
	$B containers rm keep
	run $B run --rm --runtime docker example.org/run/base:v1 x2 true
	assert_failure 2
	assert_output --partial "expected runc or crun"
	run $B run --rm --mount type=bind,src=relative,dst=/x example.org/run/base:v1 x3 true
	assert_failure 1
	assert_output --partial "absolute src"
	run $B run --rm --bogus example.org/run/base:v1 x4 true
	assert_failure 2
	assert_output --partial "--bogus"
	run $B run --rm example.org/run/base:v1
	assert_failure 2
	run $B run --rm example.org/run/base:v1 x5 /no/such/command
	assert_failure 1
	assert_output --regexp "(no such file|not found)"
	run $B run --rm --label novalue example.org/run/base:v1 x6 true
	assert_failure 2
	assert_output --partial "expected KEY=VALUE"
	assert_nothing_left
}
