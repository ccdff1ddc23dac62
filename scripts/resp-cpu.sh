#!/usr/bin/env bash
# CPU per request of each node while redis-benchmark writes to node 1 of a 3-node mesh (release `mesh`,
# durability batched, 5 ms group commits, the two other nodes replicating): node 1's and each peer's
# user+system CPU microseconds per request (from /proc/PID/stat), with ops/s and the load. Less
# sensitive to a busy machine than ops/s; compare two builds by alternating runs (A B A B).
#
#   scripts/resp-cpu.sh
#   MESH=/tmp/mesh-before TESTS="incr hset" PS=16 REQUESTS=100000 scripts/resp-cpu.sh
#
# Environment:
#   MESH       a prebuilt `mesh` binary (default: build this checkout's release `mesh`)
#   TESTS      redis-benchmark tests, space-separated (default: incr sadd hset)
#   PS         pipeline depths, space-separated (default: 1 16)
#   REQUESTS   requests per test (default 200000); CLIENTS connections (default 50)
#   KEYSPACE   redis-benchmark -r: random members and fields out of this many (default: one member,
#              one field, as bench-resp.sh); shows whether a write's cost grows with the set or hash
#   PERF       a directory: also record each node's profile during each test there
#              (`perf record -g`, files TEST-PDEPTH-node1.data, ...-peer1.data, ...-peer2.data;
#              read them with `perf report --no-children -i FILE | swift demangle --simplified`)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh >/dev/null
if [ -z "${MESH:-}" ]; then
    swift build -c release --product mesh >/dev/null
    MESH=$(swift build -c release --show-bin-path)/mesh
fi
requests=${REQUESTS:-200000}
clients=${CLIENTS:-50}
scratch=$(mktemp -d)
python3 Tests/RESPCompat/compat.py --mesh "$MESH" --serve "$scratch/ports.json" --durability batched --interval-ms 5 \
    >"$scratch/serve.log" 2>&1 &
serve=$!
trap 'kill $serve 2>/dev/null; wait $serve 2>/dev/null; rm -rf "$scratch"' EXIT
for _ in $(seq 1 600); do [ -f "$scratch/ports.json" ] && break; sleep 0.1; done
[ -f "$scratch/ports.json" ] || { echo "resp-cpu.sh: the mesh did not start; see $scratch/serve.log" >&2; exit 1; }
read -r port1 _ _ < <(python3 -c 'import json, sys; print(*json.load(open(sys.argv[1]))["resp"])' "$scratch/ports.json")
# Node 1 first: the process whose command line names port1's configuration is not known here, so order
# by the RESP port each process listens on.
pids=()
for pid in $(pgrep -f "$MESH node"); do
    if ss -ltnp 2>/dev/null | grep -q ":$port1 .*pid=$pid,"; then pids=("$pid" "${pids[@]}"); else pids+=("$pid"); fi
done
[ ${#pids[@]} -eq 3 ] || { echo "resp-cpu.sh: expected 3 node processes, found ${#pids[@]}" >&2; exit 1; }
ticks() { for pid in "${pids[@]}"; do awk '{print $14 + $15}' "/proc/$pid/stat"; done; }
hertz=$(getconf CLK_TCK)
for test in ${TESTS:-incr sadd hset}; do
    for depth in ${PS:-1 16}; do
        perfs=()
        if [ -n "${PERF:-}" ]; then
            mkdir -p "$PERF"
            for i in 0 1 2; do
                name=$([ "$i" = 0 ] && echo "node1" || echo "peer$i")
                perf record -q -g -p "${pids[i]}" -o "$PERF/$test-P$depth-$name.data" >/dev/null 2>&1 &
                perfs+=($!)
            done
            sleep 0.5
        fi
        mapfile -t before < <(ticks)
        rps=$(redis-benchmark -p "$port1" -t "$test" -n "$requests" -c "$clients" -P "$depth" ${KEYSPACE:+-r "$KEYSPACE"} -q --csv | tail -1 | cut -d, -f2 | tr -d '"')
        mapfile -t after < <(ticks)
        for perf in "${perfs[@]}"; do kill -INT "$perf" 2>/dev/null || true; done
        for perf in "${perfs[@]}"; do wait "$perf" 2>/dev/null || true; done
        line="$test -P $depth: $rps ops/s; CPU µs/request"
        for i in 0 1 2; do
            name=$([ "$i" = 0 ] && echo "node1" || echo "peer$i")
            line="$line $name $(awk -v t=$(( after[i] - before[i] )) -v h="$hertz" -v n="$requests" 'BEGIN { printf "%.1f", t / h * 1e6 / n }')"
        done
        echo "$line (load $(cut -d' ' -f1 /proc/loadavg))"
    done
done
