import Foundation
import StateMesh
import Testing

/// The README's node example, kept compiling and true (with a seed that is a real second node).
@Suite("README node example")
struct ReadmeNodeExampleTests {
    /// The example runs as written against a two-node mesh: the counter holds 3, the majority write returns.
    @Test func nodeExampleRuns() async throws {
        let base = NSTemporaryDirectory() + "statemesh-readme-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let clusterKey = [UInt8](repeating: 5, count: 32)
        let identity = try NodeIdentity.generate()
        let peerIdentity = try NodeIdentity.generate()
        let allowed: Set<NodeID> = [identity.nodeID, peerIdentity.nodeID]

        // The seed the example dials: another node.
        var peerConfiguration = MeshNodeConfiguration(
            identity: peerIdentity, admission: try AdmissionPolicy(allowedPeers: allowed, epoch: 1, clusterKey: clusterKey),
            dataDirectory: "\(base)/peer")
        peerConfiguration.domains = [DomainConfiguration(name: "fleet")]
        let peer = try MeshNode(configuration: peerConfiguration)
        let peerRunning = Task { try await peer.run() }
        try await peer.waitUntilRunning()
        let seedPort = try #require(await peer.listeningPort)
        let directory = "\(base)/node"

        // --- as in the README (allow-list, seed address filled in) ---
        let admission = try AdmissionPolicy(allowedPeers: allowed, epoch: 1, clusterKey: clusterKey)
        var configuration = MeshNodeConfiguration(identity: identity, admission: admission, dataDirectory: directory)
        configuration.domains = [DomainConfiguration(name: "fleet")]
        configuration.seeds = [MemberAddress(host: "127.0.0.1", port: seedPort)]
        let node = try MeshNode(configuration: configuration)
        let running = Task { try await node.run() }
        try await node.waitUntilRunning()
        #expect(await eventually { await node.status().peers.first?.state == "alive" })

        let requests = try node.counter("fabric://fleet/requests")
        let changes = try await node.changes(matching: "fabric://fleet/**")
        try await requests.increment(by: 3)
        try await node.set("fabric://fleet/agent-17/tasks").insert("scan")
        try await node.map("fabric://fleet/agent-17/status").set(
            "state", to: "busy", options: WriteOptions(concern: .majority, timeout: .seconds(2)))
        let first = try await collect(changes) { $0.count == 1 }
        #expect(first.first?.address.description == "fabric://fleet/requests")
        #expect(try await requests.value() == 3)
        await node.shutdown()
        _ = try? await running.value
        // --- end ---

        // The majority write reached the peer before it returned.
        #expect(try await peer.map("fabric://fleet/agent-17/status").value(forField: "state") == "busy")
        await peer.shutdown()
        _ = try? await peerRunning.value
    }
}
