#!/usr/bin/env bats
# The image service end to end: berth images … → berth-gatewayd →
# berth-imaged (→ berth-contentd, berth-snapshotd), pulling from a real
# docker-registry on loopback (tests/registry/start.sh, with its access log
# on, so the tests can count requests) and, for faults, through
# tests/registry/faultproxy.py in front of it.  Fixture images come from
# tests/images/fixtures.sh.

load helpers

setup_file() {
	suite_setup
	export SUITE_DIR
	export FX=$SUITE_DIR/fx REG=$SUITE_DIR/reg PROXY=$SUITE_DIR/proxy
	mkdir -p "$FX" "$PROXY"
	# the registry's access log: distribution reads its config from the environment too
	PORT=$(REGISTRY_LOG_ACCESSLOG_DISABLED=false "$REPO/tests/registry/start.sh" "$REG")
	export R=127.0.0.1:$PORT
	P=$(faultproxy_start "$PROXY" "$R")
	export P

	# shellcheck source=../images/fixtures.sh
	. "$REPO/tests/images/fixtures.sh"
	fx_layers "$FX/oci" layers
	fx_zstd "$FX/oci" layers zstd
	fx_index "$FX/oci" multi
	fx_push "$FX/oci:layers" "$R/test/layers:v1"
	fx_push "$FX/oci:zstd" "$R/test/zstd:v1"
	fx_push "$FX/oci:multi" "$R/test/multi:v1" --all
	fx_push "$FX/oci:layers" "$R/test/docker:v1" --format v2s2
	# the host's platform and another one, as fx_index names them
	case $(uname -m) in
	aarch64) export HOST_ARCH=arm64 OTHER=amd64 ;;
	*) export HOST_ARCH=amd64 OTHER=arm64 ;;
	esac
	# the file the hostile layers aim at
	export VICTIM=/tmp/bt-escape-victim VICTIM_TEXT="victim $$"
	echo "$VICTIM_TEXT" >"$VICTIM"
}

teardown_file() {
	[ -f "$PROXY/pid" ] && kill "$(cat "$PROXY/pid")" 2>/dev/null
	"$REPO/tests/registry/stop.sh" "$SUITE_DIR/areg"
	"$REPO/tests/registry/stop.sh" "$REG"
	[ "$(cat "$VICTIM" 2>/dev/null)" = "$VICTIM_TEXT" ] && rm -f "$VICTIM"
	suite_teardown
}

setup() {
	NS=$(fresh_ns)
	export BERTH_NAMESPACE=$NS
	T=$(mktemp -d "$SUITE_DIR/mnt.XXXXXX")
	: >"$PROXY/rules"
	. "$REPO/tests/images/fixtures.sh"
}

teardown() {
	[ -n "${BATS_TEST_COMPLETED:-}" ] || { dump_logs; tail -n 20 "$PROXY/proxy.log" 2>/dev/null; }
	: >"$PROXY/rules"
	if grep -q " $T" /proc/self/mountinfo; then
		echo "mounts left behind under $T" >&2
		umount -l "$T"
		return 1
	fi
	rm -rf "$T"
}

pull() { berth images pull --plain-http "$@"; }

