#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/fuzz_*.c) with clang and either
# replays their corpora (tests/fuzz/corpus/NAME, a regression test) or fuzzes
# each for FUZZ_TIME seconds.
#
#   tests/fuzz/run.sh [replay|fuzz] [NAME...]
# Output is TAP: one "ok"/"not ok" per harness.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
mode=${1:-fuzz}
[ $# -gt 0 ] && shift
OUT=build-fuzz
mkdir -p "$OUT"
if ! command -v clang >/dev/null; then
	echo "1..0 # skip: clang not installed"
	exit 0
fi
[ -d "$BUILD/gen" ] || { echo "run make first (needs $BUILD/gen)" >&2; exit 1; }
PKGS="libzmq libprotobuf-c libsodium openssl sqlite3 libsystemd jansson libseccomp"
CFLAGS="-std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-DBERTH_VERSION=\"fuzz\" -I$BUILD/gen -Icommon -Icontent-svc $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lpthread -lm"
# Sources every harness may need: common/, the generated protobuf code, and
# the service files holding decoders of untrusted bytes.
SRCS="common/*.c $BUILD/gen/berth/*/v1/*.pb-c.c content-svc/content_rpc.c content-svc/content_store.c image-svc/image_apply.c image-svc/image_decompress.c -larchive -lisal -lzstd"

if [ $# -eq 0 ]; then
	set -- $(ls tests/fuzz/fuzz_*.c | sed 's|tests/fuzz/fuzz_||; s|\.c$||')
fi
echo "1..$#"
i=0 rc=0
for name in "$@"; do
	i=$((i + 1))
	bin=$OUT/fuzz_$name
	if [ ! -x "$bin" ] || [ "tests/fuzz/fuzz_$name.c" -nt "$bin" ] || [ -n "$(find common content-svc -newer "$bin" -name '*.[ch]' | head -1)" ]; then
		# shellcheck disable=SC2086
		if ! clang $CFLAGS tests/fuzz/fuzz_$name.c $SRCS $LIBS -o "$bin" 2>"$OUT/$name.build.log"; then
			echo "not ok $i fuzz_$name: build failed ($OUT/$name.build.log)"
			rc=1
			continue
		fi
	fi
	corpus=tests/fuzz/corpus/$name
	mkdir -p "$corpus"
	if [ "$mode" = replay ]; then
		if "$bin" -runs=0 "$corpus" >"$OUT/$name.log" 2>&1; then
			echo "ok $i fuzz_$name: corpus replayed ($(ls "$corpus" | wc -l) inputs)"
		else
			echo "not ok $i fuzz_$name: corpus replay failed ($OUT/$name.log)"
			rc=1
		fi
	else
		work=$OUT/corpus-$name
		mkdir -p "$work"
		if "$bin" -max_total_time="${FUZZ_TIME:-60}" -max_len=65536 -timeout=10 "$work" "$corpus" \
			>"$OUT/$name.log" 2>&1; then
			echo "ok $i fuzz_$name: $(grep -o 'Done [0-9]* runs' "$OUT/$name.log" | tail -1)"
		else
			echo "not ok $i fuzz_$name: crash or leak found, see $OUT/$name.log and $OUT/crash-*"
			rc=1
		fi
	fi
done
exit $rc
