import Dispatch
import MeshCRDT
import MeshReplication

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A deterministic simulation of a mesh of replicas: virtual time, one seeded generator,
/// a faulty network (loss, duplication, heavy-tailed delay, reordering, partitions),
/// crash-restarts from persisted state, per-node clock skew, traffic accounting and an
/// invariant checker that is independent of the protocol's own bookkeeping.
///
/// The same `Scenario` (seed included) always produces the same `SimulationReport`.
public struct Simulation {
    enum Payload {
        case message(ReplicationMessage)
        case bytes([UInt8])
    }

    enum EventKind {
        case message(from: Int, to: Int, payload: Payload)
        case tick(Int)
        case write
        case crash(Int)
        case restart(Int)
        case partition(PartitionKind)
        case healPartition
        case heal
        case check
    }

    enum PartitionKind: Int, CaseIterable {
        case symmetric, oneWay, majoritiesRing, isolate
    }

    struct Event {
        var time: UInt64
        var order: UInt64
        var kind: EventKind
    }

    /// A heap slot: plain integers, so sifting moves no reference-counted payload; the
    /// event itself waits in `pendingEvents[slot]`.
    struct QueuedEvent {
        var time: UInt64
        var order: UInt64
        var slot: Int32
    }

    struct WriteRecord {
        var time: UInt64
        var node: Int32
        var domain: Int32
        var key: Int32
        var sequence: UInt64
        var acknowledged = false
        var timestamp: HLCTimestamp
        var value: String
        var counterDelta: Int64
        /// A `.clear` of the key (its value is then not a written value).
        var isClear = false
    }

    let scenario: Scenario
    let configuration: ReplicationConfiguration
    let domainConfigurations: [DomainConfiguration]
    var random: ScriptedRandom
    var replicas: [ReplicaStateMachine?]
    var persisted: [PersistedReplica?]
    let peerIDs: [PeerID]
    let skew: [Int64]
    var heap: [QueuedEvent] = []
    var pendingEvents: [EventKind?] = []
    var freeSlots: [Int32] = []
    var order: UInt64 = 0
    var now: UInt64 = 0
    let epochMilliseconds: UInt64 = 1_000_000_000

    // Network state.
    var faultsActive = true
    var partition: PartitionKind?
    var side: [Bool]
    var isolated = 0

    // Workload.
    var writesIssued = 0
    var writeStart: UInt64 = 0
    var writeEnd: UInt64 = 0
    var healAt: UInt64 = 0
    var keysPerDomain: Int

    // Checker state (independent of the replicas' own vectors).
    var writes: [WriteRecord] = []
    /// Per write: how many replicas delivered it, and when the last one did. Kept apart from
    /// `writes` so the per-delivery update touches 12 bytes, not a whole record.
    var deliveryCounts: [Int32] = []
    var lastDeliveries: [UInt64] = []
    /// Write numbers by sequence - 1, per (domain, origin) at `domain * nodes + origin`.
    var writeIndex: [[Int32]]
    /// Each write's dependencies, flattened: write `w` has those in
    /// `dependencyStart[w]..<dependencyStart[w + 1]` (one contiguous buffer, no array per write).
    var dependencyOrigins: [Int32] = []
    var dependencySequences: [UInt64] = []
    var dependencyStart: [Int] = [0]
    // Flat tables (one array each, no array per domain or node: every delivery reads and writes
    // them). A (domain, node, origin) slot is at `(domain * nodes + node) * nodes + origin`, a
    // (domain, node) pair at `domain * nodes + node`.
    /// What each node delivered of each origin (a contiguous prefix of its sequence numbers).
    var views: [UInt64]
    /// Origins whose view at a node advanced since that node's last write, as flags and as a list.
    var dirty: [Bool]
    var dirtyLists: [[Int32]]
    /// Writes each node delivered in each domain.
    var deliveredTotals: [Int]

