import MeshCRDT
import MeshCodec
import Testing

@testable import MeshReplication

/// Drives two replicas that exchange every message at once, recording what `a` delivers.
private struct Pair {
    var left = replica(a, peers: [b])
    var right = replica(b, peers: [a])
    /// What `a` delivered, in order, as a durable log would hold it.
    var journal: [(domain: String, record: DeltaRecord)] = []
    var now = at(0)

    mutating func absorb(_ actions: [ReplicationAction], from side: ReplicaID) {
        var queue: [(ReplicationAction, ReplicaID)] = actions.map { ($0, side) }
        while !queue.isEmpty {
            let (action, origin) = queue.removeFirst()
            switch action {
            case .send(let message, let peer):
                let bytes = message.encoded()
                if peer == a {
                    queue += left.receive(bytes, from: origin, now: now).map { ($0, a) }
                } else {
                    queue += right.receive(bytes, from: origin, now: now).map { ($0, b) }
                }
            case .deliver(let delivery) where origin == a:
                if let record = delivery.record { journal.append((delivery.domain, record)) }
            default: break
            }
        }
    }

    mutating func write(_ operation: WriteOperation, _ key: String, on side: ReplicaID) throws {
        now = now.advanced(by: 7)
        if side == a {
            absorb(try left.write(operation, to: key, in: "d", now: now).actions, from: a)
        } else {
            absorb(try right.write(operation, to: key, in: "d", now: now).actions, from: b)
        }
    }

    mutating func tick() {
        now = now.advanced(by: 100)
        absorb(left.tick(now: now), from: a)
        absorb(right.tick(now: now), from: b)
    }
}

@Suite("Persistence: checkpoint + replay")
struct PersistenceTests {
    /// A checkpoint taken mid-run plus the deliveries journaled after it rebuild exactly the live state.
    @Test func checkpointPlusReplayRebuildsTheLiveReplica() throws {
        var pair = Pair()
        var generator = SplitMix64(seed: 11)
        var checkpoint: [UInt8] = []
        var journaledBefore = 0
        for step in 0..<400 {
            let side = generator.below(2) == 0 ? a : b
            let key = "k\(generator.below(5))"
            switch generator.below(5) {
            case 0: try pair.write(.increment(UInt64(generator.below(9) + 1)), "c-\(key)", on: side)
            case 1: try pair.write(.insert("e\(generator.below(20))"), "s-\(key)", on: side)
            case 2: try pair.write(.remove("e\(generator.below(20))"), "s-\(key)", on: side)
            case 3: try pair.write(.setField("f\(generator.below(4))", "v\(step)"), "m-\(key)", on: side)
            default:
                // Clears (Redis DEL): counter resets and observed removals of every element.
                let targets: [(prefix: String, type: ObjectType)] = [("c", .counter), ("s", .set), ("m", .map)]
                let (prefix, type) = targets[generator.below(3)]
                try pair.write(.clear(type), "\(prefix)-\(key)", on: side)
            }
            if step % 13 == 0 { pair.tick() }
            if step == 150 {
                checkpoint = pair.left.persisted.encoded()
                journaledBefore = pair.journal.count
            }
        }
        pair.tick()
        pair.tick()
        #expect(pair.journal.count > journaledBefore + 100)

        var restored = try PersistedReplica(decoding: checkpoint, limits: .default)
        var replayedNew = 0
        for entry in pair.journal[journaledBefore...] where restored.replay(entry.record, in: entry.domain) {
            replayedNew += 1
        }
        #expect(replayedNew > 0)
        #expect(restored.vector(of: "d") == pair.left.vector(of: "d"))
        let machine = ReplicaStateMachine(restoring: restored, peers: [b], seed: 1)
        #expect(machine.objects(in: "d") == pair.left.objects(in: "d"))
        #expect(machine.invariantViolation() == nil)
    }

    /// Replaying the whole journal twice over a checkpoint changes nothing the second time (joins are idempotent).
    @Test func replayIsIdempotent() throws {
        var pair = Pair()
        for index in 0..<50 {
            try pair.write(.insert("x\(index)"), "s", on: index % 2 == 0 ? a : b)
        }
        pair.tick()
        var restored = PersistedReplica(replicaID: a, domains: [DomainConfiguration(name: "d")])
        for entry in pair.journal { restored.replay(entry.record, in: entry.domain) }
        let once = restored.encoded()
        for entry in pair.journal {
            let isNew = restored.replay(entry.record, in: entry.domain)
            #expect(!isNew)
        }
        #expect(restored.encoded() == once)
        #expect(restored.vector(of: "d") == pair.left.vector(of: "d"))
    }

    /// The checkpoint encoding round-trips and rejects a wrong version, truncation and trailing bytes.
    @Test func checkpointEncodingIsStrict() throws {
        var pair = Pair()
        for index in 0..<20 { try pair.write(.assign("v\(index)"), "r", on: index % 2 == 0 ? a : b) }
        try pair.write(.clear(.register), "deleted", on: b)
        try pair.write(.increment(3), "c", on: a)
        pair.tick()  // b sees the increment, so its reset covers it
        try pair.write(.clear(.counter), "c", on: b)
        pair.tick()
        let bytes = pair.left.persisted.encoded()
        let decoded = try PersistedReplica(decoding: bytes, limits: .default)
        #expect(decoded.encoded() == bytes)
        let restored = ReplicaStateMachine(restoring: decoded, peers: [b], seed: 1)
        #expect(restored.objects(in: "d") == pair.left.objects(in: "d"))
        #expect(pair.left.value(of: "deleted", in: "d")?.isEmpty == true)
        #expect(pair.left.value(of: "c", in: "d")?.isEmpty == true)
        var wrongVersion = bytes
        wrongVersion[0] = 9
        #expect(throws: CodecError.self) { try PersistedReplica(decoding: wrongVersion, limits: .default) }
        #expect(throws: CodecError.self) { try PersistedReplica(decoding: Array(bytes.dropLast()), limits: .default) }
        #expect(throws: CodecError.self) { try PersistedReplica(decoding: bytes + [0], limits: .default) }
    }

    /// A restored replica continues link epochs above the persisted one.
    @Test func linkEpochSurvivesRestore() {
        var persisted = PersistedReplica(replicaID: a, domains: [DomainConfiguration(name: "d")])
        persisted.raiseLinkEpoch(to: 41)
        let decoded = try? PersistedReplica(decoding: persisted.encoded(), limits: .default)
        #expect(decoded?.linkEpoch == 41)
        let machine = ReplicaStateMachine(restoring: decoded!, peers: [b], seed: 3)
        #expect(machine.linkEpoch == 41)
    }

    /// A local write's delivery carries the write's own record, so a shell can journal it.
    @Test func localDeliveryCarriesItsRecord() throws {
        var single = replica(a, peers: [])
        let outcome = try single.write(.increment(3), to: "c", in: "d", now: at(0))
        let delivered = deliveries(outcome.actions)
        #expect(delivered.count == 1)
        #expect(delivered.first?.record?.firstSequence == 1)
        #expect(delivered.first?.record?.origin == a)
        let bytes = try #require(delivered.first?.record).encoded()
        #expect(try DeltaRecord.decoded(bytes) == delivered.first?.record)
    }
}
