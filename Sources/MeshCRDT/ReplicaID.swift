/// The identity of one replica's history of writes.
///
/// A `ReplicaID` names a history, not a machine: a node whose durable state was
/// wiped must start with a fresh `ReplicaID`, or it would reissue dots that other
/// replicas already hold. Identifiers are compared numerically; that order breaks
/// last-writer-wins ties and sorts every encoded collection.
public struct ReplicaID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The 64-bit value of the identifier.
    public let rawValue: UInt64

    /// Creates an identifier from its 64-bit value.
    @inlinable
    public init(_ rawValue: UInt64) {
        self.rawValue = rawValue
    }

    @inlinable
    public static func < (lhs: ReplicaID, rhs: ReplicaID) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    /// Sixteen lower-case hexadecimal digits.
    public var description: String {
        let digits = String(rawValue, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

/// One event of one replica: the `counter`-th event issued by `replica`.
///
/// Dots are the unit of causality in every observed-remove type: an element or a
/// value is kept alive by the dots that wrote it, and a causal context says which
/// dots a replica has seen.
public struct Dot: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The replica that issued the event.
    public let replica: ReplicaID
    /// The event's position in that replica's history, starting at 1.
    public let counter: UInt64

    /// Creates a dot.
    @inlinable
    public init(replica: ReplicaID, counter: UInt64) {
        self.replica = replica
        self.counter = counter
    }

    /// Orders by replica, then counter (the order every encoding uses).
    @inlinable
    public static func < (lhs: Dot, rhs: Dot) -> Bool {
        lhs.replica != rhs.replica ? lhs.replica < rhs.replica : lhs.counter < rhs.counter
    }

    /// `replica:counter`.
    public var description: String { "\(replica):\(counter)" }
}
