#!/usr/bin/env bats
# The content service end to end: berth CLI → berth-gatewayd → berth-contentd.

load helpers

setup_file() {
	suite_setup
	export TOOLS=$REPO/$BUILD/tests/tools
	DATA=$(mktemp -d /tmp/bt-data.XXXXXX)
	export DATA
}

teardown_file() {
	rm -rf "$DATA"
	suite_teardown
}

setup() {
	NS=$(fresh_ns)
	export BERTH_NAMESPACE=$NS
}

teardown() {
	[ -n "${BATS_TEST_COMPLETED:-}" ] || dump_logs
}

# ingest FILE REF → prints the digest
ingest() { berth content ingest "$2" <"$1"; }

roundtrip() {
	local f=$1 want got
	want="sha256:$(sha256sum "$f" | cut -d' ' -f1)"
	run berth content ingest --expected-digest "$want" --expected-size "$(stat -c %s "$f")" "ref-$(basename "$f")" <"$f"
	assert_success
	assert_output "$want"
	berth content get "$want" >"$f.out"
	cmp "$f" "$f.out"
	run berth content info "$want"
	assert_success
	assert_output --partial "\"size\": $(stat -c %s "$f")"
	rm -f "$f.out"
}

@test "blobs of 0 B, 1 B and 1 MiB + 1 round-trip through the gateway" {
	: >"$DATA/zero"
	printf x >"$DATA/one"
	head -c $((1024 * 1024 + 1)) /dev/urandom >"$DATA/mib1"
	roundtrip "$DATA/zero"
	roundtrip "$DATA/one"
	roundtrip "$DATA/mib1"
	run berth content ls -q
	assert_success
	assert_equal "$(echo "$output" | wc -l)" 3
}

@test "a 200 MiB blob round-trips with identical bytes" {
	head -c $((200 * 1024 * 1024)) /dev/urandom >"$DATA/big"
	roundtrip "$DATA/big"
	rm -f "$DATA/big"
}

@test "ingest from a pipe (no seek) works and prints the digest" {
	want="sha256:$(printf 'hello berth\n' | sha256sum | cut -d' ' -f1)"
	run bash -c "printf 'hello berth\n' | berth content ingest pipe-ref"
	assert_success
	assert_output "$want"
	run berth content get "$want"
	assert_output "hello berth"
}

@test "a digest mismatch is refused and nothing is committed" {
	head -c 4096 /dev/urandom >"$DATA/m"
	wrong=sha256:$(printf 'other' | sha256sum | cut -d' ' -f1)
	real="sha256:$(sha256sum "$DATA/m" | cut -d' ' -f1)"
	run berth content ingest --expected-digest "$wrong" mismatch <"$DATA/m"
	assert_failure 1
	assert_output --partial "unexpected digest $real, expected $wrong"
	run berth content info "$real"
	assert_failure
	assert_output --partial "not found"
	run berth content ls -q
	assert_output ""
	# the ingest stays for inspection until aborted
	run berth content active -q
	assert_output "mismatch"
	run berth content abort mismatch
	assert_success
	run berth content active -q
	assert_output ""
}

@test "a size mismatch is refused and nothing is committed" {
	head -c 1000 /dev/urandom >"$DATA/s"
	run berth content ingest --expected-size 999 small <"$DATA/s"
	assert_failure 1
	assert_output --partial "past the expected size 999"
	run berth content ingest --expected-size 2000 short <"$DATA/s"
	assert_failure 1
	assert_output --partial "unexpected size 1000, expected 2000"
	run berth content ls -q
	assert_output ""
	berth content abort small short
}

@test "bad input: malformed digests, refs and unknown blobs get clear errors" {
	run berth content info sha256:abc
	assert_failure 1
	assert_output --partial "64 hex characters"
	run berth content info md5:0123
	assert_failure 1
	assert_output --partial "unsupported algorithm"
	run berth content get "sha256:$(printf x | sha256sum | cut -d' ' -f1)"
	assert_failure 1
	assert_output --partial "not found"
	run berth content rm "sha256:$(printf y | sha256sum | cut -d' ' -f1)"
	assert_failure 1
	assert_output --partial "not found"
	run bash -c "printf x | berth content ingest ''"
	assert_failure
	run bash -c "printf x | berth content ingest \"\$(printf 'a\tb')\""
	assert_failure 1
	assert_output --partial "ref"
	run berth content ingest --expected-digest nope ref1 </dev/null
	assert_failure 1
	assert_output --partial "digest"
	run berth content ls 'labels.a==""'
	assert_success
	run berth content ls 'labels.a=='
	assert_failure 1
	assert_output --partial "expected value"
	run berth content ls 'labels."unterminated'
	assert_failure 1
	assert_output --partial "filter"
	run berth -n 'bad..ns' content ls
	assert_failure 1
	assert_output --partial "namespace"
}

