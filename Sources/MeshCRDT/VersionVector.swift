/// A compact version vector: for each replica, how many of its events were seen.
///
/// Stored as an array of entries sorted by replica with zero entries left out, so
/// equal vectors have equal representations and encode to equal bytes. Vectors
/// are small (one entry per writer of a causal domain), so lookups are binary
/// searches over a contiguous array and pointwise operations are linear merges.
///
/// Version vectors are partially ordered: use `<=`, `dominates(_:)`,
/// `isConcurrent(with:)` or `compare(_:)`, never `<` of a total order.
///
/// ### Invariants
/// - `entries` is sorted by replica, strictly increasing; no counter is zero.
public struct VersionVector: Hashable, Sendable, CustomStringConvertible {
    /// One replica's counter.
    public struct Entry: Hashable, Sendable {
        /// The replica.
        public var replica: ReplicaID
        /// How many consecutive events of `replica`, from the first, were seen.
        public var counter: UInt64

        /// Creates an entry.
        @inlinable
        public init(replica: ReplicaID, counter: UInt64) {
            self.replica = replica
            self.counter = counter
        }
    }

    /// The result of comparing two version vectors.
    public enum Ordering: Sendable, Hashable {
        /// Both saw exactly the same events.
        case equal
        /// `self` saw a strict subset of what `other` saw.
        case before
        /// `self` saw a strict superset of what `other` saw.
        case after
        /// Each saw an event the other did not.
        case concurrent
    }

    @usableFromInline
    package var storage: [Entry]

    /// The empty vector (nothing seen).
    @inlinable
    public init() {
        storage = []
    }

    /// Creates a vector from `(replica, counter)` pairs in any order; zero counters
    /// are dropped and a replica named twice keeps its larger counter.
    public init(_ pairs: some Sequence<(ReplicaID, UInt64)>) {
        var sorted = pairs.filter { $0.1 > 0 }.sorted { $0.0 < $1.0 }
        var write = 0
        for read in sorted.indices {
            if write > 0 && sorted[write - 1].0 == sorted[read].0 {
                sorted[write - 1].1 = max(sorted[write - 1].1, sorted[read].1)
            } else {
                sorted[write] = sorted[read]
                write += 1
            }
        }
        storage = sorted[..<write].map { Entry(replica: $0.0, counter: $0.1) }
    }

    /// Creates a vector from entries already sorted by replica with no zero or
    /// repeated replica; `nil` if they are not.
    public init?(sortedEntries: [Entry]) {
        for index in sortedEntries.indices {
            if sortedEntries[index].counter == 0 { return nil }
            if index > 0 && !(sortedEntries[index - 1].replica < sortedEntries[index].replica) { return nil }
        }
        storage = sortedEntries
    }

    /// The entries, sorted by replica, without zeros.
    @inlinable
    public var entries: [Entry] { storage }

    /// The number of replicas with a non-zero counter.
    @inlinable
    public var count: Int { storage.count }

    /// Whether nothing was seen.
    @inlinable
    public var isEmpty: Bool { storage.isEmpty }

    /// Where `replica`'s entry is, or where it would be inserted.
    @inlinable
    func index(of replica: ReplicaID) -> (found: Bool, index: Int) {
        storage.withUnsafeBufferPointer { Self.index(of: replica.rawValue, in: $0) }
    }

    /// Where the entry of the replica with ID `target` is in `entries` (sorted by replica), or
    /// where it would be inserted.
    ///
    /// Replica IDs are spread about evenly (random 64-bit IDs, or small consecutive ones), so the
    /// search starts where `target` would be if they were spread exactly evenly between the first
    /// and the last ID, and gallops from there to bracket it: a few neighbouring entries, where a
    /// binary search from the middle reads log2(n) entries scattered over the array (in a
    /// thousand-entry vector, most of them cache misses). Any spread of IDs gives the right answer.
    @inlinable
    static func index(of target: UInt64, in entries: UnsafeBufferPointer<Entry>) -> (found: Bool, index: Int) {
        let count = entries.count
        if count <= 8 {
            var index = 0
            while index < count {
                let id = entries[index].replica.rawValue
                if id >= target { return (id == target, index) }
                index &+= 1
            }
            return (false, count)
        }
        let first = entries[0].replica.rawValue
        if target <= first { return (target == first, 0) }
        let last = entries[count - 1].replica.rawValue
        if target >= last { return target == last ? (true, count - 1) : (false, count) }
        // first < target < last, so the answer is in 1..<count and the guess in 0..<count - 1.
        let guess = Int((last - first).dividingFullWidth((target - first).multipliedFullWidth(by: UInt64(count - 1))).quotient)
        // Bracket `target`: entries[low] < target <= entries[high] (entries[0] is below it and
        // entries[count - 1] above, so each gallop stops at the latest there).
        var low: Int
        var high: Int
        var step = 1
        if entries[guess].replica.rawValue < target {
            low = guess
            high = guess + 1
            while high < count - 1 && entries[high].replica.rawValue < target {
                low = high
                step &<<= 1
                high = min(low + step, count - 1)
            }
        } else {
            high = guess  // at least 1: entries[0] is below target
            low = guess - 1
            while low > 0 && entries[low].replica.rawValue >= target {
                high = low
                step &<<= 1
                low = max(high - step, 0)
            }
        }
        while high - low > 1 {
            let middle = (low + high) >> 1
            if entries[middle].replica.rawValue < target { low = middle } else { high = middle }
        }
        return (entries[high].replica.rawValue == target, high)
    }

    /// The counter of `replica` (zero when absent). Setting zero removes the entry.
    @inlinable
    public subscript(replica: ReplicaID) -> UInt64 {
        get {
            let position = index(of: replica)
            return position.found ? storage[position.index].counter : 0
        }
        set { _ = exchange(replica, with: newValue) }
    }

