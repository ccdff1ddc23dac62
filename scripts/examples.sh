#!/usr/bin/env bash
# Builds the Examples package once (debug, scratch path .build-examples) and runs every example:
# ReplicaSync, AgentTelemetry, OfflinePeers. Fails unless each one exits 0 and prints its PASS line.
# CI calls this; locally it is the one command to see all three work.
#
# Environment:
#   EXAMPLES   space-separated subset to run (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

examples=${EXAMPLES:-"ReplicaSync AgentTelemetry OfflinePeers"}
scratch=.build-examples

echo "==> building Examples (debug, warnings as errors; the first build takes a few minutes)"
swift build --package-path Examples --scratch-path "$scratch"
bin=$(swift build --package-path Examples --scratch-path "$scratch" --show-bin-path)

failed=()
for example in $examples; do
    echo
    echo "==> $example"
    log="$scratch/$example.log"
    started=$(date +%s%N)
    status=0
    "$bin/$example" 2>&1 | tee "$log" || status=$?
    tenths=$(( ($(date +%s%N) - started) / 100000000 ))
    seconds="$((tenths / 10)).$((tenths % 10))"
    if [ "$status" -eq 0 ] && grep -q '^PASS' "$log"; then
        printf '==> %s: PASS in %s s\n' "$example" "$seconds"
    else
        printf '==> %s: FAILED (exit status %s) after %s s\n' "$example" "$status" "$seconds"
        failed+=("$example")
    fi
done

echo
if [ ${#failed[@]} -gt 0 ]; then
    echo "examples.sh: failed: ${failed[*]}" >&2
    exit 1
fi
echo "examples.sh: all examples passed ($examples)"
