#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# Garbage collection (berth gc): images pulled from a real registry on
# loopback and imported from archives, removed, collected — blobs, snapshots
# and their bytes on disk go; what an image, a container, another namespace
# or a gc.root label still holds stays; a pull in progress holds off a
# collection; a dry run removes nothing.

load helpers

setup_file() {
	suite_setup
	export SUITE_DIR
	export FX=$SUITE_DIR/fx REG=$SUITE_DIR/reg PROXY=$SUITE_DIR/proxy
	mkdir -p "$FX" "$PROXY"
	PORT=$("$REPO/tests/registry/start.sh" "$REG")
	export R=127.0.0.1:$PORT
	P=$(faultproxy_start "$PROXY" "$R")
	export P
	# shellcheck source=../images/fixtures.sh
	. "$REPO/tests/images/fixtures.sh"
	# base: one layer; layers: four; more: the same four and one of its own
	fx_base "$FX/oci" base
	fx_layers "$FX/oci" layers
	skopeo copy --quiet "oci:$FX/oci:layers" "oci:$FX/oci:more"
	mkdir -p "$FX/extra/more" && echo more >"$FX/extra/more/file"
	tar -C "$FX/extra" -cf "$FX/extra.tar" more
	fx_append_tar "$FX/oci" more "$FX/extra.tar"
	fx_push "$FX/oci:base" "$R/gc/base:v1"
	fx_push "$FX/oci:layers" "$R/gc/layers:v1"
	fx_push "$FX/oci:more" "$R/gc/more:v1"
	skopeo copy --quiet "oci:$FX/oci:base" "oci-archive:$FX/base.tar:example.org/gc/base:v1"
}

teardown_file() {
	[ -f "$PROXY/pid" ] && kill "$(cat "$PROXY/pid")" 2>/dev/null
	"$REPO/tests/registry/stop.sh" "$REG"
	suite_teardown
}

setup() {
	NS=$(fresh_ns)
	B="berth -n $NS"
	rm -f "$PROXY/rules"
}

teardown() {
	[ -z "${BATS_TEST_COMPLETED:-}" ] && dump_logs
	rm -f "$PROXY/rules"
	if ! grep -q 'delay = "0s"' "$BERTH_CONFIG"; then # a test that changed the configuration failed half-way
		suite_config
		berth-dev restart berth-gatewayd >/dev/null
	fi
	local id
	for id in $($B tasks ls -q 2>/dev/null); do $B tasks rm -f "$id" >/dev/null 2>&1 || true; done
	for id in $($B containers ls -q 2>/dev/null); do $B containers rm "$id" >/dev/null 2>&1 || true; done
	return 0
}

# Bytes of blobs and of snapshot directories on disk (all namespaces).
blob_bytes() { du -sb "$BERTH_ROOT/content/blobs" | cut -f1; }
snap_bytes() { du -sb "$BERTH_ROOT/snapshots/overlayfs/snapshots" 2>/dev/null | cut -f1; }
count() { $B "$@" 2>/dev/null | tail -n +2 | grep -c . || true; }

@test "pull, remove the image, collect: its blobs and snapshots go, and the disk space comes back" {
	local b0 s0
	b0=$(blob_bytes)
	s0=$(snap_bytes)
	run $B images pull --plain-http "$R/gc/layers:v1"
	assert_success
	[ "$(count content ls)" -eq 6 ] # manifest, config, 4 layers
	[ "$(count snapshots ls)" -eq 4 ]
	[ "$(blob_bytes)" -gt "$b0" ]
	# nothing is garbage while the image stands
	run $B gc
	assert_success
	assert_output --partial "removed 0 blobs"
	[ "$(count content ls)" -eq 6 ]
	# a dry run reports, and removes nothing
	$B images rm "$R/gc/layers:v1"
	run $B gc --dry-run
	assert_success
	assert_output --partial "would remove 6 blobs"
	assert_output --partial "and 4 snapshots"
	[ "$(count content ls)" -eq 6 ]
	run $B gc --format json
	assert_success
	[ "$(jq '.removed | length' <<<"$output")" -eq 10 ]
	[ "$(jq '[.removed[] | select(.kind == "snapshot")] | length' <<<"$output")" -eq 4 ]
	[ "$(jq .contentBytes <<<"$output")" -gt 0 ]
	[ "$(count content ls)" -eq 0 ]
	[ "$(count snapshots ls)" -eq 0 ]
	[ "$(blob_bytes)" -eq "$b0" ]
	[ "$(snap_bytes)" -eq "$s0" ]
	# and a second collection finds nothing
	run $B gc
	assert_output --partial "removed 0 blobs (0 B) and 0 snapshots"
}

