/// A state-based CRDT whose mutators return deltas (Almeida, Shoker, Baquero 2018).
///
/// A delta is itself a state of the same type, usually a tiny one, so joining a
/// delta into a replica and joining whole states are the same operation, and
/// deltas join into delta-groups with `merge` too.
///
/// ### Invariants
/// - `init()` is the bottom element: `x.merging(Self()) == x`.
/// - `merge` is a join: commutative, associative and idempotent.
/// - For a mutator `m` at replica `r` returning delta `d`: for every replica
///   `y` that has seen the causal past of the mutation, `y.merging(d)` equals
///   `y` with the same mutation's effect (delta-mutator correctness).
public protocol DeltaCRDT: Sendable, Equatable {
    /// The bottom element: the state of a replica that has seen nothing.
    init()

    /// Joins `other` into `self` (least upper bound).
    ///
    /// - Complexity: linear in the sizes of both states in general; deltas are
    ///   small, so merging a delta costs about as much as the local mutation.
    mutating func merge(_ other: Self)

    /// Whether this is the bottom element (nothing written, nothing observed).
    var isBottom: Bool { get }
}

extension DeltaCRDT {
    /// The join of `self` and `other`, leaving both unchanged.
    @inlinable
    public func merging(_ other: Self) -> Self {
        var copy = self
        copy.merge(other)
        return copy
    }
}

/// Saturating addition for reads: remote input must never make a read trap.
@inlinable
func saturatingAdd(_ a: UInt64, _ b: UInt64) -> UInt64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? .max : sum
}
