// node-bench: N StateMesh nodes in one process over encrypted loopback TCP, W mixed writes spread
// over all nodes by concurrent writers, then the time until every node holds identical state.
//
//   swift run -c release --package-path Benchmarks node-bench [--nodes 5] [--writes 100000]
//       [--writers 16] [--durability always|batched] [--keys 1000]
//
// Prints one `node-bench METRIC VALUE` line per figure (the peers' format) and a summary.
import Foundation
import Logging
import MeshMembership
import MeshReplication
import MeshSecurity
import MeshStorage
import MeshTransport
import StateMesh

struct Options {
    var nodes = 5
    var writes = 100_000
    var writers = 16
    var durability = "batched"
    var keys = 1_000
    var latencyEvents = 0

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let flag = iterator.next() {
            let value = iterator.next() ?? ""
            switch flag {
            case "--nodes": nodes = Int(value) ?? nodes
            case "--writes": writes = Int(value) ?? writes
            case "--writers": writers = Int(value) ?? writers
            case "--durability": durability = value
            case "--keys": keys = Int(value) ?? keys
            case "--latency-events": latencyEvents = Int(value) ?? latencyEvents
            default:
                FileHandle.standardError.write(Data("unknown option \(flag)\n".utf8))
                exit(2)
            }
        }
    }
}

func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let digits = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return digits * 1024
    }
    return 0
}

func seconds(_ duration: Duration) -> Double {
    let (whole, fraction) = duration.components
    return Double(whole) + Double(fraction) / 1e18
}

func report(_ metric: String, _ value: Double) {
    print("node-bench \(metric) \(value)")
}

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .error
    return handler
}
// The allocator settings `mesh` runs its nodes with, unless STATEMESH_MALLOC_DEFAULTS=1 (ProcessAllocator).
ProcessAllocator.tuneForStreamingUnlessOptedOut()
let options = Options(CommandLine.arguments)
let base = NSTemporaryDirectory() + "statemesh-node-bench-\(UInt32.random(in: 0...UInt32.max))"
/// Removes the data directories (top-level `defer` does not run before `exit`).
func cleanUp() { try? FileManager.default.removeItem(atPath: base) }

let rssBefore = residentBytes()
let identities = try (0..<options.nodes).map { _ in try NodeIdentity.generate() }
let admission = try AdmissionPolicy(
    allowedPeers: Set(identities.map(\.nodeID)), epoch: 1, clusterKey: [UInt8](repeating: 42, count: 32))
var nodes: [MeshNode] = []
var runners: [Task<Void, any Error>] = []
for index in 0..<options.nodes {
    var configuration = MeshNodeConfiguration(
        identity: identities[index], admission: admission, dataDirectory: "\(base)/node-\(index)")
    configuration.durability = options.durability == "always" ? .always : .batched(intervalMilliseconds: 5)
    if let first = nodes.first, let port = await first.listeningPort {
        configuration.seeds = [MemberAddress(host: "127.0.0.1", port: port)]
    }
    let node = try MeshNode(configuration: configuration)
    runners.append(Task { try await node.run() })
    try await node.waitUntilRunning()
    nodes.append(node)
}
// Wait for full membership.
let lastStarted = ContinuousClock.now
let meetDeadline = ContinuousClock.now.advanced(by: .seconds(30))
while ContinuousClock.now < meetDeadline {
    var complete = true
    for node in nodes where await node.status().peers.filter({ $0.state == "alive" }).count < options.nodes - 1 {
        complete = false
    }
    if complete { break }
    try await Task.sleep(for: .milliseconds(20))
}

report("members_converged_after_last_start_ms", seconds(ContinuousClock.now - lastStarted) * 1000)

// Latency mode: one write at node 0 per event, timed until every node has delivered it (like Serf's user events).
if options.latencyEvents > 0 {
    var allSeen: [Double] = []
    let probe = try MeshAddress("fabric://default/latency-probe")
    for event in 1...options.latencyEvents {
        try await Task.sleep(for: .milliseconds(200))
        let start = ContinuousClock.now
        try await nodes[0].counter(probe.description).increment()
        var waiting = Set(nodes.indices)
        while !waiting.isEmpty && ContinuousClock.now - start < .seconds(10) {
            for index in waiting {
                if case .counter(let value)? = await nodes[index].value(at: probe), value.value >= Int64(event) {
                    waiting.remove(index)
                }
            }
            if !waiting.isEmpty { try await Task.sleep(for: .microseconds(500)) }
        }
        allSeen.append(seconds(ContinuousClock.now - start) * 1000)
    }
    allSeen.sort()
    report("event_all_seen_median_ms", allSeen[allSeen.count / 2])
    report("event_all_seen_max_ms", allSeen.last ?? 0)
    for node in nodes { await node.shutdown() }
    cleanUp()
    exit(0)
}

