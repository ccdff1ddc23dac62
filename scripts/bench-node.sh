#!/usr/bin/env bash
# Node benchmarks, side by side with HashiCorp Serf in the same run:
#   1. dissemination: 8 nodes, one write at a time, until every node has it (Serf: 8 encrypted agents,
#      one user event at a time, until every agent logged it; ../shared/peers/serf/bench.py);
#   2. throughput: 5 nodes, 100,000 mixed writes, convergence, bytes per update, memory (node-bench).
# RUNS passes (default 3) alternate the two systems; prints every figure line and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
peers=${PEERS_DIR:-../shared/peers}
scripts/bootstrap.sh >/dev/null
command -v serf >/dev/null || { sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo; $sudo apt-get install -y -q serf >/dev/null; }
swift build -c release --package-path Benchmarks --product node-bench >/dev/null
bench=Benchmarks/.build/release/node-bench
out=$(mktemp)
for run in $(seq 1 "$runs"); do
    echo "# run $run" | tee -a "$out"
    AGENTS=8 SERF_EVENTS=10 SERF_PROFILES=lan python3 "$peers/serf/bench.py" 2>/dev/null | tee -a "$out"
    "$bench" --nodes 8 --latency-events 10 2>/dev/null | sed 's/^node-bench /statemesh-8 /' | tee -a "$out"
    "$bench" --nodes 5 --writes 100000 --durability batched 2>/dev/null | sed 's/^node-bench /statemesh-5-batched /' | tee -a "$out"
    "$bench" --nodes 5 --writes 100000 --durability always 2>/dev/null | sed 's/^node-bench /statemesh-5-always /' | tee -a "$out"
done
echo
echo "medians over $runs runs:"
python3 - "$out" <<'PY'
import statistics, sys
values = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 3 and not line.startswith("#"):
        try:
            values.setdefault((parts[0], parts[1]), []).append(float(parts[2]))
        except ValueError:
            pass
for (system, metric), numbers in sorted(values.items()):
    print(f"{system} {metric} {statistics.median(numbers):g}")
PY
rm -f "$out"