# The digest of TAG's manifest in the fixture layout.
fx_digest() { jq -r --arg t "$1" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$FX/oci/index.json"; }
# The layer digests of a manifest stored in this namespace.
layers_of() { berth content get "$1" | jq -r '.layers[].digest'; }

# Mounts NAME's unpacked rootfs (a view of its top chain) at $T.
mount_image() {
	local chain
	chain=$(berth images unpack "$1" | awk '/^unpacked /{print $NF}')
	[ -n "$chain" ] || return 1
	berth snapshots view view "$chain" >/dev/null
	eval "$(berth snapshots mounts "$T" view)"
}
umount_image() { umount "$T" && berth snapshots rm view >/dev/null; }

# Committed snapshots of this namespace.
committed() { berth snapshots ls | awk 'NR > 1 && $NF == "Committed" { print $1 }'; }

# Requests the registry logged since mark (a line count) matching a pattern.
mark() { wc -l <"$REG/registry.log"; }
reg_count() { tail -n +"$(($1 + 1))" "$REG/registry.log" | grep -c -E "$2" || true; }

# The path of a blob in the registry's storage.
reg_blob() { local h=${1#sha256:}; echo "$REG/storage/docker/registry/v2/blobs/sha256/${h:0:2}/$h/data"; }

# Stores TAG of the fixture layout FXDIR straight into the registry's
# storage as REPO:NEWTAG, bypassing the registry's own checks (its size
# limits among them), as a hostile registry would serve it.
reg_store() {
	local layout=$1 tag=$2 repo=$3 newtag=$4 md d h st=$REG/storage/docker/registry/v2
	md=$(jq -r --arg t "$tag" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$layout/index.json")
	for d in $md $(jq -r '.config.digest, .layers[].digest' "$layout/blobs/sha256/${md#sha256:}"); do
		h=${d#sha256:}
		mkdir -p "$st/blobs/sha256/${h:0:2}/$h"
		cp "$layout/blobs/sha256/$h" "$st/blobs/sha256/${h:0:2}/$h/data"
		if [ "$d" = "$md" ]; then
			mkdir -p "$st/repositories/$repo/_manifests/revisions/sha256/$h" \
				"$st/repositories/$repo/_manifests/tags/$newtag/current" \
				"$st/repositories/$repo/_manifests/tags/$newtag/index/sha256/$h"
			printf '%s' "$d" >"$st/repositories/$repo/_manifests/revisions/sha256/$h/link"
			printf '%s' "$d" >"$st/repositories/$repo/_manifests/tags/$newtag/current/link"
			printf '%s' "$d" >"$st/repositories/$repo/_manifests/tags/$newtag/index/sha256/$h/link"
		else
			mkdir -p "$st/repositories/$repo/_layers/sha256/$h"
			printf '%s' "$d" >"$st/repositories/$repo/_layers/sha256/$h/link"
		fi
	done
}

# The rootfs fx_layers describes: /data/a deleted, /data/dir opaque with only y.
check_layers_rootfs() {
	[ -x "$T/bin/busybox" ]
	assert_equal "$(head -n1 "$T/etc/passwd")" "root:x:0:0:root:/root:/bin/sh"
	[ ! -e "$T/data/a" ] && [ ! -L "$T/data/a" ]
	assert_equal "$(cat "$T/data/b")" b
	assert_equal "$(ls -A "$T/data/dir")" y
	assert_equal "$(cat "$T/data/dir/y")" y
	assert_equal "$(ls -A "$T/data")" "$(printf 'b\ndir')"
}

# A pull that failed left no image record and no committed snapshot (each
# test runs in a namespace of its own, so there must be none at all).
nothing_committed() {
	run berth images ls -q
	assert_success
	assert_output ""
	assert_equal "$(committed)" ""
}

@test "a multi-layer image with a deletion and an opaque directory unpacks to the right rootfs" {
	run pull "$R/test/layers:v1"
	assert_success
	assert_line "$R/test/layers:v1: $(fx_digest layers)"
	run berth images check
	assert_success
	assert_output --partial "complete (6/6)"
	assert_output --regexp "true$"
	run bash -c "berth images check --format json | jq -r '.[] | select(.name == \"$R/test/layers:v1\") | \"\\(.status) \\(.present)/\\(.blobs) \\(.unpacked)\"'"
	assert_output "complete 6/6 true"
	# one committed snapshot per layer, each on the one before
	assert_equal "$(committed | wc -l)" 4
	mount_image "$R/test/layers:v1"
	check_layers_rootfs
	umount_image
	# pulling again finds everything: nothing fetched, nothing unpacked
	local m
	m=$(mark)
	run pull "$R/test/layers:v1"
	assert_success
	refute_output --partial unpacked
	assert_equal "$(reg_count "$m" "GET /v2/test/layers/blobs/")" 0
}

@test "a layer larger than the unpack pipe (64 MiB of incompressible data) streams through and unpacks" {
	# the pipe between download and unpack holds 16 MiB: a bigger layer only
	# gets through if the unpack reads along while the download runs
	python3 - "$SUITE_DIR/big-$NS.tar" <<-'PY'
	import io, os, sys, tarfile
	with tarfile.open(sys.argv[1], "w") as t:
	    data = os.urandom(64 << 20)
	    ti = tarfile.TarInfo("big/blob")
	    ti.size, ti.mode = len(data), 0o644
	    t.addfile(ti, io.BytesIO(data))
	PY
	rm -rf "$SUITE_DIR/big-oci-$NS"
	fx_base "$SUITE_DIR/big-oci-$NS" big
	fx_append_tar "$SUITE_DIR/big-oci-$NS" big "$SUITE_DIR/big-$NS.tar"
	fx_push "$SUITE_DIR/big-oci-$NS:big" "$R/test/big:$NS"
	run timeout 300 berth images pull --plain-http "$R/test/big:$NS"
	assert_success
	mount_image "$R/test/big:$NS"
	assert_equal "$(stat -c %s "$T/big/blob")" $((64 << 20))
	assert_equal "$(sha256sum <"$T/big/blob" | cut -d' ' -f1)" \
		"$(tar -xOf "$SUITE_DIR/big-$NS.tar" big/blob | sha256sum | cut -d' ' -f1)"
	umount_image
	rm -rf "$SUITE_DIR/big-oci-$NS" "$SUITE_DIR/big-$NS.tar"
}

@test "a zstd image unpacks like its gzip original" {
	run pull "$R/test/zstd:v1"
	assert_success
	local md
	md=$(fx_digest zstd)
	assert_line "$R/test/zstd:v1: $md"
	run bash -c "berth content get $md | jq -r '.layers[].mediaType' | sort -u"
	assert_output application/vnd.oci.image.layer.v1.tar+zstd
	mount_image "$R/test/zstd:v1"
	check_layers_rootfs
	umount_image
}

@test "a multi-platform index: the host's platform by default, --platform picks another, none matching fails" {
	local mine other
	mine=$(fx_digest "multi-$HOST_ARCH")
	other=$(fx_digest "multi-$OTHER")
	run pull "$R/test/multi:v1"
	assert_success
	assert_line "$R/test/multi:v1: $(fx_digest multi)"
	berth content info "$mine" >/dev/null
	run berth content info "$other"
	assert_failure
	run berth images ls
	assert_output --partial application/vnd.oci.image.index.v1+json
	mount_image "$R/test/multi:v1"
	[ -x "$T/bin/busybox" ]
	umount_image

	export BERTH_NAMESPACE=${NS}b
	run pull --platform "linux/$OTHER" "$R/test/multi:v1"
	assert_success
	berth content info "$other" >/dev/null
	run berth content info "$mine"
	assert_failure
	run berth images check --platform "linux/$OTHER"
	assert_success
	assert_output --regexp "true$"

	export BERTH_NAMESPACE=${NS}c
	run pull --platform linux/s390x "$R/test/multi:v1"
	assert_failure
	assert_output --partial "linux/s390x"
	assert_output --regexp "no .*platform|platform .*not"
	nothing_committed
	run pull --platform "not a platform" "$R/test/multi:v1"
	assert_failure
	assert_output --partial platform
}

@test "a Docker schema 2 image pulls and unpacks" {
	run pull "$R/test/docker:v1"
	assert_success
	run berth images ls
	assert_output --partial application/vnd.docker.distribution.manifest.v2+json
	local md
	md=$(berth images ls --format json | jq -r '.[0].target.digest')
	run bash -c "berth content get $md | jq -r '.config.mediaType, .layers[0].mediaType'"
	assert_line application/vnd.docker.container.image.v1+json
	assert_line application/vnd.docker.image.rootfs.diff.tar.gzip
	mount_image "$R/test/docker:v1"
	check_layers_rootfs
	umount_image
}

@test "basic auth: refused without credentials, pulled with --user, berth's config and a docker config.json" {
	local areg=$SUITE_DIR/areg aport a
	aport=$("$REPO/tests/registry/start.sh" "$areg" --htpasswd berth:s3cret)
	a=127.0.0.1:$aport
	fx_push "$FX/oci:layers" "$a/private/layers:v1" --dest-creds berth:s3cret

	run pull "$a/private/layers:v1"
	assert_failure
	assert_output --partial "authentication required"
	nothing_committed
	run pull --user berth:wrong "$a/private/layers:v1"
	assert_failure
	assert_output --regexp "denied|401"
	nothing_committed
	run pull --user berth:s3cret "$a/private/layers:v1"
	assert_success

	# berth's own config (read at start)
	export BERTH_NAMESPACE=${NS}b
	suite_config '[images.auths."%s"]\nusername = "berth"\npassword = "s3cret"\n' "$a"
	berth-dev restart berth-imaged >/dev/null
	run pull "$a/private/layers:v1"
	assert_success

	# a docker config.json named by images.docker_config
	export BERTH_NAMESPACE=${NS}c
	printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$a" "$(printf berth:s3cret | base64)" >"$SUITE_DIR/docker.json"
	suite_config '[images]\ndocker_config = "%s"\n' "$SUITE_DIR/docker.json"
	berth-dev restart berth-imaged >/dev/null
	run pull "$a/private/layers:v1"
	suite_config
	berth-dev restart berth-imaged >/dev/null
	assert_success
	mount_image "$a/private/layers:v1"
	check_layers_rootfs
	umount_image
	"$REPO/tests/registry/stop.sh" "$areg"
}

# A one-layer image of the hostile tar KIND, pulled: a clear error, no
# record, no committed snapshot, and nothing outside the root touched.
escape_test() {
	local kind=$1 msg=$2
	fx_escape_tar "$kind" "$FX/esc-$kind.tar"
	fx_raw_layer "$FX/oci" "esc-$kind" "$FX/esc-$kind.tar"
	fx_push "$FX/oci:esc-$kind" "$R/test/escape:$kind"
	run pull "$R/test/escape:$kind"
	assert_failure
	assert_output --partial "$msg"
	nothing_committed
	# nothing was written or removed outside
	[ ! -e /tmp/bt-escape-dotdot ] && [ ! -e /tmp/bt-escape-abs ] && [ ! -e /tmp/bt-escape-symlink ]
	assert_equal "$(cat "$VICTIM")" "$VICTIM_TEXT"
	[ ! -L "$VICTIM" ] && [ "$(stat -c %h "$VICTIM")" = 1 ]
	# nothing half-done in the snapshotter either
	run berth snapshots ls
	refute_output --partial berth-unpack
}

@test "escape: a name climbing out with ../ fails the pull" {
	escape_test dotdot 'name has a ".." component'
}

@test "escape: a file written through an absolute symlink fails the pull" {
	escape_test abs "dangling symlink"
}

@test "escape: a file written through a relative symlink climbing out fails the pull" {
	escape_test symlink "dangling symlink"
}

@test "escape: a hard link to a file outside fails the pull" {
	escape_test hardlink "hard link target"
}

@test "escape: a whiteout of a file outside fails the pull" {
	escape_test whiteout 'name has a ".." component'
}

@test "escape: a file replacing a symlink to outside stays inside the root" {
	# tar's rule: an entry replaces what its path holds; the symlink is
	# replaced, never followed, so the layer is harmless and applies
	fx_escape_tar overwrite "$FX/esc-overwrite.tar"
	fx_raw_layer "$FX/oci" esc-overwrite "$FX/esc-overwrite.tar"
	fx_push "$FX/oci:esc-overwrite" "$R/test/escape:overwrite"
	run pull "$R/test/escape:overwrite"
	assert_success
	assert_equal "$(cat "$VICTIM")" "$VICTIM_TEXT"
	mount_image "$R/test/escape:overwrite"
	[ -f "$T/passwd" ] && [ ! -L "$T/passwd" ]
	assert_equal "$(cat "$T/passwd")" pwned
	umount_image
}

# --- bad input: a clear error, nothing half-committed, and a retry works ----------------

@test "bad input: an unknown tag or repository is NOT_FOUND" {
	run pull "$R/test/layers:nope"
	assert_failure
	assert_output --regexp "not found|NOT_FOUND|404"
	assert_output --partial "test/layers"
	run pull "$R/test/nothing-here:v1"
	assert_failure
	assert_output --regexp "not found|NOT_FOUND|404"
	nothing_committed
	run berth content ls -q
	assert_output ""
}

# A small image of its own, so its blobs can be spoilt in the registry.
own_image() {
	head -c 200000 /dev/urandom >"$FX/$1.bin"
	tar -C "$FX" -cf "$FX/$1.tar" "$1.bin"
	fx_raw_layer "$FX/oci" "$1" "$FX/$1.tar"
	fx_push "$FX/oci:$1" "$R/test/$1:v1"
	jq -r '.layers[0].digest' "$FX/oci/blobs/sha256/$(fx_digest "$1" | cut -d: -f2)"
}

@test "bad input: a blob whose bytes differ from its digest, then the good blob" {
	local l f
	l=$(own_image corrupt)
	f=$(reg_blob "$l")
	cp "$f" "$FX/good"
	printf '\xff' | dd of="$f" bs=1 seek=100000 conv=notrunc 2>/dev/null
	run pull "$R/test/corrupt:v1"
	assert_failure
	assert_output --partial "$l"
	assert_output --regexp "digest|DATA_LOSS"
	nothing_committed
	run berth content info "$l"
	assert_failure
	cp "$FX/good" "$f"
	run pull "$R/test/corrupt:v1"
	assert_success
	mount_image "$R/test/corrupt:v1"
	cmp "$FX/corrupt.bin" "$T/corrupt.bin"
	umount_image
}

@test "bad input: a truncated blob, then the whole blob" {
	local l f
	l=$(own_image trunc)
	f=$(reg_blob "$l")
	cp "$f" "$FX/good"
	truncate -s 1000 "$f"
	run pull "$R/test/trunc:v1"
	assert_failure
	assert_output --partial "$l"
	nothing_committed
	cp "$FX/good" "$f"
	run pull "$R/test/trunc:v1"
	assert_success
	mount_image "$R/test/trunc:v1"
	cmp "$FX/trunc.bin" "$T/trunc.bin"
	umount_image
}

# Pulls fx_bad_image KIND, expects msg; then a good image under the same tag pulls.
bad_image_test() {
	local kind=$1 msg=$2
	printf 'hello\n' >"$FX/h"
	tar -C "$FX" -cf "$FX/h.tar" h
	fx_bad_image "$FX/bad" "$kind" "$FX/h.tar" "$kind"
	fx_push "$FX/bad:$kind" "$R/test/bad-$kind:v1"
	run pull "$R/test/bad-$kind:v1"
	assert_failure
	assert_output --partial "$msg"
	nothing_committed
	fx_raw_layer "$FX/bad" "good-$kind" "$FX/h.tar"
	fx_push "$FX/bad:good-$kind" "$R/test/bad-$kind:v1"
	run pull "$R/test/bad-$kind:v1"
	assert_success
	mount_image "$R/test/bad-$kind:v1"
	assert_equal "$(cat "$T/h")" hello
	umount_image
}

@test "bad input: a corrupt gzip stream" {
	bad_image_test gzip "corrupt gzip stream"
}

@test "bad input: a corrupt zstd stream" {
	bad_image_test zstd "corrupt zstd stream"
}

@test "bad input: a layer whose uncompressed digest is not the config's diffID" {
	bad_image_test diffid "differs from the diffID"
}

@test "bad input: a layer of an unknown media type" {
	bad_image_test mediatype "unknown media type application/vnd.example.unknown.layer"
}

@test "bad input: a manifest and a config over their size bounds" {
	local bm cfg
	printf 'hello\n' >"$FX/h"
	tar -C "$FX" -cf "$FX/h.tar" h
	fx_bad_image "$FX/big" bigmanifest "$FX/h.tar" bigmanifest
	fx_bad_image "$FX/big" bigconfig "$FX/h.tar" bigconfig
	# docker-registry refuses to serve a manifest that big: the proxy does
	bm=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "bigmanifest") | .digest' "$FX/big/index.json")
	echo "manifests/ serve:$FX/big/blobs/sha256/${bm#sha256:}" >"$PROXY/rules"
	run pull "$P/test/big:manifest"
	assert_failure
	assert_output --regexp "over the bound|larger than|too large"
	nothing_committed
	run berth content info "$bm"
	assert_failure
	# a config over 8 MiB, straight from the registry's storage
	reg_store "$FX/big" bigconfig test/big config
	run pull "$R/test/big:config"
	assert_failure
	assert_output --regexp "over the bound|larger than|too large"
	nothing_committed
	bm=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "bigconfig") | .digest' "$FX/big/index.json")
	cfg=$(jq -r .config.digest "$FX/big/blobs/sha256/${bm#sha256:}")
	run berth content info "$cfg"
	assert_failure
}

@test "faults: 429, 500 and a cut connection are retried, resumed, and the pull succeeds" {
	local big
	big=$(layers_of_fx layers | head -n1)
	printf '%s\n' "blobs/${big} truncate:300000 1" "blobs/sha256 status:429 1" "blobs/sha256 status:500 1" \
		"manifests/ status:503 1" >"$PROXY/rules"
	: >"$PROXY/proxy.log"
	run pull "$P/test/layers:v1"
	assert_success
	grep -q " 429 " "$PROXY/proxy.log"
	grep -q " 500 " "$PROXY/proxy.log"
	grep -q " 503 " "$PROXY/proxy.log"
	# the cut blob was resumed where it broke, not fetched again from the start
	grep -q "GET /v2/test/layers/blobs/$big 206 bytes=300000-" "$PROXY/proxy.log"
	mount_image "$P/test/layers:v1"
	check_layers_rootfs
	umount_image
}

# Layer digests of TAG in the fixture layout.
layers_of_fx() { jq -r '.layers[].digest' "$FX/oci/blobs/sha256/$(fx_digest "$1" | cut -d: -f2)"; }

@test "faults: a blob that keeps failing fails the pull clearly; the retry fetches only what is missing" {
	local big l
	big=$(layers_of_fx layers | head -n1)
	echo "blobs/${big} status:500" >"$PROXY/rules"
	: >"$PROXY/proxy.log"
	run pull "$P/test/layers:v1"
	assert_failure
	assert_output --partial "$big"
	assert_output --partial "500"
	nothing_committed
	# what got stored stays stored, and is not fetched again
	local stored
	stored=$(berth content ls -q)
	: >"$PROXY/rules"
	: >"$PROXY/proxy.log"
	run pull "$P/test/layers:v1"
	assert_success
	for l in $stored; do
		run grep -c "GET /v2/test/layers/blobs/$l " "$PROXY/proxy.log"
		assert_output 0
	done
	grep -q "GET /v2/test/layers/blobs/$big 200" "$PROXY/proxy.log"
	mount_image "$P/test/layers:v1"
	check_layers_rootfs
	umount_image
}

@test "ten concurrent pulls of one image fetch each blob once and unpack each chain once" {
	local md m i l pids=()
	md=$(fx_digest layers)
	# ten names for the same manifest
	curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$R/v2/test/layers/manifests/$md" >"$FX/m.json"
	for i in $(seq 0 9); do
		curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$FX/m.json" \
			"http://$R/v2/test/layers/manifests/c$i" >/dev/null
	done
	m=$(mark)
	for i in $(seq 0 9); do
		pull "$R/test/layers:c$i" >"$T/out.$i" 2>&1 &
		pids+=($!)
	done
	for i in $(seq 0 9); do
		wait "${pids[$i]}" || { cat "$T/out.$i"; false; }
	done
	assert_equal "$(berth images ls -q | wc -l)" 10
	for l in $(layers_of_fx layers) $(jq -r .config.digest "$FX/m.json"); do
		assert_equal "$(reg_count "$m" "GET /v2/test/layers/blobs/$l ")" 1
	done
	assert_equal "$(reg_count "$m" "GET /v2/test/layers/manifests/$md ")" 1
	for l in $(layers_of_fx layers); do
		assert_equal "$(cat "$T"/out.* | grep -c "^layer $l: unpacked")" 1
	done
	assert_equal "$(committed | wc -l)" 4
	rm -f "$T"/out.*
}

@test "a pull whose client is killed goes on and completes" {
	local big
	big=$(layers_of_fx layers | head -n1)
	echo "blobs/${big} delay:1.5" >"$PROXY/rules"
	: >"$PROXY/proxy.log"
	pull "$P/test/layers:v1" >/dev/null 2>&1 &
	local pid=$!
	# until the pull is underway
	for _ in $(seq 100); do
		berth content ls -q | grep -q . && break
		sleep 0.05
	done
	kill -9 "$pid"
	wait "$pid" || true
	run berth images ls -q
	assert_output ""
	for _ in $(seq 200); do
		berth images ls -q | grep -q . && break
		sleep 0.1
	done
	run berth images ls -q
	assert_output "$P/test/layers:v1"
	run berth images check
	assert_success
	assert_output --regexp "true$"
}

@test "push: blobs the registry has are skipped, another repository mounts them, and the image pulls back" {
	run pull "$R/test/layers:v1"
	assert_success
	local md m
	md=$(fx_digest layers)
	m=$(mark)
	run berth images push --plain-http "$R/test/layers:v1" "$R/test/pushed:v1"
	assert_success
	assert_line "pushed $R/test/pushed:v1: $md"
	assert_output --partial mounted
	# every blob mounted from test/layers: no upload of data
	assert_equal "$(reg_count "$m" "POST /v2/test/pushed/blobs/uploads/\?.*mount=sha256")" 5
	assert_equal "$(reg_count "$m" "(PATCH|PUT) /v2/test/pushed/blobs/uploads/")" 0
	# the same again: every blob is there, none is sent
	m=$(mark)
	run berth images push --plain-http "$R/test/layers:v1" "$R/test/pushed:v2"
	assert_success
	refute_output --partial mounted
	assert_equal "$(reg_count "$m" "POST /v2/test/pushed/blobs/uploads/")" 0

	export BERTH_NAMESPACE=${NS}b
	run pull "$R/test/pushed:v1"
	assert_success
	assert_line "$R/test/pushed:v1: $md"
	mount_image "$R/test/pushed:v1"
	check_layers_rootfs
	umount_image
}

@test "images tag, ls filters, label and rm" {
	run pull --label team=a "$R/test/layers:v1"
	assert_success
	local md
	md=$(fx_digest layers)
	run berth images tag "$R/test/layers:v1" example.com/x:1 example.com/y:2
	assert_success
	run berth images tag "$R/test/layers:v1" example.com/x:1
	assert_failure
	run berth images tag --force "$R/test/layers:v1" example.com/x:1
	assert_success
	assert_equal "$(berth images ls -q | wc -l)" 3
	run berth images ls -q "name==example.com/x:1"
	assert_output example.com/x:1
	run berth images ls -q "name~=^example.com/"
	assert_equal "$(echo "$output" | wc -l)" 2
	run berth images ls -q "target.digest==$md"
	assert_equal "$(echo "$output" | wc -l)" 3
	run berth images ls -q "labels.team==a"
	assert_output "$R/test/layers:v1"
	run berth images label example.com/y:2 team=b tier=gold
	assert_success
	run berth images ls -q "labels.team==b,labels.tier==gold"
	assert_output example.com/y:2
	run berth images label example.com/y:2 tier=
	assert_success
	run berth images ls -q "labels.tier"
	assert_output ""
	run berth images inspect example.com/y:2
	assert_output --partial '"team": "b"'
	run berth images rm example.com/x:1 example.com/y:2
	assert_success
	run berth images ls -q
	assert_output "$R/test/layers:v1"
	run berth images rm example.com/x:1
	assert_failure
	assert_output --partial "not found"
	# a record removed leaves the blobs: the image can be named again
	run berth images tag "$R/test/layers:v1" example.com/z:3
	assert_success
	run berth images check "name==example.com/z:3"
	assert_output --partial "complete (6/6)"
}
