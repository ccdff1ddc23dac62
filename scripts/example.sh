#!/usr/bin/env bash
# Runs one example (default ReplicaSync): bootstraps what is missing, builds the Examples
# package (debug, scratch path .build-examples, shared with scripts/examples.sh) and runs it.
# It ends with PASS (exit 0) or FAIL (exit 1).
#
#   scripts/example.sh                  ReplicaSync
#   scripts/example.sh AgentTelemetry   or OfflinePeers
set -euo pipefail
cd "$(dirname "$0")/.."
example=${1:-ReplicaSync}
case "$example" in
    ReplicaSync | AgentTelemetry | OfflinePeers) ;;
    *) echo "example.sh: unknown example $example (ReplicaSync, AgentTelemetry or OfflinePeers)" >&2; exit 2 ;;
esac
scripts/bootstrap.sh
echo "==> building Examples/$example (debug; the first build takes a few minutes)"
swift build --package-path Examples --scratch-path .build-examples --product "$example"
exec "$(swift build --package-path Examples --scratch-path .build-examples --show-bin-path)/$example"