@test "two images sharing layers: removing one keeps what the other needs" {
	$B images pull --plain-http "$R/gc/layers:v1" >/dev/null
	$B images pull --plain-http "$R/gc/more:v1" >/dev/null
	[ "$(count content ls)" -eq 9 ]
	[ "$(count snapshots ls)" -eq 5 ]
	$B images rm "$R/gc/more:v1"
	run $B gc
	assert_success
	# more's manifest, config and own layer; its own top snapshot
	assert_output --partial "removed 3 blobs"
	assert_output --partial "and 1 snapshot "
	[ "$(count content ls)" -eq 6 ]
	[ "$(count snapshots ls)" -eq 4 ]
	# layers is whole: it still runs
	run $B run --rm "$R/gc/layers:v1" g1 cat /data/b
	assert_success
	run $B images check
	assert_output --regexp "gc/layers:v1 .*complete.*true"
}

@test "an image in two namespaces: collecting one keeps the bytes the other holds" {
	local B2="berth -n ${NS}b" b0
	b0=$(blob_bytes)
	$B images import "$FX/base.tar" >/dev/null
	$B2 images import "$FX/base.tar" >/dev/null
	local layer
	layer=$($B content ls -q | while read -r d; do
		if [ "$($B content info "$d" | jq .size)" -gt 100000 ]; then echo "$d"; fi
	done)
	[ -n "$layer" ]
	$B images rm example.org/gc/base:v1
	run $B gc
	assert_success
	assert_output --partial "removed 3 blobs"
	[ "$(count content ls)" -eq 0 ]
	# the other namespace reads the blob whole
	run bash -c "$B2 content get $layer | sha256sum"
	assert_output "${layer#sha256:}  -"
	[ -f "$BERTH_ROOT/content/blobs/sha256/${layer#sha256:}" ]
	$B2 images rm example.org/gc/base:v1
	run $B2 gc
	assert_success
	# the bytes leave the disk with the last namespace holding them (another
	# test's image may share the layer: fixtures made in the same second are
	# byte for byte the same)
	local holders n
	holders=$(for n in $(berth namespaces ls -q); do
		if berth -n "$n" content info "$layer" >/dev/null 2>&1; then echo "$n"; fi
	done)
	if [ -z "$holders" ]; then
		[ ! -e "$BERTH_ROOT/content/blobs/sha256/${layer#sha256:}" ]
	else
		[ -f "$BERTH_ROOT/content/blobs/sha256/${layer#sha256:}" ]
	fi
	[ "$(blob_bytes)" -eq "$b0" ]
}

@test "a container holds its snapshot and the image's chain; gc.root labels hold content and snapshots" {
	$B images import "$FX/base.tar" >/dev/null
	$B run -d example.org/gc/base:v1 keep sleep 300 >/dev/null
	$B images rm example.org/gc/base:v1
	run $B gc
	assert_success
	# the blobs go (nothing names them now); the container's snapshot and its parent stay
	assert_output --partial "removed 3 blobs"
	assert_output --partial "and 0 snapshots"
	run $B snapshots ls
	assert_line --regexp "^keep +sha256:[0-9a-f]+ +Active"
	run $B tasks exec --exec-id x keep echo running
	assert_success
	$B tasks kill -s SIGKILL keep
	$B tasks wait keep || true
	$B tasks rm keep
	$B containers rm keep
	# a root label keeps a blob and a snapshot with nothing else pointing at them
	$B images import "$FX/base.tar" >/dev/null
	local cfg top
	cfg=$($B content ls | awk '/gc.ref.snapshot/ {print $1}')
	top=$($B snapshots ls | awk '/Committed/ {print $1}')
	$B images rm example.org/gc/base:v1
	$B content label "$cfg" berth.io/gc.root=yes >/dev/null
	run $B gc
	assert_success
	# the config is a root, and through its reference, the snapshot too
	assert_output --partial "removed 2 blobs"
	assert_output --partial "and 0 snapshots"
	run $B snapshots ls
	assert_output --partial "$top"
	$B content label "$cfg" berth.io/gc.root= >/dev/null
	$B snapshots label "$top" berth.io/gc.root=1 >/dev/null
	run $B gc
	assert_output --partial "removed 1 blob"
	assert_output --partial "and 0 snapshots"
	$B snapshots label "$top" berth.io/gc.root= >/dev/null
	run $B gc
	assert_output --partial "and 1 snapshot"
}