    // Report.
    var report = SimulationReport()
    /// Traffic per `ReplicationMessage.kindNumber`, copied into the report's per-kind
    /// dictionaries at the end.
    var bytesPerKind = Array(repeating: 0, count: ReplicationMessage.kindNames.count)
    var messagesPerKind = Array(repeating: 0, count: ReplicationMessage.kindNames.count)
    var firstFailure: String?
    /// The event being handled, described only when a failure report needs it (formatting
    /// every message's records on every step cost a fifth of a large run).
    var currentEvent: EventKind?
    var convergedAt: UInt64?
    /// Batches of events stepped on several threads (see `handleBatch`).
    var parallelBatches = 0
    /// Writes delivered so far, summed over replicas (for progress output).
    var deliveredWrites = 0
    var eventsHandled = 0

    /// Called every `progressEventInterval` events with where the run is; it must not touch the
    /// simulation (progress output on a terminal: the caller decides by the wall clock whether to
    /// print). The run is the same with or without it.
    public var progressObserver: ((SimulationProgress) -> Void)?
    /// Events between calls of `progressObserver`.
    public var progressEventInterval = 512

    /// Prepares a run of `scenario`.
    public init(_ scenario: Scenario, script: [UInt8] = []) {
        precondition(scenario.nodes >= 1 && scenario.domains >= 1 && scenario.writes >= 0)
        self.scenario = scenario
        self.configuration = scenario.replicationConfiguration()
        var random = ScriptedRandom(script: script, seed: scenario.seed)
        let count = scenario.nodes
        self.peerIDs = (0..<count).map { ReplicaID(UInt64($0 + 1)) }
        self.domainConfigurations = (0..<scenario.domains).map { index in
            DomainConfiguration(
                name: "d\(index)", mode: scenario.mixesEventualDomains && index % 2 == 1 ? .eventual : .causal)
        }
        var skews: [Int64] = []
        for _ in 0..<count {
            let range = Int(scenario.skewMilliseconds) * 2 + 1
            skews.append(scenario.skewMilliseconds == 0 ? 0 : Int64(random.below(range)) - Int64(scenario.skewMilliseconds))
        }
        self.skew = skews
        var replicas: [ReplicaStateMachine?] = []
        replicas.reserveCapacity(count)
        for index in 0..<count {
            replicas.append(
                ReplicaStateMachine(
                    replicaID: peerIDs[index], domains: domainConfigurations, peers: peerIDs,
                    configuration: configuration, seed: random.next()))
        }
        self.replicas = replicas
        self.persisted = Array(repeating: nil, count: count)
        self.side = Array(repeating: false, count: count)
        self.random = random
        self.keysPerDomain =
            scenario.keysPerDomain > 0 ? scenario.keysPerDomain : max(12, min(4_096, scenario.writes / (4 * scenario.domains)))
        self.writeIndex = Array(repeating: [], count: scenario.domains * count)
        self.views = Array(repeating: 0, count: scenario.domains * count * count)
        self.dirty = Array(repeating: false, count: scenario.domains * count * count)
        self.dirtyLists = Array(repeating: [], count: scenario.domains * count)
        self.deliveredTotals = Array(repeating: 0, count: scenario.domains * count)
    }

