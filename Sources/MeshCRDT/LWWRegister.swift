/// One last-writer-wins write: a value, when it was written, and by whom.
///
/// Writes are totally ordered by `(timestamp, replica)`; the greater one wins.
/// A hybrid logical clock never issues the same timestamp twice at one replica,
/// so that pair identifies a write.
public struct LWWWrite<Value: Hashable & Sendable>: Hashable, Sendable {
    /// The value written.
    public let value: Value
    /// When it was written (hybrid logical clock).
    public let timestamp: HLCTimestamp
    /// The replica that wrote it (breaks timestamp ties).
    public let replica: ReplicaID

    /// Creates a write.
    @inlinable
    public init(value: Value, timestamp: HLCTimestamp, replica: ReplicaID) {
        self.value = value
        self.timestamp = timestamp
        self.replica = replica
    }

    /// Whether `self` loses to `other` under last-writer-wins.
    @inlinable
    public func isOlder(than other: LWWWrite) -> Bool {
        timestamp != other.timestamp ? timestamp < other.timestamp : replica < other.replica
    }
}

/// A last-writer-wins register: the write with the greatest `(timestamp, replica)`.
///
/// The bottom element holds nothing and was never written. A deletion (`clear`)
/// is a write without a value: it competes with ordinary writes by
/// `(timestamp, replica)` like any write, so a set later than a deletion wins and
/// a deletion later than a set wins. A cleared register has no value but is not
/// bottom: it remembers the deletion's timestamp so that older writes stay lost.
/// Merge keeps the greater write, so it is deterministic on every replica. Two
/// different writes under one `(timestamp, replica)` can only come from a faulty
/// writer; merge then keeps the write already held.
///
/// ### Invariants
/// - `lastWrite.value == nil` means a deletion; `lastWrite == nil` means bottom.
public struct LWWRegister<Value: Hashable & Sendable>: DeltaCRDT {
    @usableFromInline
    var storedWrite: LWWWrite<Value?>?

    /// The winning write if it holds a value (`nil` when bottom or cleared).
    @inlinable
    public var write: LWWWrite<Value>? {
        guard let stored = storedWrite, let value = stored.value else { return nil }
        return LWWWrite(value: value, timestamp: stored.timestamp, replica: stored.replica)
    }

    /// The winning write, deletions included: its `value` is `nil` for a deletion.
    @inlinable
    public var lastWrite: LWWWrite<Value?>? { storedWrite }

    /// The empty register.
    @inlinable
    public init() { storedWrite = nil }

    /// A register holding `write`.
    @inlinable
    public init(_ write: LWWWrite<Value>?) {
        storedWrite = write.map { LWWWrite(value: $0.value, timestamp: $0.timestamp, replica: $0.replica) }
    }

    /// A register holding `lastWrite`, which may be a deletion (`value == nil`); for decoders.
    @inlinable
    public init(lastWrite: LWWWrite<Value?>?) { storedWrite = lastWrite }

    /// The current value, if any (`nil` when bottom or cleared).
    @inlinable
    public var value: Value? { storedWrite?.value ?? nil }

    /// Whether the winning write is a deletion.
    @inlinable
    public var isCleared: Bool { storedWrite.map { $0.value == nil } ?? false }

    /// Whether nothing was ever written (a cleared register is not bottom).
    @inlinable
    public var isBottom: Bool { storedWrite == nil }

    /// Writes `value` with `timestamp` at `replica`; returns the delta (the write).
    ///
    /// Take `timestamp` from the replica's `HybridLogicalClock`: a timestamp older
    /// than the current write loses, and the register keeps the current value.
    @inlinable
    @discardableResult
    public mutating func set(_ value: Value, timestamp: HLCTimestamp, at replica: ReplicaID) -> LWWRegister {
        let delta = LWWRegister(lastWrite: LWWWrite(value: value, timestamp: timestamp, replica: replica))
        merge(delta)
        return delta
    }

