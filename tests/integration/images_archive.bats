#!/usr/bin/env bats
# berth images import / export: OCI layout archives and docker save archives,
# streamed; interoperability both ways with containerd (a scratch instance)
# and skopeo; bad archives refused with nothing named.

load helpers
source "$REPO/tests/images/fixtures.sh"

setup_file() {
	suite_setup
	export SUITE_DIR
	export FX=$SUITE_DIR/fx
	export CTD_DIR=$SUITE_DIR/ctd
	"$REPO/tests/containerd/start.sh" "$CTD_DIR" >/dev/null
	mkdir -p "$FX"
	# several layers with a deletion and an opaque directory
	fx_layers "$FX/oci" v1
	skopeo copy --quiet "oci:$FX/oci:v1" "oci-archive:$FX/named.tar:example.org/fx/img:v1"
	skopeo copy --quiet "oci:$FX/oci:v1" "oci-archive:$FX/tagonly.tar:v1"
	skopeo copy --quiet "oci:$FX/oci:v1" "docker-archive:$FX/docker.tar:fx/docker:v1"
}

teardown_file() {
	"$REPO/tests/containerd/stop.sh" "$CTD_DIR"
	suite_teardown
}

setup() {
	NS=$(fresh_ns)
	CTR="ctr --address $CTD_DIR/c.sock"
}
teardown() { [ -z "${BATS_TEST_COMPLETED:-}" ] && dump_logs || true; }

# The top chain ID an image unpacked to.
chain_of() { berth -n "$1" images unpack "$2" | awk '/^unpacked/ {print $NF}'; }

# Nothing was named in namespace $1.
no_images() {
	run berth -n "$1" images ls -q
	assert_success
	assert_output ""
}

@test "an OCI archive named in full imports, unpacks and is complete" {
	run berth -n "$NS" images import "$FX/named.tar"
	assert_success
	assert_output --partial "imported example.org/fx/img:v1: sha256:"
	assert_output --partial "unpacked example.org/fx/img:v1: sha256:"
	run berth -n "$NS" images check
	assert_success
	assert_output --regexp "example.org/fx/img:v1 .* complete \(6/6\) .* true"
}

@test "a docker save archive imports: RepoTags normalized, the same chain as the OCI image" {
	run berth -n "$NS" images import "$FX/docker.tar"
	assert_success
	assert_output --partial "imported docker.io/fx/docker:v1"
	berth -n "$NS" images import "$FX/named.tar" >/dev/null
	# layers stored uncompressed in one, gzip'd in the other: one set of diffIDs
	[ "$(chain_of "$NS" docker.io/fx/docker:v1)" = "$(chain_of "$NS" example.org/fx/img:v1)" ]
	run berth -n "$NS" images inspect docker.io/fx/docker:v1
	assert_output --partial "application/vnd.docker.distribution.manifest.v2+json"
}

@test "an archive named only by tag needs --base-name, and names nothing without it" {
	run berth -n "$NS" images import "$FX/tagonly.tar"
	assert_failure
	assert_output --partial "is named only by a tag: name it with --base-name"
	no_images "$NS"
	run berth -n "$NS" images import --base-name registry.test/base "$FX/tagonly.tar"
	assert_success
	assert_output --partial "imported registry.test/base:v1"
}

@test "import streams: a gzip'd archive from a pipe, and again (blobs found stored)" {
	run bash -c "gzip -c '$FX/named.tar' | berth -n '$NS' images import --no-unpack -"
	assert_success
	assert_output --partial "imported example.org/fx/img:v1"
	run bash -c "cat '$FX/named.tar' | berth -n '$NS' images import -"
	assert_success
	assert_output --partial ": exists"
}

@test "export → import round trip keeps the digest; skopeo reads berth's export" {
	berth -n "$NS" images import "$FX/named.tar" >/dev/null
	berth -n "$NS" images export "$SUITE_DIR/exp-$NS.tar" example.org/fx/img:v1
	[ ! -e "$SUITE_DIR/exp-$NS.tar.partial" ]
	ns2=$(fresh_ns)
	run berth -n "$ns2" images import "$SUITE_DIR/exp-$NS.tar"
	assert_success
	assert_output --regexp "imported example.org/fx/img:v1: sha256:[0-9a-f]{64}"
	d1=$(berth -n "$NS" images ls | awk '$1=="example.org/fx/img:v1" {print $3}')
	d2=$(berth -n "$ns2" images ls | awk '$1=="example.org/fx/img:v1" {print $3}')
	[ -n "$d1" ] && [ "$d1" = "$d2" ]
	run skopeo inspect --raw "oci-archive:$SUITE_DIR/exp-$NS.tar"
	assert_success
	assert_output --partial '"layers"'
	skopeo copy --quiet "oci-archive:$SUITE_DIR/exp-$NS.tar" "oci:$SUITE_DIR/sk-$NS:x"
	[ -f "$SUITE_DIR/sk-$NS/index.json" ]
	rm -rf "$SUITE_DIR/exp-$NS.tar" "$SUITE_DIR/sk-$NS"
}

