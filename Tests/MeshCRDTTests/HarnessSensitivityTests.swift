import MeshCRDT
import MeshTesting
import Testing

/// The harness must fail on broken types: each test plants one realistic CRDT bug
/// and shows that random histories expose it under the expected law. (A law check
/// that cannot fail is a defect.)
@Suite("The law harness catches planted bugs")
struct HarnessSensitivityTests {
    /// Laws broken on 200 random scripts (the same byte source the fuzzer uses).
    static func lawsBroken<State: ScriptableCRDT>(_ type: State.Type) -> Set<String> {
        var random = TestRandom(seed: 7)
        var broken: Set<String> = []
        for _ in 0..<casesPerLaw {
            let bytes = (0..<(4 + 3 * 20)).map { _ in UInt8.random(in: 0...255, using: &random) }
            for violation in MergeLawHarness.violations(of: type, script: OperationScript(bytes: bytes)) {
                broken.insert(violation.law.name)
            }
        }
        return broken
    }

    @Test("a remove whose delta is lost (bottom returned) breaks the delta-mutator law")
    func lostRemoveDelta() {
        #expect(Self.lawsBroken(LostRemoveDeltaSet.self).contains(LawViolation.Law.deltaMutator.name))
    }

    @Test("a merge that ignores causal contexts (plain union of entries) breaks the delta-mutator law")
    func contextBlindMerge() {
        #expect(Self.lawsBroken(ContextBlindSet.self).contains(LawViolation.Law.deltaMutator.name))
    }

    @Test("a register whose merge keeps the arriving write breaks commutativity and convergence")
    func arrivalOrderRegister() {
        let broken = Self.lawsBroken(ArrivalOrderRegister.self)
        #expect(broken.contains(LawViolation.Law.commutativity.name))
        #expect(broken.contains(LawViolation.Law.convergence.name))
    }
}

/// An ORSet whose `remove` forgets to return its delta.
struct LostRemoveDeltaSet: ScriptableCRDT {
    var inner = ORSet<UInt8>()
    var isBottom: Bool { inner.isBottom }
    mutating func merge(_ other: LostRemoveDeltaSet) { inner.merge(other.inner) }
    static var mutatorNames: [String] { ["insert", "remove"] }
    mutating func perform(_ mutation: Mutation, at replica: ReplicaID, timestamp: HLCTimestamp) -> Self {
        let element = UInt8(mutation.element)
        if mutation.kind == 0 { return Self(inner: inner.insert(element, at: replica)) }
        inner.remove(element)
        return Self()
    }
}

/// An ORSet-like set whose merge unions elements and contexts without letting a
/// context remove anything: removes never travel.
struct ContextBlindSet: ScriptableCRDT {
    var inner = ORSet<UInt8>()
    var isBottom: Bool { inner.isBottom }
    mutating func merge(_ other: ContextBlindSet) {
        var entries = inner.dottedElements
        for (element, dots) in other.inner.dottedElements {
            entries[element] = DotSet(Array(entries[element] ?? DotSet()) + Array(dots))
        }
        inner = ORSet(entries: entries, context: inner.context.merging(other.inner.context))!
    }
    static var mutatorNames: [String] { ["insert", "remove"] }
    mutating func perform(_ mutation: Mutation, at replica: ReplicaID, timestamp: HLCTimestamp) -> Self {
        let element = UInt8(mutation.element)
        if mutation.kind == 0 { return Self(inner: inner.insert(element, at: replica)) }
        return Self(inner: inner.remove(element))
    }
}

/// A register whose merge always takes the incoming write.
struct ArrivalOrderRegister: ScriptableCRDT {
    var write: LWWWrite<UInt8>?
    var isBottom: Bool { write == nil }
    mutating func merge(_ other: ArrivalOrderRegister) {
        if let incoming = other.write { write = incoming }
    }
    static var mutatorNames: [String] { ["set"] }
    mutating func perform(_ mutation: Mutation, at replica: ReplicaID, timestamp: HLCTimestamp) -> Self {
        write = LWWWrite(value: UInt8(mutation.element), timestamp: timestamp, replica: replica)
        return self
    }
}
