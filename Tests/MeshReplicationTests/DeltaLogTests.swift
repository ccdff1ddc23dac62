import MeshCRDT
import Testing

@testable import MeshReplication

@Suite("delta log")
struct DeltaLogTests {
    func record(_ origin: ReplicaID, _ first: UInt64, _ last: UInt64? = nil, amount: UInt64 = 1) -> DeltaRecord {
        var counter = PNCounter()
        let delta = counter.increment(by: amount, at: origin)
        return DeltaRecord(
            origin: origin, firstSequence: first, lastSequence: last ?? first, timestamp: .zero,
            requestsAcknowledgement: false, updates: [KeyedDelta(key: "k", value: .counter(delta))])
    }

    @Test("evicting at the cap keeps the log's storage bounded, and evicted records are freed")
    func evictionCompactsStorage() {
        var log = DeltaLog()
        let origins = (1...50).map { ReplicaID(UInt64($0)) }
        weak var firstRecord: DeltaRecord?
        var largestStorage = 0
        for sequence in UInt64(1)...200 {
            for origin in origins {
                let delta = record(origin, sequence)
                if sequence == 1 && origin == origins[0] { firstRecord = delta }
                log.append(delta, at: Instant(milliseconds: sequence))
                log.enforce(maximumCount: 100, maximumBytes: .max)
                largestStorage = max(largestStorage, log.storageSlots)
            }
        }
        #expect(log.count == 100)
        #expect(log.evictedCount == 50 * 200 - 100)
        #expect(log.violation() == nil)
        // 10,000 records went through; the slots held stay within a constant of the live ones.
        #expect(largestStorage <= 4 * 100 + 2 * 1024, "\(largestStorage) slots for 100 live records")
        #expect(firstRecord == nil, "an evicted record is still referenced by the log")
        // The two newest records of each origin are left, and a request reaching further back is compacted.
        var entries: [DeltaLog.Entry] = []
        #expect(log.appendRecords(of: origins[7], after: 198, upTo: 200, to: &entries))
        #expect(entries.map(\.record.lastSequence) == [199, 200])
        #expect(!log.appendRecords(of: origins[7], after: 197, upTo: 200, to: &entries))
        #expect(entries.count == 2, "a compacted request appends nothing")
    }

    @Test("records held back as recent must follow the ones returned: a hole before them is no answer")
    func holeBeforeRecentRecords() {
        let origin = ReplicaID(5)
        let other = ReplicaID(6)
        var log = DeltaLog()
        log.append(record(origin, 1), at: Instant(milliseconds: 0))
        // Sequences 2 and 3 came in a snapshot (not logged); later records may depend on them.
        log.append(record(other, 1), at: Instant(milliseconds: 10))
        log.append(record(origin, 4), at: Instant(milliseconds: 100))
        var entries: [DeltaLog.Entry] = []
        #expect(!log.appendRecords(of: origin, after: 0, upTo: 4, deliveredBy: Instant(milliseconds: 50), to: &entries))
        #expect(entries.isEmpty)
        // Without the hole the old record goes, and the recent one is held back.
        var whole = DeltaLog()
        whole.append(record(origin, 1, 3), at: Instant(milliseconds: 0))
        whole.append(record(origin, 4), at: Instant(milliseconds: 100))
        #expect(whole.appendRecords(of: origin, after: 0, upTo: 4, deliveredBy: Instant(milliseconds: 50), to: &entries))
        #expect(entries.map(\.record.lastSequence) == [3])
    }

    @Test("truncating at a stable vector drops exactly the covered records")
    func truncationDropsCoveredRecords() {
        var log = DeltaLog()
        let origin = ReplicaID(7)
        for sequence in UInt64(1)...100 { log.append(record(origin, sequence), at: Instant(milliseconds: sequence)) }
        log.truncate(atStable: VersionVector([(origin, UInt64(90))]))
        #expect(log.count == 10)
        #expect(log.violation() == nil)
        #expect(log.storageSlots <= 2 * 100 + 1)
        var remaining: [DeltaLog.Entry] = []
        #expect(log.appendRecords(of: origin, after: 90, upTo: 100, to: &remaining))
        #expect(remaining.map(\.record.firstSequence) == Array(UInt64(91)...100))
    }