    /// Runs the scenario to convergence (or the heal deadline) and checks every invariant.
    public mutating func run() -> SimulationReport {
        let interval = scenario.intervalMilliseconds
        let writeIntervals =
            scenario.writeIntervals > 0
            ? scenario.writeIntervals : max(20, min(100, scenario.writes / max(1, scenario.nodes)))
        writeStart = 2 * interval
        writeEnd = writeStart + UInt64(writeIntervals) * interval
        healAt = writeEnd + interval
        report.seed = scenario.seed
        report.nodes = scenario.nodes
        report.domains = scenario.domains
        report.strategy = scenario.replication.strategy == .plumtree ? "plumtree" : "classic"

        let tickPeriod = max(1, interval / scenario.flushesPerInterval)
        for node in 0..<scenario.nodes {
            schedule(at: UInt64(random.below(Int(tickPeriod))), .tick(node))
        }
        if scenario.writes > 0 { schedule(at: writeStart, .write) }
        schedulePartitions()
        scheduleCrashes()
        schedule(at: healAt, .heal)

        let deadline = healAt + UInt64(scenario.healIntervals) * interval
        let threads = scenario.effectiveThreads
        var batch: [Event] = []
        while let event = popEvent() {
            if event.time > deadline { break }
            now = event.time
            if threads > 1 && event.kind.touchesOneReplica {
                // Every delivery and tick of this millisecond that is queued now, up to the next
                // other event: each changes one replica only, so they step in parallel and their
                // actions are carried out in queue order (see `handleBatch`).
                batch.removeAll(keepingCapacity: true)
                batch.append(event)
                while let next = heap.first, next.time == now, pendingEvents[Int(next.slot)]?.touchesOneReplica == true,
                    let popped = popEvent()
                {
                    batch.append(popped)
                }
                if batch.count == 1 { handle(event.kind) } else { handleBatch(batch, threads: threads) }
            } else {
                handle(event.kind)
            }
            if convergedAt != nil { break }
            eventsHandled &+= 1
            if let observer = progressObserver, eventsHandled % max(1, progressEventInterval) == 0 { observer(progress) }
        }
        finish()
        return report
    }

    /// Where the run is now.
    public var progress: SimulationProgress {
        SimulationProgress(
            phase: now < writeEnd ? .writing : now < healAt ? .faulty : .converging, virtualMilliseconds: now,
            writePhaseEndMilliseconds: writeEnd, healMilliseconds: healAt, writesIssued: writesIssued,
            writes: scenario.writes, deliveries: deliveredWrites, deliveriesOfIssuedWrites: writes.count * scenario.nodes,
            messagesDelivered: report.messagesDelivered)
    }

    // MARK: Scheduling

    mutating func schedule(at time: UInt64, _ kind: EventKind) {
        order += 1
        let slot: Int32
        if let free = freeSlots.popLast() {
            slot = free
            pendingEvents[Int(free)] = kind
        } else {
            slot = Int32(pendingEvents.count)
            pendingEvents.append(kind)
        }
        heap.append(QueuedEvent(time: time, order: order, slot: slot))
        var child = heap.count - 1
        let item = heap[child]
        while child > 0 {
            let parent = (child - 1) / 2
            guard earlier(item, heap[parent]) else { break }
            heap[child] = heap[parent]
            child = parent
        }
        heap[child] = item
    }

    @inline(__always)
    func earlier(_ a: QueuedEvent, _ b: QueuedEvent) -> Bool {
        a.time != b.time ? a.time < b.time : a.order < b.order
    }

