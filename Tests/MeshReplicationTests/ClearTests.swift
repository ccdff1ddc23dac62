import MeshCRDT
import MeshCodec
import Testing

@testable import MeshReplication

/// `WriteOperation.clear` (Redis `DEL`) through the replica state machine and the payload codec.
@Suite("clear through replication")
struct ClearReplicationTests {
    /// Pushes everything `from` has not pushed yet to `to` as a repair batch.
    static func exchange(_ from: inout ReplicaStateMachine, _ to: inout ReplicaStateMachine, now: Instant) {
        let records = pushedRecords(from.tick(now: now))
        if !records.isEmpty { _ = to.receive(repair(records), from: from.replicaID, now: now) }
    }

    static func roundTrip(_ value: ObjectValue) throws -> ObjectValue {
        var writer = ByteWriter()
        PayloadCodec.encode(value, to: &writer)
        var reader = try ByteReader(writer.bytes)
        let decoded = try PayloadCodec.decode(from: &reader)
        try reader.expectEnd()
        return decoded
    }

    @Test(
        "clearing a key of each type leaves an empty object, and its delta round-trips through the payload codec",
        arguments: ObjectType.allCases)
    func clearEachType(type: ObjectType) throws {
        var machine = replica(a)
        let fill: WriteOperation =
            switch type {
            case .counter: .increment(3)
            case .set: .insert("x")
            case .map: .setField("f", "v")
            case .register: .assign("v")
            case .multiValueRegister: .assignMultiValue("v")
            case .flag: .enable
            }
        _ = try machine.write(fill, to: "k", in: "d", now: t0)
        #expect(machine.value(of: "k", in: "d")?.isEmpty == false)
        _ = try machine.write(.clear(type), to: "k", in: "d", now: at(1))
        let value = try #require(machine.value(of: "k", in: "d"))
        #expect(value.isEmpty)
        #expect(value.type == type)
        #expect(try Self.roundTrip(value) == value)
        let records = pushedRecords(machine.tick(now: at(1)))
        let update = try #require(records.last?.updates.first)
        #expect(try Self.roundTrip(update.value) == update.value)
        var other = replica(b)
        _ = other.receive(repair(records), from: a, now: at(2))
        #expect(other.value(of: "k", in: "d") == value)
    }

    @Test("a clear of another type than the key holds is refused as a type mismatch")
    func clearChecksType() throws {
        var machine = replica(a)
        _ = try machine.write(.increment(1), to: "k", in: "d", now: t0)
        #expect(throws: ReplicationError.self) { try machine.write(.clear(.set), to: "k", in: "d", now: t0) }
        #expect(WriteOperation.clear(.map).objectType == .map)
    }

    @Test("INCR concurrent with DEL: both replicas converge on the increment's amount")
    func incrementConcurrentWithClear() throws {
        var left = replica(a, peers: [b])
        var right = replica(b, peers: [a])
        _ = try left.write(.increment(5), to: "k", in: "d", now: t0)
        Self.exchange(&left, &right, now: t0)
        #expect(counterValue(right, "k") == 5)
        _ = try left.write(.clear(.counter), to: "k", in: "d", now: at(1))
        _ = try right.write(.increment(3), to: "k", in: "d", now: at(1))
        Self.exchange(&left, &right, now: at(2))
        Self.exchange(&right, &left, now: at(2))
        #expect(counterValue(left, "k") == 3)
        #expect(left.value(of: "k", in: "d") == right.value(of: "k", in: "d"))
    }

    @Test("SET concurrent with DEL of a register: the later timestamp wins on both replicas, whichever it is")
    func registerSetVersusDelete() throws {
        for deleteIsLater in [true, false] {
            var left = replica(a, peers: [b])
            var right = replica(b, peers: [a])
            _ = try left.write(.assign("old"), to: "r", in: "d", now: t0)
            Self.exchange(&left, &right, now: t0)
            _ = try left.write(.clear(.register), to: "r", in: "d", now: at(deleteIsLater ? 20 : 10))
            _ = try right.write(.assign("new"), to: "r", in: "d", now: at(deleteIsLater ? 10 : 20))
            Self.exchange(&left, &right, now: at(30))
            Self.exchange(&right, &left, now: at(30))
            let expected: String? = deleteIsLater ? nil : "new"
            #expect(left.value(of: "r", in: "d") == right.value(of: "r", in: "d"))
            guard case .register(let register)? = left.value(of: "r", in: "d") else {
                Issue.record("no register")
                continue
            }
            #expect(register.value == expected)
            #expect(left.value(of: "r", in: "d")?.isEmpty == deleteIsLater)
        }
    }

