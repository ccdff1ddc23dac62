import MeshCRDT
import MeshCodec
import MeshMembership
import MeshReplication

/// Feeds the input to a membership state machine as messages from peers; it must never
/// crash, its member table must stay within `maximumMembers`, sorted and free of repeats,
/// its local health within bounds, and every message it sends must decode with its own
/// decoder and fit `maximumMessageBytes`.
///
/// Frames: `peer:u8 mode:u8 length:u8 bytes[length]`. Mode bit 0 clear: the bytes are
/// handed over raw. Set: a valid message (chosen by `mode >> 4`) is encoded and the frame's
/// bytes overwrite some of its bytes (position, value pairs), so mutations reach past the
/// decoder into the state machine. Bit 1 ticks afterwards (time advances by `length × 10`
/// ms); bit 2 reports a session with the peer first; bit 3 decommissions the peer.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    func id(_ index: Int) -> MemberID { MemberID(bytes: [UInt8](repeating: UInt8(index), count: 32)) }
    func member(_ index: Int, incarnation: UInt64 = 0, status: MemberStatus = .alive) -> Member {
        Member(
            id: id(index), replicaID: ReplicaID(UInt64(index)),
            address: MemberAddress(host: "10.0.0.\(index)", port: 7946),
            incarnation: incarnation, status: status)
    }
    var configuration = MembershipConfiguration()
    configuration.maximumMembers = 16
    configuration.maximumRelayedProbes = 4
    configuration.maximumMessageBytes = 8_192
    let me = member(1)
    var machine = MembershipStateMachine(
        me: me, seeds: [MemberAddress(host: "10.0.0.2", port: 7946)], configuration: configuration, seed: 7)
    var now = Instant(milliseconds: 1_000_000)
    check(machine.start(now: now), machine, configuration)

    let updates = [
        MemberUpdate(member: member(2)),
        MemberUpdate(member: member(3, incarnation: 2, status: .suspect), accuser: id(2)),
        MemberUpdate(member: member(4, incarnation: 1, status: .dead)),
        MemberUpdate(member: member(1, status: .suspect)),
        MemberUpdate(member: member(5, status: .left)),
    ]
    let templates: [[UInt8]] = [
        MembershipMessage.ping(sequence: 1, target: me.id, updates: updates).encoded(),
        MembershipMessage.ack(sequence: 1, updates: updates).encoded(),
        MembershipMessage.pingRequest(sequence: 3, target: id(3), address: member(3).address, updates: updates)
            .encoded(),
        MembershipMessage.nack(sequence: 1).encoded(),
        MembershipMessage.gossip(updates: updates).encoded(),
        MembershipMessage.sync(requestsReply: true, members: (2...6).map { member($0, incarnation: 1) }).encoded(),
        MembershipMessage.gossip(updates: [MemberUpdate(member: member(1, incarnation: 5, status: .dead))]).encoded(),
    ]

    var position = 0
    while position + 3 <= bytes.count {
        let peer = id(2 + Int(bytes[position] % 6))  // 2…7: known and unknown peers
        let mode = bytes[position + 1]
        let length = Int(bytes[position + 2])
        position += 3
        let body = Array(bytes[position..<min(bytes.count, position + length)])
        position += length
        var message: [UInt8]
        if mode & 1 == 0 {
            message = body
        } else {
            message = templates[Int(mode >> 4) % templates.count]
            var index = 0
            while index + 1 < body.count, !message.isEmpty {
                message[Int(body[index]) % message.count] = body[index + 1]
                index += 2
            }
        }
        if mode & 4 != 0 { check(machine.sessionEstablished(with: peer, now: now), machine, configuration) }
        if mode & 8 != 0 { check(machine.decommission(peer, now: now), machine, configuration) }
        check(machine.receive(message, from: peer, now: now), machine, configuration)
        if mode & 2 != 0 {
            now = now.advanced(by: UInt64(length) * 10)
            check(machine.tick(now: now), machine, configuration)
        }
    }
    return 0
}

/// Traps (a finding) when the machine broke one of its promises.
func check(_ actions: [MembershipAction], _ machine: MembershipStateMachine, _ configuration: MembershipConfiguration) {
    let members = machine.members
    guard members.count <= configuration.maximumMembers else {
        fatalError("\(members.count) members held, bound \(configuration.maximumMembers)")
    }
    for (earlier, later) in zip(members, members.dropFirst()) where !(earlier.id < later.id) {
        fatalError("members not sorted or repeated: \(earlier.id) then \(later.id)")
    }
    guard (0...configuration.maximumLocalHealth).contains(machine.localHealth) else {
        fatalError("local health \(machine.localHealth) out of bounds")
    }
    for action in actions {
        guard case .send(let bytes, _) = action else { continue }
        guard bytes.count <= configuration.maximumMessageBytes else {
            fatalError("sent \(bytes.count) bytes, bound \(configuration.maximumMessageBytes)")
        }
        do {
            _ = try MembershipMessage.decode(
                bytes, maximumBytes: configuration.maximumMessageBytes, maximumRecords: configuration.maximumMembers)
        } catch {
            fatalError("sent a message its own decoder refuses: \(error)")
        }
    }
}
