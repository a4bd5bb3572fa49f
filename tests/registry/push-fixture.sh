#!/usr/bin/env bash
# Builds a small image from busybox-static with umoci and pushes it with
# skopeo into a registry started by start.sh, in three forms:
#
#   REPO/oci:v1      OCI manifest (busybox + a 3 MB layer of random bytes)
#   REPO/docker:v1   the same as Docker schema 2 (skopeo --format v2s2)
#   REPO/index:v1    an OCI index holding the OCI manifest for linux/amd64
#
#   tests/registry/push-fixture.sh WORKDIR HOST:PORT [REPO-PREFIX] [-- skopeo dest options]
# REPO-PREFIX defaults to "test".  The OCI layout stays in WORKDIR/oci (tags
# base and multi); the random file in WORKDIR/big.bin.
#
# Needs: umoci, skopeo, jq, sha256sum, busybox-static (/bin/busybox).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 WORKDIR HOST:PORT [REPO-PREFIX] [-- skopeo options]" >&2; exit 2; }
work=$1 reg=$2
shift 2
prefix=test
if [ $# -gt 0 ] && [ "$1" != -- ]; then prefix=$1; shift; fi
[ "${1:-}" = -- ] && shift
dest_opts=("$@")
[ ${#dest_opts[@]} -gt 0 ] || dest_opts=(--dest-tls-verify=false)

mkdir -p "$work"
cd "$work"
if [ ! -d oci ]; then
	head -c 3000000 /dev/urandom >big.bin
	umoci init --layout oci
	umoci new --image oci:base
	umoci insert --image oci:base /bin/busybox /bin/busybox
	umoci insert --image oci:base big.bin /big.bin
	# an index (linux/amd64 → the image), tagged "multi"
	m=$(jq -c '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "base")
		| del(.annotations) + {platform: {architecture: "amd64", os: "linux"}}' oci/index.json)
	idx=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s]}' "$m")
	d=$(printf '%s' "$idx" | sha256sum | cut -d' ' -f1)
	printf '%s' "$idx" >"oci/blobs/sha256/$d"
	jq --arg d "sha256:$d" --argjson s "$(printf '%s' "$idx" | wc -c)" \
		'.manifests += [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
		  annotations: {"org.opencontainers.image.ref.name": "multi"}}]' oci/index.json >oci/index.json.new
	mv oci/index.json.new oci/index.json
fi
skopeo copy --quiet "${dest_opts[@]}" oci:oci:base "docker://$reg/$prefix/oci:v1"
skopeo copy --quiet "${dest_opts[@]}" --format v2s2 oci:oci:base "docker://$reg/$prefix/docker:v1"
skopeo copy --quiet --all "${dest_opts[@]}" oci:oci:multi "docker://$reg/$prefix/index:v1"
