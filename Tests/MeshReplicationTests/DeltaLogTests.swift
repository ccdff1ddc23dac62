import MeshCRDT
import Testing

@testable import MeshReplication

@Suite("delta log")
struct DeltaLogTests {
    func record(_ origin: ReplicaID, _ sequence: UInt64) -> DeltaRecord {
        var counter = PNCounter()
        let delta = counter.increment(by: 1, at: origin)
        return DeltaRecord(
            origin: origin, firstSequence: sequence, lastSequence: sequence, timestamp: .zero,
            requestsAcknowledgement: false, updates: [KeyedDelta(key: "k", value: .counter(delta))])
    }

    @Test("evicting at the cap keeps each origin's storage within twice its live records, and evicted records are freed")
    func evictionCompactsStorage() {
        var log = DeltaLog()
        let origins = (1...50).map { ReplicaID(UInt64($0)) }
        weak var firstRecord: DeltaRecord?
        for sequence in UInt64(1)...200 {
            for origin in origins {
                let delta = record(origin, sequence)
                if sequence == 1 && origin == origins[0] { firstRecord = delta }
                log.append(delta, at: Instant(milliseconds: sequence))
                log.enforce(maximumCount: 100, maximumBytes: .max)
            }
        }
        #expect(log.count == 100)
        #expect(log.evictedCount == 50 * 200 - 100)
        #expect(log.violation() == nil)
        for (_, originLog) in log.origins {
            let live = originLog.entries.count - originLog.head
            #expect(originLog.entries.count <= 2 * live + 1, "\(originLog.entries.count) slots for \(live) live records")
        }
        #expect(firstRecord == nil, "an evicted record is still referenced by the log")
    }

    @Test("truncating at a stable vector drops exactly the covered records and compacts their storage")
    func truncationCompactsStorage() {
        var log = DeltaLog()
        let origin = ReplicaID(7)
        for sequence in UInt64(1)...100 { log.append(record(origin, sequence), at: Instant(milliseconds: sequence)) }
        log.truncate(atStable: VersionVector([(origin, UInt64(90))]))
        #expect(log.count == 10)
        #expect(log.violation() == nil)
        let originLog = log.origins[origin]
        #expect(originLog.map { $0.entries.count <= 2 * ($0.entries.count - $0.head) + 1 } == true)
        guard case .records(let remaining) = log.records(of: origin, after: 90, upTo: 100) else {
            Issue.record("records after the stable point must still be in the log")
            return
        }
        #expect(remaining.map(\.record.firstSequence) == Array(UInt64(91)...100))
    }
}