    mutating func popEvent() -> Event? {
        guard !heap.isEmpty else { return nil }
        let top = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            var parent = 0
            while true {
                let left = 2 * parent + 1
                if left >= heap.count { break }
                let right = left + 1
                var best = left
                if right < heap.count && earlier(heap[right], heap[left]) { best = right }
                guard earlier(heap[best], last) else { break }
                heap[parent] = heap[best]
                parent = best
            }
            heap[parent] = last
        }
        // Moved out, not copied: a copy plus clearing the slot cost two generic enum destroys.
        guard let kind = pendingEvents[Int(top.slot)].take() else { preconditionFailure("queued event slot is empty") }
        freeSlots.append(top.slot)
        return Event(time: top.time, order: top.order, kind: kind)
    }

    mutating func schedulePartitions() {
        guard scenario.partitions > 0 else { return }
        let span = (writeEnd - writeStart) / UInt64(scenario.partitions)
        guard span > 1 else { return }
        for episode in 0..<scenario.partitions {
            let start = writeStart + UInt64(episode) * span + UInt64(random.below(Int(span / 4) + 1))
            let length = span / 2 + UInt64(random.below(Int(span / 4) + 1))
            let kind = PartitionKind.allCases[random.below(PartitionKind.allCases.count)]
            schedule(at: start, .partition(kind))
            schedule(at: min(start + length, writeEnd), .healPartition)
        }
    }

    mutating func scheduleCrashes() {
        guard scenario.crashes > 0 else { return }
        let span = writeEnd - writeStart
        for _ in 0..<scenario.crashes {
            let node = random.below(scenario.nodes)
            let at = writeStart + UInt64(random.below(Int(span)))
            let down = scenario.intervalMilliseconds * UInt64(2 + random.below(9))
            schedule(at: at, .crash(node))
            schedule(at: min(at + down, writeEnd), .restart(node))
        }
    }

    func instant(for node: Int) -> Instant {
        Instant(milliseconds: UInt64(Int64(epochMilliseconds + now) + skew[node]))
    }

    // MARK: Events

    mutating func handle(_ kind: EventKind) {
        switch kind {
        case .message(_, let to, _):
            beginStep(kind)
            guard replicas[to] != nil else { return }
            var step = Self.step(kind, replica: &replicas[to]!, context: stepContext)
            step.observations = observeDeliveries(in: step.actions, at: to)
            finishStep(step, at: to)
        case .tick(let node):
            beginStep(kind)
            guard replicas[node] != nil else { return }
            var step = Self.step(kind, replica: &replicas[node]!, context: stepContext)
            step.observations = observeDeliveries(in: step.actions, at: node)
            finishStep(step, at: node)
        case .write:
            issueWrite()
            if writesIssued < scenario.writes {
                let span = writeEnd - writeStart
                let next = writeStart + span * UInt64(writesIssued) / UInt64(max(1, scenario.writes))
                schedule(at: max(now, next), .write)
            }
        case .crash(let node):
            guard let replica = replicas[node] else { return }
            persisted[node] = replica.persisted
            replicas[node] = nil
            report.crashes += 1
        case .restart(let node):
            restart(node)
        case .partition(let kind):
            guard faultsActive else { return }
            partition = kind
            for node in 0..<scenario.nodes { side[node] = random.below(2) == 0 }
            isolated = random.below(scenario.nodes)
            report.partitionEpisodes += 1
        case .healPartition:
            partition = nil
        case .heal:
            faultsActive = false
            partition = nil
            for node in 0..<scenario.nodes where replicas[node] == nil { restart(node) }
            schedule(at: now + scenario.intervalMilliseconds, .check)
        case .check:
            if isConverged() {
                convergedAt = now
            } else {
                schedule(at: now + scenario.intervalMilliseconds, .check)
            }
        }
    }

    /// The eager (tree) links of every live replica, for diagnostics.
    public var eagerLinks: [[Int]] {
        replicas.map { $0?.eagerPeers.map { Int($0.rawValue) - 1 } ?? [] }
    }

    mutating func restart(_ node: Int) {
        guard replicas[node] == nil, let stored = persisted[node] else { return }
        replicas[node] = ReplicaStateMachine(
            restoring: stored, peers: peerIDs, configuration: configuration, seed: random.next())
        persisted[node] = nil
        report.restarts += 1
    }

    // MARK: Stepping replicas

    /// What stepping a replica needs besides the replica: read-only, so parallel steps share it.
    struct StepContext: @unchecked Sendable {
        let peerIDs: [PeerID]
        let skew: [Int64]
        let epochMilliseconds: UInt64
        let now: UInt64
        let scenario: Scenario
        let domainConfigurations: [DomainConfiguration]

        func instant(for node: Int) -> Instant {
            Instant(milliseconds: UInt64(Int64(epochMilliseconds + now) + skew[node]))
        }
    }

    /// One replica's step (a delivery or a tick): its actions and its sizes right after it, which
    /// the caller carries out and checks in event order.
    struct Step {
        var actions: [ReplicationAction] = []
        var bufferedCount = 0
        var bufferedBytes = 0
        var logCount = 0
        var logBytes = 0
        /// Its deliveries checked against the checker's rows, in order (`observeDeliveries`).
        var observations: [Observation] = []
        /// Failures found right after the step (caps exceeded, broken internal invariants), each
        /// to follow "node N" in the failure message.
        var problems: [String] = []
    }

    var stepContext: StepContext {
        StepContext(
            peerIDs: peerIDs, skew: skew, epochMilliseconds: epochMilliseconds, now: now, scenario: scenario,
            domainConfigurations: domainConfigurations)
    }

    /// Steps `replica` through a `.message` or `.tick` event; touches nothing else.
    static func step(_ kind: EventKind, replica: inout ReplicaStateMachine, context: StepContext) -> Step {
        var step = Step()
        switch kind {
        case .message(let from, let to, .message(let message)):
            step.actions = replica.receive(message, from: context.peerIDs[from], now: context.instant(for: to))
        case .message(let from, let to, .bytes(let bytes)):
            step.actions = replica.receive(bytes, from: context.peerIDs[from], now: context.instant(for: to))
        case .tick(let node):
            step.actions = replica.tick(now: context.instant(for: node))
        default:
            preconditionFailure("only deliveries and ticks step one replica")
        }
        let scenario = context.scenario
        for (position, domain) in context.domainConfigurations.enumerated() {
            // The sizes alone: `metrics(of:)` looks the domain up by name and copies its stable vector.
            let sizes = replica.sizes(ofDomainAt: position)
            step.bufferedCount = max(step.bufferedCount, sizes.bufferedCount)
            step.bufferedBytes = max(step.bufferedBytes, sizes.bufferedBytes)
            step.logBytes = max(step.logBytes, sizes.logBytes)
            step.logCount = max(step.logCount, sizes.logCount)
            if sizes.bufferedCount > scenario.replication.maximumBufferedDeltas || sizes.bufferedBytes > scenario.replication.maximumBufferedBytes
                || sizes.logCount > scenario.replication.maximumLogDeltas || sizes.logBytes > scenario.replication.maximumLogBytes
            {
                step.problems.append(" \(domain.name) over a cap: \(String(describing: replica.metrics(of: domain.name)))")
            }
        }
        if scenario.checksEveryStep, let problem = replica.invariantViolation() { step.problems.append(": \(problem)") }
        return step
    }

    /// The simulator's own part of a `.message` or `.tick` event before the replica steps.
    mutating func beginStep(_ kind: EventKind) {
        currentEvent = kind
        switch kind {
        case .message: report.messagesDelivered += 1
        case .tick(let node):
            schedule(at: now + max(1, scenario.intervalMilliseconds / scenario.flushesPerInterval), .tick(node))
        default: break
        }
    }

    /// Carries out a replica's step at `node` and checks its sizes.
    mutating func finishStep(_ step: Step, at node: Int) {
        perform(step.actions, at: node, observations: step.observations)
        report.maxCausalBuffer = max(report.maxCausalBuffer, step.bufferedCount)
        report.maxCausalBufferBytes = max(report.maxCausalBufferBytes, step.bufferedBytes)
        report.maxLogBytes = max(report.maxLogBytes, step.logBytes)
        report.maxLogDeltas = max(report.maxLogDeltas, step.logCount)
        for problem in step.problems {
            report.capViolations += 1
            fail("node \(node)\(problem)")
        }
    }

    /// Handles `batch`, deliveries and ticks of one millisecond in queue order, as `handle` would
    /// one by one, with the replicas stepped on `threads` threads first.
    ///
    /// A step changes only its replica and reads only the event and `stepContext`; everything
    /// else (the generator, the queue, the checker, the report) changes only while the steps'
    /// actions are carried out, one event after another in queue order. So the run is the same
    /// as a sequential one, report and seed replay included, whatever the thread count. A
    /// replica's own events stay in queue order on one thread.
    mutating func handleBatch(_ batch: [Event], threads: Int) {
        // Events grouped by replica, each group in queue order.
        let nodes = batch.map { event -> Int in
            switch event.kind {
            case .message(_, let to, _): return to
            case .tick(let node): return node
            default: preconditionFailure("only deliveries and ticks are batched")
            }
        }
        let byNode = batch.indices.sorted { nodes[$0] != nodes[$1] ? nodes[$0] < nodes[$1] : $0 < $1 }
        var groupStarts: [Int] = []
        for position in byNode.indices where position == 0 || nodes[byNode[position]] != nodes[byNode[position - 1]] {
            groupStarts.append(position)
        }
        groupStarts.append(byNode.count)
        parallelBatches += 1
        let starts = groupStarts
        var steps = [Step?](repeating: nil, count: batch.count)
        let context = stepContext
        let tables = checkerTables
        Self.withRows(&views, &dirty, &dirtyLists, &deliveredTotals) { rows in
            steps.withUnsafeMutableBufferPointer { stepBuffer in
                replicas.withUnsafeMutableBufferPointer { replicaBuffer in
                    let shared = SharedBuffers(steps: stepBuffer, replicas: replicaBuffer, rows: rows)
                    let groups = starts.count - 1
                    // A few groups per work item: dispatching each tiny group costs more than it runs.
                    let chunk = max(1, groups / (threads * 8))
                    let items = (groups + chunk - 1) / chunk
                    DispatchQueue.concurrentPerform(iterations: items) { item in
                        for group in (item * chunk)..<min(groups, (item + 1) * chunk) {
                            for position in starts[group]..<starts[group + 1] {
                                let index = byNode[position]
                                let node = nodes[index]
                                // Each node belongs to one group, so no two threads touch one replica or slot.
                                guard shared.replicas[node] != nil else { continue }
                                var step = Self.step(batch[index].kind, replica: &shared.replicas[node]!, context: context)
                                // The node's rows of the checker change only with its own deliveries.
                                step.observations = Self.observeDeliveries(
                                    in: step.actions, at: node, tables: tables, rows: shared.rows)
                                shared.steps[index] = step
                            }
                        }
                    }
                }
            }
        }
        for (index, event) in batch.enumerated() {
            beginStep(event.kind)
            guard let step = steps[index] else { continue }
            finishStep(step, at: nodes[index])
        }
    }

    /// What the simulator was doing, for failure messages.
    var currentStepDescription: String {
        switch currentEvent {
        case .message(let from, _, .message(let message))?:
            switch message {
            case .deltas(_, let link, let records):
                let header = link.map { "\($0.epoch)/\($0.sequence) deps \($0.dependencies.count)" } ?? "repair"
                return "message from \(from) link \(header) records \(records.map(\.description))"
            default: return "message \(message.kind) from \(from)"
            }
        case .message(let from, _, .bytes)?: return "bytes from \(from)"
        case .tick?: return "tick"
        default: return ""
        }
    }

    mutating func fail(_ message: String) {
        if firstFailure == nil { firstFailure = "t=\(now)ms: \(message)" }
    }

    // MARK: Network

    func canSend(from: Int, to: Int) -> Bool {
        if let cutOff = scenario.isolatedNode, from == cutOff || to == cutOff { return false }
        guard let partition else { return true }
        switch partition {
        case .symmetric: return side[from] == side[to]
        case .oneWay: return !(side[from] && !side[to])
        case .isolate: return from != isolated && to != isolated
        case .majoritiesRing:
            let count = scenario.nodes
            let distance = abs(from - to)
            return min(distance, count - distance) <= count / 4 + 1
        }
    }

    mutating func latency() -> UInt64 {
        // Pareto tail around the median: heavy-tailed but capped at 50× the median.
        let u = max(random.unit(), 1e-9)
        let median = scenario.latencyMilliseconds
        let pareto = median * 0.5 * pow(u, -1.0 / scenario.latencyTailAlpha)
        return UInt64(min(pareto, median * 50)) + 1
    }

    mutating func send(_ message: ReplicationMessage, from: Int, to: Int) {
        let size = message.encodedByteCount
        let kind = message.kindNumber
        report.bytesSent += size
        report.messagesSent += 1
        bytesPerKind[kind] += size
        messagesPerKind[kind] += 1
        guard to != from, to >= 0, to < scenario.nodes else { return }
        if faultsActive {
            if !canSend(from: from, to: to) || random.chance(scenario.loss) {
                report.messagesDropped += 1
                return
            }
        }
        let payload: Payload = scenario.encodesMessages ? .bytes(message.encoded()) : .message(message)
        var delay = latency()
        if faultsActive && random.chance(scenario.reorder) {
            delay += UInt64(random.below(Int(3 * scenario.intervalMilliseconds) + 1))
        }
        schedule(at: now + delay, .message(from: from, to: to, payload: payload))
        if faultsActive && random.chance(scenario.duplicate) {
            report.messagesDuplicated += 1
            schedule(at: now + latency(), .message(from: from, to: to, payload: payload))
        }
    }

    /// Carries out `actions` of `node` in order; `observations` are its deliveries already checked
    /// against the node's rows (`observeDeliveries`), in order.
    mutating func perform(_ actions: [ReplicationAction], at node: Int, observations: [Observation]) {
        var observed = 0
        // By position: `for action in actions` copied every action (and retained what it holds).
        for position in actions.indices {
            switch actions[position] {
            case .send(let message, let peer):
                send(message, from: node, to: Int(peer.rawValue) - 1)
            case .deliver(let delivery):
                count(observations[observed], of: delivery, at: node)
                observed += 1
            case .acknowledge(let id):
                acknowledge(id)
            case .completeRead:
                report.readsCompleted += 1
            case .fail(let error):
                report.errors[error.code.description, default: 0] += 1
                switch error.code {
                case .writeConcernTimeout, .readTimeout: break
                default: fail("node \(node) reported \(error)")
                }
            }
        }
    }

    // MARK: Workload

    mutating func issueWrite() {
        let index = writesIssued
        writesIssued += 1
        var node = random.below(scenario.nodes)
        if replicas[node] == nil {
            // A crashed node cannot take writes; give it to the next live one.
            var candidate = (node + 1) % scenario.nodes
            while replicas[candidate] == nil && candidate != node { candidate = (candidate + 1) % scenario.nodes }
            guard replicas[candidate] != nil else { return }
            node = candidate
        }
        let domain = random.below(scenario.domains)
        let key = random.below(keysPerDomain)
        let type = ObjectType.allCases[key % ObjectType.allCases.count]
        let value = "w\(index)"
        var counterDelta: Int64 = 0
        let operation: WriteOperation
        let isClear = random.chance(scenario.clearFraction)
        switch type {
        case _ where isClear: operation = .clear(type)
        case .counter:
            let amount = UInt64(1 + random.below(5))
            if random.below(10) == 0 {
                operation = .decrement(amount)
                counterDelta = -Int64(amount)
            } else {
                operation = .increment(amount)
                counterDelta = Int64(amount)
            }
        case .set:
            let element = "e\(random.below(32))"
            operation = random.below(10) < 7 ? .insert(element) : .remove(element)
        case .map:
            operation = random.below(10) < 8 ? .setField("f\(random.below(8))", value) : .removeField("f\(random.below(8))")
        case .register: operation = .assign(value)
        case .multiValueRegister: operation = .assignMultiValue(value)
        case .flag: operation = random.below(10) < 6 ? .enable : .disable
        }
        let concern: WriteConcern =
            random.chance(scenario.writeConcernFraction) ? .replicas(scenario.writeConcernReplicas) : .local
        let name = domainConfigurations[domain].name
        let outcome: WriteOutcome
        do {
            outcome = try replicas[node]!.write(
                operation, to: "k\(key)", in: name, concern: concern, now: instant(for: node))
        } catch {
            fail("write \(index) at node \(node) failed: \(error)")
            return
        }
        let writeNumber = Int32(writes.count)
        writes.append(
            WriteRecord(
                time: now, node: Int32(node), domain: Int32(domain), key: Int32(key),
                sequence: outcome.id.sequence, timestamp: outcome.timestamp, value: value, counterDelta: counterDelta,
                isClear: isClear))
        let count = scenario.nodes
        let pair = domain * count + node
        precondition(writeIndex[pair].count == Int(outcome.id.sequence) - 1, "sequence numbers are dense")
        writeIndex[pair].append(writeNumber)
        // Dependencies as the checker saw them: what this node delivered since its last write.
        for origin in dirtyLists[pair].suffix(scenario.effectiveCheckedDependencies) {
            dependencyOrigins.append(origin)
            dependencySequences.append(views[pair * count + Int(origin)])
        }
        dependencyStart.append(dependencyOrigins.count)
        deliveryCounts.append(0)
        lastDeliveries.append(0)
        for origin in dirtyLists[pair] { dirty[pair * count + Int(origin)] = false }
        dirtyLists[pair].removeAll(keepingCapacity: true)
        report.writes += 1
        let sizes = outcome.encodedSizes
        report.lowerBoundBytes += (scenario.nodes - 1) * sizes.record
        report.bareDeltaLowerBoundBytes += (scenario.nodes - 1) * sizes.delta
        // `actions` is made on each access: once here.
        let actions = outcome.actions
        perform(actions, at: node, observations: observeDeliveries(in: actions, at: node))
    }

    /// Issues one more write (tests drive the checker directly with it).
    mutating func issueWriteForTesting() {
        issueWrite()
    }

    mutating func acknowledge(_ id: WriteID) {
        guard let domain = domainConfigurations.firstIndex(where: { $0.name == id.domain }) else { return }
        let origin = Int(id.replica.rawValue) - 1
        let list = writeIndex[domain * scenario.nodes + origin]
        guard id.sequence >= 1, Int(id.sequence) <= list.count else {
            fail("acknowledgement of unknown write \(id)")
            return
        }
        let number = Int(list[Int(id.sequence) - 1])
        if !writes[number].acknowledged {
            writes[number].acknowledged = true
            report.acknowledgedWrites += 1
        }
    }
}

