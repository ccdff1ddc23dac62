#!/usr/bin/env bash
# Same-run comparison of StateMesh's CRDTs with the rust `crdts` crate (7.2,
# Debian's librust-crdts-dev), on the rust peer driver's exact workloads:
# 8 replicas round-robin, 1,000,000 operations, two 100,000-element sets
# overlapping by 50,000. Prints a Markdown table of medians and ratios.
#
#   scripts/bench.sh              # RUNS passes (default 5), alternating rust / StateMesh
#   scripts/bench.sh --suite      # also run the package-benchmark suite once afterwards
#   RUNS=3 scripts/bench.sh
#
# Environment:
#   RUNS            passes of each driver (default 5), alternated rust, ours, rust, ours...
#   REPLICAS, OPS, SET_N   workload sizes, passed to both drivers (defaults 8, 1000000, 100000)
#   PEER_DIR        the rust driver's sources (default ../shared/peers/rust-crdts)
#   BENCH_OUT       where the raw `PEER METRIC VALUE` lines go (default .build-bench/bench-raw.txt)
#
# Both are release builds (rust: opt-level 3, thin LTO, one codegen unit; ours:
# `swift build -c release`), single-threaded, wall time. The rust peer is built
# offline from a copy of its sources under .build-peers/ (shared/ is read-only).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

RUNS=${RUNS:-5}
SUITE=0
for argument in "$@"; do
    case "$argument" in
        --suite) SUITE=1 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument $argument" >&2; exit 2 ;;
    esac
done
export REPLICAS=${REPLICAS:-8} OPS=${OPS:-1000000} SET_N=${SET_N:-100000}
PEER_DIR=${PEER_DIR:-$ROOT/../shared/peers/rust-crdts}
SCRATCH=$ROOT/.build-bench
PEER_BUILD=$ROOT/.build-peers/rust-crdts
OUT=${BENCH_OUT:-$SCRATCH/bench-raw.txt}
log() { echo "bench.sh: $*" >&2; }

# ---------- the rust peer: Debian's crate sources, offline build ----------
need=()
for package in librust-crdts-dev librust-bincode-dev; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || need+=("$package")
done
command -v cargo >/dev/null 2>&1 || need+=(cargo)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}" >&2
fi
[ -f "$PEER_DIR/src/main.rs" ] || { log "rust peer driver not found at $PEER_DIR"; exit 1; }
PEER_BIN=$PEER_BUILD/target/release/crdts-peer-bench
if [ ! -x "$PEER_BIN" ] || [ -n "$(find "$PEER_DIR/src" "$PEER_DIR/Cargo.toml" -newer "$PEER_BIN" 2>/dev/null)" ]; then
    log "building the rust crdts peer (offline, Debian crate registry)"
    mkdir -p "$PEER_BUILD"
    # Sources, manifest and .cargo/config.toml (the offline Debian registry); the
    # copy gets its own Cargo.lock and target/.
    cp -R "$PEER_DIR/src" "$PEER_DIR/Cargo.toml" "$PEER_DIR/.cargo" "$PEER_BUILD/"
    chmod -R u+w "$PEER_BUILD"
    (cd "$PEER_BUILD" && cargo build --release --offline -q) >&2
fi

# ---------- ours: release build of the comparison driver ----------
log "building crdt-compare (release)"
swift build -c release --package-path Benchmarks --scratch-path "$SCRATCH" --product crdt-compare >&2
OURS_BIN=$SCRATCH/release/crdt-compare

# ---------- alternate passes ----------
mkdir -p "$(dirname "$OUT")"
{
    echo "# host cpus $(nproc), $(uname -sr), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "rust-crdts version $(dpkg-query -W -f='${Version}' librust-crdts-dev 2>/dev/null || echo unknown)"
    echo "statemesh version $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- Sources 2>/dev/null || echo +dirty)"
} > "$OUT"
for pass in $(seq "$RUNS"); do
    echo "# pass $pass of $RUNS $(date -u +%Y-%m-%dT%H:%M:%SZ) load $(cut -d' ' -f1 /proc/loadavg)" >> "$OUT"
    log "pass $pass/$RUNS: rust crdts"
    "$PEER_BIN" >> "$OUT"
    log "pass $pass/$RUNS: StateMesh"
    "$OURS_BIN" >> "$OUT"
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT"
log "raw figures in $OUT"

python3 - "$OUT" <<'PY'
import statistics, sys
from collections import defaultdict

values = defaultdict(list)
for line in open(sys.argv[1]):
    parts = line.split()
    if line.startswith("#") or len(parts) != 3:
        continue
    try:
        values[(parts[0], parts[1])].append(float(parts[2]))
    except ValueError:
        pass

def med(peer, metric):
    v = values.get((peer, metric))
    return statistics.median(v) if v else None

