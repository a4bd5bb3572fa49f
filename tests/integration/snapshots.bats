#!/usr/bin/env bats
# The snapshot service end to end, on real mounts (run as root):
# berth CLI → berth-gatewayd → berth-snapshotd (overlayfs, the default), and
# a second berth-snapshotd (native driver, its own root and socket)
# configured as the remote snapshotter "remote".

load helpers

setup_file() {
	suite_setup
	export SUITE_DIR # the tests below use it too
	export TOOLS=$REPO/$BUILD/tests/tools
	# the remote snapshotter: another instance, another root, another socket
	export REMOTE_ROOT=$SUITE_DIR/remote-root
	export REMOTE_EP=ipc://$SUITE_DIR/r.sock
	export REMOTE_CONFIG=$SUITE_DIR/remote.toml
	printf '[snapshots]\ndriver = "native"\nname = "remote"\n' >"$REMOTE_CONFIG"
	start_remote
	suite_config '[snapshotters.remote]\naddress = "%s"\n' "$REMOTE_EP"
	berth-dev restart berth-gatewayd >/dev/null
}

teardown_file() {
	stop_remote
	suite_teardown
}

# The remote instance runs detached (not a child of the test's shell, so a
# `wait` never waits for it and a killed one is reaped at once).
start_remote() {
	(
		setsid "$BIN/berth-snapshotd" --config "$REMOTE_CONFIG" --root "$REMOTE_ROOT" --address "$REMOTE_EP" \
			</dev/null >>"$SUITE_DIR/remote.log" 2>&1 3>&- &
		echo $! >"$SUITE_DIR/remote.pid"
	)
	for _ in $(seq 100); do
		berth --timeout 1s -a "$REMOTE_EP" health >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	cat "$SUITE_DIR/remote.log" >&2
	return 1
}

stop_remote() {
	local pid
	pid=$(cat "$SUITE_DIR/remote.pid" 2>/dev/null) || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		alive "$pid" || break
		sleep 0.1
	done
	rm -f "$SUITE_DIR/remote.pid"
}

