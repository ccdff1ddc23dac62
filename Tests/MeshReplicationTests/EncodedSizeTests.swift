import MeshCRDT
import MeshCodec
import Testing

@testable import MeshReplication

@Suite("encoded sizes")
struct EncodedSizeTests {
    @Test("encodedByteCount, computed without encoding, equals the encoding's size at every varint width")
    func computedSizesMatchEncodings() {
        let widths: [UInt64] = [0, 1, 127, 128, 16_383, 16_384, 1 << 35, UInt64.max]
        let replicas = widths.filter { $0 > 0 }.map { ReplicaID($0) }
        let vector = VersionVector(replicas.map { ($0, UInt64.max - $0.rawValue) })
        let wideVector = VersionVector((1...1_000).map { (ReplicaID(UInt64($0) * 131), UInt64($0) * 977) })
        let longDomain = String(repeating: "é", count: 100)
        var messages: [ReplicationMessage] = [.prune]
        for width in widths {
            let positive = max(width, 1)
            messages += [
                .deltas(domain: longDomain, link: LinkHeader(epoch: width, sequence: width, dependencies: vector.entries), records: []),
                .deltas(domain: "d", link: nil, records: []),
                .announce(domain: "d", ranges: [SequenceRange(origin: ReplicaID(positive), first: positive, last: UInt64.max)]),
                .graft(domain: longDomain, vector: vector, minimumEpoch: width, joinsTree: width % 2 == 0),
                .digest(isReply: false, vectors: [DomainVector(domain: "d", vector: wideVector), DomainVector(domain: longDomain, vector: vector)]),
                .acknowledge(domain: longDomain, sequence: width),
                .beacon(root: ReplicaID(positive), round: width),
            ]
        }
        for message in messages {
            #expect(message.encodedByteCount == message.encoded().count, "\(message.kind)")
        }
    }

    @Test("a snapshot chunk's size follows its objects: built, decoded, and after its objects change")
    func snapshotChunkSize() throws {
        var machine = replica(a)
        for key in 0..<40 { _ = try machine.write(.insert("element \(key)"), to: "key \(key)", in: "d", now: t0) }
        let objects = machine.objects(in: "d")!.sorted { $0.key < $1.key }.map { KeyedDelta(key: $0.key, value: $0.value) }
        var chunk = SnapshotChunk(
            domain: "d", identifier: 300, index: 1, total: 200, vector: machine.vector(of: "d")!, objects: objects)
        var message = ReplicationMessage.snapshot(chunk)
        #expect(message.encodedByteCount == message.encoded().count)
        let decoded = try ReplicationMessage.decode(message.encoded())
        #expect(decoded.encodedByteCount == message.encoded().count)
        chunk.objects.removeLast(25)
        message = .snapshot(chunk)
        #expect(message.encodedByteCount == message.encoded().count)
    }

    @Test("an object's computed encoded size equals its encoding, for every type and history")
    func objectSizes() throws {
        let replicas = [ReplicaID(1), ReplicaID(200), ReplicaID(1 << 40)]
        var machines = replicas.map { replica($0, peers: replicas) }
        let operations: [(String, WriteOperation)] = [
            ("c", .increment(300)), ("c", .decrement(1 << 20)), ("c", .clear(.counter)), ("c", .increment(1)),
            ("s", .insert("x")), ("s", .insert(String(repeating: "y", count: 200))), ("s", .remove("x")),
            ("s", .clear(.set)), ("s", .insert("z")),
            ("m", .setField("f", "v")), ("m", .setField("g", String(repeating: "w", count: 300))), ("m", .removeField("f")),
            ("r", .assign("r")), ("r", .clear(.register)), ("r2", .assign("kept")),
            ("mv", .assignMultiValue("a")), ("mv", .assignMultiValue("b")), ("mv", .clear(.multiValueRegister)),
            ("f", .enable), ("f", .disable), ("f", .enable), ("f2", .clear(.flag)),
        ]
        var checked = 0
        for (step, (key, operation)) in operations.enumerated() {
            // Writes at different replicas, merged pairwise now and then: concurrent dots, clouds, resets.
            let writer = step % replicas.count
            let outcome = try machines[writer].write(operation, to: key, in: "d", now: at(UInt64(step)))
            let record = outcome.actions.compactMap { action -> DeltaRecord? in
                if case .deliver(let delivery) = action { return delivery.record }
                return nil
            }
            for other in machines.indices where other != writer && (step + other) % 2 == 0 {
                _ = machines[other].receive(.deltas(domain: "d", link: nil, records: record), from: replicas[writer], now: at(UInt64(step)))
            }
            for machine in machines {
                for (objectKey, value) in machine.objects(in: "d") ?? [:] {
                    var encoding = ByteWriter()
                    PayloadCodec.encode(value, to: &encoding)
                    #expect(PayloadCodec.encodedByteCount(of: value) == encoding.count, "\(objectKey) after step \(step)")
                    checked += 1
                }
            }
        }
        #expect(checked > 100)
    }

    @Test("every message kind has its own traffic name")
    func kindNames() {
        #expect(Set(ReplicationMessage.kindNames).count == ReplicationMessage.kindNames.count)
        #expect(ReplicationMessage.prune.kind == "prune")
        #expect(ReplicationMessage.deltas(domain: "d", link: nil, records: []).kind == "repair")
    }
}