// Writes: counters 40%, set add/remove 30%, map fields 30%, over `keys` keys, spread round-robin.
let started = ContinuousClock.now
let writingNodes = nodes
try await withThrowingTaskGroup(of: Void.self) { group in
    let perWriter = options.writes / (options.writers * options.nodes)
    for (nodeIndex, node) in writingNodes.enumerated() {
        for writer in 0..<options.writers {
            group.addTask {
                var random = SystemRandomNumberGenerator()
                for step in 0..<perWriter {
                    let key = Int.random(in: 0..<options.keys, using: &random)
                    let choice = Int.random(in: 0..<10, using: &random)
                    if choice < 4 {
                        try await node.counter("fabric://default/counter-\(key)").increment()
                    } else if choice < 7 {
                        let set = try node.set("fabric://default/set-\(key)")
                        if step % 5 == 4 {
                            try await set.remove("e\(nodeIndex)-\(writer)-\(step - 1)")
                        } else {
                            try await set.insert("e\(nodeIndex)-\(writer)-\(step)")
                        }
                    } else {
                        try await node.map("fabric://default/map-\(key)").set("f\(step % 16)", to: "v\(nodeIndex)-\(step)")
                    }
                }
            }
        }
    }
    try await group.waitForAll()
}
let lastWrite = ContinuousClock.now
let written = (options.writes / (options.writers * options.nodes)) * options.writers * options.nodes

// Convergence: identical vectors everywhere, then identical objects.
func identical(_ nodes: [MeshNode]) async -> Bool {
    var reference: [String: UInt64]?
    for node in nodes {
        let vector = await node.status().domains.first?.vector ?? [:]
        if let reference, reference != vector { return false }
        reference = vector
    }
    var objects: [String: ObjectValue]?
    for node in nodes {
        var mine: [String: ObjectValue] = [:]
        for key in await node.keys(in: "default") {
            mine[key] = await node.value(at: try! MeshAddress(domain: "default", path: key))
        }
        if let objects, objects != mine { return false }
        objects = mine
    }
    return true
}
var converged = false
let convergeDeadline = ContinuousClock.now.advanced(by: .seconds(300))
while ContinuousClock.now < convergeDeadline {
    if await identical(nodes) {
        converged = true
        break
    }
    try await Task.sleep(for: .milliseconds(10))
}
let convergedAt = ContinuousClock.now
let rssAfter = residentBytes()

var replicationBytes: UInt64 = 0
var membershipBytes: UInt64 = 0
var deltaBytes: UInt64 = 0
var byKind: [String: UInt64] = [:]
for node in nodes {
    let traffic = await node.status().traffic
    for (kind, bytes) in traffic.bytesSent {
        byKind[kind, default: 0] += bytes
        if kind == "membership" { membershipBytes += bytes } else { replicationBytes += bytes }
    }
    deltaBytes += traffic.localDeltaBytes
}
let lowerBound = Double(deltaBytes) * Double(options.nodes - 1)
for node in nodes { await node.shutdown() }

report("nodes", Double(options.nodes))
report("writes", Double(written))
report("converged", converged ? 1 : 0)
report("write_throughput_per_s", Double(written) / seconds(lastWrite - started))
report("convergence_after_last_write_ms", seconds(convergedAt - lastWrite) * 1000)
report("replication_bytes_per_update", Double(replicationBytes) / Double(written))
report("lower_bound_bytes_per_update", lowerBound / Double(written))
report("bytes_over_lower_bound", Double(replicationBytes) / lowerBound)
report("membership_bytes", Double(membershipBytes))
report("resident_mb_per_node", Double(rssAfter - rssBefore) / Double(options.nodes) / 1e6)
report("resident_mb_process", Double(rssAfter) / 1e6)
FileHandle.standardError.write(
    Data("bytes by kind: \(byKind.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))\n".utf8))
cleanUp()
exit(converged ? 0 : 1)