@test "a pull in progress holds off a collection in its namespace, and loses nothing" {
	# the layers' download waits 3 s at the proxy: the manifest and config are stored, unreferenced
	echo '^GET./v2/gc/base/blobs/sha256: delay:3' >"$PROXY/rules"
	$B images pull --plain-http "$P/gc/base:v1" >"$BATS_TEST_TMPDIR/pull" 2>&1 &
	local pull=$! i
	for i in $(seq 100); do
		[ "$(count content ls)" -ge 1 ] && break
		sleep 0.05
	done
	run $B gc
	assert_failure 1
	assert_output --partial "in progress"
	# another namespace is not held off
	run berth -n "${NS}other" gc
	assert_success
	wait "$pull" || { cat "$BATS_TEST_TMPDIR/pull"; false; }
	run $B gc
	assert_success
	assert_output --partial "removed 0 blobs"
	run $B run --rm "$P/gc/base:v1" p1 echo whole
	assert_output "whole"
}

@test "a pull that reuses what a collection is about to remove waits for it, and loses nothing" {
	# garbage an identical pull would reuse: the image's blobs and its unpacked chain
	$B images pull --plain-http "$R/gc/base:v1" >/dev/null
	$B images rm "$R/gc/base:v1" >/dev/null
	# the collection lists the images, then stalls listing the containers
	local taskd gc pull
	taskd=$(daemon_pid berth-taskd)
	kill -STOP "$taskd"
	$B --timeout 60s gc >"$BATS_TEST_TMPDIR/gc" 2>&1 &
	gc=$!
	sleep 0.5
	# the pull finds everything stored; it is held until the collection is done
	$B images pull --plain-http "$R/gc/base:v1" >"$BATS_TEST_TMPDIR/pull" 2>&1 &
	pull=$!
	sleep 1.5
	local held=yes
	kill -0 "$pull" 2>/dev/null || held=no
	kill -CONT "$taskd"
	wait "$gc" || { cat "$BATS_TEST_TMPDIR/gc"; false; }
	wait "$pull" || { cat "$BATS_TEST_TMPDIR/pull"; false; }
	[ "$held" = yes ]
	# what the collection took, the pull fetched again: the image is whole
	grep -q "removed 3 blobs" "$BATS_TEST_TMPDIR/gc" || { cat "$BATS_TEST_TMPDIR/gc"; false; }
	run $B images check
	assert_output --regexp "gc/base:v1 .*complete \(3/3\).*true"
	[ "$(count content ls)" -eq 3 ]
	run $B run --rm "$R/gc/base:v1" reuse echo whole
	assert_output whole
}

@test "a collection waits for requests already sent that could add a reference, and gives up after 10 s" {
	local d contentd label gc
	d=$(echo "label me" | $B content ingest held-blob)
	contentd=$(daemon_pid berth-contentd)
	kill -STOP "$contentd"
	# a label on the blob is on its way (to a daemon that does not answer)
	$B --timeout 60s content label "$d" berth.io/gc.root=1 >"$BATS_TEST_TMPDIR/label" 2>&1 &
	label=$!
	sleep 0.5
	run $B --timeout 60s gc
	kill -CONT "$contentd"
	assert_failure
	assert_output --partial "still unanswered"
	wait "$label" || { cat "$BATS_TEST_TMPDIR/label"; false; }
	# nothing went: the label holds the blob from now on
	run $B gc
	assert_success
	run $B content info "$d"
	assert_success
}

