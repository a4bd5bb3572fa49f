#!/usr/bin/env bash
# Builds a small image with the layer builders of tests/images/fixtures.sh and
# pushes it with skopeo into a registry started by start.sh, in three forms:
#
#   REPO/oci:v1      OCI manifest (fx_base's busybox root + a layer holding a
#                    3 MB file of random bytes, /big.bin)
#   REPO/docker:v1   the same as Docker schema 2 (skopeo --format v2s2)
#   REPO/index:v1    an OCI index holding the OCI manifest for linux/amd64
#
#   tests/registry/push-fixture.sh WORKDIR HOST:PORT [REPO-PREFIX] [-- skopeo dest options]
# REPO-PREFIX defaults to "test".  The OCI layout stays in WORKDIR/oci (tags
# base and multi) and is built only once; the random file is WORKDIR/big.bin.
# (Layers are written by python's tarfile, never by umoci insert, whose
# tars end without tar's end blocks.)
#
# Needs: umoci, skopeo, jq, python3, busybox-static (/bin/busybox); root (umoci unpack).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 WORKDIR HOST:PORT [REPO-PREFIX] [-- skopeo options]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/images/fixtures.sh
. "$here/../images/fixtures.sh"
work=$1 reg=$2
shift 2
prefix=test
if [ $# -gt 0 ] && [ "$1" != -- ]; then prefix=$1; shift; fi
[ "${1:-}" = -- ] && shift
dest_opts=("$@")
[ ${#dest_opts[@]} -gt 0 ] || dest_opts=(--dest-tls-verify=false)

mkdir -p "$work"
cd "$work"
if [ ! -f oci/index.json ] || [ -z "$(_fx_desc oci multi)" ]; then
	rm -rf oci big.bin big.tar
	fx_base oci base
	head -c 3000000 /dev/urandom >big.bin
	python3 - big.bin big.tar <<-'PY'
	import sys, tarfile
	with tarfile.open(sys.argv[2], "w", format=tarfile.PAX_FORMAT) as t:
	    i = t.gettarinfo(sys.argv[1], arcname="big.bin")
	    i.uid = i.gid = 0
	    i.uname = i.gname = "root"
	    i.mode, i.mtime = 0o644, 1700000000
	    with open(sys.argv[1], "rb") as f:
	        t.addfile(i, f)
	PY
	fx_append_tar oci base big.tar
	rm -f big.tar
	# an index (linux/amd64 → the image), tagged "multi"
	m=$(_fx_desc oci base | jq -c 'del(.annotations) + {platform: {architecture: "amd64", os: "linux"}}')
	idx=$(mktemp "$work/idx.XXXXXX")
	jq -cn --argjson m "$m" '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [$m]}' >"$idx"
	sz=$(stat -c %s "$idx")
	dg=$(_fx_blob oci "$idx")
	jq --arg d "$dg" --argjson s "$sz" \
		'.manifests += [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
		  annotations: {"org.opencontainers.image.ref.name": "multi"}}]' oci/index.json >oci/index.json.new
	mv oci/index.json.new oci/index.json
fi
skopeo copy --quiet "${dest_opts[@]}" oci:oci:base "docker://$reg/$prefix/oci:v1"
skopeo copy --quiet "${dest_opts[@]}" --format v2s2 oci:oci:base "docker://$reg/$prefix/docker:v1"
skopeo copy --quiet --all "${dest_opts[@]}" oci:oci:multi "docker://$reg/$prefix/index:v1"
