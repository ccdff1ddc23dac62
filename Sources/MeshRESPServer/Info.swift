import MeshReplication
import StateMesh

extension RESPConnectionHandler {
    /// The `INFO` text: `# Section` headers and `field:value` lines, as Redis writes them.
    ///
    /// Sections: `server`, `clients`, `replication` (peers with state and lag, each domain's vector),
    /// `stats`, `keyspace`; none or `default`/`all`/`everything` gives all of them.
    func info(sections requested: [String], node: isolated MeshNode) -> String {
        let all = ["server", "clients", "replication", "stats", "keyspace"]
        let wanted =
            requested.isEmpty || requested.contains(where: { ["default", "all", "everything"].contains($0) })
            ? all : all.filter { requested.contains($0) }
        let status = node.status()
        var lines: [String] = []
        for section in wanted {
            if !lines.isEmpty { lines.append("") }
            switch section {
            case "server":
                let uptime = (ContinuousClock.now - state.startedAt).components.seconds
                lines += [
                    "# Server", "redis_version:\(compatibleRedisVersion)", "redis_mode:standalone",
                    "server_name:statemesh", "statemesh_node_id:\(status.nodeID)",
                    "statemesh_replica_id:\(status.replicaID)", "tcp_port:\(state.endpoint.split(separator: ":").last ?? "")",
                    "uptime_in_seconds:\(uptime)", "durability:\(status.durability)",
                    "default_domain:\(state.configuration.defaultDomain)",
                ]
            case "clients":
                lines += [
                    "# Clients", "connected_clients:\(state.clients.count)",
                    "maxclients:\(state.configuration.maximumClients)",
                    "blocked_clients:\(state.clients.values.count { $0.blocked != nil })",
                    "pubsub_clients:\(state.pubSubClientCount)",
                ]
            case "replication":
                // Every node accepts writes: each is a master of its own writes, a replica of the others'.
                lines += ["# Replication", "role:master", "connected_slaves:\(status.peers.count { $0.isConnected })"]
                lines.append("mesh_peers:\(status.peers.count)")
                for (index, peer) in status.peers.sorted(by: { $0.nodeID < $1.nodeID }).enumerated() {
                    lines.append(
                        "peer\(index):node=\(peer.nodeID),replica=\(peer.replicaID ?? 0),addr=\(peer.address),state=\(peer.state),connected=\(peer.isConnected ? 1 : 0),lag=\(peer.lag)")
                }
                for domain in status.domains {
                    let vector = domain.vector.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                    let stable = domain.stable.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                    lines.append(
                        "domain_\(domain.name):objects=\(domain.objectCount),lag=\(domain.replicationLag),buffered=\(domain.bufferedDeltas),log=\(domain.logRecords)")
                    lines.append("domain_\(domain.name)_vector:\(vector)")
                    lines.append("domain_\(domain.name)_stable:\(stable)")
                }
            case "stats":
                lines += [
                    "# Stats", "total_connections_received:\(state.connectionsReceived)",
                    "total_commands_processed:\(state.commandsProcessed)",
                    "rejected_connections:\(state.rejectedConnections)", "protocol_errors:\(state.protocolErrors)",
                    "keyspace_hits:\(state.keyspaceHits)", "keyspace_misses:\(state.keyspaceMisses)",
                    "pubsub_notifications_sent:\(state.notificationsSent)",
                    "mesh_local_writes:\(status.traffic.localWrites)",
                    "mesh_bytes_sent:\(status.traffic.bytesSent.values.reduce(0, +))",
                    "mesh_storage_commits:\(status.storageCommits)",
                    "mesh_pending_writes:\(status.pendingWrites)",
                ]
            default:  // keyspace
                let keys = node.domainNames.reduce(0) { $0 + node.visibleKeys(in: $1).count }
                lines += ["# Keyspace", "db0:keys=\(keys),expires=0,avg_ttl=0"]
            }
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }
}
