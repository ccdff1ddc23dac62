import MeshCRDT

/// A domain's delta log: delivered records per origin in sequence order, bounded by
/// count and bytes, truncated from the oldest at causal stability or at its cap.
///
/// The records sit in one array in delivery order (`slots`), each with its encoded size and
/// when it was delivered; per origin, an index lists its records' last sequences and
/// delivery positions. Evicting at the cap walks the delivery order from its oldest end and
/// reads nothing but that array: the per-origin indexes are trimmed lazily (an index entry
/// older than the oldest slot is stale), which keeps eviction, done by every replica for
/// every record it delivers once the log is full, clear of cache misses on per-origin
/// storage and on the records themselves.
///
/// ### Invariants
/// - a record's delivery index is `base + its position in slots`; indexes grow with delivery;
/// - per origin, the index entries from `head` on are in delivery order and in sequence order
///   (strictly increasing `lastSequence`); those with a delivery index below `firstLiveIndex`
///   were evicted (a prefix), every other one names a slot that holds its record;
/// - a slot from `slotHead` on holds a record unless stability truncated it;
/// - `count`/`byteCount` are the number and encoded bytes of the records held.
struct DeltaLog: Sendable {
    /// A logged record as the log hands it out.
    struct Entry: Sendable {
        var record: DeltaRecord
        /// Position in this replica's delivery order (a causal order).
        var deliveryIndex: UInt64
        /// When it was delivered here (repairs skip records still being pushed).
        var deliveredAt: Instant
    }

    /// A record in delivery order, with what eviction and repairs read of it kept inline.
    private struct Slot: Sendable {
        /// `nil` once truncated at stability.
        var record: DeltaRecord?
        var deliveredAt: Instant
        var byteCount: Int
    }

    /// One record of an origin: its last sequence (binary searches read no record) and where
    /// it is in the delivery order.
    private struct Mark: Sendable {
        var lastSequence: UInt64
        var deliveryIndex: UInt64
    }

    /// One origin's records in sequence order.
    private struct OriginIndex: Sendable {
        var marks: [Mark] = []
        var head = 0

        /// Drops the marks of evicted records (delivered before `firstLive`), and their storage
        /// once they are at least half of the array.
        mutating func trim(firstLive: UInt64) {
            head = firstLivePosition(firstLive)
            if head > 0 && head * 2 >= marks.count {
                marks.removeFirst(head)
                head = 0
            }
        }

        /// Appends `mark`, trimming first when the array is full: stale marks are found only when
        /// the array would grow (reading the oldest mark on every append was a cache miss per
        /// delivery). An array holds at most about four times its live marks.
        mutating func append(_ mark: Mark, firstLive: UInt64) {
            if marks.count == marks.capacity { trim(firstLive: firstLive) }
            marks.append(mark)
        }

        /// The position in `marks` of the first live mark (the stale prefix is skipped by binary
        /// search: indexes are trimmed only when they would grow, and at slot compaction).
        func firstLivePosition(_ firstLiveIndex: UInt64) -> Int {
            var low = head
            var high = marks.count
            while low < high {
                let mid = (low + high) / 2
                if marks[mid].deliveryIndex < firstLiveIndex { low = mid + 1 } else { high = mid }
            }
            return low
        }
    }

    private var slots: [Slot] = []
    /// The oldest slot not evicted.
    private var slotHead = 0
    /// The delivery index of `slots[0]`.
    private var base: UInt64 = 1
    private var origins: [ReplicaID: OriginIndex] = [:]
    private(set) var count = 0
    private(set) var byteCount = 0
    /// Records evicted by the cap (not by stability) since creation.
    private(set) var evictedCount = 0

    /// The delivery index of the oldest slot not evicted: marks below it are stale.
    private var firstLiveIndex: UInt64 { base + UInt64(slotHead) }

    private func slotPosition(_ deliveryIndex: UInt64) -> Int { Int(deliveryIndex - base) }

    mutating func append(_ record: DeltaRecord, at now: Instant) {
        let deliveryIndex = base + UInt64(slots.count)
        let firstLive = firstLiveIndex
        slots.append(Slot(record: record, deliveredAt: now, byteCount: record.encodedByteCount))
        origins[record.origin, default: OriginIndex()].append(
            Mark(lastSequence: record.lastSequence, deliveryIndex: deliveryIndex), firstLive: firstLive)
        count += 1
        byteCount += record.encodedByteCount
    }

