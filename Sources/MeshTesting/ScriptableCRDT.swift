import MeshCRDT

/// One local write a script asks a replica to perform, in a type-independent form.
///
/// Each `ScriptableCRDT` reads the fields its own way: `kind` picks one of its
/// mutators (modulo `mutatorNames.count`), `element` is a small element, key or
/// amount and `value` a small value. Both are kept in `0..<8` by scripts, so
/// replicas keep touching the same few elements and writes really conflict.
public struct Mutation: Hashable, Sendable, CustomStringConvertible {
    /// Which mutator, taken modulo the type's `mutatorNames.count`.
    public var kind: Int
    /// The element, key or amount the mutator works on.
    public var element: Int
    /// The value written, for types that write one.
    public var value: Int

    /// Creates a mutation.
    public init(kind: Int, element: Int, value: Int) {
        self.kind = kind
        self.element = element
        self.value = value
    }

    /// `#kind(element, value)`.
    public var description: String { "#\(kind)(\(element), \(value))" }
}

/// A delta CRDT that operation scripts can drive: it names its mutators, performs
/// them from a `Mutation`, and checks its own structural invariants.
///
/// MeshTesting conforms every MeshCRDT type (registers, sets and maps over fixed-width
/// integers). Conform your own type to run the same law checks on it:
///
/// ```swift
/// extension MyCounter: ScriptableCRDT {
///     public static let mutatorNames = ["increment"]
///     public mutating func perform(_ m: Mutation, at r: ReplicaID, timestamp: HLCTimestamp) -> Self {
///         increment(by: UInt64(m.element), at: r)
///     }
/// }
///
/// // In a test: every law on 200 random histories.
/// await propertyCheck(count: 200, input: OperationScript.generator()) { script in
///     #expect(MergeLawHarness.violations(of: MyCounter.self, script: script) == [])
/// }
/// ```
public protocol ScriptableCRDT: DeltaCRDT {
    /// The names of the mutators, indexed by `Mutation.kind` modulo the count. A
    /// name may appear more than once to make that mutator more frequent.
    static var mutatorNames: [String] { get }

    /// Performs `mutation` as a local write of `replica` and returns its delta.
    ///
    /// - Parameters:
    ///   - mutation: the write; `kind` is already reduced modulo `mutatorNames.count`.
    ///   - replica: the writing replica.
    ///   - timestamp: a fresh timestamp from that replica's hybrid logical clock,
    ///     for last-writer-wins types; others ignore it.
    mutating func perform(_ mutation: Mutation, at replica: ReplicaID, timestamp: HLCTimestamp) -> Self

    /// Descriptions of broken structural invariants (empty when the state is well formed).
    ///
    /// The default finds none. MeshTesting's conformances also check that the public
    /// "from parts" initialisers the decoders use accept the state and rebuild it exactly.
    func invariantViolations() -> [String]
}

extension ScriptableCRDT {
    /// No invariants beyond the type system.
    public func invariantViolations() -> [String] { [] }

    /// A readable name for `mutation` on this type, such as `remove(3)`.
    public static func describe(_ mutation: Mutation) -> String {
        let name = mutatorNames[mutation.kind % mutatorNames.count]
        return "\(name)(\(mutation.element), \(mutation.value))"
    }
}

/// Checks a causal context is canonical: the decoder initialiser accepts its parts and rebuilds it.
func contextViolations(_ context: CausalContext) -> [String] {
    guard let rebuilt = CausalContext(versionVector: context.versionVector, dotCloud: context.dotCloud) else {
        return ["causal context \(context) is not canonical"]
    }
    return rebuilt == context ? [] : ["causal context \(context) rebuilds as \(rebuilt)"]
}

extension GCounter: ScriptableCRDT {
    /// `increment` by `element` (0 to 7; zero is a legal no-op write).
    public static var mutatorNames: [String] { ["increment"] }

    /// Increments by `mutation.element` at `replica`.
    public mutating func perform(_ mutation: Mutation, at replica: ReplicaID, timestamp: HLCTimestamp) -> GCounter {
        increment(by: UInt64(mutation.element), at: replica)
    }