    @Test("a register deletion's record carries its timestamp, so the receiver's clock observes it")
    func deletionTimestampIsObserved() throws {
        var writer = replica(a)
        let outcome = try writer.write(.clear(.register), to: "r", in: "d", now: at(5_000))
        let records = pushedRecords(writer.tick(now: at(5_000)))
        #expect(records.first?.timestamp == outcome.timestamp)
        let bytes = ReplicationMessage.deltas(domain: "d", link: nil, records: records).encoded()
        guard case .deltas(_, _, let decoded) = try ReplicationMessage.decode(bytes) else {
            Issue.record("not a deltas message")
            return
        }
        #expect(decoded.first?.timestamp == outcome.timestamp)
        var reader = replica(b)
        _ = reader.receive(repair(records), from: a, now: t0)
        #expect(reader.latestTimestamp >= outcome.timestamp)
    }

    @Test("a counter never reset encodes exactly as before resets existed; a reset one flags its type byte")
    func counterPayloadBytes() throws {
        var counter = PNCounter()
        counter.increment(by: 5, at: a)
        counter.decrement(by: 2, at: b)
        var plain = ByteWriter()
        PayloadCodec.encode(.counter(counter), to: &plain)
        // type 1, increments {1: 5}, decrements {2: 2}.
        #expect(plain.bytes == [1, 1, 1, 5, 1, 2, 2])
        counter.reset()
        var reset = ByteWriter()
        PayloadCodec.encode(.counter(counter), to: &reset)
        #expect(reset.bytes == [0x81, 1, 1, 5, 1, 2, 2, 1, 1, 5, 1, 2, 2])
        #expect(try Self.roundTrip(.counter(counter)) == .counter(counter))
    }

    @Test("payloads flagging empty baselines, or an unknown register presence, are refused with typed errors")
    func payloadRejections() throws {
        for (bytes, code) in [
            ([0x81, 0, 0, 0, 0], CodecError.Code.notCanonical), ([4, 3], .invalidValue), ([4, 2, 1], .truncated),
        ]
            as [([UInt8], CodecError.Code)]
        {
            var reader = try ByteReader(bytes)
            do {
                let value = try PayloadCodec.decode(from: &reader)
                Issue.record("\(bytes) decoded as \(value)")
            } catch {
                #expect(error.code == code, "\(bytes): \(error)")
            }
        }
    }

    @Test("isEmpty: INCR then DECR to 0 is not empty; a cleared register, an empty set and a disabled flag are")
    func isEmptyCases() throws {
        var machine = replica(a)
        _ = try machine.write(.increment(2), to: "c", in: "d", now: t0)
        _ = try machine.write(.decrement(2), to: "c", in: "d", now: t0)
        #expect(counterValue(machine, "c") == 0)
        #expect(machine.value(of: "c", in: "d")?.isEmpty == false)
        _ = try machine.write(.insert("x"), to: "s", in: "d", now: t0)
        _ = try machine.write(.remove("x"), to: "s", in: "d", now: t0)
        #expect(machine.value(of: "s", in: "d")?.isEmpty == true)
        _ = try machine.write(.enable, to: "f", in: "d", now: t0)
        #expect(machine.value(of: "f", in: "d")?.isEmpty == false)
        _ = try machine.write(.disable, to: "f", in: "d", now: t0)
        #expect(machine.value(of: "f", in: "d")?.isEmpty == true)
        _ = try machine.write(.clear(.register), to: "r", in: "d", now: t0)
        #expect(machine.value(of: "r", in: "d")?.isEmpty == true)
        #expect(ObjectValue.bottom(of: .register).isEmpty && ObjectValue.bottom(of: .counter).isEmpty)
    }
}
