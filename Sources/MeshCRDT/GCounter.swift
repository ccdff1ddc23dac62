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

    /// How many replicas counted (`counts.count` without building an array).
    @inlinable
    public var replicaCount: Int {
        switch storage {
        case .empty: 0
        case .single: 1
        case .multiple(let entries): entries.count
        }
    }

    /// Calls `body` with every replica's count, in replica order (`counts` without building an array:
    /// every counter write's delta is encoded for the journal).
    @inlinable
    public func forEachCount(_ body: (VersionVector.Entry) -> Void) {
        switch storage {
        case .empty: break
        case .single(let replica, let count): body(VersionVector.Entry(replica: replica, counter: count))
        case .multiple(let entries): for entry in entries { body(entry) }
        }
    }

    /// Calls `body` with every replica that counted, in replica order.
    @inlinable
    public func forEachReplica(_ body: (ReplicaID) -> Void) {
        forEachCount { body($0.replica) }
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

/// A counter that goes up and down, with observed resets: two grow-only
/// counters, increments and decrements, and two more, the reset baselines.
///
/// A reset records, per replica, the increments and decrements it observed as
/// already reset (its baselines); the value counts only what lies above them.
/// Baselines join by pointwise maximum like the counts, so `merge` stays a join:
/// two concurrent resets give 0 (not minus the value), and an increment
/// concurrent with a reset (above every baseline of its replica) survives it.
/// A reset is to counts what an observed remove is to an `ORSet`'s dots: it
/// covers what it saw, nothing else.
///
/// A counter never reset stores no baselines (one word, no allocation), so
/// increments and reads cost what they cost before resets existed.
///
/// ### Invariants
/// - Baselines are stored only when at least one of them is non-empty: equal
///   counters have equal storage.
public struct PNCounter: DeltaCRDT, CustomStringConvertible {
    /// Everything added, per replica.
    public var increments: GCounter
    /// Everything subtracted, per replica.
    public var decrements: GCounter

    /// The reset baselines; `.absent` (no allocation) until the first reset.
    @usableFromInline
    indirect enum Baselines: Equatable, Sendable {
        case absent
        case present(increments: GCounter, decrements: GCounter)

        @inlinable
        init(increments: GCounter, decrements: GCounter) {
            self =
                increments.isBottom && decrements.isBottom
                ? .absent : .present(increments: increments, decrements: decrements)
        }
    }

    @usableFromInline
    var baselines: Baselines

    /// The zero counter.
    @inlinable
    public init() {
        increments = GCounter()
        decrements = GCounter()
        baselines = .absent
    }

    /// Creates a counter from its two halves, without reset baselines.
    @inlinable
    public init(increments: GCounter, decrements: GCounter) {
        self.increments = increments
        self.decrements = decrements
        self.baselines = .absent
    }

    /// Creates a counter from its counts and its reset baselines (for decoders).
    ///
    /// A baseline may exceed its replica's count (a reset can arrive before the
    /// counts it covers where delivery is not causal); that replica then counts 0.
    public init(increments: GCounter, decrements: GCounter, resetIncrements: GCounter, resetDecrements: GCounter) {
        self.increments = increments
        self.decrements = decrements
        self.baselines = Baselines(increments: resetIncrements, decrements: resetDecrements)
    }

    /// Per replica, the increments already reset (observed by a reset).
    public var resetIncrements: GCounter {
        if case .present(let increments, _) = baselines { return increments }
        return GCounter()
    }

    /// Per replica, the decrements already reset (observed by a reset).
    public var resetDecrements: GCounter {
        if case .present(_, let decrements) = baselines { return decrements }
        return GCounter()
    }

    /// Whether the counter holds reset baselines (it or a state it merged was reset).
    @inlinable
    public var hasResets: Bool {
        if case .absent = baselines { return false }
        return true
    }

    /// Σ over replicas of (increments − reset increments) − (decrements − reset
    /// decrements), each difference saturating at 0, clamped to the range of `Int64`.
    public var value: Int64 {
        let up: UInt64
        let down: UInt64
        switch baselines {
        case .absent:
            up = increments.value
            down = decrements.value
        case .present(let resetUp, let resetDown):
            up = increments.sum(above: resetUp)
            down = decrements.sum(above: resetDown)
        }
        if up >= down {
            let difference = up - down
            return difference > UInt64(Int64.max) ? .max : Int64(difference)
        }
        let difference = down - up
        return difference > UInt64(Int64.max) ? .min : -Int64(difference)
    }

    /// Whether nothing was counted beyond the reset baselines: a new or reset
    /// counter. A counter incremented and then decremented to 0 is not empty.
    public var isEmpty: Bool {
        switch baselines {
        case .absent: return increments.isBottom && decrements.isBottom
        case .present(let resetUp, let resetDown):
            return increments.sum(above: resetUp) == 0 && decrements.sum(above: resetDown) == 0
        }
    }

    /// Whether nothing was counted and nothing reset.
    @inlinable
    public var isBottom: Bool {
        guard case .absent = baselines else { return false }
        return increments.isBottom && decrements.isBottom
    }

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

    /// Resets the counter to 0 as observed here (observed reset); returns the delta.
    ///
    /// The baselines rise to the current counts, and the delta holds just the
    /// current counts as baselines: a replica merging it drops exactly the counts
    /// this replica had seen, and keeps increments and decrements it had not (a
    /// concurrent increment survives the reset). The bottom delta when nothing was
    /// counted.
    @discardableResult
    public mutating func reset() -> PNCounter {
        var delta = PNCounter()
        delta.baselines = Baselines(increments: increments, decrements: decrements)
        // A join, not an assignment: a baseline may already exceed its count here (it
        // arrived before the counts it covers), and baselines never go down.
        merge(delta)
        return delta
    }

    /// Joins counts and baselines, each by pointwise maximum.
    public mutating func merge(_ other: PNCounter) {
        increments.merge(other.increments)
        decrements.merge(other.decrements)
        guard case .present(let theirUp, let theirDown) = other.baselines else { return }
        guard case .present(var myUp, var myDown) = baselines else {
            baselines = other.baselines
            return
        }
        baselines = .absent  // release the box so the merges below are in place
        myUp.merge(theirUp)
        myDown.merge(theirDown)
        baselines = .present(increments: myUp, decrements: myDown)
    }

    /// `PNCounter(value)`.
    public var description: String { "PNCounter(\(value))" }
}

extension GCounter {
    /// Σ over replicas of (count − baseline), each difference saturating at 0 (and
    /// the sum at `UInt64.max`): what is left of the counts above a reset.
    ///
    /// - Complexity: O(n + m), a walk of both sorted count lists.
    func sum(above baseline: GCounter) -> UInt64 {
        if baseline.isBottom { return value }
        let counts = self.counts
        let floor = baseline.counts
        var total: UInt64 = 0
        var index = 0
        for entry in counts {
            while index < floor.count && floor[index].replica < entry.replica { index += 1 }
            let covered = index < floor.count && floor[index].replica == entry.replica ? floor[index].counter : 0
            if entry.counter > covered { total = saturatingAdd(total, entry.counter - covered) }
        }
        return total
    }
}