    /// Sets the counter of `replica` (zero removes the entry) and returns the one it replaces
    /// (zero when absent): one look-up where reading and then setting takes two.
    @inlinable
    public mutating func exchange(_ replica: ReplicaID, with newValue: UInt64) -> UInt64 {
        let position = index(of: replica)
        guard position.found else {
            if newValue != 0 { storage.insert(Entry(replica: replica, counter: newValue), at: position.index) }
            return 0
        }
        let old = storage[position.index].counter
        if newValue == 0 {
            storage.remove(at: position.index)
        } else {
            storage[position.index].counter = newValue
        }
        return old
    }

    /// Whether `dot` is covered: `dot.counter <= self[dot.replica]`.
    @inlinable
    public func contains(_ dot: Dot) -> Bool {
        dot.counter <= self[dot.replica]
    }

    /// Advances `replica`'s counter by one and returns the new dot.
    @inlinable
    @discardableResult
    public mutating func increment(_ replica: ReplicaID) -> Dot {
        let position = index(of: replica)
        if position.found {
            storage[position.index].counter += 1
            return Dot(replica: replica, counter: storage[position.index].counter)
        }
        storage.insert(Entry(replica: replica, counter: 1), at: position.index)
        return Dot(replica: replica, counter: 1)
    }

    /// Pointwise maximum with `other`.
    ///
    /// - Complexity: O(n + m).
    public mutating func merge(_ other: VersionVector) {
        if other.storage.isEmpty { return }
        if storage.isEmpty {
            storage = other.storage
            return
        }
        if other.storage.count <= storage.count && mergeInPlace(other) { return }
        var result: [Entry] = []
        result.reserveCapacity(storage.count + other.storage.count)
        var left = 0
        var right = 0
        while left < storage.count || right < other.storage.count {
            if right == other.storage.count
                || (left < storage.count && storage[left].replica < other.storage[right].replica)
            {
                result.append(storage[left])
                left += 1
            } else if left == storage.count || other.storage[right].replica < storage[left].replica {
                result.append(other.storage[right])
                right += 1
            } else {
                result.append(
                    Entry(
                        replica: storage[left].replica,
                        counter: max(storage[left].counter, other.storage[right].counter)))
                left += 1
                right += 1
            }
        }
        storage = result
    }

    /// Raises counters in place when `other` names no replica missing here (the
    /// common case once every writer is known), so no array is allocated and a
    /// shared buffer is copied only when a counter actually grows; `false`,
    /// leaving `self` unchanged, when `other` has a replica `self` lacks.
    mutating func mergeInPlace(_ other: VersionVector) -> Bool {
        var left = 0
        for entry in other.storage {
            while left < storage.count && storage[left].replica < entry.replica { left += 1 }
            if left == storage.count || storage[left].replica != entry.replica { return false }
            left += 1
        }
        left = 0
        for entry in other.storage {
            while storage[left].replica < entry.replica { left += 1 }
            if entry.counter > storage[left].counter { storage[left].counter = entry.counter }
            left += 1
        }
        return true
    }

    /// The pointwise maximum of `self` and `other`.
    public func merging(_ other: VersionVector) -> VersionVector {
        var copy = self
        copy.merge(other)
        return copy
    }

    /// The pointwise minimum of `self` and `other` (what both have seen).
    public func intersecting(_ other: VersionVector) -> VersionVector {
        var result: [Entry] = []
        var left = 0
        var right = 0
        while left < storage.count && right < other.storage.count {
            if storage[left].replica < other.storage[right].replica {
                left += 1
            } else if other.storage[right].replica < storage[left].replica {
                right += 1
            } else {
                result.append(
                    Entry(
                        replica: storage[left].replica,
                        counter: min(storage[left].counter, other.storage[right].counter)))
                left += 1
                right += 1
            }
        }
        var vector = VersionVector()
        vector.storage = result
        return vector
    }

    /// Compares the sets of events the two vectors cover.
    ///
    /// - Complexity: O(n + m).
    public func compare(_ other: VersionVector) -> Ordering {
        var selfAhead = false
        var otherAhead = false
        var left = 0
        var right = 0
        while left < storage.count || right < other.storage.count {
            if right == other.storage.count
                || (left < storage.count && storage[left].replica < other.storage[right].replica)
            {
                selfAhead = true
                left += 1
            } else if left == storage.count || other.storage[right].replica < storage[left].replica {
                otherAhead = true
                right += 1
            } else {
                if storage[left].counter > other.storage[right].counter { selfAhead = true }
                if storage[left].counter < other.storage[right].counter { otherAhead = true }
                left += 1
                right += 1
            }
            if selfAhead && otherAhead { return .concurrent }
        }
        switch (selfAhead, otherAhead) {
        case (false, false): return .equal
        case (true, false): return .after
        case (false, true): return .before
        case (true, true): return .concurrent
        }
    }

    /// Whether every event `lhs` saw, `rhs` saw too.
    public static func <= (lhs: VersionVector, rhs: VersionVector) -> Bool {
        switch lhs.compare(rhs) {
        case .equal, .before: return true
        case .after, .concurrent: return false
        }
    }

    /// Whether `self` saw everything `other` saw (`other <= self`).
    public func dominates(_ other: VersionVector) -> Bool {
        other <= self
    }

    /// Whether each of the two saw an event the other did not.
    public func isConcurrent(with other: VersionVector) -> Bool {
        compare(other) == .concurrent
    }

    /// `{replica:counter, …}` in replica order.
    public var description: String {
        "{" + storage.map { "\($0.replica):\($0.counter)" }.joined(separator: ", ") + "}"
    }
}
