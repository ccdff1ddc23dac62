// AgentTelemetry: agents on three sites publish counters, status maps and a set of active tasks
// to the StateMesh node of their site; a fourth node, the dashboard, follows every change and
// prints fleet-wide totals as they converge. One site loses its network for a while and keeps
// accepting its agents' writes; when it comes back, nothing it wrote is lost.
//
// The program keeps its own ledger of every acknowledged write and ends by checking that the
// dashboard's totals equal the ledger's and that all four nodes hold identical state: PASS (exit 0)
// or FAIL (exit 1).
import Foundation
import Logging
import MeshCRDT
import MeshMembership
import MeshReplication
import MeshSecurity
import MeshStorage
import StateMesh
import Synchronization

// MARK: Workload

let domain = "fleet"
let siteNames = ["north", "east", "south"]
let agentsPerSite = 3
/// The site that loses its network in phase 2.
let offlineSite = 2
/// How often each agent acts.
let tick = Duration.milliseconds(150)

let completedAddress = "fabric://fleet/totals/tasks-completed"
let bytesAddress = "fabric://fleet/totals/bytes-processed"
let activeAddress = "fabric://fleet/tasks/active"
func siteCompletedAddress(_ site: String) -> String { "fabric://fleet/sites/\(site)/tasks-completed" }
func statusAddress(_ agent: String) -> String { "fabric://fleet/agents/\(agent)/status" }

/// A small deterministic generator (SplitMix64), so a run's workload is reproducible from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// What the agents wrote, as acknowledged by their site's node: the values every node must end with.
struct Expected: Sendable {
    var completed: Int64 = 0
    var bytes: Int64 = 0
    var completedBySite: [String: Int64] = [:]
    var activeTasks: Set<String> = []
    var statusByAgent: [String: [String: String]] = [:]
    var writes = 0
}

/// The ledger shared by the agents (which record acknowledged writes) and the progress printer.
final class Ledger: Sendable {
    private let state = Mutex(Expected())
    func record(_ change: (inout Expected) -> Void) { state.withLock { change(&$0) } }
    var snapshot: Expected { state.withLock { $0 } }
}

/// One agent: a name, its site's node, and the task it is working on.
struct Agent {
    let name: String
    let site: String
    let node: MeshNode
    var currentTask: String?
    var tasksStarted = 0

    /// Starts a task or finishes the current one; records each write in the ledger once its node acknowledged it.
    mutating func act(using generator: inout SplitMix64, ledger: Ledger) async throws {
        let status = try node.map(statusAddress(name))
        // Agents do not march in step: some ticks an agent just keeps working (or stays idle).
        guard Int.random(in: 0..<10, using: &generator) < 6 else { return }
        if let task = currentTask {
            let bytes = UInt64.random(in: 1_000...50_000, using: &generator)
            try await node.set(activeAddress).remove(task)
            ledger.record {
                $0.activeTasks.remove(task)
                $0.writes += 1
            }
            try await node.counter(completedAddress).increment()
            ledger.record {
                $0.completed += 1
                $0.writes += 1
            }
            try await node.counter(siteCompletedAddress(site)).increment()
            ledger.record {
                $0.completedBySite[site, default: 0] += 1
                $0.writes += 1
            }
            try await node.counter(bytesAddress).increment(by: bytes)
            ledger.record {
                $0.bytes += Int64(bytes)
                $0.writes += 1
            }
            try await status.set("state", to: "idle")
            ledger.record { [name] in
                $0.statusByAgent[name, default: [:]]["state"] = "idle"
                $0.writes += 1
            }
            currentTask = nil
        } else {
            tasksStarted += 1
            let task = "\(name)-task-\(tasksStarted)"
            try await node.set(activeAddress).insert(task)
            ledger.record {
                $0.activeTasks.insert(task)
                $0.writes += 1
            }
            try await status.set("state", to: "busy")
            try await status.set("task", to: task)
            try await status.set("site", to: site)
            ledger.record { [name, site] in
                $0.statusByAgent[name, default: [:]].merge(["state": "busy", "task": task, "site": site]) { $1 }
                $0.writes += 3
            }
            currentTask = task
        }
    }
}

/// Tells the agents to stop.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}

// MARK: The dashboard's view, built from the change stream only

/// The latest value of every object the dashboard heard about through `changes(matching:)`.
final class DashboardView: Sendable {
    private let objects = Mutex<[String: ObjectValue]>([:])
    private let eventCount = Mutex<(local: Int, remote: Int)>((0, 0))