set_n = med("statemesh", "set_n") or 100000
# (what, rust metric, StateMesh metric, higher is better)
rows = [
    ("GCounter increment (ops/s)", "gcounter_inc_per_s", "gcounter_inc_per_s", True),
    ("PNCounter op, 2/3 inc 1/3 dec (ops/s)", "pncounter_op_per_s", "pncounter_op_per_s", True),
    ("GCounter merge of 8 states (µs)", "gcounter_merge_n_states_us", "gcounter_merge_n_states_us", False),
    ("version vector merge, 8 entries (ops/s)", "vclock_clone_merge_per_s", "vclock_clone_merge_per_s", True),
    ("OR-Set add (ops/s)", "orswot_add_per_s", "orswot_add_per_s", True),
    ("OR-Set remove (ops/s)", "orswot_rm_per_s", "orswot_rm_per_s", True),
    ("OR-Set merge of 8 replicas, 1M adds + 500k removes (ms)", "orswot_merge_all_replicas_ms", "orswot_merge_all_replicas_ms", False),
    ("OR-Set remote apply: rust op / our delta (ops/s)", "orswot_remote_op_apply_per_s", "orswot_remote_op_apply_per_s", True),
    ("OR-Set merge 2 × 100k, 50k overlap (ms)", "orswot_merge_100k_x2_ms", "orswot_merge_100k_x2_ms", False),
    ("OR-Set merge identical 150k (ms)", "orswot_merge_identical_150k_ms", "orswot_merge_identical_150k_ms", False),
    ("OR-Set 100k state (bytes)", "orswot_100k_state_bytes", "orswot_100k_state_bytes", False),
    ("OR-Set bytes per element (100k state)", "@bytes_per_element", "@bytes_per_element", False),
    ("OR-Set 150k merged state (bytes)", "orswot_merged_state_bytes", "orswot_merged_state_bytes", False),
    ("OR-Set add op / delta (bytes)", "orswot_add_op_bytes", "orswot_add_op_bytes", False),
    ("OR-Set 100k encode (ms)", "orswot_100k_serialize_ms", "orswot_100k_serialize_ms", False),
    ("OR-Set 100k decode (ms)", "orswot_100k_deserialize_ms", "orswot_100k_deserialize_ms", False),
    ("OR-Set 100k encode (MB/s)", "@encode_MBps", "@encode_MBps", True),
    ("OR-Set 100k decode (MB/s)", "@decode_MBps", "@decode_MBps", True),
    ("GCounter op / delta (bytes)", "gcounter_op_bytes", "gcounter_op_bytes", False),
    ("GCounter 8-replica state (bytes)", "gcounter_state_bytes", "gcounter_state_bytes", False),
    ("map set: rust Map<MVReg> / our LWWMap (ops/s)", "ormap_mvreg_set_per_s", "lwwmap_set_per_s", True),
    ("map overwrite (ops/s)", "ormap_mvreg_overwrite_per_s", "lwwmap_overwrite_per_s", True),
    ("map 100k state (bytes)", "ormap_mvreg_100k_state_bytes", "lwwmap_100k_state_bytes", False),
    ("map merge 2 × 100k, 50k overlap (ms)", "ormap_mvreg_merge_100k_x2_ms", "lwwmap_merge_100k_x2_ms", False),
]

def derived(peer, metric):
    state = med(peer, "orswot_100k_state_bytes")
    if metric == "@bytes_per_element":
        return state / set_n if state else None
    # Throughput from the median time: 10^6 bytes per second.
    key = {"@encode_MBps": "orswot_100k_serialize_ms", "@decode_MBps": "orswot_100k_deserialize_ms"}[metric]
    t = med(peer, key)
    return state / (t * 1e3) if state and t else None

def get(peer, metric):
    return derived(peer, metric) if metric.startswith("@") else med(peer, metric)

def fmt(v):
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"

runs = len(values.get(("statemesh", "ops"), []))
print(f"Medians of {runs} alternating passes (rust crdts 7.2, then StateMesh), same machine, same run.")
print("Ratio: how many times better StateMesh is (>1 = StateMesh ahead), in the metric's better direction.")
print()
print("| what | rust crdts | StateMesh | ratio |")
print("|---|---:|---:|---:|")
for what, theirs_key, ours_key, higher in rows:
    theirs, ours = get("rust-crdts", theirs_key), get("statemesh", ours_key)
    if theirs is None and ours is None:
        continue
    ratio = "—"
    if theirs and ours:
        ratio = f"{(ours / theirs if higher else theirs / ours):.2f}×"
    print(f"| {what} | {fmt(theirs)} | {fmt(ours)} | {ratio} |")
PY

if [ "$SUITE" -eq 1 ]; then
    log "package-benchmark suite (one run)"
    swift package --package-path Benchmarks --scratch-path "$SCRATCH" benchmark --no-progress
fi