    /// Deletes the value with `timestamp` at `replica` (a last-writer-wins
    /// deletion); returns the delta (the deletion).
    ///
    /// The deletion is ordered with ordinary writes by `(timestamp, replica)`: a
    /// concurrent write with a greater timestamp survives it, an older one does not.
    @inlinable
    @discardableResult
    public mutating func clear(timestamp: HLCTimestamp, at replica: ReplicaID) -> LWWRegister {
        let delta = LWWRegister(lastWrite: LWWWrite(value: nil, timestamp: timestamp, replica: replica))
        merge(delta)
        return delta
    }

    /// Keeps the greater write (deletions included).
    @inlinable
    public mutating func merge(_ other: LWWRegister) {
        guard let incoming = other.storedWrite else { return }
        guard let current = storedWrite else {
            storedWrite = incoming
            return
        }
        if current.isOlder(than: incoming) { storedWrite = incoming }
    }
}

/// A last-writer-wins map: a dotted map of registers without tombstones.
///
/// `set` replaces the writes it observed for its key and adds one new write
/// with a fresh dot; `remove` deletes the writes it observed (observed-remove),
/// so a set concurrent with a remove wins, and nothing is kept for a removed key.
/// Writes to one key that did not see each other are all kept and the read
/// returns the greatest `(timestamp, replica)`; the next `set` of that key
/// collapses them. Metadata is O(keys + concurrent writes + replicas).
///
/// ### Invariants
/// - Each key's writes are non-empty, sorted by dot, without repeated dots;
/// - every dot is in `context`.
public struct LWWMap<Key: Hashable & Sendable, Value: Hashable & Sendable>: DeltaCRDT {
    /// A write together with the dot that identifies it in the map.
    public struct Entry: Hashable, Sendable {
        /// The event that wrote this entry.
        public let dot: Dot
        /// The write.
        public let write: LWWWrite<Value>

        /// Creates an entry.
        @inlinable
        public init(dot: Dot, write: LWWWrite<Value>) {
            self.dot = dot
            self.write = write
        }
    }

    @usableFromInline
    package var entries: [Key: [Entry]]
    @usableFromInline
    package var causalContext: CausalContext

    /// The empty map that has seen nothing.
    @inlinable
    public init() {
        entries = [:]
        causalContext = CausalContext()
    }

    @inlinable
    init(uncheckedEntries entries: [Key: [Entry]], context: CausalContext) {
        self.entries = entries
        self.causalContext = context
    }

    /// Creates a map from its parts (for decoders); `nil` unless every key has a
    /// non-empty list of entries sorted by dot, without repeated dots, all in `context`.
    public init?(entries: [Key: [Entry]], context: CausalContext) {
        for list in entries.values {
            if list.isEmpty || !isWellFormed(list, in: context, dot: { $0.dot }) { return nil }
        }
        self.init(uncheckedEntries: entries, context: context)
    }

    /// The winning value of `key`, if the key is present.
    @inlinable
    public subscript(key: Key) -> Value? {
        guard let list = entries[key] else { return nil }
        return Self.winner(of: list).write.value
    }

    /// The winning write of `key`, if present.
    @inlinable
    public func write(for key: Key) -> LWWWrite<Value>? {
        guard let list = entries[key] else { return nil }
        return Self.winner(of: list).write
    }

    @inlinable
    static func winner(of list: [Entry]) -> Entry {
        var best = list[0]
        for entry in list.dropFirst() where best.write.isOlder(than: entry.write) { best = entry }
        return best
    }

    /// The present keys, in no particular order.
    public var keys: Set<Key> { Set(entries.keys) }

    /// The present keys with their winning values.
    public var values: [Key: Value] { entries.mapValues { Self.winner(of: $0).write.value } }

    /// The number of present keys.
    @inlinable
    public var count: Int { entries.count }

    /// Whether `key` is present.
    @inlinable
    public func contains(_ key: Key) -> Bool { entries[key] != nil }

    /// Every key's entries (concurrent writes included), for encoders.
    public var dottedEntries: [Key: [Entry]] { entries }

    /// Every dot this replica has seen.
    @inlinable
    public var context: CausalContext { causalContext }

