#!/usr/bin/env bash
# The RESP front door beside Redis in the same run: redis-benchmark against one node of a 3-node mesh
# (release `mesh`, durability batched with a 5 ms group-commit interval, the two other nodes replicating)
# and against a plain redis-server (Debian package, --save '' --appendonly no: no persistence; with
# REDIS_REPLICAS=2 one that streams every write to two replicas, like the mesh), without and with
# pipelining (-P 1, -P 16). Each test runs against the mesh and then against Redis right after
# it, so both see the same moment of a machine whose speed drifts. Prints a Markdown table (ops/s and the
# mesh/redis ratio; with ROUNDS > 1 the medians and every round's ratio), then checks that the mesh
# converged afterwards (the INCR counter and DBSIZE equal on all three nodes).
#
#   scripts/bench-resp.sh
#   REQUESTS=50000 CLIENTS=50 scripts/bench-resp.sh
#   ROUNDS=3 scripts/bench-resp.sh
#   ROUNDS=3 REDIS_REPLICAS=2 TESTS=incr,sadd,hset scripts/bench-resp.sh
#
# Environment:
#   ROUNDS       how many times to run every test pair (default 1); the table shows medians
#   REQUESTS     requests per test (default 200000; a multiple of 16 x CLIENTS when TESTS has incr)
#   CLIENTS      parallel connections of redis-benchmark (default 50, its own default)
#   TESTS        redis-benchmark -t list (default ping,set,get,incr,sadd,hset)
#   MAX_LOAD     refuse to run when the 1-minute load average is above this (default 1.5)
#   FORCE=1      run anyway (the figures are then not comparable; the load is printed with them)
#   REDIS_REPLICAS=N  give redis-server N replicas (--replicaof on the same machine; default 0), the
#                like-for-like peer of a mesh whose two other nodes replicate every write (N=2)
#   MESH         a prebuilt `mesh` binary to measure instead of building this checkout (A/B comparisons:
#                copy a build aside, e.g. to /tmp/mesh-before, and run both back to back)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${REQUESTS:-200000}
clients=${CLIENTS:-50}
rounds=${ROUNDS:-1}
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "bench-resp.sh: ROUNDS must be a positive integer, not '$rounds'" >&2; exit 2; }
tests=${TESTS:-ping,set,get,incr,sadd,hset}
max_load=${MAX_LOAD:-1.5}
# redis-benchmark fills every client's last -P 16 pipeline, so INCR's count (checked for convergence below)
# is exact only when each client's share of REQUESTS is a multiple of 16.
if [[ ",$tests," == *,incr,* ]] && (( requests % (16 * clients) != 0 )); then
    echo "bench-resp.sh: REQUESTS ($requests) must be a multiple of 16 x CLIENTS ($((16 * clients))) for the INCR count check" >&2
    exit 2
fi

load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" -v m="$max_load" 'BEGIN { exit !(l > m) }'; then
    if [ "${FORCE:-0}" = "1" ]; then
        echo "bench-resp.sh: WARNING: load average $load > $max_load; running anyway (FORCE=1), figures are not comparable" >&2
    else
        echo "bench-resp.sh: load average $load > $max_load: other work would distort the figures; retry later or set FORCE=1" >&2
        exit 1
    fi
fi

scripts/bootstrap.sh >/dev/null
if [ -n "${MESH:-}" ]; then
    mesh=$MESH
else
    swift build -c release --product mesh >/dev/null
    mesh=.build/release/mesh
fi

