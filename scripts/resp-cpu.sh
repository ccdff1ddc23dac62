#!/usr/bin/env bash
# CPU per request of each node while redis-benchmark writes to node 1 of a 3-node mesh (release `mesh`,
# durability batched, 5 ms group commits, the two other nodes replicating): node 1's and each peer's
# user+system CPU microseconds per request (from /proc/PID/stat), redis-benchmark's own, and the cores
# left idle during the run (from /proc/stat), with ops/s and the load. Less sensitive to a busy machine
# than ops/s; compare two builds with resp-ab.sh, or by alternating runs (A B A B). With REDIS=1 it
# measures a plain redis-server (--save '' --appendonly no) the same way instead: the whole machine's
# budget per request on both sides.
#
#   scripts/resp-cpu.sh
#   MESH=/tmp/mesh-before TESTS="incr hset" PS=16 REQUESTS=100000 scripts/resp-cpu.sh
#   REDIS=1 PS=1 scripts/resp-cpu.sh
#
# Environment:
#   MESH       a prebuilt `mesh` binary (default: build this checkout's release `mesh`)
#   REDIS=1    measure redis-server instead of the mesh (its CPU is printed as node1)
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
requests=${REQUESTS:-200000}
clients=${CLIENTS:-50}
scratch=$(mktemp -d)
. scripts/resp-servers.sh
# `|| true`: under `set -e` the killed server's status (143) from `wait` would become the script's.
trap 'kill ${RESP_MESH_SERVE:-} ${REDIS_PID:-} 2>/dev/null || true; wait ${RESP_MESH_SERVE:-} ${REDIS_PID:-} 2>/dev/null || true; rm -rf "$scratch"' EXIT
if [ "${REDIS:-0}" = "1" ]; then
    start_redis "$scratch"
    port1=$REDIS_PORT
    pids=("$REDIS_PID")
    names=(redis)
else
    if [ -z "${MESH:-}" ]; then
        swift build -c release --product mesh >/dev/null
        MESH=$(swift build -c release --show-bin-path)/mesh
    fi
    start_resp_mesh "$MESH" "$scratch"
    port1=${RESP_MESH_PORTS[0]}
    pids=("${RESP_MESH_PIDS[@]}")
    names=(node1 peer1 peer2)
fi
# Jiffies the whole machine spent idle (the fourth number of /proc/stat's "cpu" line).
idle_ticks() { awk '/^cpu / { print $5 }' /proc/stat; }
ticks() { for pid in "${pids[@]}"; do awk '{print $14 + $15}' "/proc/$pid/stat"; done; }
hertz=$(getconf CLK_TCK)
for test in ${TESTS:-incr sadd hset}; do
    for depth in ${PS:-1 16}; do
        perfs=()
        if [ -n "${PERF:-}" ]; then
            mkdir -p "$PERF"
            for i in "${!pids[@]}"; do
                name=${names[i]}
                perf record -q -g -p "${pids[i]}" -o "$PERF/$test-P$depth-$name.data" >/dev/null 2>&1 &
                perfs+=($!)
            done
            sleep 0.5
        fi
        mapfile -t before < <(ticks)
        idle_before=$(idle_ticks)
        started=$(date +%s.%N)
        # The subshell's reaped children's CPU (fields 16 and 17 of its stat) is redis-benchmark's.
        rps=$( { redis-benchmark -p "$port1" -t "$test" -n "$requests" -c "$clients" -P "$depth" ${KEYSPACE:+-r "$KEYSPACE"} -q --csv
                 awk '{ print $16 + $17 }' "/proc/$BASHPID/stat" >"$scratch/bench-ticks"; } | tail -1 | cut -d, -f2 | tr -d '"')
        ended=$(date +%s.%N)
        idle_after=$(idle_ticks)
        mapfile -t after < <(ticks)
        for perf in "${perfs[@]}"; do kill -INT "$perf" 2>/dev/null || true; done
        for perf in "${perfs[@]}"; do wait "$perf" 2>/dev/null || true; done
        line="$test -P $depth: $rps ops/s; CPU µs/request"
        for i in "${!pids[@]}"; do
            line="$line ${names[i]} $(awk -v t=$(( after[i] - before[i] )) -v h="$hertz" -v n="$requests" 'BEGIN { printf "%.1f", t / h * 1e6 / n }')"
        done
        line="$line bench $(awk -v t="$(cat "$scratch/bench-ticks")" -v h="$hertz" -v n="$requests" 'BEGIN { printf "%.1f", t / h * 1e6 / n }')"
        line="$line; idle cores $(awk -v i=$(( idle_after - idle_before )) -v h="$hertz" -v s="$started" -v e="$ended" 'BEGIN { printf "%.2f", i / h / (e - s) }')"
        echo "$line (load $(cut -d' ' -f1 /proc/loadavg))"
    done
done
