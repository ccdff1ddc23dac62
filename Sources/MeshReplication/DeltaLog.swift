import MeshCRDT

/// A domain's delta log: delivered records per origin in sequence order, bounded by
/// count and bytes, truncated from the oldest at causal stability or at its cap.
///
/// ### Invariants
/// - per origin, records are sorted by `lastSequence`, strictly increasing;
/// - `count`/`byteCount` are the number and encoded bytes of the records held.
struct DeltaLog: Sendable {
    struct Entry: Sendable {
        var record: DeltaRecord
        /// Position in this replica's delivery order (a causal order).
        var deliveryIndex: UInt64
        /// When it was delivered here (repairs skip records still being pushed).
        var deliveredAt: Instant
    }

    struct OriginLog: Sendable {
        var entries: [Entry] = []
        var head = 0

        var live: ArraySlice<Entry> { entries[head...] }

        /// Whether no live entry is left.
        var isEmpty: Bool { head == entries.count }

        /// Drops the oldest live entry if it is the one delivered at `deliveryIndex` (the order of
        /// deliveries still lists entries that stability already truncated), returning its
        /// encoded bytes and whether no live entry is left (one table lookup for both when called
        /// through the table's optional chaining). The record is not copied out: every replica
        /// holds the same record objects, and a retain and release per eviction contends on
        /// their reference counts when replicas step on several threads.
        mutating func dropFront(ifDeliveredAt deliveryIndex: UInt64) -> (byteCount: Int, isEmpty: Bool)? {
            guard head < entries.count, entries[head].deliveryIndex == deliveryIndex else { return nil }
            let byteCount = entries[head].record.encodedByteCount
            head += 1
            if head * 2 >= entries.count {
                entries.removeFirst(head)
                head = 0
            }
            return (byteCount, isEmpty)
        }

        /// Removes the oldest live entry. Dead entries are dropped once they are at least half of
        /// the array, so an origin's array holds at most twice its live entries (plus one): at a
        /// thousand origins per log, a fixed allowance of dead entries per origin held more memory
        /// than the live records, and kept every evicted record alive.
        mutating func popFront() -> Entry {
            let entry = entries[head]
            head += 1
            if head * 2 >= entries.count {
                entries.removeFirst(head)
                head = 0
            }
            return entry
        }
    }

    private(set) var origins: [ReplicaID: OriginLog] = [:]
    /// Delivery order of (origin, deliveryIndex) for eviction at the cap; entries
    /// already truncated by stability are skipped lazily.
    private var order: [(origin: ReplicaID, index: UInt64)] = []
    private var orderHead = 0
    private(set) var count = 0
    private(set) var byteCount = 0
    private var nextIndex: UInt64 = 0
    /// Records evicted by the cap (not by stability) since creation.
    private(set) var evictedCount = 0

    mutating func append(_ record: DeltaRecord, at now: Instant) {
        nextIndex += 1
        origins[record.origin, default: OriginLog()].entries.append(
            Entry(record: record, deliveryIndex: nextIndex, deliveredAt: now))
        order.append((record.origin, nextIndex))
        count += 1
        byteCount += record.encodedByteCount
    }

    /// Replaces the newest record of `origin` (an open local delta-group that grew).
    mutating func replaceLast(of origin: ReplicaID, with record: DeltaRecord) {
        // Moved out of the dictionary, the entries are uniquely referenced and change in place: a
        // copy (`var log = origins[origin]`) would copy the whole array on write, once per write.
        guard var log = origins.removeValue(forKey: origin), log.entries.count > log.head else {
            preconditionFailure("no record of \(origin) to replace")
        }
        let last = log.entries.count - 1
        byteCount += record.encodedByteCount - log.entries[last].record.encodedByteCount
        log.entries[last].record = record
        origins[origin] = log
    }

    /// Whether the newest record of the whole log is `origin`'s and starts at `firstSequence`
    /// (an open delta-group that may still grow: growing it keeps delivery order a causal order).
    func isNewestOverall(_ origin: ReplicaID, firstSequence: UInt64) -> Bool {
        guard let log = origins[origin], log.entries.count > log.head else { return false }
        let newest = log.entries[log.entries.count - 1]
        return newest.deliveryIndex == nextIndex && newest.record.firstSequence == firstSequence
    }

