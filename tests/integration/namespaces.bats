#!/usr/bin/env bats
# Namespaces: the gateway's registry end to end — implicit creation by a
# first write (never by a read), labels and filters, Delete refused while any
# service holds something (naming what), and with a service down.

load helpers

setup_file() {
	suite_setup
	export SUITE_DIR
}

teardown_file() { suite_teardown; }

setup() { NS=$(fresh_ns); }
teardown() { [ -z "${BATS_TEST_COMPLETED:-}" ] && dump_logs || true; }

# Whether namespaces ls (with filters $2…) lists $1.
ns_listed() {
	local ns=$1
	shift
	berth namespaces ls -q "$@" | grep -qx "$ns"
}

@test "a read does not create a namespace; a first write does" {
	berth -n "$NS" images ls >/dev/null
	berth -n "$NS" content ls >/dev/null
	run ns_listed "$NS"
	assert_failure
	echo hello | berth -n "$NS" content ingest r1 >/dev/null
	ns_listed "$NS"
	run berth namespaces label "$NS"
	assert_success
	assert_output "$NS -"
}

@test "create, labels, filters; create twice is ALREADY_EXISTS" {
	run berth namespaces create "$NS" team=a tier=gold
	assert_success
	run berth namespaces create "$NS"
	assert_failure
	assert_output --partial "namespace \"$NS\" already exists"
	run berth namespaces label "$NS" tier= owner=me
	assert_success
	assert_output "$NS owner=me,team=a"
	ns_listed "$NS" "labels.owner==me"
	run ns_listed "$NS" "labels.owner==nobody"
	assert_failure
	run berth ns rm "$NS"
	assert_success
	run ns_listed "$NS"
	assert_failure
}

@test "ls --format json lists names and labels; a bad format is a usage error" {
	berth namespaces create "$NS" team=a >/dev/null
	run bash -c "berth namespaces ls --format json | jq -c '.[] | select(.name == \"$NS\")'"
	assert_success
	assert_output "{\"labels\":{\"team\":\"a\"},\"name\":\"$NS\"}"
	run berth namespaces ls --format yaml
	assert_equal "$status" 2
	assert_output --partial 'invalid value for --format: "yaml"'
	berth ns rm "$NS" >/dev/null
}

@test "rm is refused while a service holds anything, naming what remains" {
	echo data | berth -n "$NS" content ingest r2 >/dev/null
	berth -n "$NS" snapshots prepare "snap-$NS" >/dev/null
	run berth ns rm "$NS"
	assert_failure
	assert_output --partial "namespace \"$NS\" is not empty"
	assert_output --partial "content: 1 blob"
	assert_output --partial "snapshots/overlayfs: 1 snapshot"
	# nothing was removed
	run berth -n "$NS" content ls -q
	assert_output --regexp "^sha256:"
	berth -n "$NS" snapshots rm "snap-$NS"
	run berth ns rm "$NS"
	assert_failure
	refute_output --partial "snapshot"
	berth -n "$NS" content rm "$(berth -n "$NS" content ls -q)" >/dev/null
	run berth ns rm "$NS"
	assert_success
}

@test "rm with a service down is refused as UNAVAILABLE, and works once it is back" {
	berth namespaces create "$NS" >/dev/null
	berth-dev stop berth-imaged >/dev/null
	run berth --timeout 10s ns rm "$NS"
	berth-dev start berth-imaged >/dev/null
	assert_failure
	assert_output --partial "cannot tell whether namespace \"$NS\" is empty: images"
	ns_listed "$NS"
	run berth ns rm "$NS"
	assert_success
}

@test "the registry survives a gateway restart" {
	berth namespaces create "$NS" keep=yes >/dev/null
	berth-dev restart berth-gatewayd >/dev/null
	run berth namespaces label "$NS"
	assert_success
	assert_output "$NS keep=yes"
	berth ns rm "$NS" >/dev/null
}

@test "bad input: malformed names, unknown namespaces, bad labels" {
	run berth namespaces create 'bad..name'
	assert_failure
	assert_output --partial 'namespace "bad..name": invalid'
	run berth namespaces create ''
	assert_failure
	run berth ns rm "no-such-$NS"
	assert_failure
	assert_output --partial "namespace \"no-such-$NS\" not found"
	run berth namespaces label "no-such-$NS" a=b
	assert_failure
	assert_output --partial "not found"
	run berth namespaces create "$NS" "=novalue"
	assert_failure
	assert_output --partial "expected KEY=VALUE"
	run berth namespaces create "$NS" "k=$(head -c 5000 /dev/zero | tr '\0' x)"
	assert_failure
	run ns_listed "$NS"
	assert_failure
}
