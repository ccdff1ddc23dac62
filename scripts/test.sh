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

step "tests"
swift test --skip-build 2>&1 | tee .build/test-output.txt
# `swift test` exits non-zero on failure (pipefail); also fail if nothing ran.
grep -Eq "Test run with [0-9]+ tests? .*passed|tests? passed" .build/test-output.txt || {
    echo "test.sh: no Swift Testing summary found" >&2
    exit 1
}

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

smoke=${FUZZ_SMOKE_SECONDS:-30}
if [ "$smoke" != "0" ]; then
    step "fuzz: replay Fuzz/FailCases"
    scripts/fuzz.sh --replay
    step "fuzz: smoke, ${smoke}s per target"
    scripts/fuzz.sh --smoke "$smoke"
fi

step "done"