@test "containerd imports berth's export and runs it" {
	berth -n "$NS" images import "$FX/named.tar" >/dev/null
	berth -n "$NS" images export "$SUITE_DIR/toctd.tar" example.org/fx/img:v1
	run $CTR -n "$NS" images import "$SUITE_DIR/toctd.tar"
	assert_success
	# the layers' deletion and opaque directory survive the trip
	run $CTR -n "$NS" run --rm example.org/fx/img:v1 "c$NS" /bin/sh -c 'echo hi from containerd; ls /data; ls /data/dir'
	assert_success
	assert_line "hi from containerd"
	refute_line "a"
	refute_line "x"
	rm -f "$SUITE_DIR/toctd.tar"
}

@test "berth imports containerd's export" {
	$CTR -n "$NS" images import "$FX/named.tar" >/dev/null
	$CTR -n "$NS" images tag example.org/fx/img:v1 example.org/fx/fromctd:2 >/dev/null
	$CTR -n "$NS" images export "$SUITE_DIR/fromctd.tar" example.org/fx/fromctd:2
	run berth -n "$NS" images import "$SUITE_DIR/fromctd.tar"
	assert_success
	assert_output --partial "imported example.org/fx/fromctd:2"
	run berth -n "$NS" images check
	assert_output --regexp "example.org/fx/fromctd:2 .* complete .* true"
	rm -f "$SUITE_DIR/fromctd.tar"
}

@test "bad archives: clear errors, nothing named" {
	b=$SUITE_DIR/bad-$NS
	mkdir -p "$b"
	head -c 20000 /dev/urandom >"$b/garbage"
	run berth -n "$NS" images import "$b/garbage"
	assert_failure
	assert_output --partial "import: not a tar archive"

	tar -cf "$b/empty.tar" -T /dev/null
	run berth -n "$NS" images import "$b/empty.tar"
	assert_failure
	assert_output --partial "import: the archive is empty"

	echo hello >"$b/hello.txt"
	tar -C "$b" -cf "$b/plain.tar" hello.txt
	run berth -n "$NS" images import "$b/plain.tar"
	assert_failure
	assert_output --partial "neither index.json (OCI layout) nor manifest.json (docker save)"

	# cut short in the middle of a layer
	head -c $(($(stat -c %s "$FX/named.tar") / 2)) "$FX/named.tar" >"$b/cut.tar"
	run berth -n "$NS" images import "$b/cut.tar"
	assert_failure
	assert_output --partial "import:"
	no_images "$NS"

	# a blob whose bytes are not what its name says
	mkdir "$b/l"
	tar -C "$b/l" -xf "$FX/named.tar"
	layer=$(ls -S "$b/l/blobs/sha256" | head -1)
	chmod u+w "$b/l/blobs/sha256/$layer"
	printf 'X' | dd of="$b/l/blobs/sha256/$layer" bs=1 seek=100 conv=notrunc status=none
	tar -C "$b/l" -cf "$b/mismatch.tar" .
	run berth -n "$NS" images import "$b/mismatch.tar"
	assert_failure
	assert_output --regexp "import: blobs/sha256/$layer: .*(digest|mismatch)"
	no_images "$NS"

	# a layer missing from the archive
	rm "$b/l/blobs/sha256/$layer"
	tar -C "$b/l" -cf "$b/missing.tar" .
	run berth -n "$NS" images import "$b/missing.tar"
	assert_failure
	assert_output --partial "is incomplete: the archive holds 5 of its 6 blobs"
	no_images "$NS"

	# an index.json beyond the bound on documents
	rm -rf "$b/l"
	mkdir "$b/l"
	python3 -c 'import sys; sys.stdout.write("{\"schemaVersion\":2,\"manifests\":[],\"pad\":\"" + "x" * (5 << 20) + "\"}")' >"$b/l/index.json"
	tar -C "$b/l" -cf "$b/huge.tar" index.json
	run berth -n "$NS" images import "$b/huge.tar"
	assert_failure
	assert_output --partial "import: index.json is larger than 4194304 bytes"

	# docker save: manifest.json naming a layer that is not there
	python3 - "$FX/docker.tar" "$b/nolayer.tar" <<-'PY'
	import sys, tarfile
	src, dst = sys.argv[1], sys.argv[2]
	with tarfile.open(src) as s, tarfile.open(dst, "w") as d:
	    dropped = False
	    for m in s.getmembers():
	        if not dropped and m.isfile() and m.name.endswith(".tar"):
	            dropped = True
	            continue
	        d.addfile(m, s.extractfile(m) if m.isfile() else None)
	PY
	run berth -n "$NS" images import "$b/nolayer.tar"
	assert_failure
	assert_output --regexp "import: manifest.json: layer .* is not in the archive"

	# a blob path that is not a digest
	rm -rf "$b/l"
	mkdir -p "$b/l/blobs/sha256"
	echo x >"$b/l/blobs/sha256/notadigest"
	tar -C "$b/l" -cf "$b/badname.tar" blobs
	run berth -n "$NS" images import "$b/badname.tar"
	assert_failure
	assert_output --partial "import: blobs/sha256/notadigest is not named by a sha256 digest"

	no_images "$NS"
	rm -rf "$b"
}

@test "export: unknown image and unwritable destination are clear errors, no partial file left" {
	run berth -n "$NS" images export "$SUITE_DIR/x.tar" no/such:image
	assert_failure
	assert_output --partial "no/such:image"
	[ ! -e "$SUITE_DIR/x.tar" ] && [ ! -e "$SUITE_DIR/x.tar.partial" ]
	run berth -n "$NS" images export /nonexistent/dir/x.tar example.org/fx/img:v1
	assert_failure
	assert_output --partial "/nonexistent/dir/x.tar.partial"
}
