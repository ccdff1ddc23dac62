#!/usr/bin/env bash
# Runs the transport benchmarks (package-benchmark, Benchmarks/) and the raw libsodium baselines in one
# session, RUNS times, and prints our medians beside raw ChaCha20-Poly1305-IETF throughput at the same
# message size, measured in the same run, with the ratio. The suite runs with the allocator settings the
# `mesh` command applies to its nodes (MeshTransport.ProcessAllocator; STATEMESH_MALLOC_DEFAULTS=1 measures
# glibc's defaults); `transport-cost` adds CPU seconds and page faults per GiB of the 64 KiB loopback path
# with both settings.
#
# Raw baselines, each run before and after the suite (their median is that run's baseline):
#   - the shared peer driver ../shared/peers/sodium/sodium_bench.c (IETF at 1 KiB only);
#   - Benchmarks/Peers/sodium_ietf.c (IETF encrypt/decrypt at 1 KiB and 64 KiB, same method).
# The suite itself also measures raw IETF encrypt at 1 KiB and 64 KiB ("Raw IETF encrypt N KiB", same
# harness, same process, minutes apart at most): the main ratio compares each 1 KiB / 64 KiB row with
# that in-suite raw figure of the same size; the C baselines (0.4 s slices before and after the suite)
# give a second ratio. On a loaded machine the in-suite ratio is the steadier one.
# The table shows, per benchmark, the median over the runs of the p50 and of the per-run ratios, and the
# 1-minute load average at the start of each run.
#   scripts/bench-transport.sh                 # 5 runs
#   RUNS=1 PEER_DIR=/path/to/peers/sodium BENCH_SECONDS=0.4 scripts/bench-transport.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEER_DIR="${PEER_DIR:-$ROOT/../shared/peers/sodium}"
OUT="${OUT:-$ROOT/.build/bench}"
RUNS="${RUNS:-5}"
export BENCH_SECONDS="${BENCH_SECONDS:-0.4}"
mkdir -p "$OUT"
rm -f "$OUT"/run-*

echo "# building libsodium baselines" >&2
cc -O2 -Wall -o "$OUT/sodium_bench" "$PEER_DIR/sodium_bench.c" $(pkg-config --cflags --libs libsodium)
cc -O2 -Wall -o "$OUT/sodium_ietf" "$ROOT/Benchmarks/Peers/sodium_ietf.c" $(pkg-config --cflags --libs libsodium)

echo "# building the benchmark suite (release)" >&2
(cd "$ROOT/Benchmarks" && swift build -c release --product TransportBenchmarks >&2)
(cd "$ROOT/Benchmarks" && swift build -c release --product transport-cost >&2)

for run in $(seq 1 "$RUNS"); do
    echo "# run $run/$RUNS, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    cut -d' ' -f1 /proc/loadavg > "$OUT/run-$run-load.txt"
    "$OUT/sodium_bench" > "$OUT/run-$run-sodium-before.txt"
    "$OUT/sodium_ietf" > "$OUT/run-$run-ietf-before.txt"
    (cd "$ROOT/Benchmarks" && swift package --allow-writing-to-package-directory benchmark \
        --target TransportBenchmarks --format markdown --no-progress) > "$OUT/run-$run-statemesh.md"
    "$OUT/sodium_ietf" > "$OUT/run-$run-ietf-after.txt"
    # CPU and page faults per GiB of the 64 KiB loopback path, with the allocator settings `mesh` uses and
    # with glibc's defaults (see MeshTransport.ProcessAllocator).
    "$ROOT/Benchmarks/.build/release/transport-cost" 65536 1 > "$OUT/run-$run-cost-tuned.txt"
    STATEMESH_MALLOC_DEFAULTS=1 "$ROOT/Benchmarks/.build/release/transport-cost" 65536 1 \
        > "$OUT/run-$run-cost-defaults.txt"
    "$OUT/sodium_bench" > "$OUT/run-$run-sodium-after.txt"
done

python3 - "$OUT" "$RUNS" <<'PY'
import re, sys, statistics
out, runs = sys.argv[1], int(sys.argv[2])

