import Dispatch
import MeshCRDT
import MeshReplication

/// The invariant checker: every delivery checked against what the simulator itself recorded of
/// the writes (causal order, no double delivery), and at the end every replica's state against
/// node 0's and the writes (convergence, no lost acknowledged write, counter sums, LWW winners).
/// It keeps its own tables and never trusts the replicas' bookkeeping.
extension Simulation {
    /// Checks and counts one delivery at `node` (tests drive the checker with it).
    mutating func observe(_ delivery: Delivery, at node: Int) {
        let actions: [ReplicationAction] = [.deliver(delivery)]
        perform(actions, at: node, observations: observeDeliveries(in: actions, at: node))
    }

    /// Checks the deliveries among `actions` of `node` (a step on the caller's thread, or a write)
    /// against the checker's tables, in one pass over the node's rows.
    mutating func observeDeliveries(in actions: [ReplicationAction], at node: Int) -> [Observation] {
        let tables = checkerTables
        return Self.withRows(&views, &dirty, &dirtyLists, &deliveredTotals) { rows in
            Self.observeDeliveries(in: actions, at: node, tables: tables, rows: rows)
        }
    }

    /// The observations of the deliveries among `actions` at `node`, in order. Reads and writes
    /// only rows of `node`, so steps of different nodes may run at once.
    static func observeDeliveries(
        in actions: [ReplicationAction], at node: Int, tables: CheckerTables, rows: CheckerRows
    ) -> [Observation] {
        var observations: [Observation] = []
        for position in actions.indices {
            guard case .deliver(let delivery) = actions[position] else { continue }
            observations.append(observe(delivery, at: node, tables: tables, rows: rows))
        }
        return observations
    }

    /// Runs `body` with the checker's per-node tables as `CheckerRows`.
    static func withRows<Result>(
        _ views: inout [UInt64], _ dirty: inout [Bool], _ dirtyLists: inout [[Int32]], _ deliveredTotals: inout [Int],
        _ body: (CheckerRows) -> Result
    ) -> Result {
        views.withUnsafeMutableBufferPointer { views in
            dirty.withUnsafeMutableBufferPointer { dirty in
                dirtyLists.withUnsafeMutableBufferPointer { dirtyLists in
                    deliveredTotals.withUnsafeMutableBufferPointer { deliveredTotals in
                        body(CheckerRows(views: views, dirty: dirty, dirtyLists: dirtyLists, deliveredTotals: deliveredTotals))
                    }
                }
            }
        }
    }

    /// The checker's read-only tables during a step (writes and their dependencies are
    /// recorded only by `.write` events, which are never stepped in parallel).
    struct CheckerTables: @unchecked Sendable {
        let nodes: Int
        let domainConfigurations: [DomainConfiguration]
        let writeIndex: [[Int32]]
        let dependencyStart: [Int]
        let dependencyOrigins: [Int32]
        let dependencySequences: [UInt64]
    }

    var checkerTables: CheckerTables {
        CheckerTables(
            nodes: scenario.nodes, domainConfigurations: domainConfigurations, writeIndex: writeIndex,
            dependencyStart: dependencyStart, dependencyOrigins: dependencyOrigins, dependencySequences: dependencySequences)
    }

    /// What one delivery did to its node's rows of the checker, and what is left to count in
    /// event order (failures, the per-write delivery counts that every node shares).
    struct Observation {
        var domain = 0
        var origin = 0
        /// Counted as a double delivery.
        var isDuplicate = false
        /// A gap before the delivery in a causal domain (one causal violation).
        var gap: String?
        /// A failure that ends the observation: nothing is counted after it.
        var stop: String?
        var violations = 0
        var firstViolation: (sequence: UInt64, origin: Int32, needed: UInt64)?
    }

    /// Checks `delivery` at `node` against the checker's tables and advances the node's rows.
    /// Reads and writes only rows of `node`, so steps of different nodes may run at once.
    static func observe(_ delivery: Delivery, at node: Int, tables: CheckerTables, rows: CheckerRows) -> Observation {
        var observation = Observation()
        guard let domain = tables.domainConfigurations.firstIndex(where: { $0.name == delivery.domain }) else {
            observation.stop = "delivery in unknown domain \(delivery.domain)"
            return observation
        }
        let count = tables.nodes
        let origin = Int(delivery.origin.rawValue) - 1
        observation.domain = domain
        observation.origin = origin
        let pair = domain * count + node
        let row = pair * count
        let slot = row + origin
        let seen = rows.views[slot]
        if delivery.firstSequence <= seen {
            observation.isDuplicate = true
            observation.stop = "node \(node) delivered \(delivery.origin):\(delivery.firstSequence) twice"
            return observation
        }
        let isCausal = tables.domainConfigurations[domain].mode == .causal
        if delivery.firstSequence != seen + 1 {
            if isCausal {
                observation.gap = "node \(node) delivered \(delivery.origin):\(delivery.firstSequence) after only \(seen)"
            }
        }
        let writeNumbers = tables.writeIndex[domain * count + origin]
        guard delivery.lastSequence <= UInt64(writeNumbers.count) else {
            observation.stop = "node \(node) delivered writes of \(delivery.origin) never issued"
            return observation
        }
        if isCausal && delivery.source == .remote {
            for sequence in delivery.firstSequence...delivery.lastSequence {
                let number = Int(writeNumbers[Int(sequence) - 1])
                // Every recorded dependency of the write must already be delivered here. The
                // loop reads flat buffers only: it runs for every dependency of every delivery.
                let start = tables.dependencyStart[number]
                let end = tables.dependencyStart[number + 1]
                for position in start..<end {
                    let needed = tables.dependencySequences[position]
                    if rows.views[row + Int(tables.dependencyOrigins[position])] < needed {
                        observation.violations += 1
                        if observation.firstViolation == nil {
                            observation.firstViolation = (sequence, tables.dependencyOrigins[position], needed)
                        }
                    }
                }
            }
        }
        rows.views[slot] = delivery.lastSequence
        rows.deliveredTotals[pair] += Int(delivery.lastSequence - seen)
        if origin != node && !rows.dirty[slot] {
            rows.dirty[slot] = true
            rows.dirtyLists[pair].append(Int32(origin))
        }
        return observation
    }