    /// The newest record of `origin`, if any.
    func last(of origin: ReplicaID) -> DeltaRecord? {
        guard let log = origins[origin], log.entries.count > log.head else { return nil }
        return log.entries[log.entries.count - 1].record
    }

    /// Evicts the oldest records while over either bound.
    mutating func enforce(maximumCount: Int, maximumBytes: Int) {
        while count > maximumCount || byteCount > maximumBytes, orderHead < order.count {
            let (origin, index) = order[orderHead]
            orderHead += 1
            // Changed in place in the table (one lookup; the entries stay uniquely referenced).
            guard let (bytes, isEmpty) = origins[origin]?.dropFront(ifDeliveredAt: index) else { continue }
            count -= 1
            byteCount -= bytes
            evictedCount += 1
            if isEmpty { origins[origin] = nil }
        }
        compactOrder()
    }

    /// Drops records every known replica delivered (`lastSequence <= stable[origin]`).
    mutating func truncate(atStable stable: VersionVector) {
        for entry in stable.entries {
            guard let oldest = origins[entry.replica].map({ $0.entries[$0.head] }),
                oldest.record.lastSequence <= entry.counter, var log = origins.removeValue(forKey: entry.replica)
            else { continue }
            while !log.isEmpty, log.entries[log.head].record.lastSequence <= entry.counter {
                let removed = log.popFront()
                count -= 1
                byteCount -= removed.record.encodedByteCount
            }
            if !log.isEmpty { origins[entry.replica] = log }
        }
        compactOrder()
    }

    private mutating func compactOrder() {
        if count == 0 {
            order.removeAll(keepingCapacity: true)
            orderHead = 0
        } else if orderHead > 1024 && orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
        // Stale entries (truncated by stability) are bounded: at most one per record
        // ever appended since the last time the log was empty or compacted.
        if order.count - orderHead > 4 * count + 1024 {
            order = order[orderHead...].filter { item in
                guard let log = origins[item.origin] else { return false }
                return log.live.contains { $0.deliveryIndex == item.index }
            }
            orderHead = 0
        }
    }

    enum Lookup {
        /// Records covering every sequence after `after` (possibly empty).
        case records(ArraySlice<Entry>)
        /// Some sequence after `after` is no longer in the log.
        case compacted
    }

    /// The records of `origin` with sequences after `after`, up to `upTo` (the caller's vector).
    func records(of origin: ReplicaID, after: UInt64, upTo: UInt64, deliveredBy cutoff: Instant? = nil) -> Lookup {
        guard upTo > after else { return .records([]) }
        guard let log = origins[origin] else { return .compacted }
        let live = log.live
        // Binary search for the first record whose lastSequence > after.
        var low = live.startIndex
        var high = live.endIndex
        while low < high {
            let mid = (low + high) / 2
            if live[mid].record.lastSequence <= after { low = mid + 1 } else { high = mid }
        }
        guard low < live.endIndex, live[low].record.firstSequence <= after + 1 else { return .compacted }
        // The covered range must be contiguous up to `upTo`.
        var covered = after
        var end = low
        while end < live.endIndex, covered < upTo {
            if let cutoff, live[end].deliveredAt > cutoff { break }
            let record = live[end].record
            if record.firstSequence > covered + 1 { return .compacted }
            covered = max(covered, record.lastSequence)
            end += 1
        }
        if covered < upTo && end < live.endIndex && cutoff == nil { return .compacted }
        if covered < upTo && end == live.endIndex { return .compacted }
        return .records(live[low..<end])
    }

    /// Every record held, per origin (sorted by replica) in sequence order.
    func allRecords() -> [DeltaRecord] {
        origins.keys.sorted().flatMap { origins[$0]!.live.map(\.record) }
    }

    /// Checks the invariants; returns a description of the first violation.
    func violation() -> String? {
        var total = 0
        var bytes = 0
        for (origin, log) in origins {
            var previous: UInt64 = 0
            for entry in log.live {
                if entry.record.origin != origin { return "record of \(entry.record.origin) filed under \(origin)" }
                if entry.record.lastSequence <= previous { return "log of \(origin) is not increasing" }
                previous = entry.record.lastSequence
                total += 1
                bytes += entry.record.encodedByteCount
            }
        }
        if total != count { return "log count \(count) but \(total) records" }
        if bytes != byteCount { return "log bytes \(byteCount) but records hold \(bytes)" }
        return nil
    }
}

