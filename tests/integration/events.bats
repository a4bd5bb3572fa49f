#!/usr/bin/env bats
# Events end to end: what the services publish during an import and an
# unpack, filtered per namespace and topic, every namespace with
# --all-namespaces; a subscriber that never reads delays nothing, is told
# what it missed, and the gateway's memory stays bounded.

load helpers
source "$REPO/tests/images/fixtures.sh"

setup_file() {
	suite_setup
	export SUITE_DIR
	# small per-subscriber queues, so that a stalled reader overflows soon
	suite_config '[gateway]\nevent_queue = 8\n'
	berth-dev restart berth-gatewayd >/dev/null
	fx_base "$SUITE_DIR/oci" v1
	skopeo copy --quiet "oci:$SUITE_DIR/oci:v1" "oci-archive:$SUITE_DIR/img.tar:example.org/ev/img:v1"
	(cd "$SUITE_DIR" && runc spec)
	# no terminal, and no CAP_SYS_RESOURCE (not in this host's bounding set)
	jq '.process.terminal=false | .process.args=["sh","-c","sleep 1; exit 7"]
	    | .process.capabilities |= with_entries(.value |= map(select(. != "CAP_SYS_RESOURCE")))' \
		"$SUITE_DIR/config.json" >"$SUITE_DIR/spec.json"
}

teardown_file() {
	[ ! -d "$SUITE_DIR/reg" ] || "$REPO/tests/registry/stop.sh" "$SUITE_DIR/reg"
	suite_teardown
}

setup() { NS=$(fresh_ns); }
teardown() {
	local p
	for p in ${SUB_PID:-} ${READER_PID:-}; do
		kill -CONT "$p" 2>/dev/null
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	[ -z "${BATS_TEST_COMPLETED:-}" ] && dump_logs || true
}

stop_sub() {
	sleep 0.5
	kill "$SUB_PID" 2>/dev/null
	wait "$SUB_PID" 2>/dev/null || true
	SUB_PID=
}

@test "an import and its unpack publish images and snapshot events in their namespace only" {
	out=$SUITE_DIR/ev-$NS.log
	berth -n "$NS" events >"$out" 2>&1 &
	SUB_PID=$!
	sleep 1
	berth -n "other-$NS" images import "$SUITE_DIR/img.tar" >/dev/null
	berth -n "$NS" images import "$SUITE_DIR/img.tar" >/dev/null
	berth -n "$NS" images rm example.org/ev/img:v1 >/dev/null
	stop_sub
	run cat "$out"
	assert_output --regexp "$NS /namespaces/create name=$NS"
	assert_output --regexp "$NS /images/create name=example.org/ev/img:v1,target=sha256:"
	assert_output --regexp "$NS /snapshot/prepare key=.*snapshotter=overlayfs"
	assert_output --regexp "$NS /snapshot/commit key=.*,name=sha256:"
	assert_output --regexp "$NS /images/delete name=example.org/ev/img:v1"
	refute_output --partial "other-$NS"
}

@test "a pull from a registry publishes the image and its snapshots" {
	port=$("$REPO/tests/registry/start.sh" "$SUITE_DIR/reg")
	fx_push "$SUITE_DIR/oci:v1" "127.0.0.1:$port/ev/pulled:v1"
	out=$SUITE_DIR/ev-pull-$NS.log
	berth -n "$NS" events >"$out" 2>&1 &
	SUB_PID=$!
	sleep 1
	berth -n "$NS" images pull --plain-http "127.0.0.1:$port/ev/pulled:v1" >/dev/null
	stop_sub
	run cat "$out"
	assert_output --regexp "$NS /images/create name=127.0.0.1:$port/ev/pulled:v1,target=sha256:"
	assert_output --regexp "$NS /snapshot/commit key=.*,name=sha256:"
}

@test "--topic filters; --all-namespaces sees every namespace" {
	out=$SUITE_DIR/ev-topic-$NS.log
	all=$SUITE_DIR/ev-all-$NS.log
	berth -n "$NS" events --topic /images/create >"$out" 2>&1 &
	SUB_PID=$!
	berth events --all-namespaces --topic /namespaces/create >"$all" 2>&1 &
	local all_pid=$!
	sleep 1
	berth -n "$NS" images import --no-unpack "$SUITE_DIR/img.tar" >/dev/null
	berth -n "x-$NS" images import --no-unpack "$SUITE_DIR/img.tar" >/dev/null
	stop_sub
	kill "$all_pid"
	wait "$all_pid" 2>/dev/null || true
	run cat "$out"
	assert_output --regexp "^[^ ]+ $NS /images/create name=example.org/ev/img:v1"
	refute_output --partial "/snapshot/"
	refute_output --partial "/namespaces/"
	run cat "$all"
	assert_output --partial "/namespaces/create name=$NS"
	assert_output --partial "/namespaces/create name=x-$NS"
	refute_output --partial "/images/"
}

