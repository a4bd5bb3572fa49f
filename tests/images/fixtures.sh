# Test images, built from busybox-static with umoci and skopeo (sourced by
# tests and by the README demo).  Every function writes into an OCI layout
# directory given as its first argument.
#
#   fx_rootfs DIR                    a busybox root filesystem (passwd, group, tmp …)
#   fx_base LAYOUT TAG [ARCH]        one-layer image from fx_rootfs (cmd sh, env, user root)
#   fx_layers LAYOUT TAG             base + a layer adding /data/{a,b,dir/x}, one deleting
#                                    /data/a, one making /data/dir opaque (holding only y)
#   fx_config LAYOUT TAG ARGS…       umoci config on an image (--config.user …)
#   fx_append_tar LAYOUT TAG TARFILE  TARFILE (gzip'd) as a further layer of TAG
#   fx_zstd LAYOUT SRC DST           copy of SRC with zstd layers
#   fx_index LAYOUT TAG              an index of linux/amd64 and linux/arm64 images
#   fx_raw_layer LAYOUT TAG TARFILE  a one-layer image whose layer is TARFILE (gzip'd as is)
#   fx_escape_tar KIND OUT           a hostile layer tar: dotdot, abs, symlink, hardlink, overwrite, whiteout
#   fx_bad_image LAYOUT TAG TARFILE KIND   a one-layer image of TARFILE, spoilt as KIND says:
#                                    gzip (a corrupt deflate stream), zstd (a corrupt zstd frame),
#                                    diffid (a config diffID that is not the layer's),
#                                    mediatype (an unknown layer media type), bigmanifest (a
#                                    manifest over 4 MiB), bigconfig (a config over 8 MiB)
#   fx_push LAYOUT:TAG DEST [SKOPEO ARGS…]   skopeo copy to docker://DEST (plain http)

fx_rootfs() {
	local d=$1
	mkdir -p "$d"/{bin,etc,tmp,root,proc,sys,dev,home,var/empty}
	cp /bin/busybox "$d/bin/busybox"
	local a
	for a in sh ls cat echo true false id env sleep mkdir rm touch stat grep sed wc head tail printf \
		uname hostname ps kill mount umount chmod chown ln readlink seq test date dd unshare nproc whoami; do
		ln -sf busybox "$d/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nberth:x:1000:1000:berth:/home:/bin/sh\n' >"$d/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\nberth:x:1000:\nextra:x:2000:berth\n' >"$d/etc/group"
	echo berth >"$d/etc/hostname"
	chmod 1777 "$d/tmp"
	chmod 0700 "$d/root"
}

_fx_init() {
	[ -f "$1/index.json" ] || umoci init --layout "$1" >/dev/null
}

fx_base() {
	local layout=$1 tag=$2 arch=${3:-amd64} work
	_fx_init "$layout"
	work=$(mktemp -d /tmp/bt-fx.XXXXXX)
	umoci new --image "$layout:$tag" >/dev/null
	umoci unpack --image "$layout:$tag" "$work/b" >/dev/null
	fx_rootfs "$work/b/rootfs"
	umoci repack --image "$layout:$tag" "$work/b" >/dev/null
	umoci config --image "$layout:$tag" --architecture "$arch" --os linux \
		--config.cmd sh --config.env PATH=/bin --config.workingdir / >/dev/null
	rm -rf "$work"
}

fx_config() {
	local layout=$1 tag=$2
	shift 2
	umoci config --image "$layout:$tag" "$@" >/dev/null
}

fx_layers() {
	local layout=$1 tag=$2 work
	fx_base "$layout" "$tag"
	work=$(mktemp -d /tmp/bt-fx.XXXXXX)
	# (umoci insert writes layers without tar's end blocks: layers are made here)
	python3 - "$work" <<-'PY'
	import io, sys, tarfile
	def tar(path, entries):
	    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
	        for name, data in entries:
	            i = tarfile.TarInfo(name)
	            i.mtime = 1700000000
	            if data is None:
	                i.type, i.mode = tarfile.DIRTYPE, 0o755
	                t.addfile(i)
	            else:
	                i.size, i.mode = len(data), 0o644
	                t.addfile(i, io.BytesIO(data))
	w = sys.argv[1]
	tar(w + "/add.tar", [("data", None), ("data/a", b"a\n"), ("data/b", b"b\n"),
	                     ("data/dir", None), ("data/dir/x", b"x\n")])
	tar(w + "/wh.tar", [("data", None), ("data/.wh.a", b"")])
	tar(w + "/opq.tar", [("data", None), ("data/dir", None), ("data/dir/.wh..wh..opq", b""),
	                     ("data/dir/y", b"y\n")])
	PY
	fx_append_tar "$layout" "$tag" "$work/add.tar"
	fx_append_tar "$layout" "$tag" "$work/wh.tar"
	fx_append_tar "$layout" "$tag" "$work/opq.tar"
	rm -rf "$work"
}

