import ArgumentParser
import Foundation
import Logging
import MeshMembership
import MeshReplication
import MeshSecurity
import MeshTransport
import StateMesh

/// `mesh demo`: a guided run of a few nodes on loopback, for someone who has never used StateMesh.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a few nodes on this machine, partition one, heal, and watch them converge.",
        discussion: """
            Generates keys in a temporary directory, starts the nodes on 127.0.0.1 over the encrypted
            transport, writes counters, sets and maps on every node, cuts one node off while both sides keep
            writing, heals the partition and waits until every node holds identical state. Cleans up after
            itself and exits 0 when all nodes converged.
            """
    )

    @Option(name: .long, help: "How many nodes to run (3-5).")
    var nodes = 4

    @Option(name: .long, help: "Writes per node in each phase.")
    var writes = 25

    @Flag(name: .long, help: "Keep the temporary directory (keys and databases) for inspection.")
    var keep = false

    func validate() throws {
        guard (3...5).contains(nodes) else { throw ValidationError("--nodes must be 3, 4 or 5") }
        guard (1...10_000).contains(writes) else { throw ValidationError("--writes must be in 1...10000") }
    }

    func run() async throws {
        ProcessAllocator.tuneForStreamingUnlessOptedOut()  // see README, Configuration
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .error
            return handler
        }
        let names = ["A", "B", "C", "D", "E"].prefix(nodes).map { $0 }
        let directory = NSTemporaryDirectory() + "statemesh-demo-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer {
            if keep {
                print("\nkept \(directory)")
            } else {
                try? FileManager.default.removeItem(atPath: directory)
            }
        }
        let started = ContinuousClock.now

        say("""
            StateMesh demo: \(nodes) nodes on this machine share state with no leader.
            Every node accepts writes on its own; changes travel as small encrypted deltas between the nodes,
            and conflicting writes merge by rules that give every node the same answer (CRDTs).

            """)

        // Keys: one identity per node, one shared cluster key; every node admits the others.
        let identities = try names.map { _ in try NodeIdentity.generate() }
        var generator = SystemRandomNumberGenerator()
        let clusterKey = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        // The key files a real deployment would have (`mesh keygen`), written as real ones are.
        for (name, identity) in zip(names, identities) { try identity.save(to: "\(directory)/\(name).identity.key") }
        guard FileManager.default.createFile(
            atPath: "\(directory)/cluster.key", contents: Data(clusterKey), attributes: [.posixPermissions: 0o600])
        else { throw failure("cannot write \(directory)/cluster.key") }
        let admission = try AdmissionPolicy(
            allowedPeers: Set(identities.map(\.nodeID)), epoch: 1, clusterKey: clusterKey)
        step("keys", "\(nodes) node identities (Ed25519) and one cluster key in \(directory)")

        var meshNodes: [MeshNode] = []
        var runners: [Task<Void, any Error>] = []
        for (index, name) in names.enumerated() {
            var configuration = MeshNodeConfiguration(
                identity: identities[index], admission: admission, dataDirectory: "\(directory)/\(name)")
            configuration.replication.gossipIntervalMilliseconds = 50
            configuration.membership.probeIntervalMilliseconds = 200
            configuration.membership.probeTimeoutMilliseconds = 100
            if let first = meshNodes.first, let port = await first.listeningPort {
                configuration.seeds = [MemberAddress(host: "127.0.0.1", port: port)]
            }
            let node = try MeshNode(configuration: configuration)
            runners.append(Task { try await node.run() })
            try await node.waitUntilRunning()
            meshNodes.append(node)
            let port = await node.listeningPort ?? 0
            step("start", "node \(name) listens on 127.0.0.1:\(port)\(index == 0 ? "" : ", meets the mesh through A")")
        }
        let all = Array(meshNodes.indices)

        let met = try await wait("the nodes find each other (SWIM membership over the encrypted transport)") {
            for node in meshNodes where await node.status().peers.filter({ $0.state == "alive" }).count < nodes - 1 {
                return false
            }
            return true
        }
        guard met else { throw failure("the nodes did not find each other") }

        // Phase 1: everyone writes.
        say("\n1. Every node writes: a shared counter, a set of who is online, and a status map.")
        try await writePhase(meshNodes, names: names, indices: all, phase: "first")
        try await showConvergence(meshNodes, names: names, indices: all, reason: "after the first writes")

        // Phase 2: partition the last node; both sides keep writing.
        let isolated = nodes - 1
        let majority = Array(0..<isolated)
        say("""

            2. Node \(names[isolated]) is cut off: all traffic between it and the others is dropped.
               Both sides keep accepting writes; nobody waits for anybody.
            """)
        let isolatedID = meshNodes[isolated].nodeID
        await meshNodes[isolated].block(Set(majority.map { meshNodes[$0].nodeID }))
        for index in majority { await meshNodes[index].block([isolatedID]) }
        try await writePhase(meshNodes, names: names, indices: all, phase: "partitioned")
        // Concurrently: the cut-off node removes A's first entry while A adds it back.
        try await meshNodes[isolated].set("fabric://default/fleet/online").remove("A-first")
        try await meshNodes[0].set("fabric://default/fleet/online").insert("A-first")
        step("conflict", "\(names[isolated]) removes A-first while A adds it back; both set fleet/status mode")
        try await meshNodes[isolated].map("fabric://default/fleet/status").set("mode", to: "offline-edits")
        try await meshNodes[0].map("fabric://default/fleet/status").set("mode", to: "online")
        let inside = try await meshNodes[0].counter("fabric://default/fleet/requests").value()
        let outside = try await meshNodes[isolated].counter("fabric://default/fleet/requests").value()
        step(
            "diverged",
            "A counts \(inside) requests, \(names[isolated]) counts \(outside): each side sees only its own writes")
        let noticed = try await wait("membership notices \(names[isolated]) is gone") {
            await meshNodes[0].status().peers.first { $0.nodeID == "\(isolatedID)" }.map {
                $0.state == "suspect" || $0.state == "dead"
            } ?? false
        }
        if noticed {
            let state = await meshNodes[0].status().peers.first { $0.nodeID == "\(isolatedID)" }?.state ?? "?"
            step("membership", "A now considers \(names[isolated]) \(state)")
        }

        // Phase 3: heal.
        say("\n3. The partition heals. Nothing is replayed by hand: gossip and anti-entropy repair the gap.")
        await meshNodes[isolated].unblock(Set(majority.map { meshNodes[$0].nodeID }))
        for index in majority { await meshNodes[index].unblock([isolatedID]) }
        try await showConvergence(meshNodes, names: names, indices: all, reason: "after healing")

        let requests = try await meshNodes[isolated].counter("fabric://default/fleet/requests").value()
        let expected = Int64(nodes * 2 * (1...writes).reduce(0, +))
        let online = try await meshNodes[1].set("fabric://default/fleet/online").elements()
        let mode = try await meshNodes[2].map("fabric://default/fleet/status").value(forField: "mode") ?? "-"
        say("""

            What every node now holds:
              fleet/requests = \(requests) (the sum of all \(nodes * 2 * writes) increments on both sides: \(expected))
              fleet/online   = \(online.sorted().joined(separator: ", "))
                               (every remove applied to what its node had seen; A-first survives because
                               A's add was concurrent with \(names[isolated])'s remove: an add wins)
              fleet/status   mode = \(mode) (two concurrent writes to one field: the later hybrid-clock timestamp wins, everywhere)
            """)
        guard requests == expected else { throw failure("the counter is \(requests), expected \(expected)") }
        guard online.contains("A-first") else { throw failure("the concurrent add of A-first was lost") }

        var bytes: UInt64 = 0
        var deltaBytes: UInt64 = 0
        var writesMade: UInt64 = 0
        for node in meshNodes {
            let traffic = await node.status().traffic
            bytes += traffic.bytesSent.values.reduce(0, +)
            deltaBytes += traffic.localDeltaBytes
            writesMade += traffic.localWrites
        }
        let lowerBound = deltaBytes * UInt64(nodes - 1)
        say("""

            Traffic: \(writesMade) writes made \(deltaBytes) bytes of deltas; the nodes sent \(bytes) bytes in all
            (membership and anti-entropy included, before encryption); the least any protocol could send is
            (N-1) x delta bytes = \(lowerBound).
            """)

        for node in meshNodes { await node.shutdown() }
        for runner in runners { _ = try? await runner.value }
        let elapsed = ContinuousClock.now - started
        say("\nAll \(nodes) nodes converged to identical state. Demo finished in \(format(elapsed)).")
    }

    // MARK: Steps

    private func writePhase(_ nodes: [MeshNode], names: [String], indices: [Int], phase: String) async throws {
        for index in indices {
            let node = nodes[index]
            for step in 1...writes {
                try await node.counter("fabric://default/fleet/requests").increment(by: UInt64(step))
            }
            try await node.set("fabric://default/fleet/online").insert("\(names[index])-\(phase)")
            if phase == "partitioned" {
                try await node.set("fabric://default/fleet/online").remove("\(names[index])-first")
            }
            try await node.map("fabric://default/fleet/agents").set(names[index], to: phase)
        }
        let list = indices.map { names[$0] }.joined(separator: ", ")
        step("write", "\(list): \(writes) increments each, one set add\(phase == "partitioned" ? " and one remove" : ""), one map field")
    }

    private func showConvergence(_ nodes: [MeshNode], names: [String], indices: [Int], reason: String) async throws {
        let start = ContinuousClock.now
        let converged = try await wait("all nodes converge \(reason)") { await identical(nodes) }
        guard converged else { throw failure("the nodes did not converge \(reason)") }
        let elapsed = ContinuousClock.now - start
        for index in indices {
            let node = nodes[index]
            let requests = try await node.counter("fabric://default/fleet/requests").value()
            let online = try await node.set("fabric://default/fleet/online").elements().count
            let agents = try await node.map("fabric://default/fleet/agents").entries().count
            step(names[index], "requests=\(requests) online=\(online) agents=\(agents)")
        }
        step("converged", "in \(format(elapsed)) \(reason)")
    }

    private func identical(_ nodes: [MeshNode]) async -> Bool {
        var reference: [String: ObjectValue]?
        for node in nodes {
            var objects: [String: ObjectValue] = [:]
            for key in await node.keys(in: "default") {
                if let address = try? MeshAddress(domain: "default", path: key) {
                    objects[key] = await node.value(at: address)
                }
            }
            if let reference, reference != objects { return false }
            reference = objects
        }
        return true
    }

    /// Polls `condition` for up to 30 s, printing a dot every half second; returns whether it held.
    private func wait(_ what: String, _ condition: () async throws -> Bool) async throws -> Bool {
        FileHandle.standardOutput.write(Data("   waiting: \(what) ".utf8))
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        var lastDot = ContinuousClock.now
        while ContinuousClock.now < deadline {
            if try await condition() {
                print(" done")
                return true
            }
            if ContinuousClock.now - lastDot > .milliseconds(500) {
                FileHandle.standardOutput.write(Data(".".utf8))
                lastDot = ContinuousClock.now
            }
            try await Task.sleep(for: .milliseconds(25))
        }
        print(" timed out")
        return false
    }

    private func say(_ text: String) { print(text) }

    private func step(_ label: String, _ text: String) {
        let padded = label.count >= 10 ? label : label + String(repeating: " ", count: 10 - label.count)
        print("   [\(padded)] \(text)")
    }

    private func failure(_ text: String) -> ValidationError {
        print("\nFAILED: \(text)")
        return ValidationError("demo failed: \(text)")
    }

    private func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let milliseconds = seconds * 1_000 + attoseconds / 1_000_000_000_000_000
        return milliseconds < 1_000 ? "\(milliseconds) ms" : String(format: "%.1f s", Double(milliseconds) / 1_000)
    }
}
