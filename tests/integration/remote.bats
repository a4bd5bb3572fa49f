#!/usr/bin/env bats
# Remote clients over TCP on loopback with CURVE: a valid key, an unknown
# key, a key for other namespaces, a read-only key writing; the principal
# the gateway sets decides, whatever the client claims.

load helpers

setup_file() {
	suite_setup
	export SUITE_DIR
	cd "$SUITE_DIR"
	berth keys generate alice >/dev/null
	berth keys generate bob >/dev/null
	berth keys generate mallory >/dev/null
	# '#' is a z85 character too: a key holding one must not read as a comment
	for i in $(seq 1 40); do
		berth keys generate "hash$i" >/dev/null
		if grep -q '#' "hash$i.pub"; then
			mv "hash$i.key" hashy.key
			mv "hash$i.pub" hashy.pub
			break
		fi
		rm -f "hash$i.key" "hash$i.pub"
	done
	cat >"$SUITE_DIR/authorized_keys" <<-EOF
	# KEY access namespaces name
	$(cat alice.pub) rw team-*,shared alice
	$(cat bob.pub)   ro team-a          bob   # a read-only dashboard
	#not-a-key-just-a-comment
	$(cat hashy.pub) rw hashy-ns        hashy
	EOF
	PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	export TCP=tcp://127.0.0.1:$PORT
	suite_config '[gateway]\ntcp_address = "%s"\nauthorized_keys = "%s"\n' "$TCP" "$SUITE_DIR/authorized_keys"
	berth-dev restart berth-gatewayd >/dev/null
	export SERVER_PUB=$BERTH_ROOT/gateway/server.pub
}

teardown_file() { suite_teardown; }
teardown() { [ -z "${BATS_TEST_COMPLETED:-}" ] && dump_logs || true; }

remote() {
	local key=$1
	shift
	berth -a "$TCP" --server-key "$SERVER_PUB" --key "$SUITE_DIR/$key.key" --timeout 5s "$@"
}

@test "the gateway made its keypair; the secret key is private" {
	[ -s "$SERVER_PUB" ]
	[ "$(stat -c %a "$BERTH_ROOT/gateway/server.key")" = 600 ]
	[ "$(stat -c %a "$SUITE_DIR/alice.key")" = 600 ]
}

@test "a valid key reads and writes in its namespaces" {
	run bash -c "echo remote-bytes | berth -a '$TCP' --server-key '$SERVER_PUB' --key '$SUITE_DIR/alice.key' -n team-x content ingest r1"
	assert_success
	digest=$output
	run remote alice -n team-x content get "$digest"
	assert_success
	assert_output remote-bytes
	# the same blob through the local socket: one store
	run berth -n team-x content ls -q
	assert_output "$digest"
}

@test "a key holding '#' is a key, not a comment" {
	grep -q '#' "$SUITE_DIR/hashy.pub"
	run remote hashy -n hashy-ns content ls
	assert_success
}

@test "a key is refused in namespaces it was not given" {
	run remote alice -n default content ls
	assert_failure
	assert_output --partial 'key alice may not use namespace "default"'
	run remote bob -n team-b content ls
	assert_failure
	assert_output --partial 'key bob may not use namespace "team-b"'
	# the namespaces list shows only what the key may see
	berth namespaces create hidden-ns >/dev/null
	berth namespaces create team-seen >/dev/null
	run remote alice namespaces ls -q
	assert_success
	assert_output --partial team-seen
	refute_output --partial hidden-ns
	run remote alice namespaces create not-mine
	assert_failure
	assert_output --partial 'namespace "not-mine" is not one this key may use'
	run remote alice namespaces label hidden-ns a=b
	assert_failure
	berth namespaces rm hidden-ns team-seen >/dev/null
}

@test "a read-only key reads, and every write is refused" {
	echo ro-data | berth -n team-a content ingest r-ro >/dev/null
	run remote bob -n team-a content ls -q
	assert_success
	assert_output --regexp '^sha256:'
	run bash -c "echo x | berth -a '$TCP' --server-key '$SERVER_PUB' --key '$SUITE_DIR/bob.key' -n team-a content ingest r2"
	assert_failure
	assert_output --partial "key bob is read-only: content.Write is refused"
	run remote bob -n team-a content rm "$(berth -n team-a content ls -q | head -1)"
	assert_failure
	assert_output --partial "read-only"
	run remote bob namespaces create team-a2
	assert_failure
	assert_output --partial "read-only"
	run remote bob -n team-a gc
	assert_failure
	assert_output --partial "gc.Collect is refused"
	# nothing changed
	run berth -n team-a content ls -q
	assert_output --regexp '^sha256:'
}

@test "an unknown key gets no answer to anything; a wrong server key neither" {
	run remote mallory -n team-a content ls
	assert_failure
	refute_output --partial "sha256:"
	grep -qF "refused a connection with unknown key $(cat "$SUITE_DIR/mallory.pub")" "$BERTH_RUN/dev/berth-gatewayd.log"
	run berth -a "$TCP" --server-key "$SUITE_DIR/mallory.pub" --key "$SUITE_DIR/alice.key" --timeout 3s -n team-a content ls
	assert_failure
}

@test "bad key options: one without the other, a file that is no key" {
	run berth -a "$TCP" --key "$SUITE_DIR/alice.key" content ls
	assert_failure
	assert_output --partial "CURVE needs both --server-key"
	echo "not a key" >"$SUITE_DIR/junk.key"
	run berth -a "$TCP" --server-key "$SERVER_PUB" --key "$SUITE_DIR/junk.key" content ls
	assert_failure
	assert_output --partial "does not hold a 40-character z85 key"
	run berth keys generate "$SUITE_DIR/alice"
	assert_failure
	assert_output --partial "File exists"
}

@test "the ipc socket is untouched by CURVE: local clients still work" {
	run berth -n default content ls
	assert_success
}