    func apply(_ event: ChangeEvent) {
        objects.withLock { $0[event.address.path] = event.value }
        eventCount.withLock { count in
            if event.kind == .local { count.local += 1 } else { count.remote += 1 }
        }
    }

    var remoteEvents: Int { eventCount.withLock { $0.remote } }

    struct Totals: Equatable {
        var completed: Int64 = 0
        var bytes: Int64 = 0
        var completedBySite: [String: Int64] = [:]
        var activeTasks: Set<String> = []
        var busyAgents = 0
        var reportingAgents = 0
    }

    var totals: Totals {
        objects.withLock { objects in
            var totals = Totals()
            for (path, value) in objects {
                switch value {
                case .counter(let counter) where path == "totals/tasks-completed": totals.completed = counter.value
                case .counter(let counter) where path == "totals/bytes-processed": totals.bytes = counter.value
                case .counter(let counter) where path.hasPrefix("sites/"):
                    totals.completedBySite[String(path.split(separator: "/")[1])] = counter.value
                case .set(let set) where path == "tasks/active": totals.activeTasks = set.elements
                case .map(let map) where path.hasPrefix("agents/"):
                    totals.reportingAgents += 1
                    if map.values["state"] == "busy" { totals.busyAgents += 1 }
                default: break
                }
            }
            return totals
        }
    }
}

// MARK: Output

/// Prints a line at once (unbuffered, so progress shows as it happens even through a pipe).
func show(_ line: String = "") {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

let started = ContinuousClock.now

func elapsed() -> String {
    let (seconds, attoseconds) = (ContinuousClock.now - started).components
    let tenths = seconds * 10 + attoseconds / 100_000_000_000_000_000
    let text = "\(tenths / 10).\(tenths % 10)s"
    return String(repeating: " ", count: max(0, 6 - text.count)) + text
}

func say(_ text: String) { show("[\(elapsed())] \(text)") }

func progressLine(_ view: DashboardView, _ ledger: Ledger) -> String {
    let seen = view.totals
    let wrote = ledger.snapshot
    let sites = siteNames.map { "\($0) \(seen.completedBySite[$0] ?? 0)/\(wrote.completedBySite[$0] ?? 0)" }
        .joined(separator: "  ")
    return "dashboard: completed \(seen.completed)/\(wrote.completed) (\(sites))  "
        + "bytes \(seen.bytes / 1_000)k/\(wrote.bytes / 1_000)k  active tasks \(seen.activeTasks.count)/\(wrote.activeTasks.count)  "
        + "busy agents \(seen.busyAgents)/\(seen.reportingAgents)  [seen/written]"
}

// MARK: Checks

/// Every object of the domain on `node`, by path.
func objects(on node: MeshNode) async -> [String: ObjectValue] {
    var result: [String: ObjectValue] = [:]
    for key in await node.keys(in: domain) {
        if let address = try? MeshAddress(domain: domain, path: key) { result[key] = await node.value(at: address) }
    }
    return result
}

/// Whether all nodes hold the same objects and the same delivered vector.
func identical(_ nodes: [MeshNode]) async -> Bool {
    var reference: ([String: ObjectValue], [String: UInt64]?)?
    for node in nodes {
        let state = (await objects(on: node), await node.status().domains.first { $0.name == domain }?.vector)
        if let reference, reference.0 != state.0 || reference.1 != state.1 { return false }
        reference = state
    }
    return true
}

/// What differs between `node`'s state and the ledger (empty when they agree).
func differences(on node: MeshNode, from expected: Expected) async throws -> [String] {
    var problems: [String] = []
    func check<T: Equatable>(_ what: String, _ actual: T, _ wanted: T) {
        if actual != wanted { problems.append("\(what): \(actual), expected \(wanted)") }
    }
    check("tasks-completed", try await node.counter(completedAddress).value(), expected.completed)
    check("bytes-processed", try await node.counter(bytesAddress).value(), expected.bytes)
    for site in siteNames {
        check(
            "\(site) tasks-completed", try await node.counter(siteCompletedAddress(site)).value(),
            expected.completedBySite[site] ?? 0)
    }
    // Sets and maps are compared as sorted lists, so a difference prints in a stable order.
    check("active tasks", try await node.set(activeAddress).elements().sorted(), expected.activeTasks.sorted())
    for (agent, fields) in expected.statusByAgent.sorted(by: { $0.key < $1.key }) {
        check("\(agent) status", sortedFields(try await node.map(statusAddress(agent)).entries()), sortedFields(fields))
    }
    let keys = Set(await node.keys(in: domain))
    let wantedKeys = Set(
        [completedAddress, bytesAddress, activeAddress] + siteNames.map(siteCompletedAddress)
            + expected.statusByAgent.keys.map(statusAddress)
    ).map { String($0.dropFirst("fabric://fleet/".count)) }
    check("keys", keys.sorted(), wantedKeys.sorted())
    return problems
}

/// A map's fields as `field=value`, sorted by field.
func sortedFields(_ fields: [String: String]) -> [String] {
    fields.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
}

/// Polls `condition` every 100 ms for up to `timeout`; returns whether it held.
func poll(for timeout: Duration, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(100))
    }
    return try await condition()
}