    /// Replaces the newest record of `origin` (an open local delta-group that grew).
    mutating func replaceLast(of origin: ReplicaID, with record: DeltaRecord) {
        guard let mark = newestMark(of: origin) else { preconditionFailure("no record of \(origin) to replace") }
        let position = slotPosition(mark.mark.deliveryIndex)
        byteCount += record.encodedByteCount - slots[position].byteCount
        slots[position].record = record
        slots[position].byteCount = record.encodedByteCount
        origins[origin]!.marks[mark.position].lastSequence = record.lastSequence
    }

    /// Whether the newest record of the whole log is `origin`'s and starts at `firstSequence`
    /// (an open delta-group that may still grow: growing it keeps delivery order a causal order).
    func isNewestOverall(_ origin: ReplicaID, firstSequence: UInt64) -> Bool {
        guard slots.count > slotHead, let newest = slots[slots.count - 1].record else { return false }
        return newest.origin == origin && newest.firstSequence == firstSequence
    }

    /// The newest record of `origin`, if any.
    func last(of origin: ReplicaID) -> DeltaRecord? {
        newestMark(of: origin).map { slots[slotPosition($0.mark.deliveryIndex)].record! }
    }

    /// The newest live mark of `origin` and its position in the origin's index.
    private func newestMark(of origin: ReplicaID) -> (mark: Mark, position: Int)? {
        origins[origin].flatMap(newestMark(in:))
    }

    private func newestMark(in index: OriginIndex) -> (mark: Mark, position: Int)? {
        guard let mark = index.marks.last, index.marks.count > index.head, mark.deliveryIndex >= firstLiveIndex
        else { return nil }
        return (mark, index.marks.count - 1)
    }

    /// The newest record of every origin with records in the log.
    var newestRecords: [DeltaRecord] {
        origins.values.compactMap { newestMark(in: $0).map { slots[slotPosition($0.mark.deliveryIndex)].record! } }
    }

    /// Evicts the oldest records while over either bound.
    mutating func enforce(maximumCount: Int, maximumBytes: Int) {
        while count > maximumCount || byteCount > maximumBytes, slotHead < slots.count {
            if slots[slotHead].record != nil {
                count -= 1
                byteCount -= slots[slotHead].byteCount
                evictedCount += 1
            }
            slotHead += 1
        }
        compact()
    }

    /// Drops records every known replica delivered (`lastSequence <= stable[origin]`).
    mutating func truncate(atStable stable: VersionVector) {
        let firstLive = firstLiveIndex
        for entry in stable.entries {
            guard let index = origins[entry.replica] else { continue }
            let first = index.firstLivePosition(firstLive)
            guard first < index.marks.count, index.marks[first].lastSequence <= entry.counter,
                var changed = origins.removeValue(forKey: entry.replica)
            else { continue }
            // Moved out of the table, the index is uniquely referenced and changes in place.
            changed.head = first
            while changed.head < changed.marks.count, changed.marks[changed.head].lastSequence <= entry.counter {
                let position = slotPosition(changed.marks[changed.head].deliveryIndex)
                count -= 1
                byteCount -= slots[position].byteCount
                slots[position].record = nil
                changed.head += 1
            }
            changed.trim(firstLive: firstLive)
            if changed.head < changed.marks.count { origins[entry.replica] = changed }
        }
        compact()
    }

    /// Releases evicted slots, and renumbers the delivery order when records truncated at
    /// stability (holes) outnumber the live ones.
    private mutating func compact() {
        if count == 0 {
            base += UInt64(slots.count)
            slots.removeAll(keepingCapacity: true)
            slotHead = 0
            origins.removeAll(keepingCapacity: true)
            return
        }
        if slotHead > 1024 && slotHead * 2 > slots.count {
            slots.removeFirst(slotHead)
            base += UInt64(slotHead)
            slotHead = 0
            // Indexes of origins that delivered nothing since are trimmed here (once per
            // compaction, amortised over at least a thousand evictions).
            // In place, by position (no key hashed); origins left without live records go after.
            let firstLive = firstLiveIndex
            var anyEmpty = false
            var position = origins.startIndex
            while position != origins.endIndex {
                origins.values[position].trim(firstLive: firstLive)
                if origins.values[position].head == origins.values[position].marks.count { anyEmpty = true }
                origins.formIndex(after: &position)
            }
            if anyEmpty { origins = origins.filter { $0.value.head < $0.value.marks.count } }
        }
        // Holes left by stability are bounded: at most three per live record, plus a constant.
        if slots.count - slotHead > 4 * count + 1024 {
            let live = slots[slotHead...].filter { $0.record != nil }
            base += UInt64(slots.count)
            slots = live
            slotHead = 0
            origins.removeAll(keepingCapacity: true)
            for (position, slot) in slots.enumerated() {
                origins[slot.record!.origin, default: OriginIndex()].marks.append(
                    Mark(lastSequence: slot.record!.lastSequence, deliveryIndex: base + UInt64(position)))
            }
        }
    }

