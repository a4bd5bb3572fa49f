#!/usr/bin/env bash
# RPC round trip through the gateway against the floors: a bare unix socket
# ping-pong and a bare libzmq DEALER → proxy → ROUTER echo, same frame sizes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${BENCH_N:-20000}
C=${BENCH_CLIENTS:-16}
bench_suite_start
digest=$(printf 'rpc bench blob' | berth -n bench content ingest rpc-bench)

unix=$("$BENCH_BIN/rpc_bench" unix "$N")
zmq=$("$BENCH_BIN/rpc_bench" zmq "$N" "$C")
gw=$("$BENCH_BIN/rpc_bench" berth "$N" "$C" "$BERTH_ADDRESS" "$digest" bench)
gwz=$("$BENCH_BIN/rpc_bench" berth "$N" "$C" "$BERTH_ZMQ_ADDRESS" "$digest" bench)
direct=$("$BENCH_BIN/rpc_bench" berth "$N" "$C" "ipc://$BERTH_RUN/svc/content.sock" "$digest" bench)

echo "### RPC round trip (content.Info of a stored blob), $N calls, $C clients for throughput"
echo
echo "| path | median µs | p99 µs | req/s, 1 client | req/s, $C clients | req/s, $C in flight on one connection |"
echo "| --- | --- | --- | --- | --- | --- |"
echo "| floor: unix SEQPACKET ping-pong (one hop) | $(field median_us "$unix") | $(field p99_us "$unix") | $(field rps "$unix") | – | – |"
echo "| floor: libzmq DEALER → proxy → ROUTER echo (two hops) | $(field median_us "$zmq") | $(field p99_us "$zmq") | $(field rps1 "$zmq") | $(field rps$C "$zmq") | $(field pipe$C "$zmq") |"
echo "| berth: client → berth-gatewayd → berth-contentd (unix stream door, the default) | $(field median_us "$gw") | $(field p99_us "$gw") | $(field rps1 "$gw") | $(field rps$C "$gw") | $(field pipe$C "$gw") |"
echo "| berth: client → berth-gatewayd → berth-contentd (ZeroMQ door) | $(field median_us "$gwz") | $(field p99_us "$gwz") | $(field rps1 "$gwz") | $(field rps$C "$gwz") | $(field pipe$C "$gwz") |"
echo "| berth: client → berth-contentd (no gateway) | $(field median_us "$direct") | $(field p99_us "$direct") | $(field rps1 "$direct") | $(field rps$C "$direct") | $(field pipe$C "$direct") |"
echo
echo "Gateway round trip / bare libzmq proxy path (median): **$(ratio "$(field median_us "$gw")" "$(field median_us "$zmq")")×** (target ≤ 1.3×; through the ZeroMQ door $(ratio "$(field median_us "$gwz")" "$(field median_us "$zmq")")×);"
echo "throughput with $C clients: **$(field rps$C "$gw") req/s** (target ≥ 20,000; the ZeroMQ door did $(field rps$C "$gwz"), the bare libzmq proxy path $(field rps$C "$zmq"));"
echo "with $C requests in flight on one connection: **$(field pipe$C "$gw") req/s** (the bare path did $(field pipe$C "$zmq"))."
