import MeshCRDT
import PropertyBased

/// Runs an `OperationScript` against one CRDT type: a handful of replicas with
/// their own hybrid logical clocks, a log of every delta produced, and a record of
/// every write (the state before, the delta, the state after) for law checks.
///
/// Deliveries ignore causal order on purpose: a delta may arrive before the
/// deltas it depends on, twice, or at the replica that made it. Joins must cope
/// with that, so every state the simulation reaches is one the laws must hold for.
/// On every delivery the receiver's clock observes the sender's latest timestamp,
/// as a real node's would, so last-writer-wins timestamps follow causality.
public struct Simulation<State: ScriptableCRDT>: Sendable {
    /// One simulated replica.
    public struct Replica: Sendable {
        /// Its identifier.
        public let id: ReplicaID
        /// Its current state.
        public internal(set) var state: State
        /// Its hybrid logical clock.
        public internal(set) var clock: HybridLogicalClock
        /// How far ahead of the shared simulated time its physical clock runs, in ms.
        public let skewMilliseconds: UInt64
    }

    /// One delta in the log, with where and when it was made.
    public struct DeltaRecord: Sendable {
        /// The index of the replica that made it.
        public let origin: Int
        /// The delta.
        public let delta: State
        /// The origin's clock when it made it (receivers observe it).
        public let timestamp: HLCTimestamp
    }

    /// One local write: the delta-mutator law is checked on these.
    public struct MutationRecord: Sendable {
        /// The index of the writing replica.
        public let replica: Int
        /// What was written.
        public let mutation: Mutation
        /// The replica's state before the write.
        public let before: State
        /// The delta the mutator returned.
        public let delta: State
        /// The replica's state after the write.
        public let after: State
    }

    /// The replicas, in script order.
    public private(set) var replicas: [Replica]
    /// Every delta produced, in order; `sendDelta` steps index into it.
    public private(set) var deltas: [DeltaRecord] = []
    /// Every write performed, in order.
    public private(set) var mutations: [MutationRecord] = []
    /// A trace of the steps performed, readable with the type's mutator names;
    /// recorded only when `isTracing` (building strings costs more than the steps).
    public private(set) var trace: [String] = []
    /// Whether steps are recorded in `trace`.
    public var isTracing: Bool
    /// Shared simulated time in milliseconds; replica `i` reads it plus its skew.
    public private(set) var time: UInt64 = OperationScript.startMilliseconds
    /// Seeds `deliverEverything()`.
    public let deliverySeed: UInt64
    /// The script the replicas were created from.
    public let script: OperationScript

    /// Creates the replicas of `script`, all at bottom, without running any step.
    public init(replicasOf script: OperationScript, tracing: Bool = false) {
        isTracing = tracing
        replicas = zip(script.replicaIDs, script.clockSkews).map { id, skew in
            Replica(id: id, state: State(), clock: HybridLogicalClock(), skewMilliseconds: skew)
        }
        deliverySeed = script.deliverySeed
        self.script = script
    }

    /// Creates the replicas of `script` and runs every step of it.
    public init(running script: OperationScript, tracing: Bool = false) {
        self.init(replicasOf: script, tracing: tracing)
        for step in script.steps { perform(step) }
    }

    /// A property-test generator of simulations that ran a random script of
    /// `steps` steps: `propertyCheck(input: Simulation<ORSet<Int>>.generator()) { … }`.
    /// A failing case prints its script.
    public static func generator(steps: ClosedRange<Int> = 0...30) -> Generator<Self, some SendableSequenceType> {
        OperationScript.generator(steps: steps).map { Simulation(running: $0) }
    }

    /// The replicas' current states, in order.
    public var states: [State] { replicas.map(\.state) }

    /// The join of every delta produced: what every replica holds once everything
    /// is delivered.
    public var joinOfAllDeltas: State {
        deltas.reduce(into: State()) { $0.merge($1.delta) }
    }

    /// Replica `index`'s physical time now.
    func physicalMilliseconds(of index: Int) -> UInt64 { time + replicas[index].skewMilliseconds }