@test "bad input: arguments, a format, a read of the help" {
	run $B gc extra
	assert_failure 2
	assert_output --partial "unexpected argument extra"
	run $B gc --format xml
	assert_failure 2
	run $B gc --help
	assert_success
	assert_output --partial "gc.root"
}

@test "a collection stays in its namespace: B's never touches A's garbage" {
	local B2="berth -n ${NS}b" d
	d=$(echo "garbage of $NS" | $B content ingest g1)
	echo "other" | $B2 content ingest g2 >/dev/null
	run $B2 gc
	assert_success
	assert_output --partial "removed 1 blob"
	run $B content info "$d"
	assert_success
	run $B gc
	assert_output --partial "removed 1 blob"
	run $B content info "$d"
	assert_failure
}

@test "leases: a lease holds what it names until it is deleted or expires; rm --sync collects at once" {
	local d1 d2 d3
	d1=$(echo "held $NS 1" | $B content ingest h1)
	d2=$(echo "held $NS 2" | $B content ingest h2)
	d3=$(echo "held $NS 3" | $B content ingest h3)
	run $B leases create --id keep --label purpose=test
	assert_success
	assert_output keep
	$B leases add keep content "$d1"
	$B leases add keep content "$d2"
	# a resource may be named before it exists (a client holds a blob before writing it)
	$B leases add keep content sha256:0000000000000000000000000000000000000000000000000000000000000000
	$B leases create --id brief --expires 1s >/dev/null
	$B leases add brief content "$d3"
	run $B leases resources keep
	assert_success
	assert_output --partial "$d1"
	run bash -c "$B leases resources --format json keep | jq -r '.[] | select(.id == \"$d2\") | .type'"
	assert_output content
	run $B leases ls
	assert_line --regexp "^keep +[0-9T:.Z-]+ +- +purpose=test$"
	sleep 1.2
	# brief expired: it holds nothing and goes
	run $B gc
	assert_success
	assert_output --partial "removed 1 blob"
	assert_output --partial "$d3"
	run $B leases ls -q
	assert_output keep
	$B leases del keep content "$d2"
	run $B gc
	assert_output --partial "$d2"
	run $B leases rm --sync keep
	assert_success
	run $B content info "$d1"
	assert_failure
	run $B leases ls -q
	assert_output ""
}

@test "leases: bad input gets a clear error and changes nothing" {
	run $B leases create --id "bad id"
	assert_failure 1
	assert_output --partial "invalid"
	run $B leases create --id dup
	assert_success
	run $B leases create --id dup
	assert_failure 1
	assert_output --partial "already exists"
	run $B leases create --expires soon
	assert_failure 2
	run $B leases add dup nonsense x
	assert_failure 1
	assert_output --partial "expected content, ingests, images or snapshots/<snapshotter>"
	run $B leases add nosuch content sha256:00
	assert_failure 1
	assert_output --partial "lease nosuch: not found"
	run $B leases rm nosuch
	assert_failure 1
	assert_output --partial "not found"
	# another namespace sees none of this one's leases
	run berth -n "${NS}b" leases ls -q
	assert_output ""
	run berth -n "${NS}b" leases rm dup
	assert_failure 1
	run $B leases ls -q
	assert_output dup
	$B leases rm dup
	# a namespace holding only a lease is not empty
	local N3="${NS}l"
	berth -n "$N3" leases create --id only >/dev/null
	run berth namespaces rm "$N3"
	assert_failure 1
	assert_output --partial "leases: 1 lease"
	berth -n "$N3" leases rm only
	run berth namespaces rm "$N3"
	assert_success
}

# The digest of the last layer of image TAG in the fixtures' OCI layout.
last_layer() {
	local m
	m=$(jq -r --arg t "$1" '.manifests[] | select(.annotations."org.opencontainers.image.ref.name" == $t) | .digest' \
		"$FX/oci/index.json")
	jq -r '.layers[-1].digest' "$FX/oci/blobs/sha256/${m#sha256:}"
}