    @Test("holes left by stability behind an old record are bounded, and delivery order survives renumbering")
    func stabilityHolesAreBounded() {
        var log = DeltaLog()
        let old = ReplicaID(1)
        let busy = ReplicaID(2)
        log.append(record(old, 1), at: Instant(milliseconds: 0))
        var largestStorage = 0
        for sequence in UInt64(1)...20_000 {
            log.append(record(busy, sequence), at: Instant(milliseconds: sequence))
            // The busy origin is stable three records behind its newest; the old one never is.
            log.truncate(atStable: VersionVector([(busy, sequence > 3 ? sequence - 3 : 0)]))
            largestStorage = max(largestStorage, log.storageSlots)
        }
        #expect(log.count == 4)
        #expect(log.violation() == nil)
        #expect(largestStorage <= 4 * 4 + 1024 + 8, "\(largestStorage) slots for 4 live records")
        var entries: [DeltaLog.Entry] = []
        #expect(log.appendRecords(of: busy, after: 19_997, upTo: 20_000, to: &entries))
        #expect(entries.map(\.record.lastSequence) == [19_998, 19_999, 20_000], "the busy origin's chain survives renumbering")
        #expect(!log.appendRecords(of: busy, after: 19_996, upTo: 20_000, to: &entries), "19,997 was truncated")
        #expect(log.appendRecords(of: old, after: 0, upTo: 1, to: &entries))
        #expect(entries.map(\.record.origin) == [busy, busy, busy, old])
        #expect(entries[3].deliveryIndex < entries[0].deliveryIndex, "the old record was delivered first")
        #expect(log.isNewestOverall(busy, firstSequence: 20_000))
    }

    /// The log against a plain list of its records in delivery order, under random appends,
    /// delta-group growth, evictions and truncations: every answer must agree.
    @Test("agrees with a list model under random appends, growth, eviction and truncation", arguments: 1...40)
    func agreesWithModel(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var log = DeltaLog()
        var model = LogModel()
        let origins = (1...UInt64.random(in: 2...12, using: &random)).map(ReplicaID.init)
        var sequences = [ReplicaID: UInt64]()
        for step in 0..<600 {
            let now = Instant(milliseconds: UInt64(step))
            let origin = origins.randomElement(using: &random)!
            switch UInt64.random(in: 0..<10, using: &random) {
            case 0..<6:
                // Now and then a record overlaps the one before it (a group that covers writes
                // already delivered on their own): a repair must still send that one when it
                // holds sequences the peer lacks.
                let previousLast = sequences[origin, default: 0]
                let overlaps = previousLast > 0 && UInt64.random(in: 0..<4, using: &random) == 0
                let first = overlaps ? previousLast - UInt64.random(in: 0..<min(previousLast, 3), using: &random) : previousLast + 1
                let last = max(first + UInt64.random(in: 0...2, using: &random), previousLast + 1)
                sequences[origin] = last
                let new = record(origin, first, last, amount: .random(in: 1...1_000, using: &random))
                log.append(new, at: now)
                model.append(new, at: now)
            case 6:
                // A growing open group replaces the newest record (only while it is the newest overall).
                if let newest = model.entries.last, newest.deliveryIndex == model.nextIndex,
                    log.isNewestOverall(newest.record.origin, firstSequence: newest.record.firstSequence)
                {
                    let grown = record(
                        newest.record.origin, newest.record.firstSequence, newest.record.lastSequence + 1,
                        amount: .random(in: 1...1_000_000, using: &random))
                    sequences[newest.record.origin] = grown.lastSequence
                    log.replaceLast(of: grown.origin, with: grown)
                    model.replaceLast(with: grown)
                }
            case 7:
                let cap = Int.random(in: 0...40, using: &random)
                let bytes = Int.random(in: 100...4_000, using: &random)
                log.enforce(maximumCount: cap, maximumBytes: bytes)
                model.enforce(maximumCount: cap, maximumBytes: bytes)
            default:
                let stable = VersionVector(
                    origins.map { ($0, UInt64.random(in: 0...sequences[$0, default: 0], using: &random)) })
                log.truncate(atStable: stable)
                model.truncate(atStable: stable)
            }
            #expect(log.violation() == nil, "step \(step)")
            #expect(log.count == model.entries.count && log.byteCount == model.byteCount, "step \(step)")
            #expect(log.evictedCount == model.evicted, "step \(step)")
            for origin in origins {
                #expect(log.last(of: origin) === model.entries.last { $0.record.origin == origin }?.record)
                let newest = model.entries.last
                let modelNewest =
                    newest != nil && newest!.deliveryIndex == model.nextIndex && newest!.record.origin == origin
                #expect(log.isNewestOverall(origin, firstSequence: newest?.record.firstSequence ?? 0) == modelNewest)
                let top = sequences[origin, default: 0]
                let after = UInt64.random(in: 0...top, using: &random)
                let upTo = UInt64.random(in: after...top, using: &random)
                let cutoff: Instant? = Bool.random(using: &random) ? Instant(milliseconds: .random(in: 0...600, using: &random)) : nil
                var entries: [DeltaLog.Entry] = []
                let found = log.appendRecords(of: origin, after: after, upTo: upTo, deliveredBy: cutoff, to: &entries)
                let expected = model.records(of: origin, after: after, upTo: upTo, deliveredBy: cutoff)
                #expect(found == (expected != nil), "step \(step): \(origin) after \(after) up to \(upTo)")
                #expect(entries.map(\.record) == (expected ?? []).map(\.record))
                #expect(entries.map(\.deliveredAt) == (expected ?? []).map(\.deliveredAt))
                // Delivery indexes order the records as they were delivered.
                #expect(zip(entries, entries.dropFirst()).allSatisfy { $0.deliveryIndex < $1.deliveryIndex })
            }
            #expect(log.allRecords() == model.entries.sorted { $0.record.origin < $1.record.origin }.map(\.record))
        }
    }
}