# Appends TARFILE (gzip'd) as a layer of image TAG, rewriting its config and manifest.
fx_append_tar() {
	python3 - "$@" <<-'PY'
	import gzip, hashlib, json, os, sys
	layout, tag, tarfile = sys.argv[1:4]
	def put(data):
	    d = hashlib.sha256(data).hexdigest()
	    with open(os.path.join(layout, "blobs/sha256", d), "wb") as f:
	        f.write(data)
	    return "sha256:" + d
	def get(digest):
	    with open(os.path.join(layout, "blobs/sha256", digest.split(":")[1]), "rb") as f:
	        return f.read()
	raw = open(tarfile, "rb").read()
	gz = gzip.compress(raw, mtime=0)
	index = json.load(open(os.path.join(layout, "index.json")))
	desc = [m for m in index["manifests"]
	        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag][0]
	man = json.loads(get(desc["digest"]))
	cfg = json.loads(get(man["config"]["digest"]))
	cfg["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(raw).hexdigest())
	cfg.setdefault("history", []).append({"created_by": "fx_append_tar", "created": "2023-11-14T22:13:20Z"})
	cb = json.dumps(cfg, separators=(",", ":")).encode()
	man["config"]["digest"], man["config"]["size"] = put(cb), len(cb)
	man["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
	                      "digest": put(gz), "size": len(gz)})
	mb = json.dumps(man, separators=(",", ":")).encode()
	desc["digest"], desc["size"] = put(mb), len(mb)
	with open(os.path.join(layout, "index.json.new"), "w") as f:
	    json.dump(index, f)
	os.rename(os.path.join(layout, "index.json.new"), os.path.join(layout, "index.json"))
	PY
}

fx_zstd() {
	local layout=$1 src=$2 dst=$3 tmp
	# through a layout of its own: into one that holds the gzip blobs, skopeo
	# reuses them instead of compressing again
	tmp=$(mktemp -d /tmp/bt-fx.XXXXXX)
	skopeo copy --quiet --dest-compress --dest-compress-format zstd "oci:$layout:$src" "oci:$tmp/l:$dst" &&
		skopeo copy --quiet "oci:$tmp/l:$dst" "oci:$layout:$dst"
	local rc=$?
	rm -rf "$tmp"
	return $rc
}

# The descriptor of TAG in LAYOUT's index.json, as JSON.
_fx_desc() {
	jq -c --arg t "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t)' "$1/index.json"
}

_fx_blob() { # LAYOUT FILE → digest, after moving FILE into the layout's blobs
	local h
	h=$(sha256sum "$2" | cut -d' ' -f1)
	mv "$2" "$1/blobs/sha256/$h"
	echo "sha256:$h"
}

fx_index() {
	local layout=$1 tag=$2 a m idx dg sz
	fx_base "$layout" "$tag-amd64" amd64
	fx_base "$layout" "$tag-arm64" arm64
	a=$(_fx_desc "$layout" "$tag-amd64" | jq -c 'del(.annotations) + {platform: {os: "linux", architecture: "amd64"}}')
	m=$(_fx_desc "$layout" "$tag-arm64" | jq -c 'del(.annotations) + {platform: {os: "linux", architecture: "arm64", variant: "v8"}}')
	idx=$(mktemp /tmp/bt-fx.XXXXXX)
	jq -cn --argjson a "$a" --argjson m "$m" \
		'{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [$m, $a]}' >"$idx"
	sz=$(stat -c %s "$idx")
	dg=$(_fx_blob "$layout" "$idx")
	jq --arg d "$dg" --argjson s "$sz" --arg t "$tag" \
		'.manifests += [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
		  annotations: {"org.opencontainers.image.ref.name": $t}}]' "$layout/index.json" >"$layout/index.json.new"
	mv "$layout/index.json.new" "$layout/index.json"
}

# A one-layer image whose only layer is TARFILE, config and manifest by hand.
fx_raw_layer() {
	local layout=$1 tag=$2 tarfile=$3 gz cfg man diff dl sl dc sc dm sm
	_fx_init "$layout"
	gz=$(mktemp /tmp/bt-fx.XXXXXX)
	diff="sha256:$(sha256sum "$tarfile" | cut -d' ' -f1)"
	gzip -c -n "$tarfile" >"$gz"
	sl=$(stat -c %s "$gz")
	dl=$(_fx_blob "$layout" "$gz")
	cfg=$(mktemp /tmp/bt-fx.XXXXXX)
	jq -cn --arg d "$diff" '{architecture: "amd64", os: "linux", config: {Cmd: ["sh"]},
		rootfs: {type: "layers", diff_ids: [$d]}}' >"$cfg"
	sc=$(stat -c %s "$cfg")
	dc=$(_fx_blob "$layout" "$cfg")
	man=$(mktemp /tmp/bt-fx.XXXXXX)
	jq -cn --arg c "$dc" --argjson cs "$sc" --arg l "$dl" --argjson ls "$sl" \
		'{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
		  config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
		  layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $l, size: $ls}]}' >"$man"
	sm=$(stat -c %s "$man")
	dm=$(_fx_blob "$layout" "$man")
	jq --arg d "$dm" --argjson s "$sm" --arg t "$tag" \
		'.manifests += [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $d, size: $s,
		  annotations: {"org.opencontainers.image.ref.name": $t}}]' "$layout/index.json" >"$layout/index.json.new"
	mv "$layout/index.json.new" "$layout/index.json"
}

