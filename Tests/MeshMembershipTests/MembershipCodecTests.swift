import MeshCRDT
import MeshCodec
import MeshMembership
import MeshReplication
import Testing

/// A random member record (seeded), covering every status, long hosts and large varints.
func randomMember(_ random: inout SplitMix64, id: Int? = nil) -> Member {
    let idBytes = (0..<32).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    let hostLength = random.below(4) == 0 ? 255 : random.below(40)
    let host = String((0..<hostLength).map { _ in Character(Unicode.Scalar(UInt8(97 + random.below(26)))) })
    return Member(
        id: id.map(testMemberID) ?? MemberID(bytes: idBytes),
        replicaID: ReplicaID(random.below(2) == 0 ? random.next() : UInt64(random.below(100))),
        address: MemberAddress(host: host, port: random.below(65_536)),
        incarnation: random.below(2) == 0 ? random.next() : UInt64(random.below(5)),
        status: MemberStatus(rawValue: UInt8(random.below(4))) ?? .alive)
}

func randomUpdates(_ random: inout SplitMix64) -> [MemberUpdate] {
    (0..<random.below(6)).map { _ in
        let member = randomMember(&random)
        return MemberUpdate(member: member, accuser: member.status == .suspect ? randomMember(&random).id : nil)
    }
}

/// One message of every kind, with random contents.
func sampleMessages(seed: UInt64) -> [MembershipMessage] {
    var random = SplitMix64(seed: seed)
    let syncMembers = (0..<random.below(8)).map { _ in randomMember(&random) }
    var unique: [MemberID: Member] = [:]
    for member in syncMembers { unique[member.id] = member }
    return [
        .ping(sequence: random.next(), target: randomMember(&random).id, updates: randomUpdates(&random)),
        .ack(sequence: UInt64(random.below(300)), updates: randomUpdates(&random)),
        .pingRequest(
            sequence: random.next(), target: randomMember(&random).id, address: randomMember(&random).address,
            updates: randomUpdates(&random)),
        .nack(sequence: random.next()),
        .gossip(updates: randomUpdates(&random)),
        .sync(requestsReply: random.below(2) == 0, members: unique.values.sorted { $0.id < $1.id }),
    ]
}

@Suite("Membership message codec")
struct MembershipCodecTests {
    @Test("every message kind decodes to itself after encoding", arguments: 0..<200)
    func roundTrip(seed: Int) throws {
        for message in sampleMessages(seed: UInt64(seed)) {
            let bytes = message.encoded()
            #expect(bytes.first == MembershipMessage.version)
            #expect(try MembershipMessage.decode(bytes) == message)
        }
    }

    @Test("every proper prefix of a message is refused with a typed error, never a trap")
    func truncated() {
        for seed in 0..<20 {
            for message in sampleMessages(seed: UInt64(seed)) {
                let bytes = message.encoded()
                for length in 0..<bytes.count {
                    #expect(throws: CodecError.self) { try MembershipMessage.decode(Array(bytes.prefix(length))) }
                }
            }
        }
    }

