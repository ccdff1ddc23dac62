#!/usr/bin/env bash
# A real network partition: three `mesh node` processes, each in its own network namespace joined by
# a bridge in a namespace of its own (so the host's FORWARD chain, e.g. Docker's DROP policy with
# br_netfilter loaded, never sees their traffic), talk over veth links; iptables in node 3's namespace drops every packet to and from the
# other two (no resets: their sessions just go silent), both sides keep writing through redis-cli, the
# rules are removed, and every node must converge to the same values with no acknowledged write lost.
#
#   sudo scripts/partition-test.sh            (root: namespaces and iptables)
#   MESH=/path/to/mesh PARTITION_SECONDS=10 scripts/partition-test.sh
#
# Environment: MESH (a prebuilt `mesh`; default: this checkout's release build), PARTITION_SECONDS
# (how long node 3 stays cut off, default 8), CONVERGE_SECONDS (how long the mesh may take to agree
# after healing, default 60), LOGS (a directory to copy the nodes' logs into before cleaning up).
# Needs `ip`, `iptables` and `redis-cli` (scripts/bootstrap.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "partition-test: needs root (network namespaces, iptables)" >&2; exit 2; }
for tool in ip iptables redis-cli; do
    command -v "$tool" >/dev/null || { echo "partition-test: $tool is missing (scripts/bootstrap.sh)" >&2; exit 2; }
done
if [ -z "${MESH:-}" ]; then
    swift build -c release --product mesh >/dev/null
    MESH=$(swift build -c release --show-bin-path)/mesh
fi
MESH=$(realpath "$MESH")  # the nodes run from their own directories
[ -x "$MESH" ] || { echo "partition-test: $MESH is not an executable" >&2; exit 2; }
partition_seconds=${PARTITION_SECONDS:-8}
converge_seconds=${CONVERGE_SECONDS:-60}
scratch=$(mktemp -d)
prefix="smp$$"
bridge="${prefix}br"
pids=()

say() { echo "partition-test: $*"; }
fail() {
    echo "partition-test: FAIL: $*" >&2
    for n in 1 2 3; do
        echo "--- node $n log (last 20 lines)" >&2
        tail -20 "$scratch/node$n/log" >&2 2>/dev/null || true
    done
    exit 1
}
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "${LOGS:-}" ]; then
        mkdir -p "$LOGS"
        for n in 1 2 3; do cp "$scratch/node$n/log" "$LOGS/node$n.log" 2>/dev/null || true; done
    fi
    # Deleting a namespace deletes its end of each veth (and so the pair) and, for the switch, the bridge.
    for namespace in n1 n2 n3 sw; do ip netns delete "${prefix}$namespace" 2>/dev/null || true; done
    rm -rf "$scratch"
}
trap cleanup EXIT

# at N COMMAND...: runs COMMAND in node N's namespace.
at() { local n=$1; shift; ip netns exec "${prefix}n$n" "$@"; }
# cli N ARGS...: redis-cli against node N's front door (loopback of its namespace).
cli() { local n=$1; shift; at "$n" redis-cli -p 6379 "$@"; }
# integer N ARGS...: runs a command that answers an integer; fails unless it did.
integer() { local reply; reply=$(cli "$@") && [[ $reply =~ ^-?[0-9]+$ ]]; }

say "namespaces ${prefix}n1..3 on bridge $bridge in namespace ${prefix}sw (10.231.0.0/24)"
# The bridge lives in its own namespace: bridged frames go through that namespace's (empty) netfilter
# hooks, whatever the host's FORWARD policy and br_netfilter settings are.
ip netns add "${prefix}sw"
ip netns exec "${prefix}sw" ip link add "$bridge" type bridge
ip netns exec "${prefix}sw" ip link set "$bridge" up
for n in 1 2 3; do
    ip netns add "${prefix}n$n"
    ip link add "${prefix}v$n" netns "${prefix}sw" type veth peer name eth0 netns "${prefix}n$n"
    ip netns exec "${prefix}sw" ip link set "${prefix}v$n" master "$bridge" up
    at "$n" ip link set lo up
    at "$n" ip addr add "10.231.0.$n/24" dev eth0
    at "$n" ip link set eth0 up
done

keys=()
for n in 1 2 3; do
    mkdir -p "$scratch/node$n"
    extra=()
    [ "$n" = 1 ] && extra=(--cluster-key)
    public=$("$MESH" keygen --out "$scratch/node$n/keys" "${extra[@]}" | sed -n 's/^public key: *//p')
    [ -n "$public" ] || fail "mesh keygen printed no public key"
    keys+=("\"$public\"")