    /// Whether the map holds nothing and has seen nothing.
    @inlinable
    public var isBottom: Bool { entries.isEmpty && causalContext.isEmpty }

    /// Sets `key` to `value` with `timestamp` at `replica`; returns the delta.
    ///
    /// The write replaces every write of `key` observed here, whatever its
    /// timestamp: a later local write is causally after them. Writes this replica
    /// has not seen still compete by `(timestamp, replica)` when they arrive.
    @inlinable
    @discardableResult
    public mutating func set(_ key: Key, to value: Value, timestamp: HLCTimestamp, at replica: ReplicaID) -> LWWMap {
        let dot = causalContext.issueDot(for: replica)
        // One array for the state and the delta: they share its storage.
        let written = [Entry(dot: dot, write: LWWWrite(value: value, timestamp: timestamp, replica: replica))]
        guard let previous = entries.updateValue(written, forKey: key) else {
            return LWWMap(uncheckedEntries: [key: written], context: CausalContext(only: dot))
        }
        if previous.count == 1 {
            // The field held one write (no concurrent writes to it): nearly every set of a field.
            return LWWMap(uncheckedEntries: [key: written], context: CausalContext(replaced: previous[0].dot, then: dot))
        }
        var deltaContext = CausalContext()
        deltaContext.cloud.reserveCapacity(previous.count + 1)
        for old in previous { deltaContext.insert(old.dot) }
        deltaContext.insert(dot)
        return LWWMap(uncheckedEntries: [key: written], context: deltaContext)
    }

    /// Removes `key` (observed-remove); returns the delta, bottom when absent.
    @inlinable
    @discardableResult
    public mutating func remove(_ key: Key) -> LWWMap {
        guard let previous = entries.removeValue(forKey: key) else { return LWWMap() }
        var deltaContext = CausalContext()
        for old in previous { deltaContext.insert(old.dot) }
        return LWWMap(uncheckedEntries: [:], context: deltaContext)
    }

    /// Removes every key (observed-remove of every write seen here); returns the
    /// delta: no entries, and a context of the removed writes' dots.
    ///
    /// A write this replica has not seen (a concurrent `set`) survives it.
    @discardableResult
    public mutating func removeAll() -> LWWMap {
        let removed = CausalContext(dots: entries.values.lazy.flatMap { $0.lazy.map(\.dot) })
        entries = [:]
        return LWWMap(uncheckedEntries: [:], context: removed)
    }

    /// Whether no key is present (the map may still have seen writes).
    @inlinable
    public var isEmpty: Bool { entries.isEmpty }

    /// Joins `other` into `self`, key by key (see `ORSet.merge` for the shape).
    @inlinable
    public mutating func merge(_ other: LWWMap) {
        if other.isBottom { return }
        if other.entries.count == 1 && mergeOneKey(other) { return }
        var removals: [Key] = []
        // Keys only here: drop the writes `other` has seen (it removed or replaced
        // them); skipped when `other` is a delta that cannot reach another key.
        if !other.causalContext.isEmpty && !other.reachesOnlyItsOwnKeys(in: self) {
            var index = entries.startIndex
            while index != entries.endIndex {
                let mine = entries.values[index]
                if mine.contains(where: { other.causalContext.contains($0.dot) })
                    && other.entries[entries.keys[index]] == nil
                {
                    let kept = mine.filter { !other.causalContext.contains($0.dot) }
                    if kept.isEmpty {
                        removals.append(entries.keys[index])
                    } else {
                        entries.values[index] = kept
                    }
                }
                entries.formIndex(after: &index)
            }
        }
        for (key, theirs) in other.entries {
            if let index = entries.index(forKey: key) {
                let mine = entries.values[index]
                if mine.count == 1 && theirs.count == 1 {
                    // One write on each side (a key's usual state, and a single write's delta): the
                    // join without building a new array, as `joinDotted` does it. A dot names one
                    // write, so with equal dots the entries are equal and ours is kept.
                    let (left, right) = (mine[0], theirs[0])
                    if left.dot == right.dot { continue }
                    let keepsMine = !other.causalContext.contains(left.dot)
                    let keepsTheirs = !causalContext.contains(right.dot)
                    switch (keepsMine, keepsTheirs) {
                    case (true, false): break
                    case (false, true): entries.values[index] = theirs
                    case (false, false): removals.append(key)
                    case (true, true): entries.values[index] = left.dot < right.dot ? [left, right] : [right, left]
                    }
                    continue
                }
                if mine == theirs { continue }
                let joined = joinDotted(mine, causalContext, theirs, other.causalContext, dot: { $0.dot })
                if joined.isEmpty {
                    removals.append(key)
                } else {
                    entries.values[index] = joined
                }
            } else {
                let fresh = theirs.filter { !causalContext.contains($0.dot) }
                if !fresh.isEmpty { entries[key] = fresh }
            }
        }
        for key in removals { entries[key] = nil }
        causalContext.merge(other.causalContext)
    }

