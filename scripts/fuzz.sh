#!/usr/bin/env bash
# Build and run the libFuzzer targets of the Fuzz/ sub-package.
#
#   scripts/fuzz.sh TARGET SECONDS   run one fuzzer for SECONDS (e.g. FuzzDecode 600)
#   scripts/fuzz.sh --smoke SECONDS  run every fuzzer for SECONDS each (CI: 30)
#   scripts/fuzz.sh --replay         run every fuzzer once over its seed corpus and
#                                    every file in Fuzz/FailCases/TARGET/ (CI)
#   scripts/fuzz.sh --list           print the fuzzers
#
# Targets are the folders under Fuzz/Sources. Each run works on a copy of
# Fuzz/Corpus/TARGET in Fuzz/corpus-work/TARGET (git-ignored, kept between runs
# so coverage accumulates), writes crashing inputs to Fuzz/artifacts/TARGET/
# (git-ignored) and the full libFuzzer log to Fuzz/artifacts/TARGET.log. It
# prints the number of executions and exits non-zero on a crash, a leak, a
# timeout (an input taking over FUZZ_TIMEOUT seconds, default 10) or running out
# of memory. A crash's input belongs in Fuzz/FailCases/TARGET/ together with a
# unit test, once fixed.
#
# Per-target libFuzzer flags live in Fuzz/Options/TARGET.options.
#
# Environment: FUZZ_SCRATCH (build directory, default Fuzz/.build-fuzz),
# FUZZ_TIMEOUT, FUZZ_RSS_LIMIT_MB (default 2048), FUZZ_FLAGS (extra libFuzzer flags).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUZZ="$ROOT/Fuzz"
SCRATCH="${FUZZ_SCRATCH:-$FUZZ/.build-fuzz}"
TIMEOUT="${FUZZ_TIMEOUT:-10}"
RSS_LIMIT="${FUZZ_RSS_LIMIT_MB:-2048}"
# shellcheck disable=SC2206
EXTRA_FLAGS=(${FUZZ_FLAGS:-})

# `--sanitize=fuzzer` tells SwiftPM that libFuzzer provides `main`; the combined
# `-Xswiftc -sanitize=fuzzer,address` comes last on every swiftc command line and
# is what takes effect. (Given as `--sanitize=fuzzer --sanitize=address`, swiftc
# keeps only the last flag, builds without coverage instrumentation, and libFuzzer
# fuzzes blind: "no interesting inputs were found".)
BUILD_FLAGS=(-c release --scratch-path "$SCRATCH" --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld)

usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}

