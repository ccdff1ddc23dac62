import MeshCRDT
import MeshTesting
import PropertyBased
import Testing

/// The join laws, the delta-mutator law, convergence and structural invariants,
/// each checked on at least 200 random histories per CRDT type. Every state comes
/// from a `Simulation` of 2 to 8 replicas with identifiers in 1...8, so states are
/// reachable and full of concurrency, out-of-order deltas and timestamp ties.
@Suite("Merge laws on reachable states")
struct MergeLawTests {
    @Test("merge is idempotent and init() is its identity", arguments: CRDTKind.allCases)
    func idempotence(kind: CRDTKind) async {
        await checkIdempotence(of: kind.scriptableType)
    }

    @Test("merge is commutative and a ⊔ b is an upper bound of both", arguments: CRDTKind.allCases)
    func commutativity(kind: CRDTKind) async {
        await checkCommutativity(of: kind.scriptableType)
    }

    @Test("merge is associative", arguments: CRDTKind.allCases)
    func associativity(kind: CRDTKind) async {
        await checkAssociativity(of: kind.scriptableType)
    }

    @Test(
        "a mutator equals the join with its delta, and the delta does to any y ⊒ x what the new state does",
        arguments: CRDTKind.allCases)
    func deltaMutator(kind: CRDTKind) async {
        await checkDeltaMutators(of: kind.scriptableType)
    }

    @Test(
        "replicas that receive every delta, reordered and duplicated, with whole states mixed in, end equal and encode identically",
        arguments: CRDTKind.allCases)
    func convergence(kind: CRDTKind) async {
        await checkConvergence(of: kind.scriptableType)
    }

    @Test(
        "every reachable state and delta satisfies the type's invariants and rebuilds from its parts",
        arguments: CRDTKind.allCases)
    func invariants(kind: CRDTKind) async {
        await checkInvariants(of: kind.scriptableType)
    }
}

func checkIdempotence<State: ScriptableCRDT>(of type: State.Type) async {
    await propertyCheck(count: casesPerLaw, input: Simulation<State>.generator()) { simulation in
        for state in statePool(simulation) {
            record(CRDTLaws.checkIdempotent(state))
            record(CRDTLaws.checkBottom(state))
        }
    }
}

func checkCommutativity<State: ScriptableCRDT>(of type: State.Type) async {
    await propertyCheck(count: casesPerLaw, input: OperationScript.generator()) { script in
        let pool = statePool(Simulation<State>(running: script))
        for a in pool.indices {
            for b in pool.indices where a < b {
                record(CRDTLaws.checkCommutative(pool[a], pool[b]))
                record(CRDTLaws.checkUpperBound(pool[a], pool[b]))
            }
        }
    }
}

func checkAssociativity<State: ScriptableCRDT>(of type: State.Type) async {
    await propertyCheck(count: casesPerLaw, input: OperationScript.generator()) { script in
        let pool = statePool(Simulation<State>(running: script))
        var random = TestRandom(seed: script.deliverySeed)
        for _ in 0..<40 {
            let a = pool.randomElement(using: &random)!
            let b = pool.randomElement(using: &random)!
            let c = pool.randomElement(using: &random)!
            record(CRDTLaws.checkAssociative(a, b, c))
        }
    }
}

func checkDeltaMutators<State: ScriptableCRDT>(of type: State.Type) async {
    await propertyCheck(count: casesPerLaw, input: OperationScript.generator()) { script in
        let simulation = Simulation<State>(running: script)
        // Observers: every final replica state and every delta; each is joined with
        // the writer's state before the write, so it has seen the write's causal past.
        let observers = simulation.states + simulation.deltas.map(\.delta)
        for record in simulation.mutations {
            MeshCRDTTests.record(
                CRDTLaws.checkDeltaMutator(
                    before: record.before, delta: record.delta, after: record.after, observers: observers))
        }
    }
}

func checkConvergence<State: ScriptableCRDT>(of type: State.Type) async {
    await propertyCheck(count: casesPerLaw, input: OperationScript.generator()) { script in
        var simulation = Simulation<State>(running: script)
        simulation.deliverEverything()
        let converged = simulation.states + [simulation.joinOfAllDeltas]
        record(CRDTLaws.checkConvergence(converged))
        // Converged replicas also encode to identical bytes, and every state round-trips.
        record(CRDTLaws.checkEncodingsIfCodable(converged + simulation.deltas.map(\.delta)))
    }
}

func checkInvariants<State: ScriptableCRDT>(of type: State.Type) async {
    await propertyCheck(count: casesPerLaw, input: OperationScript.generator()) { script in
        var simulation = Simulation<State>(running: script)
        for record in simulation.mutations {
            MeshCRDTTests.record(CRDTLaws.checkInvariants(record.after))
            MeshCRDTTests.record(CRDTLaws.checkInvariants(record.delta))
        }
        simulation.deliverEverything()
        for state in simulation.states { record(CRDTLaws.checkInvariants(state)) }
    }
}