done
cp "$scratch/node1/keys/cluster.key" "$scratch/cluster.key"
chmod 600 "$scratch/cluster.key"
allowed=$(IFS=,; echo "${keys[*]}")
for n in 1 2 3; do
    seeds='[]'
    [ "$n" = 1 ] || seeds='["10.231.0.1:7946"]'
    cat >"$scratch/node$n/node.json" <<EOF
{
  "identity_file": "keys/identity.key",
  "cluster": {"key_file": "$scratch/cluster.key", "epoch": 1, "allowed_peers": [$allowed]},
  "listen": {"host": "10.231.0.$n", "port": 7946},
  "seeds": $seeds,
  "data_directory": "data",
  "status": {"port": 7947},
  "durability": {"mode": "always"},
  "replication": {"gossip_interval_ms": 100},
  "membership": {"probe_interval_ms": 200, "probe_timeout_ms": 100},
  "resp": {"host": "127.0.0.1", "port": 6379},
  "log": {"level": "info"}
}
EOF
    (cd "$scratch/node$n" && exec ip netns exec "${prefix}n$n" "$MESH" node --config node.json >log 2>&1) &
    pids+=($!)
done

# until_true SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s until it succeeds, or fails the test.
until_true() {
    local seconds=$1 description=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        [ $SECONDS -lt $deadline ] || fail "$description (waited ${seconds} s)"
        sleep 0.2
    done
}
all_answer() { for n in 1 2 3; do [ "$(cli "$n" PING 2>/dev/null)" = PONG ] || return 1; done; }
until_true 60 "the three front doors answer PING" all_answer

# same_get KEY VALUE / same_members KEY MEMBERS: every node reads VALUE at KEY (GET), or MEMBERS (the
# set's members sorted, space-separated).
same_get() { for n in 1 2 3; do [ "$(cli "$n" GET "$1")" = "$2" ] || return 1; done; }
same_members() {
    for n in 1 2 3; do [ "$(cli "$n" SMEMBERS "$1" | sort | tr '\n' ' ')" = "$2" ] || return 1; done
}

for n in 1 2 3; do integer "$n" INCR hits || fail "INCR on node $n"; done
until_true 30 "the three nodes agree on hits = 3 before the partition" same_get hits 3
say "connected: hits = 3 on every node"

say "cutting node 3 off for ${partition_seconds} s (iptables DROP both ways, no resets)"
for peer in 1 2; do
    at 3 iptables -A INPUT -s "10.231.0.$peer" -j DROP
    at 3 iptables -A OUTPUT -d "10.231.0.$peer" -j DROP
done
deadline=$((SECONDS + partition_seconds))
written1=0
written3=0
while [ $SECONDS -lt $deadline ]; do
    # Only acknowledged writes count: an integer reply, after the commit (durability always).
    if integer 1 INCRBY hits 10; then written1=$((written1 + 1)); integer 1 SADD seen "one-$written1" || fail "SADD on node 1"; fi
    if integer 3 INCRBY hits 100; then written3=$((written3 + 1)); integer 3 SADD seen "three-$written3" || fail "SADD on node 3"; fi
    [ "$(cli 2 SET owner two)" = OK ] || fail "SET on node 2"
    sleep 0.1
done
[ "$(cli 3 SET owner three)" = OK ] || fail "SET on node 3"
total=$((3 + 10 * written1 + 100 * written3))
# During the partition node 3 must not have seen node 1's writes (else the partition was not real).
only3=$((3 + 100 * written3))
[ "$(cli 3 GET hits)" = "$only3" ] || fail "node 3 read $(cli 3 GET hits) during the partition, expected its own $only3"
[ "$(cli 2 GET hits)" = "$((3 + 10 * written1))" ] || fail "node 2 read $(cli 2 GET hits) during the partition"
say "partitioned: node 1 wrote $written1 INCRBYs, node 3 $written3; node 3 reads $only3, node 2 $((3 + 10 * written1))"

say "healing"
at 3 iptables -F INPUT
at 3 iptables -F OUTPUT
start=$SECONDS
until_true "$converge_seconds" "hits = $total on every node after healing" same_get hits "$total"
members=$( { for i in $(seq 1 "$written1"); do echo "one-$i"; done; for i in $(seq 1 "$written3"); do echo "three-$i"; done; } | sort | tr '\n' ' ')
until_true "$converge_seconds" "the same $((written1 + written3)) members of seen on every node" same_members seen "$members"
# The LWW register: node 3's SET came last in real time; every node must agree on one winner.
agree_owner() { local a; a=$(cli 1 GET owner); [ -n "$a" ] && [ "$(cli 2 GET owner)" = "$a" ] && [ "$(cli 3 GET owner)" = "$a" ]; }
until_true "$converge_seconds" "one owner on every node" agree_owner
say "PASS: converged $((SECONDS - start)) s after healing: hits = $total, $((written1 + written3)) members, owner = $(cli 1 GET owner) on all three"