scratch=$(mktemp -d)
. scripts/resp-servers.sh
cleanup() {
    for pid in ${RESP_MESH_SERVE:-} ${REDIS_PID:-} ${REDIS_REPLICA_PIDS[@]:-}; do kill "$pid" 2>/dev/null || true; done
    for pid in ${RESP_MESH_SERVE:-} ${REDIS_PID:-} ${REDIS_REPLICA_PIDS[@]:-}; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$scratch"
}
trap cleanup EXIT
start_resp_mesh "$mesh" "$scratch"
start_redis "$scratch"
redis_port=$REDIS_PORT
redis_replicas=${REDIS_REPLICAS:-0}
[[ "$redis_replicas" =~ ^[0-9]+$ ]] || { echo "bench-resp.sh: REDIS_REPLICAS must be a count, not '$redis_replicas'" >&2; exit 2; }
(( redis_replicas == 0 )) || start_redis_replicas "$scratch" "$redis_replicas"
p1=${RESP_MESH_PORTS[0]} p2=${RESP_MESH_PORTS[1]} p3=${RESP_MESH_PORTS[2]}
password=$RESP_MESH_PASSWORD

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, $(uname -sr), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# mesh ${MESH:-$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources 2>/dev/null || echo +dirty)} (release): 3 nodes on 127.0.0.1, durability batched, interval 5 ms; redis-benchmark against node 1 (port $p1), nodes 2 and 3 replicate"
echo "# $(redis-server --version | cut -d' ' -f1-3) (port $redis_port): --save '' --appendonly no, $redis_replicas replica(s) on this machine"
echo "# redis-benchmark -t TEST -n $requests -c $clients -q --csv for each of $tests, -P 1 and -P 16, mesh then redis; $rounds round(s)"
for round in $(seq 1 "$rounds"); do
    for pipeline in 1 16; do
        echo "# round $round, -P $pipeline, load $(cut -d' ' -f1 /proc/loadavg)" >&2
        for test in ${tests//,/ }; do
            for system in mesh redis; do
                port=$p1
                [ "$system" = redis ] && port=$redis_port
                redis-benchmark -p "$port" -t "$test" -n "$requests" -c "$clients" -P "$pipeline" -q --csv \
                    | sed "s/^/$round,$system,$pipeline,/" >>"$scratch/results.csv"
            done
        done
    done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
python3 - "$scratch/results.csv" "$rounds" <<'PY'
import csv, statistics, sys
rounds = int(sys.argv[2])
rows = {}
order = []
for record in csv.reader(open(sys.argv[1])):
    if len(record) < 5 or record[3] == "test":
        continue
    round_, system, pipeline, test, rps = int(record[0]), record[1], int(record[2]), record[3], float(record[4])
    if (test, pipeline) not in order:
        order.append((test, pipeline))
    rows[(round_, system, test, pipeline)] = rps
fmt = lambda v: f"{v:,.0f}" if v else "—"
per_round = " | ratio per round" if rounds > 1 else ""
median = "median " if rounds > 1 else ""
print(f"| test | P | {median}mesh ops/s | {median}redis ops/s | {median}mesh/redis{per_round} |")
print("|---|---:|---:|---:|---:|" + ("---|" if rounds > 1 else ""))
for test, pipeline in sorted(order, key=lambda k: (k[1], order.index(k))):
    pairs = [(rows.get((r, "mesh", test, pipeline)), rows.get((r, "redis", test, pipeline))) for r in range(1, rounds + 1)]
    meshes = [m for m, _ in pairs if m]
    redises = [d for _, d in pairs if d]
    ratios = [m / d for m, d in pairs if m and d]
    mesh = statistics.median(meshes) if meshes else None
    redis = statistics.median(redises) if redises else None
    ratio = f"{statistics.median(ratios):.2f}" if ratios else "—"
    extra = " | " + " / ".join(f"{r:.2f}" for r in ratios) if rounds > 1 else ""
    print(f"| {test} | {pipeline} | {fmt(mesh)} | {fmt(redis)} | {ratio}{extra} |")
PY

# Convergence: redis-benchmark's INCR always hits `counter:__rand_int__` (no -r), so the counter must equal the
# INCR requests of both pipeline depths in every round on every node; DBSIZE must agree.
echo
case ",$tests," in *,incr,*) expected=$((2 * rounds * requests)) ;; *) expected="" ;; esac
converged=0
started=$(date +%s%N)
for _ in $(seq 1 300); do
    c1=$(redis-cli -p "$p1" GET 'counter:__rand_int__'); c2=$(redis-cli -p "$p2" GET 'counter:__rand_int__')
    c3=$(redis-cli -p "$p3" -a "$password" --no-auth-warning GET 'counter:__rand_int__')
    d1=$(redis-cli -p "$p1" DBSIZE); d2=$(redis-cli -p "$p2" DBSIZE); d3=$(redis-cli -p "$p3" -a "$password" --no-auth-warning DBSIZE)
    if [ "$c1" = "$c2" ] && [ "$c2" = "$c3" ] && [ "$d1" = "$d2" ] && [ "$d2" = "$d3" ] \
        && { [ -z "$expected" ] || [ "$c1" = "$expected" ]; }; then
        converged=1
        break
    fi
    sleep 0.1
done
waited_ms=$(( ($(date +%s%N) - started) / 1000000 ))
echo "convergence: counter:__rand_int__ = $c1 / $c2 / $c3 (expected ${expected:-any, equal}), DBSIZE = $d1 / $d2 / $d3 on nodes 1 / 2 / 3"
if [ "$converged" = 1 ]; then
    echo "convergence: all three nodes agree (${waited_ms} ms after the last benchmark ended)"
else
    echo "bench-resp.sh: the mesh did not converge within 30 s of the benchmark" >&2
    exit 1
fi
