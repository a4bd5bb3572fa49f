#!/usr/bin/env bats
# The gateway as a wall and a door: objects of namespace A cannot be read,
# listed, changed, removed or used from namespace B through any RPC; a
# thousand clients at once are served; one client's requests in flight are
# bounded; the unix stream door (bt_wire.h) serves the CLI and answers bad
# input with a clear error, staying up.

load helpers
source "$REPO/tests/images/fixtures.sh"

setup_file() {
	suite_setup
	export SUITE_DIR
	export TOOLS=$REPO/$BUILD/tests/tools
	export UNIX=unix://$BERTH_RUN/berth-unix.sock
	fx_base "$SUITE_DIR/oci" v1
	skopeo copy --quiet "oci:$SUITE_DIR/oci:v1" "oci-archive:$SUITE_DIR/img.tar:example.org/iso/img:v1"
	# namespace A holds one of everything
	export A=ns-a B=ns-b
	berth -n "$A" images import "$SUITE_DIR/img.tar" >/dev/null
	export BLOB=$(echo "a's bytes" | berth -n "$A" content ingest a-blob)
	printf 'half' | head -c 4 >"$SUITE_DIR/half"
	berth -n "$A" snapshots prepare a-active >/dev/null
	berth -n "$A" snapshots prepare a-tocommit >/dev/null
	berth -n "$A" snapshots commit a-committed a-tocommit >/dev/null
	export MANIFEST=$(berth -n "$A" images ls | awk '$1=="example.org/iso/img:v1" {print $3}')
	export CHAIN=$(berth -n "$A" images unpack example.org/iso/img:v1 | awk '/^unpacked/ {print $NF}')
	berth namespaces create "$B" >/dev/null
	(cd "$SUITE_DIR" && runc spec)
	jq '.process.terminal=false | .process.args=["sleep","300"]
	    | .process.capabilities |= with_entries(.value |= map(select(. != "CAP_SYS_RESOURCE")))' \
		"$SUITE_DIR/config.json" >"$SUITE_DIR/spec.json"
	berth -n "$A" containers create --spec "$SUITE_DIR/spec.json" example.org/iso/img:v1 a-ctr >/dev/null
	berth -n "$A" tasks start -d a-ctr >/dev/null
}

teardown_file() {
	berth -n "$A" tasks rm -f a-ctr >/dev/null 2>&1 || true
	berth -n "$A" containers rm a-ctr >/dev/null 2>&1 || true
	suite_teardown
}
teardown() { [ -z "${BATS_TEST_COMPLETED:-}" ] && dump_logs || true; }

# Runs a command in B; it must fail as if A's object did not exist.
refused() {
	run berth -n "$B" "$@"
	if [ "$status" -eq 0 ]; then
		echo "namespace $B could run: berth $* → $output" >&2
		return 1
	fi
	if ! grep -qiE "not found|no such|does not exist|unknown|not stored|incomplete" <<<"$output"; then
		echo "berth $*: unexpected error: $output" >&2
		return 1
	fi
}

@test "isolation: content of A is invisible and untouchable from B" {
	refused content info "$BLOB"
	refused content get "$BLOB"
	refused content label "$BLOB" x=y
	refused content rm "$BLOB"
	run berth -n "$B" content ls -q
	refute_output --partial "$BLOB"
	# B writing the same bytes stores them once, but B's record is B's own
	run bash -c "echo \"a's bytes\" | berth -n $B content ingest b-blob"
	assert_success
	berth -n "$B" content rm "$BLOB" >/dev/null
	run berth -n "$A" content get "$BLOB"
	assert_success
	assert_output "a's bytes"
}

@test "isolation: an ingest of A cannot be seen, resumed or aborted from B" {
	berth -n "$A" content ingest --expected-size 100 a-ingest <"$SUITE_DIR/half" >/dev/null 2>&1 || true
	run berth -n "$A" content active
	assert_output --partial a-ingest
	run berth -n "$B" content active
	refute_output --partial a-ingest
	refused content abort a-ingest
	run berth -n "$A" content active
	assert_output --partial a-ingest
	berth -n "$A" content abort a-ingest
}