def p50_throughput(text, name):
    # package-benchmark markdown: a "### <name>" section, then a table whose "Time (wall clock) (<unit>)" row
    # holds p0 p25 p50 ... per operation; operations per second = 1 / p50 time. (The suite reports times in
    # nanoseconds: its "Throughput" row is rounded to whole units of its scale, e.g. 17 K ops/s, which for
    # 64 KiB operations is a 6% step.)
    section = text.split(f"### {name}\n", 1)
    if len(section) < 2:
        return None
    for line in section[1].splitlines():
        if line.startswith("| Time (wall clock)"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            unit = re.search(r"\((ns|μs|us|ms|s)\)", cells[0]).group(1)
            seconds = {"ns": 1e-9, "μs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]
            return 1.0 / (float(cells[3].replace(",", "")) * seconds)
        if line.startswith("### "):
            break
    return None

def metric(path, key):
    for line in open(path):
        parts = line.split()
        if len(parts) == 3 and parts[1] == key:
            return float(parts[2])
    return None

def baseline(run, prefix, key):
    values = [metric(f"{out}/run-{run}-{prefix}-{w}.txt", key) for w in ("before", "after")]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None

rows = [
    ("Handshake XXpsk3 (both sides)", 0, None),
    ("Raw IETF encrypt 1 KiB", 1024, "1k"),
    ("Raw IETF encrypt 64 KiB", 65536, "64k"),
    ("Seal+open 1 KiB", 1024, "1k"),
    ("Seal+open 64 KiB", 65536, "64k"),
    ("Loopback 1 KiB x4096", 1024 * 4096, "1k"),
    ("Loopback 64 KiB x256", 65536 * 256, "64k"),
]
loads = [float(open(f"{out}/run-{r}-load.txt").read()) for r in range(1, runs + 1)]
texts = [open(f"{out}/run-{r}-statemesh.md").read() for r in range(1, runs + 1)]
raw = {size: [baseline(r, "ietf", f"chacha20poly1305_ietf_encrypt_{size}_MBps") for r in range(1, runs + 1)]
       for size in ("1k", "64k")}
raw_dec = {size: [baseline(r, "ietf", f"chacha20poly1305_ietf_decrypt_{size}_MBps") for r in range(1, runs + 1)]
           for size in ("1k", "64k")}
peer_1k = [baseline(r, "sodium", "chacha20poly1305_ietf_encrypt_1k_MBps") for r in range(1, runs + 1)]
suite_raw = {}
for size, byte_count in (("1k", 1024), ("64k", 65536)):
    ops = [p50_throughput(t, f"Raw IETF encrypt {byte_count // 1024} KiB") for t in texts]
    suite_raw[size] = [o * byte_count / 1e6 if o is not None else None for o in ops]

def fmt(values):
    return " ".join(f"{v:.0f}" if v is not None else "-" for v in values)

def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")

print(f"runs: {runs}; 1-minute load at the start of each run: {' '.join(f'{l:.2f}' for l in loads)}")
for size, label in (("1k", "1 KiB"), ("64k", "64 KiB")):
    print(f"raw IETF encrypt {label:6} in the suite, MB/s per run: {fmt(suite_raw[size])}; median {med(suite_raw[size]):.1f}")
    print(f"raw IETF encrypt {label:6} C baseline,   MB/s per run: {fmt(raw[size])}; median {med(raw[size]):.1f}"
          f" (decrypt median {med(raw_dec[size]):.1f})")
if all(v is not None for v in peer_1k):
    print(f"shared peer driver IETF encrypt 1 KiB, MB/s per run: {fmt(peer_1k)}; median {med(peer_1k):.1f}")
print(f"{'benchmark':32} {'median p50':>11}  {'unit':12} {'vs suite raw':>12} {'vs C raw':>9}  per-run ratios vs suite raw")
for name, bytes_per_op, size in rows:
    ops = [p50_throughput(t, name) for t in texts]
    if any(o is None for o in ops):
        print(f"{name:32} {'missing':>11}")
        continue
    if bytes_per_op == 0:
        print(f"{name:32} {statistics.median(ops):11.0f}  {'handshakes/s':12}  per run: {fmt(ops)}")
        continue
    mbps = [o * bytes_per_op / 1e6 for o in ops]
    ratios = [m / suite_raw[size][i] if suite_raw[size][i] else None for i, m in enumerate(mbps)]
    c_ratios = [m / raw[size][i] for i, m in enumerate(mbps)]
    print(f"{name:32} {statistics.median(mbps):11.1f}  {'MB/s':12} {med(ratios):11.2f}x {med(c_ratios):8.2f}x  "
          + " ".join(f"{r:.2f}" if r is not None else "-" for r in ratios))

def cost(run, setting):
    text = open(f"{out}/run-{run}-cost-{setting}.txt").read()
    found = re.search(r": ([0-9.]+) MB/s, ([0-9.]+) CPU s/GiB, ([0-9]+) minor faults/GiB", text)
    return tuple(float(g) for g in found.groups()) if found else (None, None, None)

print("transport-cost, 64 KiB loopback, 1 GiB per run (medians; per run in brackets):")
for setting, label in (("tuned", "allocator as `mesh` sets it"), ("defaults", "glibc defaults")):
    values = [cost(r, setting) for r in range(1, runs + 1)]
    columns = list(zip(*values))
    print(f"  {label:28} {med(columns[0]):7.1f} MB/s [{fmt(columns[0])}]  {med(columns[1]):.3f} CPU s/GiB"
          f"  {med(columns[2]):.0f} faults/GiB [{fmt(columns[2])}]")
PY