@test "a lease holds what a pull stored when it fails half-way, and the next pull reuses it" {
	local last kept d
	last=$(last_layer layers)
	echo "^GET./v2/gc/layers/blobs/$last status:404" >"$PROXY/rules"
	$B leases create --id half >/dev/null
	run $B images pull --plain-http --lease half "$P/gc/layers:v1"
	assert_failure
	assert_output --partial "404"
	# the same half-done pull without a lease, in another namespace: what it stored is garbage
	run berth -n "${NS}x" images pull --plain-http "$P/gc/layers:v1"
	assert_failure
	[ "$(berth -n "${NS}x" content ls -q | grep -c .)" -ge 2 ]
	run berth -n "${NS}x" gc
	assert_success
	[ "$(berth -n "${NS}x" content ls -q | grep -c . || true)" -eq 0 ]
	# with the lease, a collection keeps all of it: the manifest, the config, the layers stored
	kept=$($B content ls -q | sort)
	[ "$(echo "$kept" | grep -c .)" -ge 2 ]
	run $B gc
	assert_success
	[ "$($B content ls -q | sort)" = "$kept" ]
	run $B leases resources half
	for d in $kept; do assert_output --partial "$d"; done
	assert_output --partial "snapshots/overlayfs"
	# the next pull fetches only what is missing
	rm -f "$PROXY/rules"
	: >"$PROXY/proxy.log"
	run $B images pull --plain-http --lease half "$P/gc/layers:v1"
	assert_success
	for d in $kept; do
		if grep "GET [^ ]*/blobs/$d" "$PROXY/proxy.log"; then false; fi
	done
	grep -q "GET [^ ]*/blobs/$last" "$PROXY/proxy.log"
	# the lease gone, the image holds what it needs
	run $B leases rm --sync half
	assert_success
	run $B images check
	assert_output --regexp "gc/layers:v1 .*complete \(6/6\).*true"
	run $B run --rm "$P/gc/layers:v1" half-run cat /data/b
	assert_output b
	# bad input: a lease that does not exist, an invalid id; nothing is stored
	run $B images pull --plain-http --lease nope "$R/gc/base:v1"
	assert_failure
	assert_output --partial "lease nope: not found"
	run $B images pull --plain-http --lease 'b@d id' "$R/gc/base:v1"
	assert_failure
	assert_output --partial "lease"
	run $B images ls -q
	refute_output --partial "gc/base"
}

@test "an import holds its blobs with a lease while it runs, and lets go after" {
	# the archive's blobs come first; its index.json last: the import stops for
	# 3 s before the end, with every blob stored and none referenced yet
	local size=$(stat -c %s "$FX/base.tar")
	{
		head -c $((size - 3072)) "$FX/base.tar"
		sleep 3
		tail -c 3072 "$FX/base.tar"
	} | $B images import - >"$BATS_TEST_TMPDIR/import" 2>&1 &
	local imp=$! i
	for i in $(seq 100); do
		[ "$(count content ls)" -ge 3 ] && break
		sleep 0.05
	done
	[ "$(count content ls)" -ge 3 ]
	run $B leases ls -q
	assert_output --regexp '^[0-9a-f]+$'
	run $B gc
	assert_success
	assert_output --partial "removed 0 blobs"
	wait "$imp" || { cat "$BATS_TEST_TMPDIR/import"; false; }
	# its lease is gone; the image holds the blobs now
	run $B leases ls -q
	assert_output ""
	run $B gc
	assert_output --partial "removed 0 blobs"
	run $B run --rm example.org/gc/base:v1 i1 echo imported
	assert_output imported
}

@test "by default a deletion brings a collection of its namespace by itself, a second later" {
	# this file's suite collects on demand; the gateway restarts with the default configuration
	: >"$BERTH_CONFIG"
	berth-dev restart berth-gatewayd >/dev/null
	local keep d
	$B images import "$FX/base.tar" >/dev/null
	d=$(echo "garbage of $NS" | $B content ingest a1)
	keep=$(echo "of ${NS}b" | berth -n "${NS}b" content ingest a2)
	$B images rm example.org/gc/base:v1
	local i
	for i in $(seq 100); do
		[ "$(count content ls)" -eq 0 ] && [ "$(count snapshots ls)" -eq 0 ] && break
		sleep 0.1
	done
	[ "$(count content ls)" -eq 0 ]
	[ "$(count snapshots ls)" -eq 0 ]
	# (the import's own lease deletion may have brought a collection before the rm)
	grep -q "gc of namespace $NS: removed" "$BERTH_RUN/dev/berth-gatewayd.log"
	# another namespace is untouched
	run berth -n "${NS}b" content info "$keep"
	assert_success
	suite_config
	berth-dev restart berth-gatewayd >/dev/null
}

