#!/usr/bin/env bats
# berth oci spec: the OCI runtime spec of a container of an imported fixture
# image, checked with jq (image config, overrides, users looked up in the
# image's own /etc/passwd through a view of its snapshot, host network,
# privileged, seccomp profiles, errors), and run for real under runc and
# crun with a copy of the fixture's root file system: the host accepts the
# capabilities, the seccomp profile and the mounts, and the process sees
# what the spec says.

load helpers

setup_file() {
	suite_setup
	FX=$SUITE_DIR/fx
	mkdir -p "$FX"
	# shellcheck source=../images/fixtures.sh
	. "$REPO/tests/images/fixtures.sh"
	fx_base "$FX/oci" base
	fx_base "$FX/oci" app
	fx_config "$FX/oci" app --config.user berth --config.entrypoint /bin/echo --config.cmd hello \
		--config.workingdir /tmp --config.env FOO=bar --config.label org.example.k=v
	skopeo copy --quiet "oci:$FX/oci:base" "oci-archive:$FX/base.tar:example.org/fx/base:v1"
	skopeo copy --quiet "oci:$FX/oci:app" "oci-archive:$FX/app.tar:example.org/fx/app:v1"
	berth images import "$FX/base.tar" >/dev/null
	berth images import "$FX/app.tar" >/dev/null
	# the same root file system as the images', for runtime bundles
	fx_rootfs "$FX/rootfs"
	export FX
}

teardown_file() {
	hugetlb_v1_unmount "$SUITE_DIR"
	suite_teardown
}

setup() { NS=default; }