    /// Counts an observed delivery: failures and counters in event order, and each write's
    /// delivery count (shared by every node).
    mutating func count(_ observation: Observation, of delivery: Delivery, at node: Int) {
        if observation.isDuplicate { report.duplicateDeliveries += 1 }
        if let gap = observation.gap {
            report.causalViolations += 1
            fail(gap)
        }
        if let stop = observation.stop {
            fail(stop)
            return
        }
        let count = scenario.nodes
        let list = observation.domain * count + observation.origin
        deliveredWrites += Int(delivery.lastSequence - delivery.firstSequence + 1)
        for sequence in delivery.firstSequence...delivery.lastSequence {
            let number = Int(writeIndex[list][Int(sequence) - 1])
            deliveryCounts[number] += 1
            if deliveryCounts[number] == Int32(count) { lastDeliveries[number] = now }
        }
        if let violation = observation.firstViolation {
            report.causalViolations += observation.violations
            fail(
                "node \(node) delivered \(delivery.origin):\(violation.sequence) before its dependency \(violation.origin + 1):\(violation.needed) (during \(currentStepDescription.prefix(300)))"
            )
        }
    }

    func isConverged() -> Bool {
        guard writesIssued >= scenario.writes else { return false }
        var totals = Array(repeating: 0, count: scenario.domains)
        for write in writes { totals[Int(write.domain)] += 1 }
        for domain in 0..<scenario.domains {
            for node in 0..<scenario.nodes where deliveredTotals[domain * scenario.nodes + node] != totals[domain] { return false }
        }
        return true
    }

    mutating func finish() {
        let interval = Double(scenario.intervalMilliseconds)
        report.converged = convergedAt != nil
        report.elapsedVirtualMilliseconds = now
        var rounds: [Double] = []
        rounds.reserveCapacity(writes.count)
        var unfinished = 0
        for (number, write) in writes.enumerated() {
            if deliveryCounts[number] == Int32(scenario.nodes) {
                rounds.append(Double(lastDeliveries[number] - write.time) / interval)
            } else {
                unfinished += 1
            }
        }
        rounds.sort()
        if !rounds.isEmpty {
            report.roundsP50 = rounds[min(rounds.count - 1, rounds.count / 2)]
            report.roundsP99 = rounds[min(rounds.count - 1, (rounds.count * 99) / 100)]
            report.roundsMax = rounds[rounds.count - 1]
        }
        report.writesNotEverywhere = unfinished
        if report.converged { checkFinalState() } else { fail("did not converge within \(scenario.healIntervals) rounds of healing") }
        // Each replica's own invariants (its whole log and buffers: on `threads` threads), reported in node order.
        let replicasAtEnd = replicas
        let problems = parallelMap(scenario.nodes, threads: scenario.effectiveThreads) { node in
            replicasAtEnd[node]?.invariantViolation()
        }
        for node in 0..<scenario.nodes {
            guard let replica = replicas[node] else { continue }
            if let problem = problems[node] {
                report.capViolations += 1
                fail("node \(node) at the end: \(problem)")
            }
            for domain in domainConfigurations {
                if let metrics = replica.metrics(of: domain.name) {
                    report.snapshotsInstalled += metrics.snapshotsInstalled
                    report.logEvictions += metrics.logEvictions
                    report.bufferOverflows += metrics.bufferOverflows
                }
            }
        }
        for (kind, name) in ReplicationMessage.kindNames.enumerated() where messagesPerKind[kind] > 0 {
            report.bytesByKind[name] = bytesPerKind[kind]
            report.messagesByKind[name] = messagesPerKind[kind]
        }
        report.snapshotBytes = report.bytesByKind["snapshot"] ?? 0
        report.failure = firstFailure
        report.passed = firstFailure == nil && report.converged
    }