@test "isolation: snapshots of A are invisible and unusable from B" {
	refused snapshots info a-active
	refused snapshots mounts /tmp/x a-active
	refused snapshots label a-active x=y
	refused snapshots rm a-active
	refused snapshots commit b-name a-active
	refused snapshots prepare b-child a-committed
	refused snapshots view b-view a-committed
	refused snapshots usage a-committed
	run berth -n "$B" snapshots ls
	refute_output --partial a-active
	refute_output --partial "$CHAIN"
	run berth -n "$A" snapshots info a-active
	assert_success
}

@test "isolation: images of A are invisible and unusable from B" {
	refused images inspect example.org/iso/img:v1
	refused images label example.org/iso/img:v1 x=y
	refused images tag example.org/iso/img:v1 example.org/iso/stolen:v1
	refused images rm example.org/iso/img:v1
	refused images unpack example.org/iso/img:v1
	refused images export "$SUITE_DIR/stolen.tar" example.org/iso/img:v1
	[ ! -e "$SUITE_DIR/stolen.tar" ]
	refused images push --plain-http example.org/iso/img:v1 127.0.0.1:1/stolen:v1
	# B cannot unpack A's blobs by naming their digests in a record of its own
	run berth -n "$B" images ls -q
	refute_output --partial example.org/iso/img:v1
	refused content get "$MANIFEST"
	run berth -n "$A" images check
	assert_output --regexp "example.org/iso/img:v1 .* complete .* true"
}

@test "isolation: containers and tasks of A are invisible and untouchable from B" {
	refused containers info a-ctr
	refused containers label a-ctr x=y
	refused containers rm a-ctr
	refused tasks kill a-ctr
	refused tasks ps a-ctr
	refused tasks pause a-ctr
	refused tasks metrics a-ctr
	refused tasks resume a-ctr
	refused tasks wait a-ctr
	refused tasks exec --exec-id x a-ctr true
	refused tasks rm -f a-ctr
	refused tasks start a-ctr
	# B cannot make a container of A's image or on A's snapshot
	refused containers create --spec "$SUITE_DIR/spec.json" example.org/iso/img:v1 b-ctr
	run berth -n "$B" containers ls -q
	refute_output --partial a-ctr
	run berth -n "$B" tasks ls -q
	refute_output --partial a-ctr
	run berth -n "$A" tasks ls
	assert_output --regexp "a-ctr +[0-9]+ +RUNNING"
}

@test "isolation: A's namespace cannot be removed while it holds things, and B's empty one can" {
	run berth namespaces rm "$A"
	assert_failure
	assert_output --partial "is not empty"
	# B's own blob went in the first test: B is empty
	run berth namespaces rm "$B"
	assert_success
	run berth -n "$A" images check
	assert_output --regexp "example.org/iso/img:v1 .* complete .* true"
}

@test "a deadline that passes gets DEADLINE_EXCEEDED from the gateway; the service goes on serving" {
	# tasks.Wait on a task that runs for minutes, with a 300 ms deadline
	body=$'\n'$'\x05'a-ctr
	run "$TOOLS/zmqsend" -t 5000 "$BERTH_ADDRESS" "hdr:version=1,service=tasks,method=Wait,ns=$A,id=1,deadline=300" "raw:$body"
	assert_output --partial "code=DEADLINE_EXCEEDED"
	run berth -n "$A" tasks ls
	assert_output --regexp "a-ctr +[0-9]+ +RUNNING"
}

@test "a principal the client claims is replaced by the gateway's" {
	# namespaces.Create of "forged-ns" claiming a read-only principal limited to "nothing":
	# were it believed, the namespaces service would refuse; the gateway sets the local one
	body=$'\n'$'\x0b'$'\n'$'\x09'forged-ns
	run "$TOOLS/zmqsend" "$BERTH_ADDRESS" "hdr:version=1,service=namespaces,method=Create,id=1,principal=evil,pns=nothing,ro=1" "raw:$body"
	assert_output --partial "code=OK"
	run berth namespaces ls -q
	assert_line forged-ns
	berth namespaces rm forged-ns >/dev/null
}

@test "a thousand clients at once, each with a request in flight, are all answered" {
	run "$TOOLS/manyclients" 1000 2 "$BERTH_ADDRESS"
	assert_success
	assert_output "ok=2000 failed=0"
	# and at the ZeroMQ door
	run "$TOOLS/manyclients" 1000 1 "$BERTH_ZMQ_ADDRESS"
	assert_success
	assert_output "ok=1000 failed=0"
	run berth version
	assert_success
}

