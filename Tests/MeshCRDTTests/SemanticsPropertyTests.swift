import MeshCRDT
import MeshTesting
import PropertyBased
import Testing

/// Each type's meaning, checked against an independent model on 200 random
/// histories per type, after every delta has been delivered everywhere.
///
/// The observed-remove model (Bieniusa et al. 2012): a write of key `k` with dot
/// `d` survives unless some later event that overwrites or removes `k` (a write or
/// remove of `k`, a `removeAll` or `reset`) happened at a replica that had already
/// seen `d`. Concurrent writes survive a remove (add-wins), and a removed write
/// leaves no dot behind. The model reads only the writes' dots and the writers'
/// contexts before each write, never the merge code.
@Suite("CRDT semantics against models")
struct SemanticsPropertyTests {
    @Test("GCounter: every replica's count and the value equal the sum of its increments")
    func gCounterSumsIncrements() async {
        await propertyCheck(count: casesPerLaw, input: OperationScript.generator()) { script in
            var simulation = Simulation<GCounter>(running: script)
            simulation.deliverEverything()
            var expected: [ReplicaID: UInt64] = [:]
            for record in simulation.mutations {
                expected[simulation.replicas[record.replica].id, default: 0] += UInt64(record.mutation.element)
            }
            for state in simulation.states {
                #expect(state.value == expected.values.reduce(0, +))
                for (replica, sum) in expected { #expect(state[replica] == sum) }
            }
        }
    }

    @Test("PNCounter: the value is the sum of the increments minus the decrements that no reset observed")
    func pnCounterSumsWhatNoResetObserved() async {
        await propertyCheck(count: casesPerLaw, input: OperationScript.generator()) { script in
            var simulation = Simulation<PNCounter>(running: script)
            simulation.deliverEverything()
            // Kinds: 0 and 2 increment, 1 and 3 decrement, 4 resets. A replica's counts are
            // cumulative, so a reset observed a write exactly when the resetting replica's count
            // of the writer had reached the writer's count after that write.
            let resets = simulation.mutations.filter { $0.mutation.kind == 4 }
            var expected: Int64 = 0
            for record in simulation.mutations where record.mutation.kind < 4 {
                let writer = script.replicaIDs[record.replica]
                let isIncrement = record.mutation.kind % 2 == 0
                let total = isIncrement ? record.after.increments[writer] : record.after.decrements[writer]
                let observed = resets.contains { reset in
                    (isIncrement ? reset.before.increments[writer] : reset.before.decrements[writer]) >= total
                }
                if !observed {
                    let amount = Int64(record.mutation.element)
                    expected += isIncrement ? amount : -amount
                }
            }
            for state in simulation.states { #expect(state.value == expected) }
        }
    }

    @Test("ORSet: each element keeps exactly the add dots no later remove, removeAll or re-add observed")
    func orSetIsAddWinsObservedRemove() async {
        await propertyCheck(count: casesPerLaw, input: OperationScript.generator()) { script in
            var simulation = Simulation<ORSet<UInt8>>(running: script)
            var model = ObservedRemoveModel()
            for record in simulation.mutations {
                let element = record.mutation.element
                switch record.mutation.kind {
                case 0, 1, 2:
                    let dot = record.delta.dots(of: UInt8(element)).sorted[0]
                    model.write(key: element, dot: dot, seen: record.before.context)
                case 3, 4: model.remove(keys: [element], seen: record.before.context)
                default: model.remove(keys: nil, seen: record.before.context)
                }
            }
            simulation.deliverEverything()
            for state in simulation.states {
                for element in 0..<8 {
                    #expect(Set(state.dots(of: UInt8(element))) == model.survivors(of: element), "element \(element)")
                }
                #expect(state.elements == Set(model.presentKeys.map(UInt8.init)))
            }
        }
    }

    @Test("EWFlag: enabled exactly when some enable was not observed by a later disable or enable")
    func ewFlagIsEnableWins() async {
        await propertyCheck(count: casesPerLaw, input: OperationScript.generator()) { script in
            var simulation = Simulation<EWFlag>(running: script)
            var model = ObservedRemoveModel()
            for record in simulation.mutations {
                if record.mutation.kind == 2 {
                    model.remove(keys: nil, seen: record.before.context)
                } else {
                    model.write(key: 0, dot: record.delta.enablingDots.sorted[0], seen: record.before.context)
                }
            }
            simulation.deliverEverything()
            for state in simulation.states {
                #expect(Set(state.enablingDots) == model.survivors(of: 0))
                #expect(state.isEnabled == !model.survivors(of: 0).isEmpty)
            }
        }
    }

    @Test("MVRegister: holds exactly the concurrent values no later write or reset observed")
    func mvRegisterKeepsConcurrentValues() async {
        await propertyCheck(count: casesPerLaw, input: OperationScript.generator()) { script in
            var simulation = Simulation<MVRegister<UInt8>>(running: script)
            var model = ObservedRemoveModel()
            var written: [Dot: UInt8] = [:]
            for record in simulation.mutations {
                if record.mutation.kind == 3 {
                    model.remove(keys: nil, seen: record.before.context)
                } else {
                    let dotted = record.delta.dottedValues[0]
                    written[dotted.dot] = dotted.value
                    model.write(key: 0, dot: dotted.dot, seen: record.before.context)
                }
            }
            simulation.deliverEverything()
            let expected = model.survivors(of: 0).sorted()
            for state in simulation.states {
                #expect(state.dottedValues.map(\.dot) == expected)
                #expect(state.values == expected.map { written[$0]! })
            }
        }
    }

    @Test(
        "LWWMap: each key keeps the unobserved writes, a set beats a concurrent remove, the greatest (timestamp, replica) is read"
    )
    func lwwMapIsObservedRemoveWithLastWriterWins() async {
        await propertyCheck(count: casesPerLaw, input: OperationScript.generator()) { script in
            var simulation = Simulation<LWWMap<UInt8, UInt8>>(running: script)
            var model = ObservedRemoveModel()
            var writes: [Dot: LWWWrite<UInt8>] = [:]
            for record in simulation.mutations {
                let key = record.mutation.element
                if record.mutation.kind == 2 {
                    model.remove(keys: [key], seen: record.before.context)
                } else if record.mutation.kind == 5 {
                    model.remove(keys: nil, seen: record.before.context)
                } else {
                    let entry = record.delta.dottedEntries[UInt8(key)]![0]
                    writes[entry.dot] = entry.write
                    model.write(key: key, dot: entry.dot, seen: record.before.context)
                }
            }
            simulation.deliverEverything()
            for state in simulation.states {
                for key in 0..<8 {
                    let survivors = model.survivors(of: key)
                    #expect(Set(state.dottedEntries[UInt8(key)]?.map(\.dot) ?? []) == survivors, "key \(key)")
                    let winner = survivors.map { writes[$0]! }.max { $0.isOlder(than: $1) }
                    #expect(state.write(for: UInt8(key)) == winner, "key \(key)")
                }
            }
        }
    }

    @Test(
        "LWWRegister: every replica ends with the write or deletion of greatest (timestamp, replica); ties go to the greater replica"
    )
    func lwwRegisterKeepsTheGreatestWrite() async {
        await propertyCheck(count: casesPerLaw, input: OperationScript.generator()) { script in
            var simulation = Simulation<LWWRegister<UInt8>>(running: script)
            // Writes and deletions (a write without a value) alike.
            let allWrites = simulation.mutations.compactMap(\.delta.lastWrite)
            // The greatest write by timestamp, ties broken by the greater replica ID.
            let expected = allWrites.max { a, b in
                a.timestamp != b.timestamp ? a.timestamp < b.timestamp : a.replica < b.replica
            }
            simulation.deliverEverything()
            for state in simulation.states {
                #expect(state.lastWrite == expected)
                #expect(state.value == expected?.value ?? nil)
            }
            // (timestamp, replica) identifies a write: the clocks never reuse one.
            #expect(Set(allWrites.map { "\($0.timestamp)/\($0.replica)" }).count == allWrites.count)
        }
    }

    @Test("the histories really contain concurrency, out-of-order deltas, removals and timestamp ties")
    func generatorReachesTheInterestingCases() async {
        var counts: [String: Int] = [:]
        await propertyCheck(count: casesPerLaw, input: OperationScript.generator()) { script in
            let simulation = Simulation<ORSet<UInt8>>(running: script)
            // Two replicas each hold a dot of one element the other has not seen.
            let states = simulation.states
            for a in states {
                for b in states where a != b {
                    for element in a.elements where b.contains(element) {
                        if a.dots(of: element).contains(where: { !b.context.contains($0) })
                            && b.dots(of: element).contains(where: { !a.context.contains($0) })
                        {
                            counts["concurrent adds", default: 0] += 1
                        }
                    }
                }
            }
            if states.contains(where: { !$0.context.dotCloud.isEmpty }) { counts["dot cloud", default: 0] += 1 }
            if simulation.mutations.contains(where: { $0.mutation.kind >= 3 && !$0.delta.isBottom }) {
                counts["effective remove", default: 0] += 1
            }
            let registers = Simulation<LWWRegister<UInt8>>(running: script)
            let stamps = registers.mutations.compactMap(\.delta.write)
            if Set(stamps.map(\.timestamp)).count < stamps.count { counts["timestamp tie", default: 0] += 1 }
        }
        let seen = counts
        // Each kind of case must come up often enough to be tested. Dot clouds are the rarest (about
        // 15% of histories since clears joined the mutations: 28 to 36 of 200 over six runs), so their
        // bar is 5%: at 10% a run fell one short (19 of 200) by chance.
        let minimum = ["concurrent adds": casesPerLaw / 10, "dot cloud": casesPerLaw / 20,
            "effective remove": casesPerLaw / 10, "timestamp tie": casesPerLaw / 10]
        for (name, bar) in minimum.sorted(by: { $0.key < $1.key }) {
            #expect(seen[name, default: 0] >= bar, "\(name): \(seen[name, default: 0]) cases")
        }
    }
}

/// The observed-remove reference model: writes with their dots, and the contexts
/// under which later overwrites and removes happened.
struct ObservedRemoveModel {
    private var writes: [(key: Int, dot: Dot)] = []
    /// Keys (`nil` for all) and the context each later event had seen.
    private var overwrites: [(keys: Set<Int>?, seen: CausalContext)] = []

    /// A write of `key` with `dot`, at a replica that had seen `seen`; it overwrites
    /// the writes of `key` that replica had seen.
    mutating func write(key: Int, dot: Dot, seen: CausalContext) {
        overwrites.append(([key], seen))
        writes.append((key, dot))
    }

    /// A remove of `keys` (all keys when `nil`) at a replica that had seen `seen`.
    mutating func remove(keys: Set<Int>?, seen: CausalContext) {
        overwrites.append((keys, seen))
    }

    /// The dots of `key`'s writes that no overwrite or remove of `key` observed.
    func survivors(of key: Int) -> Set<Dot> {
        Set(
            writes.filter { write in
                write.key == key
                    && !overwrites.contains { ($0.keys?.contains(key) ?? true) && $0.seen.contains(write.dot) }
            }.map(\.dot))
    }

    /// The keys with at least one surviving write.
    var presentKeys: Set<Int> { Set(writes.map(\.key).filter { !survivors(of: $0).isEmpty }) }
}