    /// Performs one step (indices are taken modulo the replica or delta count).
    public mutating func perform(_ step: OperationScript.Step) {
        let count = replicas.count
        switch step {
        case .mutate(let replicaIndex, var mutation):
            let index = replicaIndex % count
            mutation.kind %= State.mutatorNames.count
            let timestamp = replicas[index].clock.now(physicalMilliseconds: physicalMilliseconds(of: index))
            let before = replicas[index].state
            let delta = replicas[index].state.perform(mutation, at: replicas[index].id, timestamp: timestamp)
            mutations.append(
                MutationRecord(
                    replica: index, mutation: mutation, before: before, delta: delta, after: replicas[index].state))
            deltas.append(DeltaRecord(origin: index, delta: delta, timestamp: timestamp))
            if isTracing { trace.append("d\(deltas.count - 1) = r\(index).\(State.describe(mutation)) @\(timestamp)") }
        case .sendDelta(let raw, let to):
            guard !deltas.isEmpty else { return }
            let record = deltas[raw % deltas.count]
            deliver(record.delta, timestamp: record.timestamp, to: to % count)
            if isTracing { trace.append("d\(raw % deltas.count) -> r\(to % count)") }
        case .sendDeltaGroup(let first, let length, let to):
            guard !deltas.isEmpty else { return }
            let start = first % deltas.count
            let records = deltas[start..<min(deltas.count, start + length)]
            let group = records.reduce(into: State()) { $0.merge($1.delta) }
            deliver(group, timestamp: records.map(\.timestamp).max() ?? .zero, to: to % count)
            if isTracing { trace.append("d\(start)..<\(start + records.count) -> r\(to % count)") }
        case .sendState(let from, let to):
            let sender = replicas[from % count]
            deliver(sender.state, timestamp: sender.clock.latest, to: to % count)
            if isTracing { trace.append("r\(from % count) -> r\(to % count)") }
        case .advanceTime(let milliseconds):
            time += UInt64(milliseconds)
            if isTracing { trace.append("+\(milliseconds)ms") }
        }
    }

    /// Joins `payload` into replica `index`, whose clock observes `timestamp`.
    public mutating func deliver(_ payload: State, timestamp: HLCTimestamp, to index: Int) {
        // Skews are at most a few milliseconds, far inside the clock's bound, so the
        // observation cannot be refused; if a user script makes it so, the message
        // is still merged, as the join does not depend on clocks.
        _ = try? replicas[index].clock.observe(timestamp, physicalMilliseconds: physicalMilliseconds(of: index))
        replicas[index].state.merge(payload)
    }

    /// Delivers every delta to every replica, in a random order seeded by the
    /// script, with about a quarter of them duplicated and whole states exchanged
    /// in between, the way gossip and anti-entropy would. Afterwards every replica
    /// has received every delta, so all states must be equal (convergence).
    ///
    /// - Returns: a trace of the deliveries when `isTracing`, for failure messages.
    @discardableResult
    public mutating func deliverEverything() -> [String] {
        var random = SplitMix64(seed: deliverySeed)
        var messages: [(to: Int, message: GossipMessage)] = []
        for to in replicas.indices {
            for delta in deltas.indices {
                messages.append((to, .delta(delta)))
                if random.next() % 4 == 0 { messages.append((to, .delta(delta))) }
            }
            for from in replicas.indices where from != to && random.next() % 3 == 0 {
                messages.append((to, .state(from)))
            }
        }
        messages.shuffle(using: &random)
        var log: [String] = []
        for (to, message) in messages {
            switch message {
            case .delta(let index):
                deliver(deltas[index].delta, timestamp: deltas[index].timestamp, to: to)
                if isTracing { log.append("d\(index) -> r\(to)") }
            case .state(let from):
                deliver(replicas[from].state, timestamp: replicas[from].clock.latest, to: to)
                if isTracing { log.append("r\(from) -> r\(to)") }
            }
        }
        return log
    }
}

/// A message of `Simulation.deliverEverything()`: a logged delta or a replica's whole state.
enum GossipMessage {
    case delta(Int)
    case state(Int)
}

extension Simulation: CustomStringConvertible {
    /// The type and the script, which replays the run.
    public var description: String { "Simulation<\(State.self)>(\(script))" }
}