@test "one client's requests in flight are bounded: the excess gets RESOURCE_EXHAUSTED, the rest are served" {
	suite_config '[gateway]\nmax_in_flight = 16\n'
	berth-dev restart berth-gatewayd >/dev/null
	run "$TOOLS/manyclients" -f 200 1 1 "$BERTH_ZMQ_ADDRESS"
	local zmq_status=$status zmq_out=$output
	# the unix door: 40 requests in one write, so all are in the gateway's
	# hands before any is answered
	local msgs=() i
	for i in $(seq 1 40); do msgs+=("hdr:version=1,service=namespaces,method=List,id=$i" empty +); done
	run "$TOOLS/zmqsend" -t 20000 "$UNIX" "${msgs[@]:0:119}"
	suite_config
	berth-dev restart berth-gatewayd >/dev/null
	[ "$zmq_status" -ne 0 ]
	[[ $zmq_out =~ ok=[1-9][0-9]*\ failed=[1-9][0-9]*\ first\ error:\ too\ many\ requests\ in\ flight\ from\ this\ client\ \(limit\ 16\) ]]
	assert_success
	[ "$(grep -c '^code=OK ' <<<"$output")" -ge 16 ]
	[ "$(grep -c '^code=RESOURCE_EXHAUSTED .*too many requests in flight from this client (limit 16)' <<<"$output")" -ge 1 ]
	[ "$(wc -l <<<"$output")" -eq 40 ]
}

# --- the unix stream door ---------------------------------------------------

# The gateway is the one that was running at the test's start ($gw) and
# answers a good request over the door.
door_ok() {
	[ "$(daemon_pid berth-gatewayd)" = "$gw" ]
	kill -0 "$gw"
	run "$TOOLS/zmqsend" "$UNIX" "hdr:version=1,service=namespaces,method=List,id=77" empty
	assert_success
	assert_output "code=OK final=1 id=77 message="
}

@test "unix door: the CLI works over it (a 3 MiB blob in and out, namespaces); the socket is 0660" {
	run stat -c %a "$BERTH_RUN/berth-unix.sock"
	assert_output 660
	head -c 3145728 /dev/urandom >"$SUITE_DIR/blob3m"
	run berth --address "$UNIX" -n "$A" content ingest door-blob <"$SUITE_DIR/blob3m"
	assert_success
	assert_output "sha256:$(sha256sum "$SUITE_DIR/blob3m" | cut -d' ' -f1)"
	digest=$output
	berth --address "$UNIX" -n "$A" content get "$digest" >"$SUITE_DIR/blob3m.out"
	cmp "$SUITE_DIR/blob3m" "$SUITE_DIR/blob3m.out"
	run berth --address "$UNIX" namespaces ls -q
	assert_success
	assert_line "$A"
	berth -n "$A" content rm "$digest" >/dev/null
	rm -f "$SUITE_DIR/blob3m" "$SUITE_DIR/blob3m.out"
}

@test "unix door: a header prefix of 70000 bytes gets INVALID_ARGUMENT and the connection is closed" {
	gw=$(daemon_pid berth-gatewayd)
	run "$TOOLS/zmqsend" -R -c "$UNIX" prefix:70000,0
	assert_success
	assert_line --index 0 --regexp "^code=INVALID_ARGUMENT final=1 id=0 message=.*header of 70000 bytes"
	assert_line --index 1 closed
	door_ok
}

@test "unix door: bad requests each get a clear error on a connection that stays usable" {
	gw=$(daemon_pid berth-gatewayd)
	# garbage header bytes (a field of wire type 7), unknown service, unknown
	# method, no namespace, then a good request: five messages, one connection
	run "$TOOLS/zmqsend" "$UNIX" raw:$'\x0f\x01garbage' raw:x \
		+ "hdr:version=1,service=nosuch,method=List,id=2" empty \
		+ "hdr:version=1,service=namespaces,method=NoSuch,id=3" empty \
		+ "hdr:version=1,service=content,method=Info,id=4" empty \
		+ "hdr:version=1,service=namespaces,method=List,id=5" empty
	assert_success
	assert_line --index 0 --regexp "^code=INVALID_ARGUMENT final=1 id=0 message=malformed request header"
	assert_line --index 1 'code=UNIMPLEMENTED final=1 id=2 message=unknown service "nosuch"'
	assert_line --index 2 'code=UNIMPLEMENTED final=1 id=3 message=unknown method "NoSuch" of service "namespaces"'
	assert_line --index 3 --regexp "^code=FAILED_PRECONDITION final=1 id=4 message=namespace is required"
	assert_line --index 4 "code=OK final=1 id=5 message="
	door_ok
}

