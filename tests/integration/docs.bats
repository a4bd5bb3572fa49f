#!/usr/bin/env bats
# The documentation stays true to the code where a machine can tell.

load helpers

@test "docs/operations.md lists every configuration key berth knows" {
	local key pat missing=""
	while read -r key; do
		# a * stands for a name the operator chooses (NAME, HOST)
		pat=$(printf '%s' "$key" | sed 's/\./\\./g; s/\*/[A-Z]+/g')
		grep -Eq "^\| \`$pat\` \|" "$REPO/docs/operations.md" || missing="$missing $key"
	done < <(berth config default | sed -n 's/^# \([a-z][a-z_.*]*\) = .*/\1/p')
	[ -z "$missing" ] || {
		echo "not in docs/operations.md:$missing"
		false
	}
	# and the check can fail
	run grep -Eq '^\| `no\.such\.key` \|' "$REPO/docs/operations.md"
	assert_failure
}