/// The delta log's specification: its live records in delivery order.
private struct LogModel {
    struct Entry {
        var record: DeltaRecord
        var deliveryIndex: UInt64
        var deliveredAt: Instant
    }

    var entries: [Entry] = []
    var nextIndex: UInt64 = 0
    var evicted = 0
    var byteCount: Int { entries.reduce(0) { $0 + $1.record.encodedByteCount } }

    mutating func append(_ record: DeltaRecord, at now: Instant) {
        nextIndex += 1
        entries.append(Entry(record: record, deliveryIndex: nextIndex, deliveredAt: now))
    }

    mutating func replaceLast(with record: DeltaRecord) {
        entries[entries.count - 1].record = record
    }

    mutating func enforce(maximumCount: Int, maximumBytes: Int) {
        while !entries.isEmpty && (entries.count > maximumCount || byteCount > maximumBytes) {
            entries.removeFirst()
            evicted += 1
        }
    }

    mutating func truncate(atStable stable: VersionVector) {
        entries.removeAll { $0.record.lastSequence <= stable[$0.record.origin] }
    }

    /// What a repair may send: the origin's records covering `(after, upTo]` contiguously (those
    /// delivered by `cutoff` when given, which may end the run early), or `nil` when a sequence
    /// after `after` is gone.
    func records(of origin: ReplicaID, after: UInt64, upTo: UInt64, deliveredBy cutoff: Instant?) -> [Entry]? {
        guard upTo > after else { return [] }
        let mine = entries.filter { $0.record.origin == origin && $0.record.lastSequence > after }
        guard let first = mine.first, first.record.firstSequence <= after + 1 else { return nil }
        var covered = after
        var taken: [Entry] = []
        for entry in mine where covered < upTo {
            if let cutoff, entry.deliveredAt > cutoff { return entry.record.firstSequence <= covered + 1 ? taken : nil }
            if entry.record.firstSequence > covered + 1 { return nil }
            covered = max(covered, entry.record.lastSequence)
            taken.append(entry)
        }
        return covered < upTo ? nil : taken
    }
}