@test "unix door: a body of 17 MiB gets RESOURCE_EXHAUSTED; the next request on the connection is served" {
	gw=$(daemon_pid berth-gatewayd)
	run "$TOOLS/zmqsend" -t 30000 "$UNIX" "hdr:version=1,service=content,method=Info,ns=$A,id=1" zero:17825792 \
		+ "hdr:version=1,service=namespaces,method=List,id=2" empty
	assert_success
	assert_line --index 0 "code=RESOURCE_EXHAUSTED final=1 id=1 message=message of 17825792 bytes exceeds the limit of 16777216 bytes"
	assert_line --index 1 "code=OK final=1 id=2 message="
	door_ok
}

@test "unix door: a body prefix of 65 MiB gets RESOURCE_EXHAUSTED and the connection is closed" {
	gw=$(daemon_pid berth-gatewayd)
	run "$TOOLS/zmqsend" -R -c "$UNIX" prefix:4,68157440 raw:abcd
	assert_success
	assert_line --index 0 --regexp "^code=RESOURCE_EXHAUSTED final=1 id=0 message=message of 68157440 bytes exceeds"
	assert_line --index 1 closed
	door_ok
}

@test "unix door: a message cut short by the end of the stream is dropped without a reply" {
	gw=$(daemon_pid berth-gatewayd)
	# mid-header, then mid-body of a body read straight into its message
	run "$TOOLS/zmqsend" -R -s -c "$UNIX" prefix:100,10 raw:abc
	assert_failure 1
	assert_output closed
	run "$TOOLS/zmqsend" -R -s -c "$UNIX" prefix:2,1000000 raw:hh zero:300000
	assert_failure 1
	assert_output closed
	door_ok
}

@test "unix door: more than 64 requests in one write are all answered" {
	gw=$(daemon_pid berth-gatewayd)
	args=()
	for i in $(seq 1 150); do args+=("hdr:version=1,service=namespaces,method=List,id=$i" empty +); done
	run "$TOOLS/zmqsend" "$UNIX" "${args[@]:0:${#args[@]}-1}"
	assert_success
	# answered in any order: each id once, each OK
	assert_equal "$(grep '^code=OK final=1 id=' <<<"$output" | sed 's/.* id=\([0-9]*\) .*/\1/' | sort -n)" "$(seq 1 150)"
	door_ok
}

@test "unix door: a client that hangs up with a tasks Wait in flight leaves the gateway serving" {
	gw=$(daemon_pid berth-gatewayd)
	body=$'\n'$'\x05'a-ctr
	# a Wait on a task that runs for minutes; the client gives up after 300 ms
	run "$TOOLS/zmqsend" -t 300 "$UNIX" "hdr:version=1,service=tasks,method=Wait,ns=$A,id=1" "raw:$body"
	assert_failure 1
	assert_output timeout
	run berth --address "$UNIX" -n "$A" tasks ls
	assert_output --regexp "a-ctr +[0-9]+ +RUNNING"
	door_ok
}

@test "unix door: unix_address = \"off\" serves no unix socket" {
	suite_config '[gateway]\nunix_address = "off"\n'
	berth-dev restart berth-gatewayd >/dev/null
	sock=no
	[ -e "$BERTH_RUN/berth-unix.sock" ] && sock=yes
	run berth --timeout 1s --address "$UNIX" namespaces ls
	refused=$status door=$output
	run berth --address "$BERTH_ZMQ_ADDRESS" namespaces ls -q
	ipc=$status
	suite_config
	berth-dev restart berth-gatewayd >/dev/null
	[ "$sock" = no ]
	[ "$refused" -ne 0 ]
	grep -q "cannot connect" <<<"$door"
	[ "$ipc" -eq 0 ]
	# back with the default configuration
	[ -S "$BERTH_RUN/berth-unix.sock" ]
	gw=$(daemon_pid berth-gatewayd)
	door_ok
}
