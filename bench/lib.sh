# Shared by the benchmark scripts: a private berth suite started with
# berth-dev on its own root and runtime directories, stopped at exit.

bench_suite_start() {
	BENCH_DIR=$(mktemp -d /tmp/bt-bench.XXXXXX)
	export BERTH_ROOT=$BENCH_DIR/root BERTH_RUN=$BENCH_DIR/run
	export BERTH_ADDRESS=unix://$BERTH_RUN/berth-unix.sock BERTH_ZMQ_ADDRESS=ipc://$BERTH_RUN/berth.sock BERTH_CONFIG=$BENCH_DIR/config.toml
	export BERTH_LOG_LEVEL=warn
	# collections on demand only: the store benchmarks make blobs and chains
	# nothing references, and a collection would take them mid-run
	printf '[gc]\ndelay = "0s"\n' >"$BERTH_CONFIG"
	BENCH_DAEMONS=("$@")
	berth-dev start "$@" >/dev/null
	trap bench_suite_stop EXIT
}

# Stops the suite, removes its root and runtime directories and starts it
# again: a cold store, for benchmarks that must begin with nothing.
bench_suite_reset() {
	berth-dev stop >/dev/null
	rm -rf "$BERTH_ROOT" "$BERTH_RUN"
	berth-dev start "${BENCH_DAEMONS[@]}" >/dev/null
}

bench_suite_stop() {
	berth-dev stop >/dev/null 2>&1 || true
	[ -n "${BENCH_DIR:-}" ] && rm -rf "$BENCH_DIR"
}

# field NAME LINE: the value of NAME=… in a "k=v k=v" line
field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
