import MeshCRDT
import MeshMembership
import MeshReplication

extension MeshNode {
    /// Peers and their state, per-domain vectors, stable vectors, buffers, log sizes and lag.
    public func status() -> NodeStatus {
        let machine = replica
        var peers: [NodeStatus.Peer] = []
        for member in membership?.members ?? [] where member.id.bytes != nodeID.bytes {
            var lag: UInt64 = 0
            if let machine {
                for name in machine.domainNames {
                    guard let vector = machine.vector(of: name) else { continue }
                    let known = machine.knownVector(of: member.replicaID, in: name) ?? VersionVector()
                    lag += vector.excess(over: known)
                }
            }
            peers.append(
                NodeStatus.Peer(
                    nodeID: "\(member.id)", replicaID: member.replicaID.rawValue,
                    address: "\(member.address.host):\(member.address.port)", state: "\(member.status)",
                    incarnation: member.incarnation, isConnected: sessions[member.id] != nil, lag: lag))
        }
        var domains: [NodeStatus.Domain] = []
        if let machine {
            let live = (membership?.members ?? []).filter {
                $0.id.bytes != nodeID.bytes && ($0.status == .alive || $0.status == .suspect)
            }
            for name in machine.domainNames {
                guard let vector = machine.vector(of: name), let metrics = machine.metrics(of: name) else { continue }
                let lag =
                    live.map { vector.excess(over: machine.knownVector(of: $0.replicaID, in: name) ?? VersionVector()) }
                    .max() ?? 0
                domains.append(
                    NodeStatus.Domain(
                        name: name, vector: vector.dictionary, stable: metrics.stable.dictionary,
                        objectCount: machine.objects(in: name)?.count ?? 0, bufferedDeltas: metrics.bufferedCount,
                        bufferedBytes: metrics.bufferedBytes, logRecords: metrics.logCount, logBytes: metrics.logBytes,
                        replicationLag: lag))
            }
        }
        let durability: String =
            switch configuration.durability {
            case .always: "always"
            case .batched(let interval): "batched(\(interval) ms)"
            }
        return NodeStatus(
            nodeID: "\(nodeID)", replicaID: machine?.replicaID.rawValue ?? 0,
            address: "\(configuration.advertisedHost ?? configuration.transport.host):\(transport.listeningPort ?? 0)",
            peers: peers, domains: domains, localHealth: membership?.localHealth ?? 0,
            durability: durability, pendingWrites: writeWaiters.count, subscribers: subscribers.count,
            traffic: traffic, storageCommits: store?.statistics.commits ?? 0, storageFailed: storageFailure != nil,
            frontDoor: frontDoorStatus)
    }

    func updateGauges() {
        guard let machine = replica else { return }
        var buffered = 0
        var logged = 0
        for name in machine.domainNames {
            guard let domain = machine.metrics(of: name) else { continue }
            buffered += domain.bufferedCount
            logged += domain.logCount
            let before = lastDuplicates[name] ?? 0
            if domain.duplicates > before { metrics.duplicates.increment(by: domain.duplicates - before) }
            lastDuplicates[name] = domain.duplicates
        }
        metrics.buffered.record(buffered)
        metrics.logRecords.record(logged)
        var counts: [String: Int] = ["alive": 0, "suspect": 0, "dead": 0, "left": 0]
        for member in membership?.members ?? [] where member.id.bytes != nodeID.bytes {
            counts["\(member.status)", default: 0] += 1
        }
        for (state, gauge) in metrics.peers { gauge.record(counts[state] ?? 0) }
        metrics.lag.record(status().domains.map(\.replicationLag).max() ?? 0)
    }
}
