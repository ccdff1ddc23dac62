import MeshCRDT
import MeshCodec

/// The MeshCRDT types, as the merge-laws harness and the fuzzer select them.
///
/// Sets, registers and maps are instantiated over `UInt8` elements and values.
public enum CRDTKind: UInt8, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    /// `GCounter`.
    case gCounter
    /// `PNCounter`.
    case pnCounter
    /// `ORSet<UInt8>`.
    case orSet
    /// `LWWRegister<UInt8>`.
    case lwwRegister
    /// `LWWMap<UInt8, UInt8>`.
    case lwwMap
    /// `MVRegister<UInt8>`.
    case mvRegister
    /// `EWFlag`.
    case ewFlag

    /// The type this kind stands for; pass it to a generic function to open it.
    public var scriptableType: any ScriptableCRDT.Type {
        switch self {
        case .gCounter: GCounter.self
        case .pnCounter: PNCounter.self
        case .orSet: ORSet<UInt8>.self
        case .lwwRegister: LWWRegister<UInt8>.self
        case .lwwMap: LWWMap<UInt8, UInt8>.self
        case .mvRegister: MVRegister<UInt8>.self
        case .ewFlag: EWFlag.self
        }
    }

    /// Whether the type has a MeshCodec encoding (the encoding checks run only then).
    public var hasEncoding: Bool { scriptableType is any RecordCodable.Type }

    /// The type's name, such as `ORSet<UInt8>`.
    public var description: String { String(describing: scriptableType) }
}

/// Runs a script against a CRDT type and checks every law on what it produced; the
/// merge-laws fuzzer is a thin wrapper around `violations(fuzzInput:)`.
public enum MergeLawHarness {
    /// Which groups of laws to check.
    public struct Checks: OptionSet, Hashable, Sendable {
        /// The bits of the set.
        public let rawValue: UInt8
        /// Creates a set of checks.
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        /// Bottom, idempotence, commutativity, upper bound and associativity on the
        /// final replica states, some deltas and some delta groups.
        public static let lattice = Checks(rawValue: 1)
        /// The delta-mutator law on every write, observed by two final replica states.
        public static let deltaMutator = Checks(rawValue: 2)
        /// Structural invariants of every state reached.
        public static let invariants = Checks(rawValue: 4)
        /// After delivering every delta everywhere, all replicas are equal and equal
        /// to the join of all deltas.
        public static let convergence = Checks(rawValue: 8)
        /// Every delta and final state round-trips through MeshCodec, and the
        /// converged states encode to identical bytes (types with an encoding only).
        public static let encoding = Checks(rawValue: 16)
        /// Everything.
        public static let all: Checks = [.lattice, .deltaMutator, .invariants, .convergence, .encoding]
    }

    /// Runs `script` against `type` and returns every law it breaks (empty when all hold).
    ///
    /// Each violation's message ends with the typed history that produced it.
    public static func violations<State: ScriptableCRDT>(
        of type: State.Type, script: OperationScript, checks: Checks = .all
    ) -> [LawViolation] {
        let found = check(type, script: script, checks: checks, tracing: false)
        if found.isEmpty { return [] }
        // Run again with tracing on (deterministic), so the report names every step.
        return check(type, script: script, checks: checks, tracing: true)
    }

    static func check<State: ScriptableCRDT>(
        _ type: State.Type, script: OperationScript, checks: Checks, tracing: Bool
    ) -> [LawViolation] {
        var simulation = Simulation<State>(running: script, tracing: tracing)
        var found: [LawViolation] = []
        let finals = simulation.states

        if checks.contains(.invariants) {
            for record in simulation.mutations {
                found += [record.after, record.delta].compactMap(CRDTLaws.checkInvariants)
            }
            found += finals.compactMap(CRDTLaws.checkInvariants)
        }
        if checks.contains(.encoding) {
            let sample = finals + simulation.deltas.suffix(8).map(\.delta)
            found += [CRDTLaws.checkEncodingsIfCodable(sample)].compactMap { $0 }
        }
        if checks.contains(.lattice) {
            let pool = latticePool(simulation)
            var random = SplitMix64(seed: script.deliverySeed)
            // Each triple checks every law on all six orderings; four triples per
            // run keep the fuzzer fast, and the fuzzer makes many runs.
            for _ in 0..<4 {
                let (a, b, c) = (
                    pool[Int(random.next() % UInt64(pool.count))],
                    pool[Int(random.next() % UInt64(pool.count))],
                    pool[Int(random.next() % UInt64(pool.count))]
                )
                found += CRDTLaws.latticeViolations(a, b, c)
                if !found.isEmpty { break }
            }
        }
        if checks.contains(.deltaMutator) {
            for (index, record) in simulation.mutations.enumerated() {
                // Two final states per write, rotating, keep the fuzzer fast; over a
                // history every replica observes some write.
                let observers = [finals[index % finals.count], finals[(index + 1) % finals.count]]
                if let violation = CRDTLaws.checkDeltaMutator(
                    before: record.before, delta: record.delta, after: record.after, observers: observers)
                {
                    found.append(violation)
                    break
                }
            }
        }
        if checks.contains(.convergence) {
            let deliveries = simulation.deliverEverything()
            var converged = simulation.states
            converged.append(simulation.joinOfAllDeltas)
            if let violation = CRDTLaws.checkConvergence(converged) {
                found.append(
                    LawViolation(
                        law: .convergence,
                        message: violation.message + "\n  (the last state is the join of all deltas)\n  deliveries: "
                            + deliveries.joined(separator: "; ")))
            }
            if checks.contains(.invariants), let state = converged.first {
                found += [CRDTLaws.checkInvariants(state)].compactMap { $0 }
            }
            if checks.contains(.encoding) {
                found += [CRDTLaws.checkEncodingsIfCodable(converged)].compactMap { $0 }
            }
        }
        if !tracing { return found }
        let history = simulation.trace.joined(separator: "; ")
        return found.map {
            LawViolation(
                law: $0.law,
                message: "\(State.self): \($0.message)\n  history: \(script.replicaIDs.map(\.rawValue)) \(history)")
        }
    }

    /// Decodes a fuzz input and checks it: the first byte selects the `CRDTKind`
    /// (modulo the number of kinds), the rest is an `OperationScript`.
    public static func violations(fuzzInput bytes: some Collection<UInt8>, checks: Checks = .all) -> [LawViolation] {
        guard let first = bytes.first else { return [] }
        let kind = CRDTKind.allCases[Int(first) % CRDTKind.allCases.count]
        return violations(of: kind.scriptableType, script: OperationScript(bytes: bytes.dropFirst()), checks: checks)
    }

    /// States to combine in lattice checks: bottom, the final replica states, every
    /// delta, and each replica's state before its last write.
    static func latticePool<State: ScriptableCRDT>(_ simulation: Simulation<State>) -> [State] {
        var pool = [State()] + simulation.states
        pool += simulation.deltas.suffix(16).map(\.delta)
        pool += simulation.mutations.suffix(8).map(\.before)
        return pool
    }
}
