#!/usr/bin/env bats
# The README's main job (make demo → deploy/dev/demo.sh) runs as the README
# says: the suite starts, the busybox image the build made is imported, a
# container prints its greeting, the suite stops, nothing is left.

load helpers

@test "the README's demo: a container of the built busybox image greets, everything stops" {
	[ -f "$REPO/$BUILD/images/busybox.tar" ] # made by make image (make test makes it)
	local before
	before=$(ls -d /tmp/berth-demo.* 2>/dev/null | wc -l)
	run env -u BERTH_ROOT -u BERTH_RUN -u BERTH_ADDRESS -u BERTH_CONFIG -u BERTH_NAMESPACE \
		BUILD="$BUILD" "$REPO/deploy/dev/demo.sh"
	assert_success
	assert_line --regexp '^Hello from berth: hello runs Linux as root$'
	assert_line --regexp '^berth.dev/busybox:latest +application/vnd.oci.image.manifest.v1\+json'
	assert_line "demo finished"
	# its directories, daemons, shims and mounts are gone
	[ "$(ls -d /tmp/berth-demo.* 2>/dev/null | wc -l)" -eq "$before" ]
	run pgrep -f "/tmp/berth-demo\."
	assert_failure
	run grep -c " /tmp/berth-demo\." /proc/self/mountinfo
	assert_output 0
}