    @Test("an unknown version, kind, status, flag or port is refused with its code and offset")
    func badFields() throws {
        let member = testMember(3)
        let gossip = MembershipMessage.gossip(updates: [MemberUpdate(member: member)]).encoded()

        var badVersion = gossip
        badVersion[0] = 2
        #expect(decodeError(badVersion)?.code == .unsupportedVersion)

        var badKind = gossip
        badKind[1] = 9
        #expect(decodeError(badKind) == CodecError(.wrongKind, at: 1, "unknown membership message kind 9"))

        var badStatus = gossip
        badStatus[badStatus.count - 1] = 8  // the status byte ends the record
        #expect(decodeError(badStatus)?.code == .invalidValue)
        var accuserOnAlive = gossip
        accuserOnAlive[accuserOnAlive.count - 1] = 4  // "accuser follows" on an alive record
        #expect(decodeError(accuserOnAlive + member.id.bytes)?.code == .invalidValue)

        let sync = MembershipMessage.sync(requestsReply: true, members: [member]).encoded()
        var badFlags = sync
        badFlags[2] = 2
        #expect(decodeError(badFlags) == CodecError(.invalidValue, at: 2, "unknown sync flags 2"))

        var highPort = MembershipMessage.gossip(
            updates: [
                MemberUpdate(
                    member: Member(
                        id: member.id, replicaID: member.replicaID,
                        address: MemberAddress(host: "h", port: 65_535)))
            ]).encoded()
        // ... host "h" (length 1, 'h'), then the port varint 0xff 0xff 0x03; make it 0x04 (> 65535).
        let portEnd = 3 + 32 + 1 + 2 + 2
        #expect(highPort[portEnd] == 0x03)
        highPort[portEnd] = 0x04
        #expect(decodeError(highPort)?.code == .invalidValue)

        #expect(decodeError(gossip + [0])?.code == .trailingBytes)
    }

    @Test("counts above the bound or above what the bytes left can hold are refused before allocating")
    func oversizeCounts() {
        var writer = ByteWriter()
        writer.writeByte(MembershipMessage.version)
        writer.writeByte(5)  // gossip
        writer.writeVarint(2_000)  // more than maximumRecords (1,024)
        #expect(decodeError(writer.bytes)?.code == .limitExceeded)

        var small = ByteWriter()
        small.writeByte(MembershipMessage.version)
        small.writeByte(6)  // sync
        small.writeByte(0)
        small.writeVarint(1_000)  // within the bound, but 1,000 records need far more bytes
        small.writeBytes([UInt8](repeating: 0, count: 100))
        #expect(
            decodeError(small.bytes)
                == CodecError(
                    .limitExceeded, at: 3, "sync members 1000 needs at least 37000 bytes but only 100 are left"))

        let large = MembershipMessage.gossip(updates: (0..<10).map { MemberUpdate(member: testMember($0)) }).encoded()
        #expect((try? MembershipMessage.decode(large, maximumBytes: large.count)) != nil)
        #expect(throws: CodecError.self) { try MembershipMessage.decode(large, maximumBytes: large.count - 1) }
        #expect(throws: CodecError.self) { try MembershipMessage.decode(large, maximumRecords: 9) }
    }

    @Test("a sync must list its members strictly increasing by id (one encoding per state)")
    func syncOrder() {
        let unsorted = MembershipMessage.sync(requestsReply: false, members: [testMember(2), testMember(1)]).encoded()
        #expect(decodeError(unsorted)?.code == .notCanonical)
        let repeated = MembershipMessage.sync(requestsReply: false, members: [testMember(1), testMember(1)]).encoded()
        #expect(decodeError(repeated)?.code == .notCanonical)
    }

    @Test("a state machine ignores and counts malformed bytes and answers nothing")
    func malformedInputIsCounted() {
        var machine = MembershipStateMachine(me: testMember(0), seeds: [], configuration: testConfiguration(), seed: 1)
        let now = Instant(milliseconds: 1_000)
        _ = machine.start(now: now)
        let inputs: [[UInt8]] = [
            [], [1], [7, 1], [1, 42], [1, 5, 0x80], [1, 6, 0, 1] + [UInt8](repeating: 9, count: 40),
        ]
        for (index, bytes) in inputs.enumerated() {
            #expect(machine.receive(bytes, from: testMemberID(1), now: now).isEmpty)
            #expect(machine.counters.malformedMessages == index + 1)
        }
        #expect(machine.lastError?.code == .malformedMessage)
        #expect(machine.members == [testMember(0)])
    }
}

func decodeError(_ bytes: [UInt8]) -> CodecError? {
    do {
        _ = try MembershipMessage.decode(bytes)
        return nil
    } catch {
        return error
    }
}