@test "a subscriber that never reads delays nothing and is told what it missed" {
	out=$SUITE_DIR/ev-slow-$NS.log
	mkfifo "$SUITE_DIR/slow-$NS"
	# the reader of the fifo is stopped: the subscriber blocks writing, then stops reading its stream
	(exec 3<>"$SUITE_DIR/slow-$NS"; kill -STOP $BASHPID; cat <&3 >"$out") &
	READER_PID=$!
	berth -n "$NS" events --topic /namespaces/create >"$SUITE_DIR/slow-$NS" 2>&1 &
	SUB_PID=$!
	sleep 1
	kill -STOP "$SUB_PID"
	rss_before=$(awk '/VmRSS/ {print $2}' "/proc/$(daemon_pid berth-gatewayd)/status")
	# 60 events in this namespace, far more than the queue of 8; every request still answers promptly
	for i in $(seq 1 60); do
		berth --timeout 5s namespaces create "$NS" >/dev/null 2>&1 || true
		berth --timeout 5s namespaces rm "$NS" >/dev/null
	done
	run berth --timeout 5s namespaces ls
	assert_success
	rss_after=$(awk '/VmRSS/ {print $2}' "/proc/$(daemon_pid berth-gatewayd)/status")
	# bounded: a few MB at most, not the events' worth of growth per subscriber
	# (not under a sanitizer, whose quarantine keeps freed memory resident)
	if [ "$BUILD" = build ]; then
		[ $((rss_after - rss_before)) -lt 20000 ]
	fi
	kill -CONT "$SUB_PID"
	kill -CONT "$READER_PID"
	sleep 1
	kill "$SUB_PID"
	wait "$SUB_PID" 2>/dev/null || true
	SUB_PID=
	sleep 0.5
	kill "$READER_PID" 2>/dev/null || true
	wait "$READER_PID" 2>/dev/null || true
	READER_PID=
	run cat "$out"
	assert_output --regexp "/events/dropped count=[0-9]+"
	rm -f "$SUITE_DIR/slow-$NS"
}

@test "a container's life publishes containers and tasks events, its exit with the true status" {
	out=$SUITE_DIR/ev-run-$NS.log
	berth -n "$NS" images import "$SUITE_DIR/img.tar" >/dev/null
	berth -n "$NS" events >"$out" 2>&1 &
	SUB_PID=$!
	sleep 1
	berth -n "$NS" containers create --spec "$SUITE_DIR/spec.json" example.org/ev/img:v1 c1 >/dev/null
	run berth -n "$NS" tasks start c1
	assert_equal "$status" 7
	berth -n "$NS" containers rm c1 >/dev/null
	berth -n "$NS" snapshots rm c1 >/dev/null 2>&1 || true
	stop_sub
	run cat "$out"
	assert_output --regexp "$NS /containers/create id=c1,image=example.org/ev/img:v1,runtime=runc"
	assert_output --regexp "$NS /tasks/create container_id=c1,pid=[1-9]"
	assert_output --regexp "$NS /tasks/start container_id=c1,pid=[1-9]"
	assert_output --regexp "$NS /tasks/exit container_id=c1,exit_status=7,exited_at=[0-9]+,id=c1,pid=[1-9]"
	assert_output --regexp "$NS /tasks/delete container_id=c1,exec_id=,exit_status=7"
	assert_output --regexp "$NS /containers/delete id=c1"
}

@test "an OOM kill in a container is published as /tasks/oom" {
	out=$SUITE_DIR/ev-oom-$NS.log
	berth -n "$NS" images import "$SUITE_DIR/img.tar" >/dev/null
	# 16 MiB of memory; dd asks for a 64 MiB buffer and is killed, the shell goes on
	jq '.process.args=["sh","-c","dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 3; exit 0"]
	    | .linux.resources.memory={"limit":16777216}' "$SUITE_DIR/spec.json" >"$SUITE_DIR/spec-oom.json"
	berth -n "$NS" events --topic /tasks/oom >"$out" 2>&1 &
	SUB_PID=$!
	sleep 1
	berth -n "$NS" containers create --spec "$SUITE_DIR/spec-oom.json" example.org/ev/img:v1 oom1 >/dev/null
	run berth -n "$NS" tasks start oom1
	assert_success
	berth -n "$NS" containers rm oom1 >/dev/null
	berth -n "$NS" snapshots rm oom1 >/dev/null 2>&1 || true
	stop_sub
	run cat "$out"
	assert_output --regexp "$NS /tasks/oom container_id=oom1,oom_kills=[1-9]"
}

@test "bad filters are refused clearly" {
	run berth -n "$NS" events --filter 'topic=='
	assert_failure
	assert_output --partial "filter"
	run berth -n 'bad..ns' events
	assert_failure
	assert_output --partial "namespace"
}
