#!/usr/bin/env bats
# The gateway as a wall and a door: objects of namespace A cannot be read,
# listed, changed, removed or used from namespace B through any RPC; a
# thousand clients at once are served; one client's requests in flight are
# bounded.

load helpers
source "$REPO/tests/images/fixtures.sh"

setup_file() {
	suite_setup
	export SUITE_DIR
	export TOOLS=$REPO/$BUILD/tests/tools
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
	run berth version
	assert_success
}

@test "one client's requests in flight are bounded: the excess gets RESOURCE_EXHAUSTED, the rest are served" {
	suite_config '[gateway]\nmax_in_flight = 16\n'
	berth-dev restart berth-gatewayd >/dev/null
	run "$TOOLS/manyclients" -f 200 1 1 "$BERTH_ADDRESS"
	suite_config
	berth-dev restart berth-gatewayd >/dev/null
	assert_failure
	assert_output --regexp "ok=[1-9][0-9]* failed=[1-9][0-9]* first error: too many requests in flight from this client \(limit 16\)"
}
