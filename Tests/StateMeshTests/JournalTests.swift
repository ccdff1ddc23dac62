import MeshCRDT
import MeshCodec
import MeshReplication
import Testing

@testable import StateMesh

/// How the node journals its own writes: joined into one group per row, with the key of each write.
@Suite("Journal rows")
struct JournalTests {
    private let domain = "d"
    private let replicaID = ReplicaID(300)

    private func machine() -> ReplicaStateMachine {
        ReplicaStateMachine(
            replicaID: replicaID, domains: [DomainConfiguration(name: domain)], peers: [],
            configuration: ReplicationConfiguration(), seed: 1)
    }

    /// Writes of every kind to a few keys, as a front door or telemetry agent makes them: repeated
    /// keys, interleaved keys, removes after adds.
    private func writes(_ count: Int) -> [(key: String, operation: WriteOperation)] {
        (0..<count).map { index in
            switch index % 7 {
            case 0: ("hits", .increment(UInt64(index)))
            case 1: ("members", .insert("m\(index % 5)"))
            case 2: ("status", .setField("f\(index % 3)", "v\(index)"))
            case 3: ("hits", .decrement(1))
            case 4: ("members", .remove("m\((index + 1) % 5)"))
            case 5: ("name", .assign("n\(index)"))
            default: ("status", .removeField("f\(index % 3)"))
            }
        }
    }

