#!/usr/bin/env bash
# Paired timing of two mesh-sim builds: runs both at once, one per core, with the same options, and
# prints each one's user CPU seconds and whether their reports agree (elapsed_seconds and malloc_huge_pages aside).
#
#   scripts/sim-ab.sh OLD_BINARY NEW_BINARY [mesh-sim options]
#   (default options: the N=1000 proxy, --nodes 1000 --writes 10000 --log-cap 8192)
#
# On a shared machine one run's CPU time moves by ±15% with the load; two runs side by side see the
# same load, so their difference is mostly what the change did. Mostly: A/A pairs of one build agreed
# within 1% on some days and differed by 4.5% and 8.8% on another (2026-11-22), so run an A/A pair
# first, and several pairs in both orders. Needs two free cores and twice the memory of one run.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,10p' "$0"; exit 2; }
old=$1
new=$2
shift 2
options=("$@")
[ ${#options[@]} -gt 0 ] || options=(--nodes 1000 --writes 10000 --log-cap 8192)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/time -f %U -o "$work/old.time" "$old" "${options[@]}" --json >"$work/old.json" &
/usr/bin/time -f %U -o "$work/new.time" "$new" "${options[@]}" --json >"$work/new.json" &
wait
same=differ
# Fields about the run's time, not its outcome, are left out of the comparison.
strip() { sed -E 's/"elapsed_seconds":[0-9.e-]*,?//; s/"malloc_huge_pages":[a-z]*,?//' "$1"; }
if cmp -s <(strip "$work/old.json") <(strip "$work/new.json"); then
    same=identical
fi
echo "old $(cat "$work/old.time") s user, new $(cat "$work/new.time") s user, reports $same, load $(cut -d' ' -f1 /proc/loadavg)"
