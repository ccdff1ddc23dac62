#!/usr/bin/env bash
# The main job for now: bootstrap what is missing, build the ReplicaSync example
# in release mode and run it. It ends with PASS (exit 0) or FAIL (exit 1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
echo "==> building Examples/ReplicaSync (release; the first build takes a minute)"
swift build -c release --package-path Examples/ReplicaSync --scratch-path .build-example
exec .build-example/release/ReplicaSync