@test "labels: set on ingest, changed, removed, filtered" {
	d=$(printf 'labelled' | berth content ingest --label a=1 --label team=x lab)
	run berth content ls "labels.team==x"
	assert_output --partial "$d"
	run berth content label "$d" b=2 a=
	assert_success
	assert_output "$d b=2,team=x"
	run berth content ls -q "labels.a"
	assert_output ""
	run berth content ls -q "labels.b==2,labels.team~=^x$"
	assert_output "$d"
	run berth content ls --format json
	assert_success
	echo "$output" | jq -e ".[0].labels.b == \"2\""
}

@test "two namespaces are kept apart and identical bytes are stored once" {
	head -c 100000 /dev/urandom >"$DATA/shared"
	a=$(berth -n "${NS}a" content ingest r <"$DATA/shared")
	run berth -n "${NS}b" content info "$a"
	assert_failure 1
	assert_output --partial "not found"
	run berth -n "${NS}b" content get "$a"
	assert_failure 1
	run berth -n "${NS}b" content ls -q
	assert_output ""
	run berth -n "${NS}b" content rm "$a"
	assert_failure 1
	run berth -n "${NS}b" content label "$a" x=y
	assert_failure 1
	run berth -n "${NS}b" content active -q
	assert_output ""
	# B proves possession by sending the bytes; they are stored once
	b=$(berth -n "${NS}b" content ingest r <"$DATA/shared")
	assert_equal "$a" "$b"
	hex=${a#sha256:}
	[ "$(find "$BERTH_ROOT/content/blobs" -name "$hex" | wc -l)" -eq 1 ]
	[ "$(find "$BERTH_ROOT/content/ingest" -mindepth 1 | wc -l)" -eq 0 ]
	# removing it from A keeps B's
	berth -n "${NS}a" content rm "$a"
	run berth -n "${NS}b" content get "$a"
	assert_success
	[ -e "$BERTH_ROOT/content/blobs/sha256/$hex" ]
	# removing the last holder removes the bytes
	berth -n "${NS}b" content rm "$a"
	[ ! -e "$BERTH_ROOT/content/blobs/sha256/$hex" ]
}

@test "two writers on one ref: one wins, the other gets a clear error" {
	head -c $((64 * 1024 * 1024)) /dev/urandom >"$DATA/w"
	mkfifo "$DATA/slow"
	# writer 1 holds the ref while its input trickles in
	( { head -c 1048576 "$DATA/w"; sleep 3; tail -c +1048577 "$DATA/w"; } >"$DATA/slow" ) &
	berth content ingest shared-ref <"$DATA/slow" >"$DATA/w1.out" 2>&1 &
	w1=$!
	sleep 1
	run berth content ingest --retry 0 shared-ref <"$DATA/w"
	assert_failure 1
	assert_output --partial "locked"
	wait $w1
	want="sha256:$(sha256sum "$DATA/w" | cut -d' ' -f1)"
	assert_equal "$(cat "$DATA/w1.out")" "$want"
	rm -f "$DATA/slow" "$DATA/w"
}

@test "kill -9 of berth-contentd mid-write: the write resumes at the right offset and commits the right digest" {
	head -c $((150 * 1024 * 1024)) /dev/urandom >"$DATA/k"
	want="sha256:$(sha256sum "$DATA/k" | cut -d' ' -f1)"
	mkfifo "$DATA/kp"
	# a pipe that stalls after 40 MiB, so the kill lands mid-write
	( { head -c $((40 * 1024 * 1024)) "$DATA/k"; sleep 2; tail -c +$((40 * 1024 * 1024 + 1)) "$DATA/k"; } >"$DATA/kp" ) &
	berth content ingest --expected-digest "$want" resume-ref <"$DATA/kp" >"$DATA/k.out" 2>"$DATA/k.err" &
	w=$!
	sleep 1
	run berth content active --format json
	assert_success
	off=$(echo "$output" | jq '.[0].offset')
	[ "$off" -gt 0 ]
	kill -9 "$(daemon_pid berth-contentd)"
	sleep 0.5
	berth-dev start berth-contentd
	# the ingest survived the crash with the bytes written so far
	wait $w
	assert_equal "$(cat "$DATA/k.out")" "$want"
	berth content get "$want" | cmp - "$DATA/k"
	run berth content active -q
	assert_output ""
	rm -f "$DATA/k" "$DATA/kp"
}

@test "an interrupted ingest resumes from its offset when run again" {
	head -c $((8 * 1024 * 1024)) /dev/urandom >"$DATA/r"
	want="sha256:$(sha256sum "$DATA/r" | cut -d' ' -f1)"
	# first attempt gets 3 MiB in and dies
	head -c $((3 * 1024 * 1024)) "$DATA/r" | berth content ingest --expected-digest "$want" again \
		>/dev/null 2>&1 || true
	run berth content active --format json
	assert_equal "$(echo "$output" | jq '.[0].offset')" $((3 * 1024 * 1024))
	# a new attempt with the whole input resumes (reads past what is stored)
	run bash -c "cat '$DATA/r' | berth content ingest --expected-digest '$want' again"
	assert_success
	assert_output "$want"
	berth content get "$want" | cmp - "$DATA/r"
}

@test "kill -9 at random instants never leaves wrong bytes, orphan records or orphan blobs" {
	for i in $(seq 1 8); do
		head -c $((RANDOM * 300)) /dev/urandom >"$DATA/c$i"
		berth content ingest "crash-$i" <"$DATA/c$i" >"$DATA/c$i.out" 2>&1 &
		pids[$i]=$!
		sleep "0.0$((RANDOM % 10))"
		kill -9 "$(daemon_pid berth-contentd)" 2>/dev/null || true
		berth-dev start berth-contentd >/dev/null
	done
	# the writers resume by themselves once the service is back
	for i in $(seq 1 8); do wait "${pids[$i]}" || true; done
	berth-dev stop berth-contentd >/dev/null
	berth-dev start berth-contentd >/dev/null
	# every record has its blob with the right bytes
	for d in $(berth content ls -q); do
		got="sha256:$(berth content get "$d" | sha256sum | cut -d' ' -f1)"
		assert_equal "$got" "$d"
	done
	# every blob has a record (in some namespace) or an ingest committing it
	for f in "$BERTH_ROOT"/content/blobs/sha256/*; do
		[ -e "$f" ] || continue
		hex=$(basename "$f")
		n=$(sqlite3 "$BERTH_ROOT/content/meta.db" "SELECT count(*) FROM blobs WHERE digest='sha256:$hex'")
		[ "$n" -gt 0 ]
	done
	# every ingest record has its directory and the other way round
	for d in $(sqlite3 "$BERTH_ROOT/content/meta.db" "SELECT dir FROM ingests"); do
		[ -d "$BERTH_ROOT/content/ingest/$d" ]
	done
	for d in "$BERTH_ROOT"/content/ingest/*; do
		[ -e "$d" ] || continue
		n=$(sqlite3 "$BERTH_ROOT/content/meta.db" "SELECT count(*) FROM ingests WHERE dir='$(basename "$d")'")
		[ "$n" -eq 1 ]
	done
	# and the ingests can be finished from where they are
	for i in $(seq 1 8); do
		run berth content ingest "crash-$i" <"$DATA/c$i"
		assert_success
		assert_output "sha256:$(sha256sum "$DATA/c$i" | cut -d' ' -f1)"
	done
}

@test "a slow Read does not delay a List" {
	head -c $((64 * 1024 * 1024)) /dev/urandom >"$DATA/slowread"
	d=$(berth content ingest sr <"$DATA/slowread")
	# a reader that takes one chunk then stops reading for a while
	mkfifo "$DATA/rp"
	berth content get "$d" >"$DATA/rp" &
	r=$!
	exec 7<"$DATA/rp" # (bats owns fd 3)
	head -c 1000 <&7 >/dev/null
	start=$(date +%s%N)
	for i in 1 2 3 4 5; do berth content ls -q >/dev/null; done
	elapsed=$((($(date +%s%N) - start) / 1000000))
	exec 7<&-
	kill "$r" 2>/dev/null || true
	wait "$r" 2>/dev/null || true
	rm -f "$DATA/rp" "$DATA/slowread"
	# five lists while a read is stuck: far below any deadline
	[ "$elapsed" -lt 5000 ]
}

@test "garbage, truncated, oversized and unknown requests get errors and every daemon stays up" {
	gw=$BERTH_ZMQ_ADDRESS
	run "$TOOLS/zmqsend" "$gw" raw:garbage
	assert_output --partial "code=INVALID_ARGUMENT"
	assert_output --partial "header"
	run "$TOOLS/zmqsend" "$gw" rand:300 rand:50
	assert_output --regexp "code=(INVALID_ARGUMENT|FAILED_PRECONDITION)"
	run "$TOOLS/zmqsend" "$gw" "hdr:version=1,service=content,method=Info,ns=$NS,id=7"
	assert_output --partial "code=INVALID_ARGUMENT"
	assert_output --partial "without a body"
	# a body cut short: field 1 says 127 bytes follow, 3 do (random bytes
	# would now and then decode as a valid request)
	run "$TOOLS/zmqsend" "$gw" "hdr:version=1,service=content,method=Info,ns=$NS,id=8" raw:$'\x0a\x7f'abc
	assert_output --partial "code=INVALID_ARGUMENT"
	assert_output --partial "malformed"
	run "$TOOLS/zmqsend" "$gw" "hdr:version=1,service=content,method=Nope,ns=$NS,id=9" empty
	assert_output --partial "code=UNIMPLEMENTED"
	run "$TOOLS/zmqsend" "$gw" "hdr:version=1,service=nosuch,method=Info,ns=$NS,id=10" empty
	assert_output --partial "code=UNIMPLEMENTED"
	run "$TOOLS/zmqsend" "$gw" "hdr:version=1,service=content,method=List,id=11" empty
	assert_output --partial "code=FAILED_PRECONDITION"
	assert_output --partial "namespace is required"
	run "$TOOLS/zmqsend" "$gw" "hdr:version=1,service=content,method=List,ns=-bad,id=12" empty
	assert_output --partial "code=INVALID_ARGUMENT"
	run "$TOOLS/zmqsend" "$gw" "hdr:version=9,service=content,method=List,ns=$NS,id=13" empty
	assert_output --partial "code=FAILED_PRECONDITION"
	assert_output --partial "protocol version"
	run "$TOOLS/zmqsend" "$gw" "hdr:version=1,service=content,method=Info,ns=$NS,id=14" empty empty
	assert_output --partial "more than two frames"
	run "$TOOLS/zmqsend" -t 10000 "$gw" "hdr:version=1,service=content,method=Write,ns=$NS,id=15" "zero:$((17 * 1024 * 1024))"
	assert_output --partial "code=RESOURCE_EXHAUSTED"
	# beyond the hard cap ZeroMQ drops the connection: no reply, nothing breaks
	run "$TOOLS/zmqsend" -t 2000 "$gw" "hdr:version=1,service=content,method=Write,ns=$NS,id=16" "zero:$((65 * 1024 * 1024))"
	assert_output --partial "timeout"
	# the same straight at the content service
	svc=ipc://$BERTH_RUN/svc/content.sock
	run "$TOOLS/zmqsend" "$svc" raw:garbage
	assert_output --partial "code=INVALID_ARGUMENT"
	run "$TOOLS/zmqsend" "$svc" "hdr:version=1,service=content,method=Read,ns=$NS,id=3" rand:100
	assert_output --regexp "code=(INVALID_ARGUMENT|NOT_FOUND)"
	# everyone is still up and serving
	run berth version
	assert_success
	assert_output --regexp "content +ok"
	printf ok | berth content ingest still-up
}

@test "a backend that is down answers UNAVAILABLE within the deadline and the gateway reconnects" {
	berth-dev stop berth-contentd
	start=$(date +%s%N)
	run berth --timeout 5s content ls
	elapsed=$((($(date +%s%N) - start) / 1000000))
	assert_failure 1
	assert_output --partial "unavailable"
	[ "$elapsed" -lt 5000 ]
	run berth version
	assert_failure 1
	assert_output --partial "DOWN"
	berth-dev start berth-contentd
	run berth content ls
	assert_success
	run berth version
	assert_success
}

@test "berth-content talks to the content socket directly" {
	d=$(printf 'direct' | berth-content -n "$NS" ingest direct)
	run berth content get "$d"
	assert_output "direct"
	run berth-content -n "$NS" ls -q
	assert_output "$d"
}