    mutating func checkFinalState() {
        let live = replicas.compactMap { $0 }
        guard let reference = live.first, live.count == scenario.nodes else {
            fail("not every replica is up at the end")
            return
        }
        var expected = Array(repeating: [UInt64](repeating: 0, count: scenario.nodes), count: scenario.domains)
        for write in writes {
            expected[Int(write.domain)][Int(write.node)] = max(
                expected[Int(write.domain)][Int(write.node)], write.sequence)
        }
        let threads = scenario.effectiveThreads
        for (domainNumber, domain) in domainConfigurations.enumerated() {
            let vector = reference.vector(of: domain.name) ?? VersionVector()
            let objects = reference.objects(in: domain.name) ?? [:]
            // Every replica against node 0, on `threads` threads (read-only); reported in node order.
            let differences = parallelMap(live.count, threads: threads) { node in
                node == 0
                    ? (vector: false, state: false)
                    : (vector: live[node].vector(of: domain.name) != vector, state: live[node].objects(in: domain.name) != objects)
            }
            for node in 1..<live.count {
                if differences[node].vector {
                    fail("\(domain.name): node \(node) vector \(String(describing: live[node].vector(of: domain.name))) differs from \(vector)")
                }
                if differences[node].state {
                    fail("\(domain.name): node \(node) state differs from node 0")
                }
            }
            // Every acknowledged write is present.
            for write in writes where Int(write.domain) == domainNumber && write.acknowledged {
                if vector[peerIDs[Int(write.node)]] < write.sequence {
                    report.lostAcknowledgedWrites += 1
                }
            }
            for node in 0..<scenario.nodes where vector[peerIDs[node]] != expected[domainNumber][node] {
                fail("\(domain.name): final vector entry of node \(node) is \(vector[peerIDs[node]]), \(expected[domainNumber][node]) writes were issued")
            }
            // Counters: the value is the sum of every write (unless a clear reset it: what
            // survives a reset depends on what it observed); registers: the LWW winner, a
            // clear winning as a deletion (no value).
            var sums: [Int32: Int64] = [:]
            var winners: [Int32: (HLCTimestamp, ReplicaID, String?)] = [:]
            var clearedCounters: Set<Int32> = []
            for write in writes where Int(write.domain) == domainNumber {
                let type = ObjectType.allCases[Int(write.key) % ObjectType.allCases.count]
                if type == .counter && write.isClear { clearedCounters.insert(write.key) }
                if type == .counter { sums[write.key, default: 0] += write.counterDelta }
                if type == .register {
                    let candidate = (write.timestamp, peerIDs[Int(write.node)], write.isClear ? nil : write.value)
                    if let current = winners[write.key] {
                        if candidate.0 != current.0 ? candidate.0 > current.0 : candidate.1 > current.1 {
                            winners[write.key] = candidate
                        }
                    } else {
                        winners[write.key] = candidate
                    }
                }
            }
            for (key, sum) in sums where !clearedCounters.contains(key) {
                guard case .counter(let counter)? = objects["k\(key)"], counter.value == sum else {
                    report.lostAcknowledgedWrites += 1
                    fail("\(domain.name): counter k\(key) is not the sum \(sum) of its writes")
                    continue
                }
            }
            for (key, winner) in winners {
                guard case .register(let register)? = objects["k\(key)"], register.value == winner.2 else {
                    report.lwwViolations += 1
                    fail("\(domain.name): register k\(key) does not hold the LWW winner \(winner.2 ?? "(deleted)")")
                    continue
                }
            }
        }
        if report.lostAcknowledgedWrites > 0 { fail("\(report.lostAcknowledgedWrites) acknowledged writes lost") }
    }
}

/// The checker's tables indexed by (domain, node[, origin]): a node's rows change only with
/// deliveries at that node, so parallel steps of different nodes write disjoint slots.
struct CheckerRows: @unchecked Sendable {
    let views: UnsafeMutableBufferPointer<UInt64>
    let dirty: UnsafeMutableBufferPointer<Bool>
    let dirtyLists: UnsafeMutableBufferPointer<[Int32]>
    let deliveredTotals: UnsafeMutableBufferPointer<Int>
}

/// `body` of `0..<count` on `threads` threads (a few chunks per thread), the results in index order.
/// `body` must only read shared state.
func parallelMap<Result>(_ count: Int, threads: Int, _ body: @Sendable (Int) -> Result) -> [Result] {
    var results = [Result?](repeating: nil, count: count)
    results.withUnsafeMutableBufferPointer { buffer in
        let slots = ResultSlots(buffer: buffer)
        let chunk = max(1, (count + 4 * threads - 1) / (4 * threads))
        let items = (count + chunk - 1) / chunk
        // `body` does not escape: every item has run when concurrentPerform returns.
        withoutActuallyEscaping(body) { body in
            let run: @Sendable (Int) -> Void = { item in
                // Each index belongs to one item, so no two threads write one slot.
                for index in (item * chunk)..<min(count, (item + 1) * chunk) { slots.buffer[index] = body(index) }
            }
            if threads > 1 {
                DispatchQueue.concurrentPerform(iterations: items, execute: run)
            } else {
                for item in 0..<items { run(item) }
            }
        }
    }
    return results.map { $0! }
}

/// Result slots of `parallelMap`, each written by one thread only.
private struct ResultSlots<Result>: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Result?>
}
