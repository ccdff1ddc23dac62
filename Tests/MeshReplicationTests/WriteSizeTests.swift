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
