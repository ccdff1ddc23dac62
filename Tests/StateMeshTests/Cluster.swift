#if canImport(Glibc)
import Glibc
#endif
import MeshMembership
import MeshReplication
import MeshSecurity
import MeshStorage
import StateMesh
import Metrics
import Synchronization
import Testing
import Foundation

/// A few in-process nodes over real encrypted loopback sockets, with their data directories.
final class Cluster: Sendable {
    let identities: [NodeIdentity]
    let directories: [String]
    let clusterKey: [UInt8]
    let tuning: @Sendable (inout MeshNodeConfiguration) -> Void
    let nodes: Mutex<[MeshNode?]>
    let runners: Mutex<[Task<Void, any Error>?]>

    /// Creates `count` identities and data directories; no node runs yet.
    init(count: Int, tuning: @escaping @Sendable (inout MeshNodeConfiguration) -> Void = { _ in }) throws {
        identities = try (0..<count).map { _ in try NodeIdentity.generate() }
        var template = Array("/tmp/statemesh-node-XXXXXX".utf8CString)
        let base = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        directories = (0..<count).map { "\(base)/node-\($0)" }
        clusterKey = (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        self.tuning = tuning
        nodes = Mutex(Array(repeating: nil, count: count))
        runners = Mutex(Array(repeating: nil, count: count))
    }

    func configuration(_ index: Int, seedPort: Int?) throws -> MeshNodeConfiguration {
        let admission = try AdmissionPolicy(
            allowedPeers: Set(identities.map(\.nodeID)), epoch: 1, clusterKey: clusterKey)
        var configuration = MeshNodeConfiguration(
            identity: identities[index], admission: admission, dataDirectory: directories[index])
        configuration.replication.gossipIntervalMilliseconds = 50
        configuration.membership.probeIntervalMilliseconds = 200
        configuration.membership.probeTimeoutMilliseconds = 100
        if let seedPort { configuration.seeds = [MemberAddress(host: "127.0.0.1", port: seedPort)] }
        tuning(&configuration)
        return configuration
    }

    /// Starts node `index` (seeded with node 0 unless it is node 0) and waits until it runs.
    @discardableResult
    func start(_ index: Int, seedPort: Int? = nil, metricsFactory: (any MetricsFactory)? = nil) async throws -> MeshNode {
        let seed: Int?
        if let seedPort {
            seed = seedPort
        } else if index == 0 {
            seed = nil
        } else {
            seed = await node(0).listeningPort
        }
        let node = try MeshNode(configuration: try configuration(index, seedPort: seed), metricsFactory: metricsFactory)
        let runner = Task { try await node.run() }
        nodes.withLock { $0[index] = node }
        runners.withLock { $0[index] = runner }
        try await node.waitUntilRunning()
        return node
    }

    /// Starts every node, node 0 first (the others use it as their seed).
    func startAll() async throws {
        for index in identities.indices { try await start(index) }
    }

    func node(_ index: Int) -> MeshNode { nodes.withLock { $0[index]! } }

    var running: [MeshNode] { nodes.withLock { $0.compactMap { $0 } } }

    /// Stops node `index` gracefully.
    func stop(_ index: Int) async {
        guard let node = nodes.withLock({ $0[index] }) else { return }
        await node.shutdown()
        nodes.withLock { $0[index] = nil }
    }

    func stopAll() async {
        for index in identities.indices { await stop(index) }
    }

    /// Removes the data directories.
    func removeDirectories() {
        if let base = directories.first.map({ URL(fileURLWithPath: $0).deletingLastPathComponent() }) {
            try? FileManager.default.removeItem(at: base)
        }
    }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
func eventually(
    timeout: Duration = .seconds(60), every interval: Duration = .milliseconds(50),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}

/// Whether every node has the same objects and vectors in `domain`.
func converged(_ nodes: [MeshNode], domain: String = "default") async -> Bool {
    var first: [String: ObjectValue]?
    var firstVector: [String: UInt64]?
    for node in nodes {
        var objects: [String: ObjectValue] = [:]
        for key in await node.keys(in: domain) {
            objects[key] = await node.value(at: try! MeshAddress(domain: domain, path: key))
        }
        let vector = await node.status().domains.first { $0.name == domain }?.vector
        if let first, first != objects || firstVector != vector { return false }
        first = objects
        firstVector = vector
    }
    return true
}

/// Collects events from `stream` until `enough` says so, or `timeout` passes (then returns what came).
func collect(
    _ stream: AsyncThrowingStream<ChangeEvent, any Error>, timeout: Duration = .seconds(60),
    until enough: @escaping @Sendable ([ChangeEvent]) -> Bool
) async throws -> [ChangeEvent] {
    final class Received: Sendable { let events = Mutex<[ChangeEvent]>([]) }
    let received = Received()
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            for try await event in stream {
                let done = received.events.withLock { events in
                    events.append(event)
                    return enough(events)
                }
                if done { break }
            }
        }
        group.addTask { try await Task.sleep(for: timeout) }
        // Whichever finishes first ends the collection.
        _ = try await group.next()
        group.cancelAll()
    }
    return received.events.withLock { $0 }
}