/// The harness the fuzzer runs, on property-generated inputs: it must find nothing
/// on correct types, and it must report a planted bug (a test that cannot fail is a defect).
@Suite("Merge-law harness")
struct MergeLawHarnessTests {
    @Test("the fuzz harness finds no violation on 200 random inputs per type", arguments: CRDTKind.allCases)
    func harnessIsQuietOnCorrectTypes(kind: CRDTKind) async {
        await propertyCheck(count: casesPerLaw, input: Gen.uint8().array(of: 0...90)) { bytes in
            record(MergeLawHarness.violations(fuzzInput: [kind.rawValue] + bytes))
        }
    }

    @Test("the law checkers catch a non-commutative, non-idempotent merge")
    func checkersCatchABrokenMerge() {
        var a = BrokenCounter()
        a.value = 1
        var b = BrokenCounter()
        b.value = 2
        #expect(CRDTLaws.checkCommutative(a, b)?.law == .commutativity)
        #expect(CRDTLaws.checkIdempotent(a)?.law == .idempotence)
        #expect(CRDTLaws.checkAssociative(a, b, a)?.law == .associativity)
        #expect(!CRDTLaws.latticeViolations(a, b, BrokenCounter()).isEmpty)
    }

    @Test("the delta-mutator checker catches a delta that does not reproduce the write")
    func checkerCatchesAWrongDelta() {
        var before = GCounter()
        before.increment(by: 2, at: r1)
        var after = before
        after.increment(by: 3, at: r1)
        var wrongDelta = GCounter()
        wrongDelta.increment(by: 3, at: r1)  // an increment, not the new count 5
        #expect(CRDTLaws.checkDeltaMutator(before: before, delta: wrongDelta, after: after)?.law == .deltaMutator)
        let rightDelta = before.merging(GCounter(counts: [(r1, UInt64(5))]))
        #expect(CRDTLaws.checkDeltaMutator(before: before, delta: rightDelta, after: after) == nil)
    }

    @Test("every built-in kind has a MeshCodec encoding, so the encoding checks are never skipped")
    func everyKindIsEncodable() {
        for kind in CRDTKind.allCases {
            #expect(kind.hasEncoding, "\(kind)")
        }
    }

    @Test("every byte string decodes to a valid script: 2 to 8 distinct replicas in 1...8, skews of at most 3 ms")
    func everyByteStringIsAScript() async {
        await propertyCheck(count: casesPerLaw, input: Gen.uint8().array(of: 0...64)) { bytes in
            let script = OperationScript(bytes: bytes)
            #expect((2...8).contains(script.replicaIDs.count))
            #expect(Set(script.replicaIDs).count == script.replicaIDs.count)
            #expect(script.replicaIDs.allSatisfy { (1...8).contains($0.rawValue) })
            #expect(script.clockSkews.count == script.replicaIDs.count && script.clockSkews.allSatisfy { $0 <= 3 })
            #expect(script.steps.count == max(0, bytes.count - 4 + 2) / 3)
        }
    }

    @Test("the same fuzz bytes decode to the same script and the same verdict (replay)")
    func scriptsReplay() {
        let bytes: [UInt8] = [3, 7, 0xE4, 0x1B, 0, 1, 9, 8, 0, 2, 12, 1, 0, 1, 2, 3, 14, 1, 0]
        #expect(OperationScript(bytes: bytes) == OperationScript(bytes: bytes))
        let script = OperationScript(bytes: bytes)
        #expect(script.replicaIDs.count == 5)
        #expect(Set(script.replicaIDs).count == 5)
        #expect(script.replicaIDs.allSatisfy { (1...8).contains($0.rawValue) })
        #expect(script.steps.count == 5)
        let first = Simulation<ORSet<UInt8>>(running: script)
        let second = Simulation<ORSet<UInt8>>(running: script)
        #expect(first.states == second.states)
    }
}

/// A deliberately wrong CRDT whose merge adds: used to show the checkers can fail.
struct BrokenCounter: DeltaCRDT {
    var value = 0
    var isBottom: Bool { value == 0 }
    mutating func merge(_ other: BrokenCounter) { value = value * 2 + other.value }
}

@Suite("Violation messages")
struct ViolationMessageTests {
    @Test("state descriptions show every dot and the causal context, in a stable order")
    func descriptionsShowDots() {
        var set = ORSet<Int>()
        set.insert(5, at: r2)
        set.insert(3, at: r1)
        let text = CRDTLaws.describe(set)
        #expect(text.contains("3: [\(r1):1]"), "\(text)")
        #expect(text.contains("5: [\(r2):1]"), "\(text)")
        #expect(text.contains("causalContext"), "\(text)")
        #expect(text.firstRange(of: "3: ")!.lowerBound < text.firstRange(of: "5: ")!.lowerBound)
        var counter = PNCounter()
        counter.decrement(by: 4, at: r3)
        #expect(CRDTLaws.describe(counter).contains("\(r3)"))
    }
}