/// The buffers parallel steps write, each slot by one thread only (see `Simulation.handleBatch`).
struct SharedBuffers: @unchecked Sendable {
    let steps: UnsafeMutableBufferPointer<Simulation.Step?>
    let replicas: UnsafeMutableBufferPointer<ReplicaStateMachine?>
    let rows: CheckerRows
}

extension Simulation.EventKind {
    /// Whether handling the event steps one replica and touches no other (a delivery or a tick).
    var touchesOneReplica: Bool {
        switch self {
        case .message, .tick: true
        default: false
        }
    }
}

/// The simulator's single source of randomness: bytes of a script first (a fuzzer's input
/// decides the schedule), then a seeded SplitMix64 stream.
struct ScriptedRandom {
    var script: [UInt8]
    var position = 0
    var generator: SplitMix64

    init(script: [UInt8], seed: UInt64) {
        self.script = script
        self.generator = SplitMix64(seed: seed)
    }

    mutating func next() -> UInt64 {
        guard position < script.count else { return generator.next() }
        // One script byte per decision, spread over 64 bits, so short inputs steer many choices.
        let byte = UInt64(script[position])
        position += 1
        return (byte << 56) | (generator.next() >> 8)
    }

    mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0)
        return Int(next().multipliedFullWidth(by: UInt64(bound)).high)
    }

    mutating func unit() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

    mutating func chance(_ probability: Double) -> Bool { probability > 0 && unit() < probability }
}