    /// Counts are sorted by replica and non-zero, and rebuilding from them gives the same counter.
    public func invariantViolations() -> [String] {
        let entries = counts
        var problems: [String] = []
        for index in entries.indices {
            if entries[index].counter == 0 { problems.append("zero count for \(entries[index].replica)") }
            if index > 0 && !(entries[index - 1].replica < entries[index].replica) {
                problems.append("counts not sorted by replica")
            }
        }
        if GCounter(counts: entries.map { ($0.replica, $0.counter) }) != self {
            problems.append("rebuilding from counts gives a different counter")
        }
        return problems
    }
}

extension PNCounter: ScriptableCRDT {
    /// `increment` and `decrement` by `element`, each twice as often as `reset`.
    public static var mutatorNames: [String] { ["increment", "decrement", "increment", "decrement", "reset"] }

    /// Increments or decrements by `mutation.element` at `replica`, or resets the counter.
    public mutating func perform(_ mutation: Mutation, at replica: ReplicaID, timestamp: HLCTimestamp) -> PNCounter {
        let amount = UInt64(mutation.element)
        switch mutation.kind {
        case 0, 2: return increment(by: amount, at: replica)
        case 1, 3: return decrement(by: amount, at: replica)
        default: return reset()
        }
    }

    /// All four halves are well-formed grow-only counters, and the decoder initialiser
    /// rebuilds the counter.
    public func invariantViolations() -> [String] {
        var problems =
            increments.invariantViolations().map { "increments: \($0)" }
            + decrements.invariantViolations().map { "decrements: \($0)" }
            + resetIncrements.invariantViolations().map { "reset increments: \($0)" }
            + resetDecrements.invariantViolations().map { "reset decrements: \($0)" }
        let rebuilt = PNCounter(
            increments: increments, decrements: decrements, resetIncrements: resetIncrements,
            resetDecrements: resetDecrements)
        if rebuilt != self {
            problems.append("PNCounter(increments:decrements:resetIncrements:resetDecrements:) differs")
        }
        if hasResets != !(resetIncrements.isBottom && resetDecrements.isBottom) {
            problems.append("hasResets is \(hasResets) with baselines \(resetIncrements), \(resetDecrements)")
        }
        return problems
    }
}

extension ORSet: ScriptableCRDT where Element: FixedWidthInteger {
    /// Inserts three times as often as `removeAll`, removes twice as often.
    public static var mutatorNames: [String] { ["insert", "insert", "insert", "remove", "remove", "removeAll"] }

    /// Inserts or removes `mutation.element`, or removes everything.
    public mutating func perform(_ mutation: Mutation, at replica: ReplicaID, timestamp: HLCTimestamp) -> ORSet {
        let element = Element(truncatingIfNeeded: mutation.element)
        switch mutation.kind {
        case 0, 1, 2: return insert(element, at: replica)
        case 3, 4: return remove(element)
        default: return removeAll()
        }
    }

    /// Every element has dots, every dot was seen, the context is canonical, and the
    /// decoder initialiser rebuilds the set.
    public func invariantViolations() -> [String] {
        var problems = contextViolations(context)
        for (element, dots) in dottedElements {
            if dots.isEmpty { problems.append("element \(element) has no dots") }
            for dot in dots where !context.contains(dot) {
                problems.append("dot \(dot) of element \(element) is not in the context \(context)")
            }
        }
        if ORSet(entries: dottedElements, context: context) != self {
            problems.append("ORSet(entries:context:) does not rebuild the set")
        }
        return problems
    }
}

extension LWWRegister: ScriptableCRDT where Value: FixedWidthInteger {
    /// `set` to `element`, twice as often as `clear`.
    public static var mutatorNames: [String] { ["set", "set", "clear"] }

    /// Sets the register to `mutation.element` with `timestamp`, or deletes its value.
    public mutating func perform(_ mutation: Mutation, at replica: ReplicaID, timestamp: HLCTimestamp) -> LWWRegister {
        if mutation.kind == 2 { return clear(timestamp: timestamp, at: replica) }
        return set(Value(truncatingIfNeeded: mutation.element), timestamp: timestamp, at: replica)
    }