targets() {
    local dir
    for dir in "$FUZZ"/Sources/*/; do
        [ -d "$dir" ] && basename "$dir"
    done
}

# Builds TARGET and prints the path of its binary.
build() {
    local target=$1
    if [ ! -d "$FUZZ/Sources/$target" ]; then
        echo "fuzz.sh: no fuzzer '$target' (known: $(targets | tr '\n' ' '))" >&2
        exit 2
    fi
    echo "fuzz.sh: building $target (release, libFuzzer + AddressSanitizer)" >&2
    # A failed build must stop the run: an old binary would be fuzzed silently.
    if ! swift build --package-path "$FUZZ" "${BUILD_FLAGS[@]}" --product "$target" >&2; then
        echo "fuzz.sh: building $target failed" >&2
        return 1
    fi
    echo "$(swift build --package-path "$FUZZ" "${BUILD_FLAGS[@]}" --show-bin-path)/$target"
}

# The libFuzzer flags every run of TARGET uses: the common ones, then the
# target's own from Fuzz/Options/TARGET.options (e.g. -max_len, -malloc_limit_mb).
common_flags() {
    local target=$1
    echo "-timeout=$TIMEOUT -rss_limit_mb=$RSS_LIMIT -print_final_stats=1"
    if [ -f "$FUZZ/Options/$target.options" ]; then cat "$FUZZ/Options/$target.options"; fi
}

# Runs TARGET for SECONDS; returns non-zero on a crash.
run_one() {
    local target=$1 seconds=$2
    local binary work artifacts log status
    binary=$(build "$target") || return 1
    work="$FUZZ/corpus-work/$target"
    artifacts="$FUZZ/artifacts/$target"
    log="$FUZZ/artifacts/$target.log"
    mkdir -p "$work" "$artifacts"
    if [ -d "$FUZZ/Corpus/$target" ]; then
        # Refresh the seeds; keep what earlier runs found.
        find "$FUZZ/Corpus/$target" -maxdepth 1 -type f ! -name '.gitkeep' -exec cp -f {} "$work/" \;
    fi
    echo "fuzz.sh: running $target for ${seconds}s on $work (log: $log)"
    status=0
    # shellcheck disable=SC2046
    "$binary" $(common_flags "$target") -max_total_time="$seconds" -artifact_prefix="$artifacts/" \
        "${EXTRA_FLAGS[@]}" "$work" >"$log" 2>&1 || status=$?
    local execs
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    if [ -z "$execs" ]; then
        execs=$(grep -oE '^Done [0-9]+ runs' "$log" | tail -1 | awk '{print $2}')
    fi
    echo "fuzz.sh: $target: ${execs:-unknown} executions in ${seconds}s, corpus $(find "$work" -type f | wc -l) inputs, exit status $status"
    if [ "$status" -ne 0 ]; then
        echo "fuzz.sh: $target FAILED; last lines of the log:" >&2
        tail -40 "$log" >&2
        echo "fuzz.sh: inputs in $artifacts:" >&2
        ls -l "$artifacts" >&2
        return 1
    fi
}

# Runs every target once over its seed corpus and its fail cases.
replay() {
    local failed=0 target binary inputs
    for target in $(targets); do
        inputs=()
        if [ -d "$FUZZ/FailCases/$target" ]; then
            while IFS= read -r -d '' file; do inputs+=("$file"); done \
                < <(find "$FUZZ/FailCases/$target" -maxdepth 1 -type f ! -name '.gitkeep' -print0 | sort -z)
        fi
        local corpus=()
        if [ -d "$FUZZ/Corpus/$target" ] && [ -n "$(find "$FUZZ/Corpus/$target" -maxdepth 1 -type f ! -name '.gitkeep')" ]; then
            corpus=("$FUZZ/Corpus/$target")
        fi
        if [ ${#inputs[@]} -eq 0 ] && [ ${#corpus[@]} -eq 0 ]; then
            echo "fuzz.sh: $target: nothing to replay"
            continue
        fi
        if ! binary=$(build "$target"); then
            failed=1
            continue
        fi
        if [ ${#corpus[@]} -gt 0 ]; then
            # shellcheck disable=SC2046
            if ! "$binary" $(common_flags "$target") -runs=0 "${corpus[@]}" >"$FUZZ/artifacts/replay-$target.log" 2>&1; then
                echo "fuzz.sh: $target FAILED on its seed corpus:" >&2
                tail -40 "$FUZZ/artifacts/replay-$target.log" >&2
                failed=1
            fi
        fi
        if [ ${#inputs[@]} -gt 0 ]; then
            # Files (not folders) as arguments: libFuzzer runs each once and exits.
            # shellcheck disable=SC2046
            if ! "$binary" $(common_flags "$target") "${inputs[@]}" >"$FUZZ/artifacts/replay-$target.log" 2>&1; then
                echo "fuzz.sh: $target FAILED on a fail case:" >&2
                tail -40 "$FUZZ/artifacts/replay-$target.log" >&2
                failed=1
            fi
        fi
        rm -f "$FUZZ/artifacts/replay-$target.log"
        echo "fuzz.sh: $target: replayed ${#inputs[@]} fail cases and the seed corpus: ok"
    done
    return $failed
}

[ $# -ge 1 ] || usage
case "$1" in
--list)
    targets
    ;;
--replay)
    mkdir -p "$FUZZ/artifacts"
    replay
    ;;
--smoke)
    [ $# -eq 2 ] || usage
    failed=()
    for target in $(targets); do
        run_one "$target" "$2" || failed+=("$target")
    done
    if [ ${#failed[@]} -gt 0 ]; then
        echo "fuzz.sh: failed: ${failed[*]}" >&2
        exit 1
    fi
    echo "fuzz.sh: every fuzzer ran ${2}s without a crash"
    ;;
-h | --help)
    usage
    ;;
*)
    [ $# -eq 2 ] || usage
    run_one "$1" "$2"
    ;;
esac
