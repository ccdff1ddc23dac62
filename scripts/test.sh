#!/usr/bin/env bash
# The test command (what CI runs): bootstrap, build with warnings as errors,
# run every test, `mesh demo`, the three examples, the RESP compatibility checks
# (scripts/resp-compat.sh: redis-py and redis-cli against three `mesh node` processes), then the fuzz smoke (every fuzz target for FUZZ_SMOKE_SECONDS,
# default 30, and a replay of Fuzz/FailCases/).
#
# Environment:
#   FUZZ_SMOKE_SECONDS   seconds per fuzz target in the smoke (0 skips fuzzing)
#   MESH_SIM_SEEDS       simulated schedules per property sweep (tests' default if unset)
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
step() { echo; echo "==> $* ($(( $(date +%s) - started ))s)"; }

step "bootstrap"
scripts/bootstrap.sh

# Warnings are errors for every target of ours (Package.swift: treatAllWarnings).
step "build (debug, warnings as errors)"
swift build --build-tests

# Two runs of the one test binary. The first holds every suite that computes
# (CRDT laws, codecs, replication state machines, thousands of simulated
# schedules); the second every suite that runs real nodes, sockets and child
# processes against wall-clock timeouts. Sharing two cores with the simulator
# sweeps made those time out on a busy CI machine. `--skip` and `--filter` take
# the same pattern, so every test runs exactly once (a new test module lands in
# the first run unless it is named here).
io_suites='^(MeshTransportTests|StateMeshTests|MeshRESPServerTests)\.'
run_tests() {
    local name=$1; shift
    local output=.build/test-output-$name.txt
    local status=0
    swift test --skip-build "$@" 2>&1 | tee "$output" || status=$?
    if [ "$status" != "0" ]; then
        # The nodes' logs run to thousands of lines; repeat what failed at the end,
        # where a CI log's tail shows it.
        echo
        echo "==> test failures in the $name run (swift test exited $status; whole output in $output)"
        grep -E -A6 "recorded an issue|^error:|Fatal error|Test run with" "$output" \
            | grep -Ev " (info|notice|debug|trace) statemesh" | tail -n 80 || true
        exit "$status"
    fi
    grep -Eq "Test run with [0-9]+ tests? .*passed" "$output" || {
        echo "test.sh: no Swift Testing summary in the $name run" >&2
        exit 1
    }
}

step "tests: computation (CRDTs, codecs, replication, simulation, ...)"
run_tests computation --skip "$io_suites"

step "tests: nodes, sockets and processes"
run_tests io --filter "$io_suites"

step "mesh demo (must end with its success line)"
.build/debug/mesh demo 2>&1 | tee .build/demo-output.txt
grep -Eq "^All [0-9]+ nodes converged to identical state" .build/demo-output.txt || {
    echo "test.sh: mesh demo did not report convergence" >&2
    exit 1
}

step "examples (each must end with PASS)"
scripts/examples.sh

step "RESP compatibility (compat.py and redis-cli against a 3-node mesh)"
MESH=.build/debug/mesh scripts/resp-compat.sh

step "network partition (three nodes in network namespaces, cut apart with iptables)"
if [ "$(id -u)" = 0 ]; then
    MESH=.build/debug/mesh scripts/partition-test.sh
else
    echo "test.sh: skipped: network namespaces and iptables need root (run scripts/partition-test.sh as root)"
fi

smoke=${FUZZ_SMOKE_SECONDS:-30}
if [ "$smoke" != "0" ]; then
    step "fuzz: replay Fuzz/FailCases"
    scripts/fuzz.sh --replay
    step "fuzz: smoke, ${smoke}s per target"
    scripts/fuzz.sh --smoke "$smoke"
fi

step "done"
