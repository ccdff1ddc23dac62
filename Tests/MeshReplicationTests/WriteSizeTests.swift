import MeshCRDT
import MeshCodec
import Testing

@testable import MeshReplication

/// A write's reported delta size is exactly its key and payload encoded alone, for every kind of
/// write and for replica IDs and sequences of every varint width.
@Test(arguments: [ReplicaID(1), ReplicaID(300), ReplicaID(UInt64.max >> 1)])
func deltaByteCountIsKeyAndPayload(replicaID: ReplicaID) throws {
    var machine = ReplicaStateMachine(
        replicaID: replicaID, domains: [DomainConfiguration(name: "d")], peers: [], configuration: ReplicationConfiguration(),
        seed: 1)
    let operations: [(String, WriteOperation)] = [
        ("c", .increment(5)), ("c", .decrement(70_000)), ("s", .insert("a")), ("s", .remove("a")),
        ("m", .setField("f", String(repeating: "v", count: 200))), ("m", .removeField("f")), ("r", .assign("x")),
    ]
    for round in 0..<40 {
        for (key, operation) in operations {
            let outcome = try machine.write(operation, to: "\(key)\(round)", in: "d", now: Instant(milliseconds: 1_000))
            let delivered = outcome.actions.compactMap { action -> DeltaRecord? in
                if case .deliver(let delivery) = action { return delivery.record } else { return nil }
            }
            let record = try #require(delivered.first)
            var writer = ByteWriter()
            writer.writeString(record.updates[0].key)
            PayloadCodec.encode(record.updates[0].value, to: &writer)
            #expect(outcome.deltaByteCount == writer.bytes.count)
            #expect(outcome.recordByteCount == record.encodedByteCount)
        }
    }
}

/// A local write's delivery carries exactly the write of the record it stands for (what the node
/// journals into its own group), whether the write joined the open delta-group or opened one (ticks
/// close groups), with and without an acknowledgement requested; and that record round-trips.
@Test(arguments: [ReplicaID(1), ReplicaID(300), ReplicaID(UInt64.max >> 1)])
func localDeliveryCarriesItsWrite(replicaID: ReplicaID) throws {
    var machine = ReplicaStateMachine(
        replicaID: replicaID, domains: [DomainConfiguration(name: "d")], peers: [PeerID(replicaID.rawValue &+ 1)],
        configuration: ReplicationConfiguration(), seed: 1)
    let operations: [(String, WriteOperation)] = [
        ("c", .increment(5)), ("c", .decrement(70_000)), ("s", .insert("a")), ("s", .remove("a")),
        ("m", .setField("f", String(repeating: "v", count: 200))), ("m", .removeField("f")), ("r", .assign("x")),
        ("long", .assign(String(repeating: "é", count: 20_000))),
    ]
    var now = Instant(milliseconds: 1_000)
    var ticks = 0
    for round in 0..<30 {
        for (position, (key, operation)) in operations.enumerated() {
            let outcome = try machine.write(
                operation, to: "\(key)\(round % 3)", in: "d", requestsAcknowledgement: position % 2 == 0, now: now)
            let delivery = try #require(
                outcome.actions.lazy.compactMap { action -> Delivery? in
                    if case .deliver(let delivery) = action { delivery } else { nil }
                }.first)
            let record = try #require(delivery.record)
            #expect(delivery.hasRecord)
            #expect(delivery.keys == ["\(key)\(round % 3)"])
            let write = try #require(delivery.localWrite)
            #expect(record.updates == [write.update])
            #expect(record.requestsAcknowledgement == write.requestsAcknowledgement)
            #expect(record.requestsAcknowledgement == (position % 2 == 0))
            #expect(record.firstSequence == delivery.firstSequence && record.lastSequence == delivery.firstSequence)
            #expect(try DeltaRecord.decoded(record.encoded(), limits: .default) == record)
            #expect(outcome.recordByteCount == record.encodedByteCount)
        }
        // Ticks close the open group now and then: later writes open the next one.
        now = now.advanced(by: 7)
        if round % 4 == 3 {
            _ = machine.tick(now: now)
            ticks += 1
        }
    }
    #expect(ticks > 0)
}