# A process that runs (not gone, not a zombie).
alive() {
	local st
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

setup() {
	NS=$(fresh_ns)
	export BERTH_NAMESPACE=$NS
	T=$(mktemp -d "$SUITE_DIR/mnt.XXXXXX")
}

teardown() {
	[ -n "${BATS_TEST_COMPLETED:-}" ] || { dump_logs; tail -n 20 "$SUITE_DIR/remote.log"; }
	# every test unmounts what it mounted; anything left is a failure
	if grep -q " $T" /proc/self/mountinfo; then
		echo "mounts left behind under $T" >&2
		"$TOOLS/btmount" -u "$T" || true
		return 1
	fi
	rm -rf "$T"
}

# s [ARGS...]: berth snapshots on the snapshotter $SN (empty: the default)
s() { berth snapshots ${SN:+--snapshotter "$SN"} "$@"; }
# mnt KEY: mounts KEY at $T with what `berth snapshots mounts` prints
mnt() { eval "$(s mounts "$T" "$1")"; }
unmnt() { umount "$T"; }
# the snapshotter's state directory
state_of() { if [ "${SN:-}" = remote ]; then echo "$REMOTE_ROOT/snapshots/remote"; else echo "$BERTH_ROOT/snapshots/overlayfs"; fi; }
db_of() { echo "$(state_of)/meta.db"; }
pid_of_snapshotd() { if [ "${SN:-}" = remote ]; then cat "$SUITE_DIR/remote.pid"; else daemon_pid berth-snapshotd; fi; }
stop_snapshotd() {
	if [ "${SN:-}" = remote ]; then stop_remote; else berth-dev stop berth-snapshotd >/dev/null; fi
}
restart_snapshotd() {
	if [ "${SN:-}" = remote ]; then stop_remote; start_remote; else berth-dev start berth-snapshotd >/dev/null; fi
}

# Every directory of the snapshotter is a record's and every record has its directory.
check_dirs_match_records() {
	local st db ids dirs
	st=$(state_of)
	db=$(db_of)
	ids=$(sqlite3 "$db" "SELECT id FROM snapshots ORDER BY id")
	dirs=$(ls "$st/snapshots" | sort -n)
	assert_equal "$dirs" "$ids"
}

# A chain of three layers, views and deletions, as a user sees it mounted.
chain_test() {
	s prepare k1
	mnt k1
	echo one >"$T/a"
	echo bye >"$T/gone"
	mkdir -m 0750 "$T/d"
	echo in >"$T/d/in"
	unmnt
	s commit l1 k1

	s prepare k2 l1
	mnt k2
	assert_equal "$(cat "$T/a")" one
	echo two >"$T/a"
	rm "$T/gone"
	echo new >"$T/b"
	unmnt
	s commit l2 k2

	# the child sees both layers and the deletion
	s prepare k3 l2
	mnt k3
	assert_equal "$(cat "$T/a")" two
	assert_equal "$(cat "$T/b")" new
	assert_equal "$(cat "$T/d/in")" in
	assert_equal "$(stat -c %a "$T/d")" 750
	[ ! -e "$T/gone" ]
	echo mine >"$T/c"
	unmnt

	# views are read-only and show their parent as it was
	s view v l1
	mnt v
	assert_equal "$(cat "$T/a")" one
	[ -e "$T/gone" ]
	run touch "$T/nope"
	assert_failure
	assert_output --partial "Read-only file system"
	unmnt
	s view v2 l2
	mnt v2
	assert_equal "$(cat "$T/a")" two
	[ ! -e "$T/gone" ]
	[ ! -e "$T/c" ]
	run bash -c "echo x >'$T/a'"
	assert_failure
	assert_output --partial "Read-only file system"
	unmnt

	run s ls
	assert_success
	assert_line --index 0 --regexp '^KEY +PARENT +KIND$'
	assert_line --regexp '^k3 +l2 +Active$'
	assert_line --regexp '^l1 +Committed$'
	assert_line --regexp '^l2 +l1 +Committed$'
	assert_line --regexp '^v +l1 +View$'
	run s tree
	assert_success
	assert_output "$(printf ' l1\n  \\_ l2\n    \\_ k3\n    \\_ v2\n  \\_ v')"
	run s ls -q kind==committed
	assert_output "$(printf 'l1\nl2')"

	# a parent goes only after its children
	run s rm l1
	assert_failure 1
	assert_output --partial 'cannot remove snapshot "l1": it is the parent of 2 snapshots ("l2", "v")'
	s rm k3 v2 v l2 l1
	run s ls -q
	assert_output ""
	check_dirs_match_records
}

@test "snapshots: overlayfs: prepare, mount, write, commit, a chain with deletions, read-only views" {
	SN=
	chain_test
	# the mounts are overlays of numbered directories, nearest layer first
	s prepare p1
	s commit q1 p1
	s prepare p2 q1
	s commit q2 p2
	s prepare p3 q2
	run s mounts /mnt p3
	st=$(state_of)/snapshots
	assert_output --regexp "^mount -t overlay overlay /mnt -o workdir=$st/[0-9]+/work,upperdir=$st/[0-9]+/fs,lowerdir=$st/[0-9]+/fs:$st/[0-9]+/fs$"
	s rm p3 q2 q1
}

@test "snapshots: native through the gateway (remote snapshotter): the same results" {
	SN=remote
	chain_test
	# the data lives in the remote instance's own root, as full copies
	s prepare n1
	run s mounts /mnt n1
	assert_output "mount -t bind $REMOTE_ROOT/snapshots/remote/snapshots/$(sqlite3 "$(db_of)" "SELECT id FROM snapshots WHERE name='n1'")/fs /mnt -o rw,rbind"
	s rm n1
}

@test "snapshots: the remote snapshotter is routed by name, listed by version, and kept apart" {
	run berth version
	assert_success
	assert_output --regexp "snapshots/overlayfs +ok +berth-snapshotd"
	assert_output --regexp "snapshots/remote +ok +berth-snapshotd .*$REMOTE_EP"
	berth snapshots --snapshotter remote prepare only-remote
	berth snapshots prepare only-local
	run berth snapshots --snapshotter remote ls -q
	assert_output only-remote
	run berth snapshots ls -q
	assert_output only-local
	run env BERTH_SNAPSHOTTER=remote berth snapshots ls -q
	assert_output only-remote
	run berth snapshots --snapshotter overlayfs ls -q
	assert_output only-local
	run berth snapshots --snapshotter nope ls
	assert_failure 1
	assert_output --partial 'unknown snapshotter "nope"'
	# straight at a snapshotter's socket, another name is NOT_FOUND
	run berth-snapshot -a "$REMOTE_EP" -n "$NS" --snapshotter overlayfs ls
	assert_failure 1
	assert_output --partial 'snapshotter "overlayfs" not found (this is "remote")'
	run berth-snapshot -a "$REMOTE_EP" -n "$NS" ls -q
	assert_output only-remote
	berth snapshots --snapshotter remote rm only-remote
	berth snapshots rm only-local
}

@test "snapshots: berth-snapshot talks to the local snapshotter's socket directly" {
	berth snapshots prepare direct
	run berth-snapshot -n "$NS" ls
	assert_success
	assert_line --regexp '^direct +Active$'
	berth-snapshot -n "$NS" commit direct-c direct
	run berth snapshots info direct-c
	assert_output --partial '"kind": "committed"'
	berth-snapshot -n "$NS" rm direct-c
	run berth snapshots ls -q
	assert_output ""
}

usage_test() {
	s prepare u
	run s usage --b u
	assert_success
	assert_line --index 0 --regexp '^KEY +SIZE +INODES$'
	read -r _ size0 inodes0 <<<"$(echo "$output" | tail -n 1)"
	mnt u
	for i in $(seq 1 10); do head -c 20000 /dev/urandom >"$T/f$i"; done
	mkdir "$T/dir"
	unmnt
	run s usage --b u
	read -r key size1 inodes1 <<<"$(echo "$output" | tail -n 1)"
	assert_equal "$key" u
	assert_equal "$inodes1" $((inodes0 + 11))
	[ "$size1" -ge $((size0 + 200000)) ]
	# committed: measured at commit, the same numbers
	s commit uc u
	run s usage --b uc
	assert_line --regexp "^uc +$size1 +$inodes1$"
	# human sizes without --b
	run s usage uc
	assert_line --regexp '^uc +[0-9.]+ KiB +[0-9]+$'
	# and as JSON, in bytes
	assert_equal "$(s usage --format json uc | jq -r '.[] | "\(.key) \(.size) \(.inodes)"')" "uc $size1 $inodes1"
	s rm uc
}

@test "snapshots: usage counts change as files are added (overlayfs and native)" {
	SN=
	usage_test
	SN=remote
	usage_test
}

@test "snapshots: two namespaces are kept apart" {
	berth -n "${NS}a" snapshots prepare same
	berth -n "${NS}b" snapshots prepare same
	berth -n "${NS}a" snapshots commit base same
	run berth -n "${NS}b" snapshots info base
	assert_failure 1
	assert_output --partial 'snapshot "base": not found'
	run berth -n "${NS}b" snapshots prepare child base
	assert_failure 1
	assert_output --partial 'parent snapshot "base": not found'
	run berth -n "${NS}b" snapshots rm base
	assert_failure 1
	run berth -n "${NS}b" snapshots ls -q
	assert_output same
	# the same name may be committed in both
	berth -n "${NS}b" snapshots commit base same
	berth -n "${NS}a" snapshots rm base
	run berth -n "${NS}b" snapshots info base
	assert_success
	berth -n "${NS}b" snapshots rm base
	run berth -n "${NS}a" snapshots ls -q
	assert_output ""
}

@test "snapshots: labels, filters, info and JSON output" {
	s prepare --label team=red --label app=web k
	run s info k
	assert_success
	echo "$output" | jq -e '.name == "k" and .kind == "active" and .parent == "" and .labels.team == "red"'
	s commit --label layer=1 c k
	s prepare --label team=blue k2 c
	run s label c x=y layer=
	assert_success
	assert_output "c x=y"
	run s label c
	assert_output "c x=y"
	run s ls -q labels.x==y
	assert_output c
	run s ls -q parent==c
	assert_output k2
	run s ls -q 'kind==active,labels.team~=^bl'
	assert_output k2
	run s ls --format json
	assert_success
	echo "$output" | jq -e 'length == 2 and .[0].name == "c" and .[1].parent == "c" and .[1].labels.team == "blue"'
	run s ls 'labels.a=='
	assert_failure 1
	assert_output --partial "expected value"
	run s prepare --mounts k3 c
	echo "$output" | jq -e '.[0].type == "overlay" and (.[0].options | length) == 3'
	run s prepare --target /x k4
	assert_output --regexp '^mount -t bind .*/fs /x -o rw,rbind$'
	s rm k4 k3 k2 c
}

@test "snapshots: bad input gets a clear error and changes nothing" {
	s prepare act
	s prepare p
	s commit par p
	s prepare c par
	s view v par
	before=$(s ls --format json; ls "$(state_of)/snapshots")

	run s prepare ''
	assert_failure 1
	assert_output --partial 'invalid key "": must not be empty'
	run s prepare 'a/../b'
	assert_output --partial 'invalid key "a/../b": must not contain ".."'
	run s prepare '..'
	assert_output --partial 'must not contain ".."'
	run s prepare '/abs'
	assert_output --partial "invalid key \"/abs\": must not start or end with '/'"
	run s prepare 'a//b'
	assert_output --partial 'must not contain "//"'
	run s prepare "$(printf 'tab\there')"
	assert_output --partial 'invalid key "tab\x09here": contains a control character'
	run s prepare ok ../par
	assert_output --partial 'invalid parent "../par"'
	# a NUL cannot be typed; on the wire it arrives and is refused
	run "$TOOLS/snapraw" "$BERTH_ADDRESS" "$NS" Prepare 'a\0b'
	assert_output 'code=INVALID_ARGUMENT message=invalid key "a\x00b": contains a NUL byte'
	run "$TOOLS/snapraw" "$BERTH_ADDRESS" "$NS" Prepare 'ok' 'par\0x'
	assert_output --partial 'invalid parent "par\x00x": contains a NUL byte'
	run "$TOOLS/snapraw" -s remote "$BERTH_ADDRESS" "$NS" Remove 'par\0'
	assert_output --partial 'code=INVALID_ARGUMENT'
	run s prepare x nope
	assert_failure 1
	assert_output --partial 'parent snapshot "nope": not found'
	run s prepare x act
	assert_failure 1
	assert_output --partial 'parent "act" is not a committed snapshot (it is active): commit it first'
	run s prepare x v
	assert_output --partial 'parent "v" is not a committed snapshot (it is view)'
	run s commit x v
	assert_failure 1
	assert_output --partial 'snapshot "v" is a view: only an active snapshot can be committed'
	run s commit x par
	assert_output --partial 'snapshot "par" is already committed'
	run s commit par act
	assert_output --partial 'snapshot "par": already exists'
	run s commit x nope
	assert_output --partial 'snapshot "nope": not found'
	run s rm par
	assert_failure 1
	assert_output --partial 'cannot remove snapshot "par": it is the parent of 2 snapshots ("c", "v"); remove them first'
	run s rm nope
	assert_output --partial 'snapshot "nope": not found'
	run s prepare act
	assert_failure 1
	assert_output --partial 'snapshot "act": already exists'
	run s view v par
	assert_output --partial 'snapshot "v": already exists'
	run s mounts /x par
	assert_output --partial 'snapshot "par" is committed: only active snapshots and views have mounts'
	run s label act 'berth.io/x'
	assert_failure 2

	after=$(s ls --format json; ls "$(state_of)/snapshots")
	assert_equal "$after" "$before"
	s rm c v par act
}

@test "snapshots: a chain of 128 committed layers mounts (options beyond one page)" {
	parent=
	for i in $(seq 0 127); do
		s prepare "k$i" $parent
		# beyond ~70 layers under this root the printed options exceed a
		# page, which mount(8) of util-linux 2.38 cannot pass: btmount
		# mounts the same arguments as berth's services do
		eval "$(s mounts "$T" "k$i" | sed "s|^mount |$TOOLS/btmount |")"
		echo "$i" >"$T/f$i"
		echo "$i" >"$T/top"
		"$TOOLS/btmount" -u "$T"
		s commit "l$i" "k$i"
		parent=l$i
	done
	s prepare top l127
	line=$(s mounts "$T" top)
	[ "${#line}" -gt 4096 ]
	# mount(8) of util-linux 2.38 passes the options in one page; btmount
	# mounts as berth's services do (lowerdir+ one layer at a time)
	eval "${line/#mount /$TOOLS/btmount }"
	assert_equal "$(ls "$T" | wc -l)" 129
	assert_equal "$(cat "$T/top")" 127
	assert_equal "$(cat "$T/f0")" 0
	echo mine >"$T/mine"
	"$TOOLS/btmount" -u "$T"
	# and as a child would without lowerdir+: relative to the common parent
	eval "${line/#mount /$TOOLS/btmount -n }"
	assert_equal "$(cat "$T/mine")" mine
	assert_equal "$(cat "$T/f64")" 64
	"$TOOLS/btmount" -u "$T"
	s rm top
	for i in $(seq 127 -1 0); do s rm "l$i"; done
	check_dirs_match_records
}

# kill -9 of the snapshotter at random instants while prepares, commits and
# removes run; then the records and directories must agree and every
# snapshot left must be whole.  The daemon runs with a pause of 30 ms at
# each step of a change (a test seam), so that the random kills often land
# between two steps rather than around them.
crash_loop() {
	local i j pid bg
	export BERTH_TEST_SNAP_PAUSE_MS=30
	stop_snapshotd
	restart_snapshotd
	s prepare base-k
	mnt base-k
	mkdir "$T/tree"
	for j in $(seq 1 40); do mkdir "$T/tree/d$j" && seq 1 50 | sed "s|^|$T/tree/d$j/f|" | xargs touch; done
	unmnt
	s commit base base-k
	want=$(find "$(state_of)/snapshots/$(sqlite3 "$(db_of)" "SELECT id FROM snapshots WHERE name='base'")/fs" | wc -l)
	for i in $(seq 1 10); do
		(
			for j in 1 2 3; do
				s prepare "c$i-$j" base || exit 0
				s commit "n$i-$j" "c$i-$j" || exit 0
				[ $j = 2 ] && { s rm "n$i-$j" || exit 0; }
			done
		) >/dev/null 2>&1 &
		bg=$!
		sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
		pid=$(pid_of_snapshotd)
		kill -9 "$pid" 2>/dev/null || true
		wait "$bg" || true
		restart_snapshotd
	done
	# a clean restart finds nothing more to remove
	run s cleanup
	assert_success
	assert_output 0
	check_dirs_match_records
	# old or new: a key is active, or committed under its name, never both
	for i in $(seq 1 10); do
		for j in 1 2 3; do
			c=$(sqlite3 "$(db_of)" "SELECT count(*) FROM snapshots WHERE name IN ('c$i-$j','n$i-$j')")
			[ "$c" -le 1 ]
		done
	done
	# every snapshot left is whole: each mounts and shows the base tree
	for k in $(s ls -q 'name!=base'); do
		if [ "$(s ls -q "name==$k,kind==active")" = "$k" ]; then
			mnt "$k"
		else
			s view "view-$k" "$k"
			mnt "view-$k"
		fi
		assert_equal "$(find "$T" | wc -l)" "$want"
		unmnt
	done
	for k in $(s ls -q 'kind!=committed'); do s rm "$k"; done
	for k in $(s ls -q 'name!=base'); do s rm "$k"; done
	s rm base
	check_dirs_match_records
	unset BERTH_TEST_SNAP_PAUSE_MS
	stop_snapshotd
	restart_snapshotd
}

@test "snapshots: kill -9 of berth-snapshotd (overlayfs) during prepare, commit, remove leaves old or new state" {
	SN=
	crash_loop
}

@test "snapshots: kill -9 of berth-snapshotd (native, copying) during prepare, commit, remove leaves old or new state" {
	SN=remote
	crash_loop
}

@test "snapshots: start-up and cleanup remove directories no record owns" {
	st=$(state_of)/snapshots
	s prepare keep
	mkdir -p "$st/999999/fs" "$st/new-deadbeef/fs" "$st/rm-5-cafe"
	run s cleanup
	assert_output 3
	[ ! -e "$st/999999" ]
	[ ! -e "$st/new-deadbeef" ]
	mkdir -p "$st/888888/fs"
	berth-dev restart berth-snapshotd >/dev/null
	[ ! -e "$st/888888" ]
	run s ls -q
	assert_output keep
	check_dirs_match_records
	s rm keep
}

# Requests the gateway had sent to a backend that dies are answered
# UNAVAILABLE; those still queued for the dead connection must be dropped
# with it, never delivered to the next instance (the client was told they
# failed).  The snapshotter is stopped (SIGSTOP) so that the requests pile
# up: a few in the socket's buffer, the rest queued in the gateway.
@test "snapshots: requests queued for a backend that dies are answered UNAVAILABLE and never reach its next instance" {
	local pad entry body key msgs=() i n
	pad=$(printf 'x%.0s' $(seq 1000))
	# a label entry "pad" = 1000 × x (1008 bytes: varint f0 07)
	entry=$'\x0a\x03pad\x12\xe8\x07'$pad
	for i in $(seq 100 399); do
		key=stale-$i
		body=$'\x0a\x09'$key$'\x1a\xf0\x07'$entry
		msgs+=("hdr:version=1,service=snapshots,method=Prepare,ns=$NS,id=$i" "raw:$body" +)
	done
	kill -STOP "$(daemon_pid berth-snapshotd)"
	"$TOOLS/zmqsend" -t 30000 "unix://$BERTH_RUN/berth-unix.sock" "${msgs[@]:0:${#msgs[@]}-1}" >"$T/replies" &
	local bg=$!
	sleep 1
	kill -9 "$(daemon_pid berth-snapshotd)"
	wait "$bg"
	n=$(grep -c '^code=UNAVAILABLE ' "$T/replies")
	assert_equal "$n" 300
	restart_snapshotd
	sleep 1
	run s ls -q 'name~=^stale-'
	assert_success
	assert_output ''
	check_dirs_match_records
}
