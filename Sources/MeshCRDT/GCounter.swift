/// A grow-only counter: one monotonically growing count per replica.
///
/// The value is the sum of the counts. A delta is the single entry the increment
/// touched; joining takes the pointwise maximum.
///
/// Storage keeps the common cases free of heap allocation: a counter touched by
/// one replica (every delta, and every counter written at one node) holds its one
/// entry inline; only counters with several writers use an array.
///
/// ### Invariants
/// - No stored count is zero; with several entries they are sorted by replica
///   and there are at least two of them. Equal counters have equal storage.
public struct GCounter: DeltaCRDT, CustomStringConvertible {
    @usableFromInline
    enum Storage: Hashable, Sendable {
        case empty
        case single(ReplicaID, UInt64)
        case multiple([VersionVector.Entry])
    }

    @usableFromInline
    var storage: Storage

    /// The zero counter.
    @inlinable
    public init() {
        storage = .empty
    }

    /// Creates a counter from per-replica counts; zero counts are dropped and a
    /// replica named twice keeps its larger count.
    public init(counts: some Sequence<(ReplicaID, UInt64)>) {
        self.init(normalizing: VersionVector(counts).entries)
    }

    @usableFromInline
    init(normalizing entries: [VersionVector.Entry]) {
        switch entries.count {
        case 0: storage = .empty
        case 1: storage = .single(entries[0].replica, entries[0].counter)
        default: storage = .multiple(entries)
        }
    }

    /// The per-replica counts, sorted by replica, without zeros.
    public var counts: [VersionVector.Entry] {
        switch storage {
        case .empty: return []
        case .single(let replica, let count): return [VersionVector.Entry(replica: replica, counter: count)]
        case .multiple(let entries): return entries
        }
    }

    /// The sum of all counts, saturating at `UInt64.max`.
    @inlinable
    public var value: UInt64 {
        switch storage {
        case .empty: return 0
        case .single(_, let count): return count
        case .multiple(let entries):
            var total: UInt64 = 0
            for entry in entries { total = saturatingAdd(total, entry.counter) }
            return total
        }
    }

    /// The count contributed by `replica`.
    @inlinable
    public subscript(replica: ReplicaID) -> UInt64 {
        switch storage {
        case .empty: return 0
        case .single(let owner, let count): return owner == replica ? count : 0
        case .multiple(let entries):
            for entry in entries where entry.replica == replica { return entry.counter }
            return 0
        }
    }

    /// Whether no replica has counted anything.
    @inlinable
    public var isBottom: Bool {
        if case .empty = storage { return true }
        return false
    }

    /// Adds `amount` to `replica`'s count and returns the delta (that one entry).
    ///
    /// - Precondition: the replica's count does not overflow `UInt64` (this is a
    ///   local write; remote input never reaches it).
    @inlinable
    @discardableResult
    public mutating func increment(by amount: UInt64 = 1, at replica: ReplicaID) -> GCounter {
        switch storage {
        case .single(let owner, let count) where owner == replica:
            let updated = count + amount
            storage = .single(replica, updated)
            return GCounter(single: replica, updated)
        default:
            return incrementSlowPath(by: amount, at: replica)
        }
    }

    @inlinable
    init(single replica: ReplicaID, _ count: UInt64) {
        storage = count == 0 ? .empty : .single(replica, count)
    }

    @usableFromInline
    mutating func incrementSlowPath(by amount: UInt64, at replica: ReplicaID) -> GCounter {
        let updated = self[replica] + amount
        if updated == 0 { return GCounter() }
        merge(GCounter(single: replica, updated))
        return GCounter(single: replica, updated)
    }

    /// Pointwise maximum.
    public mutating func merge(_ other: GCounter) {
        switch (storage, other.storage) {
        case (_, .empty):
            return
        case (.empty, _):
            storage = other.storage
        case (.single(let mine, let myCount), .single(let theirs, let theirCount)) where mine == theirs:
            if theirCount > myCount { storage = .single(mine, theirCount) }
        default:
            var vector = VersionVector()
            vector.storage = counts
            var incoming = VersionVector()
            incoming.storage = other.counts
            vector.merge(incoming)
            self = GCounter(normalizing: vector.storage)
        }
    }

    /// `GCounter(value, {replica: count, …})`.
    public var description: String {
        "GCounter(\(value), {" + counts.map { "\($0.replica): \($0.counter)" }.joined(separator: ", ") + "})"
    }
}

/// A counter that goes up and down: two grow-only counters, increments and
/// decrements. The value is their difference.
public struct PNCounter: DeltaCRDT, CustomStringConvertible {
    /// Everything added, per replica.
    public var increments: GCounter
    /// Everything subtracted, per replica.
    public var decrements: GCounter

    /// The zero counter.
    @inlinable
    public init() {
        increments = GCounter()
        decrements = GCounter()
    }

    /// Creates a counter from its two halves.
    @inlinable
    public init(increments: GCounter, decrements: GCounter) {
        self.increments = increments
        self.decrements = decrements
    }

    /// Increments minus decrements, clamped to the range of `Int64`.
    public var value: Int64 {
        let up = increments.value
        let down = decrements.value
        if up >= down {
            let difference = up - down
            return difference > UInt64(Int64.max) ? .max : Int64(difference)
        }
        let difference = down - up
        return difference > UInt64(Int64.max) ? .min : -Int64(difference)
    }

    /// Whether nothing was counted.
    @inlinable
    public var isBottom: Bool { increments.isBottom && decrements.isBottom }

    /// Adds `amount` at `replica`; returns the delta.
    @inlinable
    @discardableResult
    public mutating func increment(by amount: UInt64 = 1, at replica: ReplicaID) -> PNCounter {
        PNCounter(increments: increments.increment(by: amount, at: replica), decrements: GCounter())
    }

    /// Subtracts `amount` at `replica`; returns the delta.
    @inlinable
    @discardableResult
    public mutating func decrement(by amount: UInt64 = 1, at replica: ReplicaID) -> PNCounter {
        PNCounter(increments: GCounter(), decrements: decrements.increment(by: amount, at: replica))
    }

    /// Joins both halves.
    public mutating func merge(_ other: PNCounter) {
        increments.merge(other.increments)
        decrements.merge(other.decrements)
    }

    /// `PNCounter(value)`.
    public var description: String { "PNCounter(\(value))" }
}