    /// Appends to `result` the records of `origin` with sequences after `after`, up to `upTo`
    /// (the caller's vector), delivered by `cutoff` when given; `false` (and nothing appended)
    /// when some sequence after `after` is no longer in the log.
    func appendRecords(
        of origin: ReplicaID, after: UInt64, upTo: UInt64, deliveredBy cutoff: Instant? = nil, to result: inout [Entry]
    ) -> Bool {
        guard upTo > after else { return true }
        guard let index = origins[origin] else { return false }
        let marks = index.marks
        let liveStart = index.firstLivePosition(firstLiveIndex)
        // Binary search for the first record whose lastSequence > after.
        var low = liveStart
        var high = marks.count
        while low < high {
            let mid = (low + high) / 2
            if marks[mid].lastSequence <= after { low = mid + 1 } else { high = mid }
        }
        guard low < marks.count, slots[slotPosition(marks[low].deliveryIndex)].record!.firstSequence <= after + 1 else {
            return false
        }
        // The covered range must be contiguous up to `upTo`. (Fields are read in place: a copy of
        // a slot retains its record, whose count every replica of a simulation shares.)
        var covered = after
        var end = low
        while end < marks.count, covered < upTo {
            let position = slotPosition(marks[end].deliveryIndex)
            if let cutoff, slots[position].deliveredAt > cutoff { break }
            if slots[position].record!.firstSequence > covered + 1 { return false }
            covered = max(covered, marks[end].lastSequence)
            end += 1
        }
        if covered < upTo && end < marks.count && cutoff == nil { return false }
        if covered < upTo && end == marks.count { return false }
        for mark in marks[low..<end] {
            let slot = slots[slotPosition(mark.deliveryIndex)]
            result.append(Entry(record: slot.record!, deliveryIndex: mark.deliveryIndex, deliveredAt: slot.deliveredAt))
        }
        return true
    }

    /// Every record held, per origin (sorted by replica) in sequence order.
    func allRecords() -> [DeltaRecord] {
        let firstLive = firstLiveIndex
        return origins.keys.sorted().flatMap { origin in
            let index = origins[origin]!
            return index.marks[index.firstLivePosition(firstLive)...].map { slots[slotPosition($0.deliveryIndex)].record! }
        }
    }

    /// Array slots held (delivery order and per-origin indexes): what the log's storage costs,
    /// against `count`.
    var storageSlots: Int { slots.count + origins.values.reduce(0) { $0 + $1.marks.count } }

    /// Checks the invariants; returns a description of the first violation.
    func violation() -> String? {
        var total = 0
        var bytes = 0
        let firstLive = firstLiveIndex
        for (origin, index) in origins {
            var previous: UInt64 = 0
            var previousIndex: UInt64 = 0
            for mark in index.marks[index.firstLivePosition(firstLive)...] {
                guard mark.deliveryIndex >= base, slotPosition(mark.deliveryIndex) < slots.count,
                    let record = slots[slotPosition(mark.deliveryIndex)].record
                else { return "a live mark of \(origin) names no record" }
                if record.origin != origin { return "record of \(record.origin) filed under \(origin)" }
                if record.lastSequence <= previous || record.lastSequence != mark.lastSequence {
                    return "log of \(origin) is not increasing"
                }
                if mark.deliveryIndex <= previousIndex { return "log of \(origin) is not in delivery order" }
                previous = record.lastSequence
                previousIndex = mark.deliveryIndex
                total += 1
                bytes += record.encodedByteCount
                if slots[slotPosition(mark.deliveryIndex)].byteCount != record.encodedByteCount {
                    return "slot of \(record) holds the wrong size"
                }
            }
        }
        let slotted = slots[slotHead...].reduce(0) { $0 + ($1.record == nil ? 0 : 1) }
        if total != count || slotted != count { return "log count \(count) but \(total) records indexed, \(slotted) slotted" }
        if bytes != byteCount { return "log bytes \(byteCount) but records hold \(bytes)" }
        return nil
    }
}
