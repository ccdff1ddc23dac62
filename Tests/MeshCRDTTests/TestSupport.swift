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

/// A small deterministic generator for hand-written randomized loops.
struct TestRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state = state &+ 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

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
