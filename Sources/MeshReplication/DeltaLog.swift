import MeshCRDT

/// A domain's delta log: delivered records per origin in sequence order, bounded by
/// count and bytes, truncated from the oldest at causal stability or at its cap.
///
/// The records sit in one array in delivery order (`slots`), each with its encoded size, when
/// it was delivered and where the previous record of its origin is; per origin the log keeps
/// only where its newest record is. An origin's records are that chain, walked from the newest
/// back. Appending touches the end of the array and one table entry; evicting at the cap walks
/// the array from its oldest end and reads nothing else. A replica of a 1,000-node simulation
/// delivers every record of 1,000 origins: per-origin arrays of positions cost it a cache miss
/// per delivery and as much memory as the log itself.
///
/// ### Invariants
/// - a record's delivery index is `base + its position in slots`; indexes grow with delivery;
/// - following `previous` from an origin's newest record visits its records newest first, in
///   strictly decreasing sequence order, and every record of the origin the log holds; a link
///   below `firstLiveIndex` or to a truncated slot ends the chain (evictions and truncations
///   remove a prefix of each origin's records);
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
        /// The record's last sequence (walks along a chain compare it without reading the record).
        var lastSequence: UInt64
        /// The delivery index of the previous record of the same origin (0: none).
        var previous: UInt64
    }

    private var slots: [Slot] = []
    /// The oldest slot not evicted.
    private var slotHead = 0
    /// The delivery index of `slots[0]` (at least 1: 0 is "none" in `Slot.previous`).
    private var base: UInt64 = 1
    /// Each origin's newest record, by delivery index (stale once below `firstLiveIndex` or
    /// truncated: the origin has no records then; such entries go at compaction). A vector, not
    /// a dictionary: sorted by replica, it is found where an evenly spread ID would be (one or two
    /// cache lines), where hashing the ID and probing a table cost a miss per delivery.
    private var newest = VersionVector()
    private(set) var count = 0
    private(set) var byteCount = 0
    /// Records evicted by the cap (not by stability) since creation.
    private(set) var evictedCount = 0

    /// The delivery index of the oldest slot not evicted: links below it are stale.
    private var firstLiveIndex: UInt64 { base + UInt64(slotHead) }

    private func slotPosition(_ deliveryIndex: UInt64) -> Int { Int(deliveryIndex - base) }

    /// The slot position of the live record at `deliveryIndex`, or `nil` when the index is 0,
    /// evicted or truncated (the end of a chain).
    private func livePosition(_ deliveryIndex: UInt64) -> Int? {
        guard deliveryIndex >= firstLiveIndex else { return nil }
        let position = slotPosition(deliveryIndex)
        return slots[position].record == nil ? nil : position
    }

    mutating func append(_ record: DeltaRecord, at now: Instant) {
        let deliveryIndex = base + UInt64(slots.count)
        let previous = newest.exchange(record.origin, with: deliveryIndex)
        slots.append(
            Slot(
                record: record, deliveredAt: now, byteCount: record.encodedByteCount,
                lastSequence: record.lastSequence, previous: previous))
        count += 1
        byteCount += record.encodedByteCount
    }

    /// Replaces the newest record of `origin` (an open local delta-group that grew).
    mutating func replaceLast(of origin: ReplicaID, with record: DeltaRecord) {
        guard let position = newestPosition(of: origin) else {
            preconditionFailure("no record of \(origin) to replace")
        }
        byteCount += record.encodedByteCount - slots[position].byteCount
        slots[position].record = record
        slots[position].byteCount = record.encodedByteCount
        slots[position].lastSequence = record.lastSequence
    }

    /// Whether the newest record of the whole log is `origin`'s and starts at `firstSequence`
    /// (an open delta-group that may still grow: growing it keeps delivery order a causal order).
    func isNewestOverall(_ origin: ReplicaID, firstSequence: UInt64) -> Bool {
        guard slots.count > slotHead, let newest = slots[slots.count - 1].record else { return false }
        return newest.origin == origin && newest.firstSequence == firstSequence
    }

    /// The newest record of `origin`, if any.
    func last(of origin: ReplicaID) -> DeltaRecord? {
        newestPosition(of: origin).map { slots[$0].record! }
    }

    /// The slot position of the newest record of `origin`, if it has one.
    private func newestPosition(of origin: ReplicaID) -> Int? {
        livePosition(newest[origin])
    }

    /// The newest record of every origin with records in the log.
    var newestRecords: [DeltaRecord] {
        newest.entries.compactMap { livePosition($0.counter).map { slots[$0].record! } }
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
        for entry in stable.entries {
            // Walk back past the origin's records that are not yet stable; the rest of the chain goes.
            var position = livePosition(newest[entry.replica])
            while let current = position, slots[current].lastSequence > entry.counter {
                position = livePosition(slots[current].previous)
            }
            while let current = position {
                count -= 1
                byteCount -= slots[current].byteCount
                slots[current].record = nil
                position = livePosition(slots[current].previous)
            }
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
            newest = VersionVector()
            return
        }
        if slotHead > 1024 && slotHead * 2 > slots.count {
            slots.removeFirst(slotHead)
            base += UInt64(slotHead)
            slotHead = 0
            // Origins left without records since the last compaction (amortised over at least a
            // thousand evictions).
            let firstLive = firstLiveIndex
            if newest.entries.contains(where: { $0.counter < firstLive }) {
                // A sorted, zero-free subset of sorted, zero-free entries.
                newest = VersionVector(sortedEntries: newest.entries.filter { $0.counter >= firstLive })!
            }
        }
        // Holes left by stability are bounded: at most three per live record, plus a constant.
        if slots.count - slotHead > 4 * count + 1024 {
            let live = slots[slotHead...].filter { $0.record != nil }
            base += UInt64(slots.count)
            slots = live
            slotHead = 0
            newest = VersionVector()
            for position in slots.indices {
                let deliveryIndex = base + UInt64(position)
                let origin = slots[position].record!.origin
                slots[position].previous = newest.exchange(origin, with: deliveryIndex)
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
        let start = result.count
        // The origin's records after `after`, newest first (fields read in place: a copy of a slot
        // retains its record, whose count every replica of a simulation shares). Only those older
        // than the oldest one delivered after `cutoff` count; the ones delivered after it (first
        // along the chain) are stepped over.
        var position = livePosition(newest[origin])
        var oldest: Int?
        // The first sequence of the oldest record stepped over as recent.
        var oldestRecentFirst: UInt64?
        while let current = position, slots[current].lastSequence > after {
            oldest = current
            if let cutoff, slots[current].deliveredAt > cutoff {
                oldestRecentFirst = slots[current].record!.firstSequence
                result.removeSubrange(start...)
            } else {
                result.append(
                    Entry(
                        record: slots[current].record!, deliveryIndex: base + UInt64(current),
                        deliveredAt: slots[current].deliveredAt))
            }
            position = livePosition(slots[current].previous)
        }
        // The first record after `after` must continue it, and so must each one after it.
        guard let oldest, slots[oldest].record!.firstSequence <= after + 1 else {
            result.removeSubrange(start...)
            return false
        }
        result[start...].reverse()
        var covered = after
        var end = start
        while end < result.count, covered < upTo {
            if result[end].record.firstSequence > covered + 1 {
                result.removeSubrange(start...)
                return false
            }
            covered = max(covered, result[end].record.lastSequence)
            end += 1
        }
        result.removeSubrange(end...)
        // Short of `upTo`, what is left must be exactly the records held back as recent, right
        // after the ones returned. A gap before them is a hole in the log (sequences a snapshot
        // delivered, or evicted ones): the caller's delivery order skips it, and records delivered
        // after it may depend on it, so the log cannot answer (a repair that sent the prefix
        // delivered a record before its dependency; found by FuzzSchedule).
        if covered < upTo {
            guard let first = oldestRecentFirst, first <= covered + 1 else {
                result.removeSubrange(start...)
                return false
            }
        }
        return true
    }

    /// Every record held, per origin (sorted by replica) in sequence order.
    func allRecords() -> [DeltaRecord] {
        newest.entries.flatMap { entry in
            let origin = entry.replica
            var records: [DeltaRecord] = []
            var position = newestPosition(of: origin)
            while let current = position {
                records.append(slots[current].record!)
                position = livePosition(slots[current].previous)
            }
            return records.reversed()
        }
    }

    /// Table entries held (slots in delivery order and per-origin entries): what the log's
    /// storage costs, against `count`.
    var storageSlots: Int { slots.count + newest.count }

    /// Checks the invariants; returns a description of the first violation.
    func violation() -> String? {
        var total = 0
        var bytes = 0
        for entry in newest.entries {
            let (origin, newestIndex) = (entry.replica, entry.counter)
            var previousSequence = UInt64.max
            var previousIndex = UInt64.max
            var position = livePosition(newestIndex)
            while let current = position {
                let record = slots[current].record!
                let deliveryIndex = base + UInt64(current)
                if record.origin != origin { return "record of \(record.origin) chained under \(origin)" }
                if record.lastSequence >= previousSequence || record.lastSequence != slots[current].lastSequence {
                    return "log of \(origin) is not increasing"
                }
                if deliveryIndex >= previousIndex { return "log of \(origin) is not in delivery order" }
                if slots[current].byteCount != record.encodedByteCount {
                    return "slot of \(record) holds the wrong size"
                }
                previousSequence = record.lastSequence
                previousIndex = deliveryIndex
                total += 1
                bytes += record.encodedByteCount
                if slots[current].previous >= deliveryIndex { return "a link of \(origin) points forward" }
                position = livePosition(slots[current].previous)
            }
        }
        let slotted = slots[slotHead...].reduce(0) { $0 + ($1.record == nil ? 0 : 1) }
        if total != count || slotted != count {
            return "log count \(count) but \(total) records chained, \(slotted) slotted"
        }
        if bytes != byteCount { return "log bytes \(byteCount) but records hold \(bytes)" }
        return nil
    }
}