    /// The decoder initialiser rebuilds the register, and `write`, `value` and `isCleared`
    /// agree with the winning write.
    public func invariantViolations() -> [String] {
        var problems: [String] = []
        if LWWRegister(lastWrite: lastWrite) != self { problems.append("LWWRegister(lastWrite:) differs") }
        if value != lastWrite?.value ?? nil || write?.value != value {
            problems.append("value disagrees with lastWrite")
        }
        if isCleared != (lastWrite != nil && value == nil) { problems.append("isCleared is \(isCleared)") }
        return problems
    }
}

extension LWWMap: ScriptableCRDT where Key: FixedWidthInteger, Value: FixedWidthInteger {
    /// Sets twice as often as it removes a key, four times as often as `removeAll`.
    public static var mutatorNames: [String] { ["set", "set", "remove", "set", "set", "removeAll"] }

    /// Sets key `mutation.element` to `mutation.value`, removes the key, or removes every key.
    public mutating func perform(_ mutation: Mutation, at replica: ReplicaID, timestamp: HLCTimestamp) -> LWWMap {
        let key = Key(truncatingIfNeeded: mutation.element)
        if mutation.kind == 2 { return remove(key) }
        if mutation.kind == 5 { return removeAll() }
        return set(key, to: Value(truncatingIfNeeded: mutation.value), timestamp: timestamp, at: replica)
    }

    /// Every key has writes sorted by dot, every dot was seen and was issued by the
    /// write's own replica, the context is canonical, and the decoder initialiser
    /// rebuilds the map.
    public func invariantViolations() -> [String] {
        var problems = contextViolations(context)
        for (key, list) in dottedEntries {
            if list.isEmpty { problems.append("key \(key) has no writes") }
            for index in list.indices {
                let entry = list[index]
                if !context.contains(entry.dot) {
                    problems.append("dot \(entry.dot) of key \(key) is not in the context")
                }
                if entry.dot.replica != entry.write.replica {
                    problems.append("key \(key): dot \(entry.dot) was not issued by writer \(entry.write.replica)")
                }
                if index > 0 && !(list[index - 1].dot < entry.dot) { problems.append("key \(key): writes not sorted") }
            }
        }
        if LWWMap(entries: dottedEntries, context: context) != self {
            problems.append("LWWMap(entries:context:) does not rebuild the map")
        }
        return problems
    }
}

extension MVRegister: ScriptableCRDT where Value: FixedWidthInteger {
    /// Sets three times as often as it resets.
    public static var mutatorNames: [String] { ["set", "set", "set", "reset"] }

    /// Sets the register to `mutation.element`, or resets it.
    public mutating func perform(_ mutation: Mutation, at replica: ReplicaID, timestamp: HLCTimestamp) -> MVRegister {
        mutation.kind == 3 ? reset() : set(Value(truncatingIfNeeded: mutation.element), at: replica)
    }

    /// Values are sorted by dot and seen, the context is canonical, and the decoder
    /// initialiser rebuilds the register.
    public func invariantViolations() -> [String] {
        var problems = contextViolations(context)
        if MVRegister(values: dottedValues, context: context) != self {
            problems.append("MVRegister(values:context:) rejects or changes the register")
        }
        return problems
    }
}

extension EWFlag: ScriptableCRDT {
    /// Enables twice as often as it disables.
    public static var mutatorNames: [String] { ["enable", "enable", "disable"] }

    /// Enables or disables the flag.
    public mutating func perform(_ mutation: Mutation, at replica: ReplicaID, timestamp: HLCTimestamp) -> EWFlag {
        mutation.kind == 2 ? disable() : enable(at: replica)
    }

    /// Enabling dots were seen, the context is canonical, and the decoder initialiser
    /// rebuilds the flag.
    public func invariantViolations() -> [String] {
        var problems = contextViolations(context)
        if EWFlag(dots: enablingDots, context: context) != self {
            problems.append("EWFlag(dots:context:) rejects or changes the flag")
        }
        return problems
    }
}
