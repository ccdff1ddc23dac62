import MeshCRDT
import MeshTesting
import PropertyBased
import Testing

/// Property cases per law per type (the acceptance criterion asks for at least 200).
let casesPerLaw = 200

/// Records `violations` as test issues, each with its full description (states and history).
func record(_ violations: [LawViolation], sourceLocation: SourceLocation = #_sourceLocation) {
    for violation in violations {
        Issue.record("\(violation)", sourceLocation: sourceLocation)
    }
}

/// Records `violation`, if any, as a test issue.
func record(_ violation: LawViolation?, sourceLocation: SourceLocation = #_sourceLocation) {
    record([violation].compactMap { $0 }, sourceLocation: sourceLocation)
}

/// Shorthands for replicas and timestamps in hand-written cases.
let r1 = ReplicaID(1)
let r2 = ReplicaID(2)
let r3 = ReplicaID(3)

func ts(_ milliseconds: UInt64, _ logical: UInt32 = 0) -> HLCTimestamp {
    HLCTimestamp(physicalMilliseconds: milliseconds, logical: logical)
}

/// The seeded generator hand-written randomized loops use.
typealias TestRandom = SplitMix64

/// States from one run of a script: bottom, every final replica state, the last
/// deltas, and the states before the last writes.
func statePool<State: ScriptableCRDT>(_ simulation: Simulation<State>) -> [State] {
    [State()] + simulation.states + simulation.deltas.suffix(8).map(\.delta)
        + simulation.mutations.suffix(4).map(\.before)
}

/// A version vector from `(replica, counter)` pairs.
func vv(_ pairs: (ReplicaID, UInt64)...) -> VersionVector {
    VersionVector(pairs)
}
