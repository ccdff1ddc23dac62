#!/usr/bin/env bash
# Two `mesh` builds side by side: both 3-node meshes run at once (release binaries, durability batched,
# 5 ms group commits, as bench-resp.sh), and every round runs each test against A's node 1 and B's node 1
# back to back, A first in odd rounds and B first in even ones. Prints every round, then per test the
# medians of ops/s, of node 1's CPU µs per request and of the whole mesh's (its three nodes': the peers
# replicate every write), each from the threads' run time in /proc/PID/task/*/schedstat (nanoseconds:
# /proc/PID/stat counts 10 ms ticks, too coarse for a run of a second), and the medians of the per-round
# ratios B/A, with their spread (quartiles, and in how many rounds B's mesh used less CPU). An idle
# mesh costs about 2% of a core per node, so the mesh not being measured barely disturbs the other;
# pairing each round cancels most of this machine's drift in speed, which moves single runs by ±20%
# (compare resp-cpu.sh runs made minutes apart). Even so, repeat a run before believing a ratio: one
# run of ten pairs showed INCR -P 16 at 1.15x that two later runs put at 0.98-1.01x.
#
#   scripts/resp-ab.sh /tmp/mesh-before .build/release/mesh
#   ROUNDS=12 TESTS="incr hset" PS=1 REQUESTS=100000 scripts/resp-ab.sh A B
#
# Environment:
#   ROUNDS     pairs per test (default 8)
#   TESTS      redis-benchmark tests, space-separated (default: incr get)
#   PS         pipeline depth (default 16)
#   REQUESTS   requests per run (default 200000); CLIENTS connections (default 50)
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,18p' "$0"; exit 2; }
a=$(realpath "$1")
b=$(realpath "$2")
for binary in "$a" "$b"; do [ -x "$binary" ] || { echo "resp-ab.sh: $binary is not an executable" >&2; exit 2; }; done
rounds=${ROUNDS:-8}
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "resp-ab.sh: ROUNDS must be a positive integer, not '$rounds'" >&2; exit 2; }
tests=${TESTS:-incr get}
depth=${PS:-16}
requests=${REQUESTS:-200000}
clients=${CLIENTS:-50}
cd "$(dirname "$0")/.."
scripts/bootstrap.sh >/dev/null

scratch_a=$(mktemp -d)
scratch_b=$(mktemp -d)
serves=()
cleanup() {
    # RESP_MESH_SERVE: a mesh whose start failed before its process ID reached `serves`.
    for pid in "${serves[@]}" ${RESP_MESH_SERVE:-}; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$scratch_a" "$scratch_b"
}
trap cleanup EXIT

. scripts/resp-servers.sh
start_resp_mesh "$a" "$scratch_a"
serves+=("$RESP_MESH_SERVE")
port_a=${RESP_MESH_PORTS[0]} pid_a=${RESP_MESH_PIDS[0]} nodes_a=$(IFS=,; echo "${RESP_MESH_PIDS[*]}")
start_resp_mesh "$b" "$scratch_b"
serves+=("$RESP_MESH_SERVE")
port_b=${RESP_MESH_PORTS[0]} pid_b=${RESP_MESH_PIDS[0]} nodes_b=$(IFS=,; echo "${RESP_MESH_PIDS[*]}")

# Nanoseconds the threads of the processes listed (comma-separated) have run (the live threads: a node's
# event-loop threads live as long as it).
run_time() {
    local pid
    for pid in ${1//,/ }; do cat "/proc/$pid"/task/*/schedstat 2>/dev/null; done | awk '{ total += $1 } END { printf "%.0f", total }'
}

# One benchmark run against node 1 (port, pid, all three nodes): prints ops/s and node 1's and the mesh's
# CPU µs per request.
measure() {
    local port=$1 pid=$2 nodes=$3 test=$4 before after mesh_before mesh_after rps
    before=$(run_time "$pid"); mesh_before=$(run_time "$nodes")
    rps=$(redis-benchmark -p "$port" -t "$test" -n "$requests" -c "$clients" -P "$depth" -q --csv | tail -1 | cut -d, -f2 | tr -d '"')
    after=$(run_time "$pid"); mesh_after=$(run_time "$nodes")
    awk -v r="$rps" -v t=$(( after - before )) -v m=$(( mesh_after - mesh_before )) -v n="$requests" \
        'BEGIN { printf "%s %.3f %.3f\n", r, t / 1e3 / n, m / 1e3 / n }'
}

echo "# A $a"
echo "# B $b"
echo "# -P $depth, $requests requests, $clients clients, $rounds rounds; load $(cut -d' ' -f1 /proc/loadavg) before"
echo "# test round: A ops/s, A node 1 µs/request, A mesh µs/request, then the same for B"
results=$(mktemp -p "$scratch_a")
for round in $(seq 1 "$rounds"); do
    for test in $tests; do
        if (( round % 2 == 1 )); then
            first=$(measure "$port_a" "$pid_a" "$nodes_a" "$test"); second=$(measure "$port_b" "$pid_b" "$nodes_b" "$test")
        else
            second=$(measure "$port_b" "$pid_b" "$nodes_b" "$test"); first=$(measure "$port_a" "$pid_a" "$nodes_a" "$test")
        fi
        echo "$test $round $first $second" | tee -a "$results"
    done
done
echo "# load $(cut -d' ' -f1 /proc/loadavg) after"
python3 - "$results" <<'EOF'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    test, _, *values = line.split()
    runs[test].append([float(value) for value in values])
median = lambda values: statistics.median(list(values))
print("\n| test | A ops/s | B ops/s | B/A | A node 1 µs | B node 1 µs | B/A | A mesh µs | B mesh µs | B/A |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for test, rows in runs.items():
    line = f"| {test} "
    for a, b, form in ((0, 3, ",.0f"), (1, 4, ".2f"), (2, 5, ".2f")):
        line += (f"| {median(r[a] for r in rows):{form}} | {median(r[b] for r in rows):{form}} "
                 f"| {median(r[b] / r[a] for r in rows):.3f} ")
    print(line + "|")
# How far one run can be trusted: the spread of the per-round ratios (one pair can be far off the
# median; an A/A run of ten pairs showed 0.98-1.04 medians) and how many rounds B used less CPU.
print("\nper-round B/A, quartiles (min, Q1, median, Q3, max); rounds where B's mesh used less CPU")
for test, rows in runs.items():
    parts = []
    for name, a, b in (("ops/s", 0, 3), ("mesh µs", 2, 5)):
        ratios = sorted(r[b] / r[a] for r in rows)
        q1, q2, q3 = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
        parts.append(f"{name} {ratios[0]:.3f} {q1:.3f} {q2:.3f} {q3:.3f} {ratios[-1]:.3f}")
    fewer = sum(1 for r in rows if r[5] < r[2])
    print(f"{test}: " + "; ".join(parts) + f"; B cheaper in {fewer} of {len(rows)}")
EOF