    /// A group row decodes to one record covering every write, with each write's key in order, and
    /// replaying it gives the state that replaying each write's own record gives.
    @Test func groupRowReplaysLikeItsWrites() throws {
        var writer = machine()
        let fresh = writer.persisted
        var batch = JournalBatch()
        var records: [DeltaRecord] = []
        let writes = writes(200)
        for write in writes {
            let outcome = try writer.write(
                write.operation, to: write.key, in: domain, now: Instant(milliseconds: 5_000))
            #expect(batch.accepts(outcome.delivery))
            _ = batch.append(outcome.delivery)
            records.append(try #require(outcome.delivery.record))
        }
        #expect(!batch.isFull)
        let row = batch.take()
        #expect(batch.isEmpty)
        #expect(row.count == writes.count)
        let decoded = try JournalRow.entries(domain: row.domain, bytes: row.bytes, limits: .default)
        #expect(decoded.domain == domain)
        let entry = try #require(decoded.entries.count == 1 ? decoded.entries.first : nil)
        #expect(entry.writeKeys == writes.map(\.key))
        #expect(entry.record.firstSequence == 1 && entry.record.lastSequence == UInt64(writes.count))
        #expect(entry.record.updates.map(\.key).sorted() == ["hits", "members", "name", "status"])

        var byGroup = fresh
        let replayedGroup = byGroup.replay(entry.record, in: domain)
        #expect(replayedGroup)
        var byWrite = fresh
        for record in records {
            let replayed = byWrite.replay(record, in: domain)
            #expect(replayed)
        }
        let grouped = ReplicaStateMachine(restoring: byGroup, seed: 1)
        let separate = ReplicaStateMachine(restoring: byWrite, seed: 1)
        for key in ["hits", "members", "name", "status"] {
            #expect(grouped.value(of: key, in: domain) == separate.value(of: key, in: domain), "\(key)")
            #expect(grouped.value(of: key, in: domain) == writer.value(of: key, in: domain), "\(key)")
        }
        #expect(byGroup.vector(of: domain) == writer.vector(of: domain))
    }

    /// Repeated writes to one key journal one joined update: 1,000 increments of a counter or adds of
    /// one member take a small fraction of the bytes of their own records.
    @Test(arguments: [WriteOperation.increment(1), .insert("element:__rand_int__")])
    func repeatedWritesJournalOneUpdate(operation: WriteOperation) throws {
        var writer = machine()
        var batch = JournalBatch()
        var separateBytes = 0
        var rowBytes = 0
        for _ in 0..<1_000 {
            let outcome = try writer.write(operation, to: "key", in: domain, now: Instant(milliseconds: 5_000))
            if !batch.accepts(outcome.delivery) || batch.isFull { rowBytes += batch.take().bytes.count }
            _ = batch.append(outcome.delivery)
            separateBytes += try #require(outcome.delivery.record).encodedByteCount + 1
        }
        rowBytes += batch.take().bytes.count
        // 4 rows of 256 writes: a record of one update and a one-byte key position per write.
        #expect(rowBytes * 5 < separateBytes, "\(rowBytes) journaled bytes against \(separateBytes)")
    }

    /// A batch takes only consecutive writes of one domain; a write of another domain, or a gap in
    /// sequences, needs a new row.
    @Test func batchHoldsConsecutiveWritesOfOneDomain() throws {
        var writer = ReplicaStateMachine(
            replicaID: replicaID, domains: [DomainConfiguration(name: "a"), DomainConfiguration(name: "b")], peers: [],
            configuration: ReplicationConfiguration(), seed: 1)
        let now = Instant(milliseconds: 5_000)
        var batch = JournalBatch()
        let first = try writer.write(.increment(1), to: "k", in: "a", now: now)
        _ = batch.append(first.delivery)
        let skipped = try writer.write(.increment(1), to: "k", in: "a", now: now)
        let other = try writer.write(.increment(1), to: "k", in: "b", now: now)
        let third = try writer.write(.increment(1), to: "k", in: "a", now: now)
        #expect(!batch.accepts(other.delivery), "another domain")
        #expect(!batch.accepts(third.delivery), "a gap: sequence 3 after 1")
        #expect(batch.accepts(skipped.delivery))
    }

    /// Rows journaled before groups (several length-prefixed records of single writes) still decode, as
    /// records without write keys, and remote rows decode as one record.
    @Test func olderBatchRowsAndRemoteRowsDecode() throws {
        var writer = machine()
        var bytes = ByteWriter()
        var records: [DeltaRecord] = []
        for index in 0..<3 {
            let outcome = try writer.write(.insert("m\(index)"), to: "s", in: domain, now: Instant(milliseconds: 5_000))
            let record = try #require(outcome.delivery.record)
            records.append(record)
            bytes.writeLengthPrefixed(record.encoded())
        }
        let old = try JournalRow.entries(domain: JournalRow.batchDomain(domain), bytes: bytes.bytes, limits: .default)
        #expect(old.domain == domain)
        #expect(old.entries.map(\.record) == records)
        #expect(old.entries.allSatisfy { $0.writeKeys == nil })
        let remote = try JournalRow.entries(domain: domain, bytes: records[0].encoded(), limits: .default)
        #expect(remote.domain == domain && remote.entries.map(\.record) == [records[0]])
    }

    /// A damaged group row is a typed error, not a crash: a key position beyond the group's keys, a
    /// missing position, and bytes after the last one.
    @Test func damagedGroupRowsAreRefused() throws {
        var writer = machine()
        var batch = JournalBatch()
        for key in ["a", "b", "a"] {
            _ = batch.append(
                try writer.write(.increment(1), to: key, in: domain, now: Instant(milliseconds: 5_000)).delivery)
        }
        let row = batch.take()
        #expect(row.bytes.suffix(3) == [0, 1, 0])
        func decode(_ bytes: [UInt8]) throws(CodecError) {
            _ = try JournalRow.entries(domain: row.domain, bytes: bytes, limits: .default)
        }
        try decode(row.bytes)
        var beyond = row.bytes
        beyond[beyond.count - 1] = 2
        #expect(throws: CodecError.self) { try decode(beyond) }
        #expect(throws: CodecError.self) { try decode(Array(row.bytes.dropLast())) }
        #expect(throws: CodecError.self) { try decode(row.bytes + [0]) }
        #expect(throws: CodecError.self) { try decode([JournalRow.groupMarker]) }
    }
}
