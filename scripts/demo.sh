#!/usr/bin/env bash
# The first command for newcomers: install what is missing, build the `mesh` command in release
# mode, and run `mesh demo` (a few nodes on this machine: writes, a partition, healing, convergence).
# Extra arguments go to `mesh demo` (e.g. --nodes 5, --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
echo "==> building mesh (release; the first build takes a few minutes)"
swift build -c release --product mesh
echo
exec .build/release/mesh demo "$@"
