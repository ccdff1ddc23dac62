#!/usr/bin/env bash
# The RESP front door's compatibility checks: Tests/RESPCompat/compat.py (redis-py against a 3-node mesh:
# every type, convergence, concurrent writes, WAIT, keyspace notifications, SIGKILL, garbage), then a few
# redis-cli checks against a fresh 3-node mesh (compat.py --serve).
#
#   scripts/resp-compat.sh                  # builds `mesh` (debug) and runs both
#   MESH=.build/release/mesh scripts/resp-compat.sh
#   scripts/resp-compat.sh --redis-only     # only compat.py's generic checks, against a plain redis-server
#
# Environment:
#   MESH   a built `mesh` binary to use instead of building the debug one
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh >/dev/null
if [ "${1:-}" = "--redis-only" ]; then
    exec python3 Tests/RESPCompat/compat.py --redis-only
fi
if [ -z "${MESH:-}" ]; then
    swift build --product mesh >/dev/null
    MESH=.build/debug/mesh
fi
[ -x "$MESH" ] || { echo "resp-compat.sh: $MESH is not an executable" >&2; exit 1; }

echo "--- compat.py (redis-py)"
compat_status=0
python3 Tests/RESPCompat/compat.py --mesh "$MESH" || compat_status=$?

echo "--- redis-cli against a fresh 3-node mesh"
scratch=$(mktemp -d)
serve_pid=""
cleanup() {
    # compat.py --serve ends its nodes on SIGTERM (and they die with it in any case: PR_SET_PDEATHSIG).
    if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
    rm -rf "$scratch"
}
trap cleanup EXIT
python3 Tests/RESPCompat/compat.py --mesh "$MESH" --serve "$scratch/ports.json" >"$scratch/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 600); do
    [ -f "$scratch/ports.json" ] && break
    kill -0 "$serve_pid" 2>/dev/null || { cat "$scratch/serve.log" >&2; exit 1; }
    sleep 0.1
done
[ -f "$scratch/ports.json" ] || { echo "resp-compat.sh: the mesh did not start in 60 s" >&2; cat "$scratch/serve.log" >&2; exit 1; }
read -r p1 p2 p3 password < <(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(*d["resp"], d["password"]["C"])' "$scratch/ports.json")

failures=0
# check NAME EXPECTED COMMAND...: runs COMMAND, compares its whole output with EXPECTED.
check() {
    local name=$1 expected=$2 got
    shift 2
    got=$("$@" 2>&1) || true
    if [ "$got" = "$expected" ]; then
        echo "PASS  redis-cli: $name"
    else
        echo "FAIL  redis-cli: $name: expected $(printf %q "$expected"), got $(printf %q "$got")"
        failures=$((failures + 1))
    fi
}
# eventually NAME EXPECTED COMMAND...: the same, polled for up to 20 s (replication).
eventually() {
    local name=$1 expected=$2 got=""
    shift 2
    for _ in $(seq 1 200); do
        got=$("$@" 2>&1) || true
        [ "$got" = "$expected" ] && break
        sleep 0.1
    done
    check "$name" "$expected" printf %s "$got"
}
cli1() { redis-cli -p "$p1" "$@"; }
cli2() { redis-cli -p "$p2" "$@"; }
cli3() { redis-cli -p "$p3" -a "$password" --no-auth-warning "$@"; }

check "SET on node 1" "OK" cli1 SET rc:k v
check "GET on node 1" "v" cli1 GET rc:k
eventually "GET on node 2 (replicated)" "v" cli2 GET rc:k
eventually "GET on node 3 (replicated, AUTH)" "v" cli3 GET rc:k
check "INCR on node 2" "1" cli2 INCR rc:c
eventually "GET of the counter on node 3" "1" cli3 GET rc:c
check "INCRBY on node 3" "11" cli3 INCRBY rc:c 10
eventually "GET of the counter on node 1" "11" cli1 GET rc:c
check "SADD on node 1" "2" cli1 SADD rc:s a b
check "SADD on node 2" "1" cli2 SADD rc:s c
eventually "SMEMBERS on node 3 (sorted)" "$(printf 'a\nb\nc')" sh -c "redis-cli -p $p3 -a $password --no-auth-warning SMEMBERS rc:s | sort"
check "SET then WAIT 2 5000 on one connection" "$(printf 'OK\n2')" sh -c "printf 'SET rc:w 1\nWAIT 2 5000\n' | redis-cli -p $p1"
check "SADD on a string key: WRONGTYPE" "WRONGTYPE Operation against a key holding the wrong kind of value" cli1 SADD rc:k x
check "TYPE of a set" "set" cli2 TYPE rc:s
check "GET without AUTH on the password node" "yes" sh -c "redis-cli -p $p3 GET rc:k 2>&1 | grep -qi 'NOAUTH\|auth' && echo yes"
check "INFO replication names peers" "yes" sh -c "redis-cli -p $p1 INFO replication | grep -qi peer && echo yes"
check "PING still answered" "PONG" cli1 PING

# The redis-cli checks run even when compat.py failed (they are quick and say more); either fails the script.
if [ "$compat_status" -ne 0 ] || [ "$failures" -ne 0 ]; then
    echo "resp-compat.sh: compat.py exit status $compat_status, $failures redis-cli check(s) failed" >&2
    exit 1
fi
echo "resp-compat.sh: compat.py and every redis-cli check passed"