// MARK: Main

/// Runs the whole scenario; returns whether every check passed.
func runExample() async throws -> Bool {
    // The nodes log warnings and errors only; the example prints its own story.
    var logger = Logger(label: "agent-telemetry")
    logger.logLevel = .warning
    let seed = ProcessInfo.processInfo.environment["SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...999_999)
    show("AgentTelemetry: 3 sites x \(agentsPerSite) agents, one dashboard; 4 StateMesh nodes over encrypted loopback")
    show("(workload seed \(seed); SEED=\(seed) repeats the same writes)\n")

    var template = Array("/tmp/statemesh-telemetry-XXXXXX".utf8CString)
    let directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    defer { try? FileManager.default.removeItem(atPath: directory) }

    // One identity per node and one cluster key; every node admits the other three.
    let names = siteNames + ["dashboard"]
    let identities = try names.map { _ in try NodeIdentity.generate() }
    var keyGenerator = SystemRandomNumberGenerator()
    let clusterKey = (0..<32).map { _ in UInt8.random(in: 0...255, using: &keyGenerator) }
    let admission = try AdmissionPolicy(allowedPeers: Set(identities.map(\.nodeID)), epoch: 1, clusterKey: clusterKey)

    var nodes: [MeshNode] = []
    var runners: [Task<Void, any Error>] = []
    for (index, name) in names.enumerated() {
        var configuration = MeshNodeConfiguration(
            identity: identities[index], admission: admission, dataDirectory: "\(directory)/\(name)")
        configuration.transport.host = "127.0.0.1"
        configuration.domains = [DomainConfiguration(name: domain)]
        // Telemetry is re-sent anyway: group commits every 20 ms instead of one fsync per write.
        configuration.durability = .batched(intervalMilliseconds: 20)
        configuration.replication.gossipIntervalMilliseconds = 50
        configuration.membership.probeIntervalMilliseconds = 200
        configuration.membership.probeTimeoutMilliseconds = 100
        if let first = nodes.first, let port = await first.listeningPort {
            configuration.seeds = [MemberAddress(host: "127.0.0.1", port: port)]
        }
        let node = try MeshNode(configuration: configuration, logger: logger)
        runners.append(Task { try await node.run() })
        try await node.waitUntilRunning()
        nodes.append(node)
        say("node \(name) listening on 127.0.0.1:\(await node.listeningPort ?? 0)")
    }
    let dashboard = nodes[3]
    defer {
        for runner in runners { runner.cancel() }
    }

    let met = try await poll(for: .seconds(15)) {
        for node in nodes {
            let connected = await node.status().peers.filter { $0.state == "alive" && $0.isConnected }
            if connected.count < 3 { return false }
        }
        return true
    }
    guard met else {
        say("FAIL: the four nodes did not find each other within 15 s")
        return false
    }
    say("all four nodes see each other (SWIM membership, Noise sessions)")

    // The dashboard follows every change in the domain and keeps its own view from the events alone.
    let view = DashboardView()
    let stream = try await dashboard.changes(matching: "fabric://fleet/**")
    let follower = Task {
        for try await event in stream { view.apply(event) }
    }
    defer { follower.cancel() }

    // Agents: one task per site, acting in turns every tick until told to stop.
    let ledger = Ledger()
    let stop = StopFlag()
    var sites: [Task<Int, any Error>] = []
    for (index, site) in siteNames.enumerated() {
        let node = nodes[index]
        let siteSeed = seed &* 31 &+ UInt64(index)
        sites.append(
            Task {
                var generator = SplitMix64(state: siteSeed)
                var agents = (1...agentsPerSite).map { Agent(name: "\(site)-\($0)", site: site, node: node) }
                var rounds = 0
                while !stop.isSet {
                    for agentIndex in agents.indices {
                        try await agents[agentIndex].act(using: &generator, ledger: ledger)
                    }
                    rounds += 1
                    try await Task.sleep(for: tick)
                }
                return rounds
            })
    }

    func report(for duration: Duration) async throws {
        let deadline = ContinuousClock.now.advanced(by: duration)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .seconds(1))
            say(progressLine(view, ledger))
        }
    }

    say("phase 1: every site online, agents working")
    try await report(for: .seconds(3))

    let cutOff = nodes[offlineSite]
    await cutOff.goOffline()
    say("phase 2: site \(siteNames[offlineSite]) loses its network (goOffline); its agents keep writing locally")
    try await report(for: .seconds(5))
    let dashboardPeers = await dashboard.status().peers
    if let peer = dashboardPeers.first(where: { $0.nodeID == "\(identities[offlineSite].nodeID)" }) {
        say("the dashboard now considers \(siteNames[offlineSite]) \(peer.state)")
    }
    let localView = try await cutOff.counter(siteCompletedAddress(siteNames[offlineSite])).value()
    say(
        "\(siteNames[offlineSite]) itself holds \(localView) completed tasks of its own; "
            + "the dashboard has \(view.totals.completedBySite[siteNames[offlineSite]] ?? 0)")

    await cutOff.goOnline()
    let cameBack = ContinuousClock.now
    say("phase 3: site \(siteNames[offlineSite]) is back (goOnline); agents keep working a little longer")
    // How long until the dashboard has everything the site wrote while it was offline.
    let caughtUp = try await poll(for: .seconds(20)) {
        (view.totals.completedBySite[siteNames[offlineSite]] ?? 0) >= localView
    }
    if caughtUp {
        say(
            "the dashboard caught up with the \(localView) tasks \(siteNames[offlineSite]) completed "
                + "\(formatted(ContinuousClock.now - cameBack)) after it came back")
    }
    try await report(for: .seconds(2))

    stop.set()
    var rounds: [Int] = []
    for site in sites { rounds.append(try await site.value) }
    let expected = ledger.snapshot
    say(
        "agents stopped after \(rounds.map(String.init).joined(separator: "/")) rounds: \(expected.writes) acknowledged writes"
    )

    // Wait for the dashboard's change-stream view to match the ledger and for all nodes to agree.
    let waitStarted = ContinuousClock.now
    var lastPrint = ContinuousClock.now
    let converged = try await poll(for: .seconds(20)) {
        if ContinuousClock.now - lastPrint >= .seconds(1) {
            say(progressLine(view, ledger))
            lastPrint = ContinuousClock.now
        }
        guard view.totals == totals(of: expected) else { return false }
        return await identical(nodes)
    }
    let convergence = ContinuousClock.now - waitStarted
    say(progressLine(view, ledger))

    // The checks: the dashboard's totals (from change events) and every node's state (from reads) equal the ledger.
    var problems: [String] = []
    if view.totals != totals(of: expected) {
        problems.append("the dashboard's view from change events differs from what the agents wrote")
    }
    for (index, node) in nodes.enumerated() {
        for problem in try await differences(on: node, from: expected) {
            problems.append("\(names[index]): \(problem)")
        }
    }
    if !(await identical(nodes)) { problems.append("the nodes do not hold identical state") }

    show("")
    show(
        "fleet totals written by the agents:  \(expected.completed) tasks completed, \(expected.bytes) bytes, \(expected.activeTasks.count) tasks active"
    )
    let seen = view.totals
    show(
        "fleet totals on the dashboard:       \(seen.completed) tasks completed, \(seen.bytes) bytes, \(seen.activeTasks.count) tasks active"
    )
    show("change events the dashboard received from other nodes: \(view.remoteEvents)")
    if converged {
        show("all 4 nodes converged \(formatted(convergence)) after the agents stopped")
    }
    for node in nodes { await node.shutdown() }
    for runner in runners { _ = try? await runner.value }
    if problems.isEmpty {
        show("PASS: the dashboard's totals equal the sum of what the agents wrote; all nodes hold identical state")
        return true
    }
    for problem in problems.prefix(20) { show("  - \(problem)") }
    show("FAIL: \(problems.count) difference(s)")
    return false
}

/// The totals the dashboard should show for `expected`.
func totals(of expected: Expected) -> DashboardView.Totals {
    DashboardView.Totals(
        completed: expected.completed, bytes: expected.bytes, completedBySite: expected.completedBySite,
        activeTasks: expected.activeTasks,
        busyAgents: expected.statusByAgent.values.filter { $0["state"] == "busy" }.count,
        reportingAgents: expected.statusByAgent.count)
}

func formatted(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    return "\(seconds * 1_000 + attoseconds / 1_000_000_000_000_000) ms"
}

@main
enum AgentTelemetry {
    static func main() async {
        _ = started
        do {
            exit(try await runExample() ? 0 : 1)
        } catch {
            show("FAIL: \(error)")
            exit(1)
        }
    }
}