# Makes n unreferenced blobs in the namespace of $B (in one client process).
garbage() {
	local n=$1 i
	for i in $(seq "$n"); do echo "garbage $NS $i $RANDOM"; done >"$BATS_TEST_TMPDIR/g"
	local line=0
	while read -r l; do
		line=$((line + 1))
		echo "$l" | $B content ingest "g-$line" >/dev/null
	done <"$BATS_TEST_TMPDIR/g"
}

@test "kill -9 of berth-contentd, berth-snapshotd or the gateway in the middle of a collection: the next one finishes, nothing reachable goes" {
	$B images import "$FX/base.tar" >/dev/null
	local d victim pid i
	for victim in berth-contentd berth-snapshotd berth-gatewayd; do
		garbage 80
		# committed snapshots nothing references, for the snapshotter's turn
		for i in 1 2 3; do
			$B snapshots prepare "tmp-$victim-$i" >/dev/null
			$B snapshots commit "snap-$victim-$i" "tmp-$victim-$i" >/dev/null
		done
		$B gc >"$BATS_TEST_TMPDIR/gc.out" 2>&1 &
		local gc=$!
		sleep 0.3
		pid=$(daemon_pid "$victim")
		kill -9 "$pid"
		wait "$gc" || true
		berth-dev start "$victim" >/dev/null
		# the next collection takes whatever the first left
		run $B --timeout 60s gc
		assert_success
		[ "$(count content ls)" -eq 3 ]
		[ "$(count snapshots ls)" -eq 1 ]
	done
	# the image is whole, and runs
	run $B images check
	assert_output --regexp "example.org/gc/base:v1 .*complete \(3/3\).*true"
	run $B run --rm example.org/gc/base:v1 k1 echo intact
	assert_output intact
}

@test "a collection racing 20 concurrent pulls and runs removes nothing in use" {
	$B images import "$FX/base.tar" >/dev/null
	local pids=() i
	for i in $(seq 10); do
		$B images pull --plain-http "$R/gc/layers:v1" >"$BATS_TEST_TMPDIR/pull.$i" 2>&1 &
		pids+=($!)
		$B run --rm example.org/gc/base:v1 "r$i" sh -c 'sleep 0.5; echo ok' >"$BATS_TEST_TMPDIR/run.$i" 2>&1 &
		pids+=($!)
	done
	# collections all the while (those refused because pulls run say so), and garbage to collect
	local stop=$BATS_TEST_TMPDIR/stop
	(
		while [ ! -e "$stop" ]; do
			echo "x $RANDOM" | $B content ingest "race-$RANDOM" >/dev/null 2>&1 || true
			$B gc >>"$BATS_TEST_TMPDIR/gc.log" 2>&1 || true
		done
	) &
	local loop=$!
	local failed=0
	for i in "${pids[@]}"; do wait "$i" || failed=$((failed + 1)); done
	touch "$stop"
	wait "$loop"
	for i in $(seq 10); do
		grep -qx ok "$BATS_TEST_TMPDIR/run.$i" || { cat "$BATS_TEST_TMPDIR/run.$i"; false; }
	done
	[ "$failed" -eq 0 ] || { cat "$BATS_TEST_TMPDIR"/pull.*; false; }
	# collections did run, and some were held off by the pulls
	grep -q "removed" "$BATS_TEST_TMPDIR/gc.log"
	# both images whole and running after one more collection
	run $B gc
	assert_success
	run $B images check
	assert_output --regexp "gc/layers:v1 .*complete \(6/6\).*true"
	assert_output --regexp "example.org/gc/base:v1 .*complete \(3/3\).*true"
	run $B run --rm "$R/gc/layers:v1" r-after cat /data/b
	assert_output b
	run $B run --rm example.org/gc/base:v1 r-after2 echo ok
	assert_output ok
}