# Hostile layers, each trying to reach /tmp/bt-escape-* outside the root.
fx_escape_tar() {
	python3 - "$1" "$2" <<-'PY'
	import io, sys, tarfile
	kind, out = sys.argv[1], sys.argv[2]
	def entry(t, name, typ=tarfile.REGTYPE, data=b"", link=""):
	    ti = tarfile.TarInfo(name)
	    ti.type, ti.linkname, ti.mode = typ, link, 0o644
	    ti.size = len(data) if typ == tarfile.REGTYPE else 0
	    t.addfile(ti, io.BytesIO(data) if typ == tarfile.REGTYPE else None)
	with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
	    if kind == "dotdot":      # a name climbing out
	        entry(t, "../../../../../../tmp/bt-escape-dotdot", data=b"pwned")
	    elif kind == "abs":       # an absolute symlink, then a file through it
	        entry(t, "link", tarfile.SYMTYPE, link="/tmp")
	        entry(t, "link/bt-escape-abs", data=b"pwned")
	    elif kind == "symlink":   # a relative symlink climbing out, then a file through it
	        entry(t, "up", tarfile.SYMTYPE, link="../../../../../../../tmp")
	        entry(t, "up/bt-escape-symlink", data=b"pwned")
	    elif kind == "hardlink":  # a hard link to a file outside
	        entry(t, "evil", tarfile.LNKTYPE, link="../../../../../../tmp/bt-escape-victim")
	    elif kind == "overwrite": # a symlink to a file outside, then a file at the symlink's path
	        entry(t, "passwd", tarfile.SYMTYPE, link="/tmp/bt-escape-victim")
	        entry(t, "passwd", data=b"pwned")
	    elif kind == "whiteout":  # a whiteout of something outside
	        entry(t, "../../../../../../tmp/.wh.bt-escape-victim")
	PY
}

fx_bad_image() {
	_fx_init "$1"
	python3 - "$@" <<-'PY'
	import gzip, hashlib, json, os, subprocess, sys
	layout, tag, tarfile, kind = sys.argv[1:5]
	def put(data):
	    d = hashlib.sha256(data).hexdigest()
	    with open(os.path.join(layout, "blobs/sha256", d), "wb") as f:
	        f.write(data)
	    return "sha256:" + d
	raw = open(tarfile, "rb").read()
	diff = "sha256:" + hashlib.sha256(raw).hexdigest()
	mt = "application/vnd.oci.image.layer.v1.tar+gzip"
	if kind == "zstd":
	    blob = bytearray(subprocess.run(["zstd", "-q", "-c", "--check"], input=raw, stdout=subprocess.PIPE,
	                                    check=True).stdout)
	    blob[len(blob) // 2] ^= 0xFF          # somewhere in the compressed block
	    blob[-1] ^= 0xFF                      # and the checksum
	    blob, mt = bytes(blob), "application/vnd.oci.image.layer.v1.tar+zstd"
	else:
	    blob = bytearray(gzip.compress(raw, mtime=0))
	    if kind == "gzip":
	        blob[10] = 0xFF                   # first deflate block: BTYPE 11, which is reserved
	    blob = bytes(blob)
	if kind == "diffid":
	    diff = "sha256:" + hashlib.sha256(raw + b"x").hexdigest()
	if kind == "mediatype":
	    mt = "application/vnd.example.unknown.layer"
	cfg = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
	       "rootfs": {"type": "layers", "diff_ids": [diff]}}
	if kind == "bigconfig":
	    cfg["config"]["Labels"] = {"pad": "x" * (8 << 20)}
	cb = json.dumps(cfg, separators=(",", ":")).encode()
	man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
	       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cb), "size": len(cb)},
	       "layers": [{"mediaType": mt, "digest": put(blob), "size": len(blob)}]}
	if kind == "bigmanifest":
	    man["annotations"] = {"pad": "x" * (4 << 20)}
	mb = json.dumps(man, separators=(",", ":")).encode()
	index = json.load(open(os.path.join(layout, "index.json")))
	index["manifests"] = [m for m in (index.get("manifests") or [])
	                      if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
	index["manifests"].append({"mediaType": man["mediaType"], "digest": put(mb), "size": len(mb),
	                           "annotations": {"org.opencontainers.image.ref.name": tag}})
	with open(os.path.join(layout, "index.json.new"), "w") as f:
	    json.dump(index, f)
	os.rename(os.path.join(layout, "index.json.new"), os.path.join(layout, "index.json"))
	PY
}

fx_push() {
	local src=$1 dst=$2
	shift 2
	skopeo copy --quiet --dest-tls-verify=false "$@" "oci:$src" "docker://$dst"
}
