#!/usr/bin/env bash
# Runs the transport benchmarks (package-benchmark, Benchmarks/) and the raw libsodium peer
# (../shared/peers/sodium) in one session, and prints our medians beside the peer's
# ChaCha20-Poly1305-IETF AEAD throughput with the ratio.
#   scripts/bench-transport.sh            # full run
#   PEER_DIR=/path/to/peers/sodium BENCH_SECONDS=0.4 scripts/bench-transport.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEER_DIR="${PEER_DIR:-$ROOT/../shared/peers/sodium}"
OUT="${OUT:-$ROOT/.build/bench}"
mkdir -p "$OUT"

echo "# building libsodium peer" >&2
cc -O2 -Wall -o "$OUT/sodium_bench" "$PEER_DIR/sodium_bench.c" $(pkg-config --cflags --libs libsodium)

echo "# running libsodium peer (before)" >&2
BENCH_SECONDS="${BENCH_SECONDS:-0.4}" "$OUT/sodium_bench" > "$OUT/sodium-before.txt"

echo "# running package-benchmark suite" >&2
(cd "$ROOT/Benchmarks" && swift package --allow-writing-to-package-directory benchmark \
    --format markdown --no-progress) > "$OUT/statemesh.md"

echo "# running libsodium peer (after)" >&2
BENCH_SECONDS="${BENCH_SECONDS:-0.4}" "$OUT/sodium_bench" > "$OUT/sodium-after.txt"

python3 - "$OUT" <<'PY'
import re, sys, statistics
out = sys.argv[1]
text = open(f"{out}/statemesh.md").read()

def p50_throughput(name):
    # package-benchmark markdown: a "### <name>" section, then a table whose
    # "Throughput (# / s) (<scale>)" row holds p0 p25 p50 ... (scale K = 1e3, M = 1e6).
    section = text.split(f"### {name}\n", 1)
    if len(section) < 2:
        return None
    for line in section[1].splitlines():
        if line.startswith("| Throughput"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            scale = {"": 1, "#": 1, "K": 1e3, "M": 1e6, "G": 1e9}
            unit = re.search(r"\((K|M|G)\)", cells[0])
            factor = scale[unit.group(1)] if unit else 1
            return float(cells[3].replace(",", "")) * factor
        if line.startswith("### "):
            break
    return None

def peer(path, key):
    for line in open(path):
        parts = line.split()
        if len(parts) == 3 and parts[1] == key:
            return float(parts[2])
    return None

enc = [peer(f"{out}/sodium-{w}.txt", "chacha20poly1305_ietf_encrypt_1k_MBps") for w in ("before", "after")]
dec = [peer(f"{out}/sodium-{w}.txt", "chacha20poly1305_ietf_decrypt_1k_MBps") for w in ("before", "after")]
enc_med = statistics.median([v for v in enc if v is not None])
dec_med = statistics.median([v for v in dec if v is not None])
xch64 = [peer(f"{out}/sodium-{w}.txt", "xchacha20poly1305_encrypt_64k_MBps") for w in ("before", "after")]

rows = [
    ("Handshake XXpsk3 (both sides)", 0, "handshakes/s"),
    ("Seal+open 1 KiB", 1024, "MB/s"),
    ("Seal+open 64 KiB", 65536, "MB/s"),
    ("Loopback 1 KiB x4096", 1024 * 4096, "MB/s"),
    ("Loopback 64 KiB x256", 65536 * 256, "MB/s"),
]
print(f"libsodium peer chacha20poly1305_ietf 1 KiB: encrypt {enc_med:.1f} MB/s, decrypt {dec_med:.1f} MB/s (median of before/after runs)")
if all(v is not None for v in xch64):
    print(f"libsodium peer xchacha20poly1305 64 KiB encrypt: {statistics.median(xch64):.1f} MB/s (for reference)")
print(f"{'benchmark':34} {'p50':>14}  {'unit':12} {'ratio to raw AEAD encrypt':>26}")
for name, bytes_per_op, unit in rows:
    ops = p50_throughput(name)
    if ops is None:
        print(f"{name:34} {'missing':>14}")
        continue
    if bytes_per_op == 0:
        print(f"{name:34} {ops:14.0f}  {unit:12}")
    else:
        mbps = ops * bytes_per_op / 1e6
        print(f"{name:34} {mbps:14.1f}  {unit:12} {mbps / enc_med:25.2f}x")
PY
