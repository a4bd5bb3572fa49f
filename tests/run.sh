#!/usr/bin/env bash
# Runs every test: cmocka unit tests (build/tests/test_*) and bats
# integration tests (tests/integration/*.bats), all as TAP, and ends with
# one line "N passed, N failed".  Exit status is non-zero on any failure.
#
#   BUILD=build tests/run.sh [unit|integration] [FILTER]
# FILTER is a bats --filter regex (integration) or a test binary name (unit).
set -uo pipefail

cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
export BERTH_BIN=$PWD/$BUILD/bin
what=${1:-all}
filter=${2:-}
passed=0
failed=0
failures=()

count_tap() { # name, tap file
	local p f
	p=$(grep -cE '^ok ' "$2" || true)
	f=$(grep -cE '^not ok ' "$2" || true)
	passed=$((passed + p))
	failed=$((failed + f))
	while IFS= read -r line; do failures+=("$1: $line"); done < <(grep -E '^not ok ' "$2" || true)
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ "$what" = all ] || [ "$what" = unit ]; then
	for t in "$BUILD"/tests/test_*; do
		[ -x "$t" ] || continue
		name=$(basename "$t")
		[ -n "$filter" ] && [ "$what" = unit ] && [[ $name != *"$filter"* ]] && continue
		echo "# unit: $name"
		CMOCKA_MESSAGE_OUTPUT=TAP "$t" >"$tmp/$name.tap" 2>"$tmp/$name.err"
		rc=$?
		cat "$tmp/$name.tap"
		count_tap "$name" "$tmp/$name.tap"
		if [ $rc -ne 0 ] && ! grep -qE '^not ok ' "$tmp/$name.tap"; then
			# crashed or sanitizer report without a failing assertion
			failed=$((failed + 1))
			failures+=("$name: exited with status $rc")
			cat "$tmp/$name.err" >&2
		fi
	done
fi

if [ "$what" = all ] || [ "$what" = unit ]; then
	# fuzz corpora replayed as regression tests (skipped without clang)
	echo "# fuzz corpora"
	tests/fuzz/run.sh replay >"$tmp/fuzz.tap" 2>&1
	cat "$tmp/fuzz.tap"
	count_tap fuzz "$tmp/fuzz.tap"
fi

if [ "$what" = all ] || [ "$what" = integration ]; then
	args=(--tap)
	[ -n "$filter" ] && [ "$what" = integration ] && args+=(--filter "$filter")
	for f in tests/integration/*.bats; do
		[ -e "$f" ] || continue
		echo "# integration: $f"
		bats "${args[@]}" "$f" 2>&1 | tee "$tmp/bats.tap"
		count_tap "$(basename "$f")" "$tmp/bats.tap"
		if [ "${PIPESTATUS[0]}" -ne 0 ] && ! grep -qE '^not ok ' "$tmp/bats.tap"; then
			failed=$((failed + 1))
			failures+=("$f: bats exited with an error")
		fi
	done
fi

if [ ${#failures[@]} -gt 0 ]; then
	echo
	echo "Failures:"
	printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