    /// `merge(other)` for a delta of one key whose context reaches no other key here (see
    /// `ORSet.mergeOneElement`): the key is hashed once; `false`, changing nothing, otherwise.
    @inlinable
    mutating func mergeOneKey(_ other: LWWMap) -> Bool {
        guard let (key, theirs) = other.entries.first else { return false }
        let index = entries.index(forKey: key)
        let reachesOnlyKey: Bool? = {
            let held = index.map { entries.values[$0] } ?? []
            return other.causalContext.allDots(ifAtMost: 8) { dot in
                !causalContext.contains(dot) || held.contains { $0.dot == dot }
            }
        }()
        guard reachesOnlyKey == true else { return false }
        if let index {
            let mine = entries.values[index]
            if mine.count == 1 && theirs.count == 1 {
                // One write on each side: joined as `joinDotted` does, without a new array.
                let (left, right) = (mine[0], theirs[0])
                if left.dot != right.dot {
                    switch (!other.causalContext.contains(left.dot), !causalContext.contains(right.dot)) {
                    case (true, false): break
                    case (false, true): entries.values[index] = theirs
                    case (false, false): entries.remove(at: index)
                    case (true, true): entries.values[index] = left.dot < right.dot ? [left, right] : [right, left]
                    }
                }
            } else if mine != theirs {
                let joined = joinDotted(mine, causalContext, theirs, other.causalContext, dot: { $0.dot })
                if joined.isEmpty { entries.remove(at: index) } else { entries.values[index] = joined }
            }
        } else {
            let fresh = theirs.filter { !causalContext.contains($0.dot) }
            if !fresh.isEmpty { entries[key] = fresh }
        }
        causalContext.merge(other.causalContext)
        return true
    }

    /// Whether every dot of this (delta's) context that `receiver` has seen is
    /// held in `receiver` under a key this map holds too (see
    /// `ORSet.reachesOnlyItsOwnElements`): a dot is issued for one write of one key.
    @inlinable
    func reachesOnlyItsOwnKeys(in receiver: LWWMap) -> Bool {
        if let reachesOnlyOwn = causalContext.allDots(
            ifAtMost: 8,
            satisfy: { dot in
                if !receiver.causalContext.contains(dot) { return true }
                for key in entries.keys {
                    if let held = receiver.entries[key], held.contains(where: { $0.dot == dot }) { return true }
                }
                return false
            })
        {
            return reachesOnlyOwn
        }
        let limit = max(receiver.entries.count, 64)
        var held: [Dot] = []
        for key in entries.keys {
            if let list = receiver.entries[key] { held.append(contentsOf: list.lazy.map(\.dot)) }
        }
        held.sort()
        return causalContext.allDots(ifAtMost: limit) { dot in
            !receiver.causalContext.contains(dot) || sortedDots(held, contain: dot)
        } ?? false
    }

    public static func == (lhs: LWWMap, rhs: LWWMap) -> Bool {
        lhs.causalContext == rhs.causalContext && lhs.entries == rhs.entries
    }
}