teardown() {
	[ -z "${BATS_TEST_COMPLETED:-}" ] && dump_logs || true
	local rt
	for rt in runc crun; do
		[ -d "$SUITE_DIR/rt-$rt" ] || continue
		for id in $("$rt" --root "$SUITE_DIR/rt-$rt" list -q 2>/dev/null); do
			"$rt" --root "$SUITE_DIR/rt-$rt" delete -f "$id" >/dev/null 2>&1 || true
		done
	done
	# the runtimes remove a container's cgroup, not its parent (the namespace)
	rmdir /sys/fs/cgroup/*/oci-t /sys/fs/cgroup/oci-t 2>/dev/null || true
	rm -rf "$SUITE_DIR"/bundle-*
	# no view of a snapshot is left behind by berth oci spec
	run berth snapshots ls
	refute_output --partial oci-spec-
}

spec() { berth oci spec "$@"; }

@test "base image: command, env, cwd, root user, the default Linux spec" {
	run spec example.org/fx/base:v1
	assert_success
	S=$output
	[ "$(jq -c .process.args <<<"$S")" = '["sh"]' ]
	[ "$(jq -c .process.env <<<"$S")" = '["PATH=/bin"]' ]
	[ "$(jq -r .process.cwd <<<"$S")" = / ]
	[ "$(jq -c .process.user <<<"$S")" = '{"uid":0,"gid":0,"additionalGids":[0]}' ]
	[ "$(jq -r .process.noNewPrivileges <<<"$S")" = true ]
	[ "$(jq -c '.process.rlimits' <<<"$S")" = '[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}]' ]
	# the 14 default capabilities, the same in each set, none inheritable
	[ "$(jq '.process.capabilities.bounding | length' <<<"$S")" = 14 ]
	[ "$(jq -c '.process.capabilities.bounding | sort' <<<"$S")" = \
		'["CAP_AUDIT_WRITE","CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FOWNER","CAP_FSETID","CAP_KILL","CAP_MKNOD","CAP_NET_BIND_SERVICE","CAP_NET_RAW","CAP_SETFCAP","CAP_SETGID","CAP_SETPCAP","CAP_SETUID","CAP_SYS_CHROOT"]' ]
	[ "$(jq '.process.capabilities | .bounding == .effective and .bounding == .permitted and (has("inheritable") | not)' <<<"$S")" = true ]
	[ "$(jq -c '[.linux.namespaces[].type]' <<<"$S")" = '["pid","ipc","uts","mount","network"]' ]
	[ "$(jq -c '[.mounts[].destination]' <<<"$S")" = '["/proc","/dev","/dev/pts","/dev/shm","/dev/mqueue","/sys","/run"]' ]
	[ "$(jq '.linux.maskedPaths | index("/proc/kcore") != null' <<<"$S")" = true ]
	[ "$(jq '.linux.readonlyPaths | index("/proc/sys") != null' <<<"$S")" = true ]
	[ "$(jq -r .linux.seccomp.defaultAction <<<"$S")" = SCMP_ACT_ERRNO ]
	[ "$(jq -c .linux.seccomp.architectures <<<"$S")" = '["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"]' ]
	[ "$(jq '[.linux.seccomp.syscalls[] | select(.args == null) | .names[]] | index("unshare")' <<<"$S")" = null ]
	[ "$(jq '.linux.resources.devices[0]' -c <<<"$S")" = '{"allow":false,"access":"rwm"}' ]
}

@test "image config: entrypoint + cmd, args replace cmd, env merged, a user name resolved in the image" {
	run spec example.org/fx/app:v1
	assert_success
	S=$output
	[ "$(jq -c .process.args <<<"$S")" = '["/bin/echo","hello"]' ]
	[ "$(jq -r .process.cwd <<<"$S")" = /tmp ]
	[ "$(jq -c .process.env <<<"$S")" = '["PATH=/bin","FOO=bar"]' ]
	# berth is 1000:1000 in the image's /etc/passwd, and a member of extra (2000)
	[ "$(jq -c .process.user <<<"$S")" = '{"uid":1000,"gid":1000,"additionalGids":[1000,2000]}' ]

	run spec --env FOO=baz --env X=1 --env PATH --cwd /root example.org/fx/app:v1 hi there
	assert_success
	S=$output
	[ "$(jq -c .process.args <<<"$S")" = '["/bin/echo","hi","there"]' ]
	[ "$(jq -c .process.env <<<"$S")" = '["FOO=baz","X=1"]' ]
	[ "$(jq -r .process.cwd <<<"$S")" = /root ]

	run spec --user nobody example.org/fx/app:v1
	assert_success
	[ "$(jq -c .process.user <<<"$output")" = '{"uid":65534,"gid":65534,"additionalGids":[65534]}' ]
	run spec --user 65534:extra example.org/fx/app:v1
	assert_success
	[ "$(jq -c .process.user <<<"$output")" = '{"uid":65534,"gid":2000,"additionalGids":[2000]}' ]
	run spec --user 1000 example.org/fx/app:v1
	assert_success
	[ "$(jq -c .process.user <<<"$output")" = '{"uid":1000,"gid":1000,"additionalGids":[1000,2000]}' ]
}

@test "bad users, mounts and images are refused with what to do" {
	run spec --user nosuch example.org/fx/base:v1
	assert_failure 1
	assert_output --partial '"nosuch" is not in the image'"'"'s /etc/passwd'
	run spec --user 4294967295 example.org/fx/base:v1
	assert_failure 1
	assert_output --partial "above the largest id"
	run spec --user=-1 example.org/fx/base:v1
	assert_failure 1
	assert_output --partial "negative"
	run spec --mount type=bind,src=relative,dst=/x example.org/fx/base:v1
	assert_failure 1
	assert_output --partial "absolute src"
	run spec --cwd relative example.org/fx/base:v1
	assert_failure 1
	run spec example.org/fx/missing:v1
	assert_failure 1
	assert_output --partial "berth images pull"
	run spec
	assert_failure 2
}

@test "a rootfs given: names read inside it, never through a symlink to the host's files" {
	local r=$SUITE_DIR/fakeroot
	mkdir -p "$r/etc" "$SUITE_DIR/hostside"
	echo 'hostonly:x:4321:4321::/:/bin/sh' >"$SUITE_DIR/hostside/passwd"
	ln -s "$SUITE_DIR/hostside/passwd" "$r/etc/passwd"
	run spec --rootfs "$r" --user hostonly example.org/fx/base:v1
	assert_failure 1
	assert_output --partial "the image has no /etc/passwd"
	run spec --rootfs "$r" --user 4321 example.org/fx/base:v1
	assert_success
	[ "$(jq -c .process.user <<<"$output")" = '{"uid":4321,"gid":0,"additionalGids":[0]}' ]
	rm -rf "$r" "$SUITE_DIR/hostside"
}

@test "--net-host, --tty, --mount, --privileged, --seccomp-profile" {
	run spec --net-host --tty --mount type=bind,src=/etc,dst=/hostetc,options=rbind:ro example.org/fx/base:v1
	assert_success
	S=$output
	[ "$(jq -c '[.linux.namespaces[].type]' <<<"$S")" = '["pid","ipc","uts","mount"]' ]
	[ "$(jq -c '.mounts[] | select(.destination == "/etc/resolv.conf") | .options' <<<"$S")" = '["rbind","ro"]' ]
	[ "$(jq -c '.mounts[] | select(.destination == "/hostetc")' <<<"$S")" = \
		'{"destination":"/hostetc","type":"bind","source":"/etc","options":["rbind","ro"]}' ]
	[ "$(jq -r .process.terminal <<<"$S")" = true ]
	[ "$(jq '.process.env | index("TERM=xterm") != null' <<<"$S")" = true ]

	run spec --privileged example.org/fx/base:v1
	assert_success
	S=$output
	[ "$(jq '.linux | has("seccomp") or has("maskedPaths") or has("readonlyPaths")' <<<"$S")" = false ]
	# every capability of the host's bounding set, and only those
	local bnd want
	bnd=$(awk '/^CapBnd/ {print $2}' /proc/self/status)
	want=$(capsh --decode="$bnd" 2>/dev/null | sed 's/.*=//' | tr ',' '\n' | grep -c . || true)
	if [ "$want" -gt 0 ]; then
		[ "$(jq '.process.capabilities.bounding | length' <<<"$S")" = "$want" ]
	fi
	if [ $(((0x$bnd >> 24) & 1)) = 0 ]; then
		[ "$(jq '.process.capabilities.bounding | index("CAP_SYS_RESOURCE")' <<<"$S")" = null ]
	fi

	echo '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}' \
		>"$SUITE_DIR/prof.json"
	run spec --seccomp-profile "$SUITE_DIR/prof.json" example.org/fx/base:v1
	assert_success
	[ "$(jq -c .linux.seccomp <<<"$output")" = \
		'{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}' ]
	echo '{"syscalls":[]}' >"$SUITE_DIR/prof.json"
	run spec --seccomp-profile "$SUITE_DIR/prof.json" example.org/fx/base:v1
	assert_failure 1
	assert_output --partial "defaultAction"
}

# bundle NAME [SPEC ARGS…] — a bundle with a copy of the fixture rootfs and
# the spec berth gives for those arguments (its cgroup moved under oci-t,
# which teardown removes).
bundle() {
	B=$SUITE_DIR/bundle-$1
	shift
	mkdir -m 0700 "$B"
	cp -a "$FX/rootfs" "$B/rootfs"
	berth oci spec --id "$ID" "$@" >"$B/spec.json"
	[ "$(jq -r .linux.cgroupsPath "$B/spec.json")" = "/default/$ID" ]
	jq --arg cg "/oci-t/$ID" '.linux.cgroupsPath = $cg' "$B/spec.json" >"$B/config.json"
}

# The process reports who it is and what it may do.
PROBE='id; grep -E "^(Cap(Bnd|Eff|Prm)|NoNewPrivs|Seccomp):" /proc/self/status; hostname; echo masked $(cat /proc/timer_list 2>&1 | wc -c) $(ls /sys/firmware | wc -l); unshare -n true 2>&1; echo done'

run_in() { # RUNTIME
	hugetlb_v1_mount "$SUITE_DIR"
	run "$1" --root "$SUITE_DIR/rt-$1" run --bundle "$B" "$ID"
}

check_default() {
	assert_success
	assert_line "uid=1000(berth) gid=1000(berth) groups=1000(berth),2000(extra)"
	assert_line --regexp "^CapBnd:[[:space:]]+00000000a80425fb$"
	assert_line --regexp "^CapEff:[[:space:]]+0000000000000000$"
	assert_line --regexp "^NoNewPrivs:[[:space:]]+1$"
	assert_line --regexp "^Seccomp:[[:space:]]+2$"
	assert_line "$ID"
	# masked: a file reads as empty, a directory lists nothing
	assert_line "masked 0 0"
	# seccomp (and the missing CAP_SYS_ADMIN) keep unshare out
	assert_line --partial "Operation not permitted"
	assert_line done
}

check_privileged() {
	assert_success
	assert_line "uid=0(root) gid=0(root) groups=0(root)"
	local bnd
	bnd=$(awk '/^CapBnd/ {print $2}' /proc/self/status)
	assert_line --regexp "^CapBnd:[[:space:]]+$bnd$"
	assert_line --regexp "^CapEff:[[:space:]]+$bnd$"
	assert_line --regexp "^Seccomp:[[:space:]]+0$"
	refute_line "masked 0 0"
	assert_line done
}

@test "runc runs the spec: user, capabilities, seccomp, masked paths as specified" {
	ID=oci-runc-$$
	bundle runc --user berth example.org/fx/base:v1 sh -c "$PROBE"
	run_in runc
	check_default
}

@test "crun runs the spec: user, capabilities, seccomp, masked paths as specified" {
	ID=oci-crun-$$
	bundle crun --user berth example.org/fx/base:v1 sh -c "$PROBE"
	run_in crun
	check_default
}

@test "runc and crun run the privileged spec: every capability of the host, no seccomp" {
	for rt in runc crun; do
		ID=oci-priv-$rt-$$
		bundle "priv-$rt" --privileged example.org/fx/base:v1 sh -c "$PROBE"
		run_in "$rt"
		check_privileged
	done
}

@test "a --net-host spec runs: the host's network, its resolv.conf read-only" {
	ID=oci-net-$$
	bundle net --net-host example.org/fx/base:v1 sh -c \
		'cat /etc/resolv.conf >/dev/null && echo ok; ls /sys/class/net | wc -l; touch /etc/resolv.conf 2>&1 || true'
	run_in runc
	assert_success
	assert_line ok
	assert_line --partial "Read-only file system"
	# as many interfaces as the host has
	assert_line --regexp "^ *$(ls /sys/class/net | wc -l)$"
}

@test "a --seccomp-profile is enforced by the runtime: the call it denies fails with EPERM" {
	ID=oci-prof-$$
	echo '{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],"syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}' \
		>"$SUITE_DIR/deny-mkdir.json"
	bundle prof --seccomp-profile "$SUITE_DIR/deny-mkdir.json" example.org/fx/base:v1 sh -c \
		'mkdir /tmp/x 2>&1; touch /tmp/y && echo touched'
	run_in runc
	assert_success
	assert_line --partial "Operation not permitted"
	assert_line touched
}
