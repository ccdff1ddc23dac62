# Sourced (not run) by bench-resp.sh, resp-cpu.sh and resp-ab.sh: starts the servers their benchmarks
# measure, the same way for all three. Each function runs in the caller's shell and sets globals; the
# caller stops the processes it was given (the *_SERVE / REDIS_PID process IDs) when it exits.

# start_resp_mesh MESH_BINARY DIRECTORY: a 3-node mesh on 127.0.0.1 (Tests/RESPCompat/compat.py --serve:
# durability batched with 5 ms group commits, gossip every 50 ms), returning once its nodes have met.
# Sets RESP_MESH_SERVE (compat.py's process ID; the nodes are its children), RESP_MESH_PORTS (the three
# RESP ports, node 1 first), RESP_MESH_PASSWORD (node 3's RESP password) and RESP_MESH_PIDS (the three
# node processes, node 1 first). Exits with the serve log on stderr if the mesh does not come up.
start_resp_mesh() {
    local binary=$1 directory=$2 pid
    python3 Tests/RESPCompat/compat.py --mesh "$binary" --serve "$directory/ports.json" --durability batched \
        --interval-ms 5 >"$directory/serve.log" 2>&1 &
    RESP_MESH_SERVE=$!
    for _ in $(seq 1 600); do
        [ -f "$directory/ports.json" ] && break
        kill -0 "$RESP_MESH_SERVE" 2>/dev/null || break
        sleep 0.1
    done
    if [ ! -f "$directory/ports.json" ]; then
        echo "$(basename "$0"): the mesh of $binary did not start:" >&2
        cat "$directory/serve.log" >&2
        exit 1
    fi
    read -r -a RESP_MESH_PORTS < <(python3 -c 'import json, sys; print(*json.load(open(sys.argv[1]))["resp"])' "$directory/ports.json")
    RESP_MESH_PASSWORD=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["password"]["C"])' "$directory/ports.json")
    # Node 1 first: order compat.py's children by whether they listen on node 1's RESP port.
    RESP_MESH_PIDS=()
    for pid in $(pgrep -P "$RESP_MESH_SERVE"); do
        if ss -ltnp 2>/dev/null | grep -q ":${RESP_MESH_PORTS[0]} .*pid=$pid,"; then
            RESP_MESH_PIDS=("$pid" "${RESP_MESH_PIDS[@]}")
        else
            RESP_MESH_PIDS+=("$pid")
        fi
    done
    if [ ${#RESP_MESH_PIDS[@]} -ne 3 ]; then
        echo "$(basename "$0"): expected 3 node processes under $RESP_MESH_SERVE, found ${#RESP_MESH_PIDS[@]}" >&2
        exit 1
    fi
}

# start_redis DIRECTORY: a plain redis-server on 127.0.0.1 (--save '' --appendonly no: no persistence),
# returning once it answers PING. Sets REDIS_PID and REDIS_PORT.
start_redis() {
    local directory=$1
    REDIS_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$directory" \
        >"$directory/redis.log" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "$(basename "$0"): redis-server did not start:" >&2
    cat "$directory/redis.log" >&2
    exit 1
}

# start_redis_replicas DIRECTORY COUNT: COUNT redis-servers replicating the one start_redis started
# (--replicaof, no persistence), returning once the primary reports them all online. Sets
# REDIS_REPLICA_PIDS. The primary's replication buffer streams every write to each replica, as a
# mesh node pushes every write to its peers.
start_redis_replicas() {
    local directory=$1 count=$2 index port
    REDIS_REPLICA_PIDS=()
    for index in $(seq 1 "$count"); do
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        mkdir -p "$directory/replica-$index"
        redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$directory/replica-$index" \
            --replicaof 127.0.0.1 "$REDIS_PORT" >"$directory/replica-$index.log" 2>&1 &
        REDIS_REPLICA_PIDS+=("$!")
    done
    for _ in $(seq 1 100); do
        [ "$(redis-cli -p "$REDIS_PORT" INFO replication | grep -c 'state=online')" -ge "$count" ] && return 0
        sleep 0.1
    done
    echo "$(basename "$0"): the redis replicas did not come online:" >&2
    redis-cli -p "$REDIS_PORT" INFO replication >&2 || true
    exit 1
}
