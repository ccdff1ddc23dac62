import MeshCRDT
import MeshCodec

/// One claim about one member, as gossip carries it: the member record (status and
/// incarnation included) and, for a suspicion, who suspects it.
public struct MemberUpdate: Hashable, Sendable, CustomStringConvertible {
    /// The member and the status claimed for it at its incarnation.
    public var member: Member
    /// For `suspect` only: the member that suspects it (Lifeguard counts independent
    /// suspicions to shorten the timeout). `nil` for the other statuses.
    public var accuser: MemberID?

    /// Creates an update.
    public init(member: Member, accuser: MemberID? = nil) {
        self.member = member
        self.accuser = member.status == .suspect ? accuser : nil
    }

    public var description: String {
        accuser.map { "\(member) (suspected by \($0))" } ?? "\(member)"
    }
}

/// A membership protocol message: the SWIM probes and gossip, Lifeguard's nack, and a
/// full-state sync (push-pull) for joins, rejoins and lost rumours.
///
/// ### Wire format (version 1)
/// ```
/// message   = version:u8(1) kind:u8 body
/// ping      (1) = sequence:varint target:id updates
/// ack       (2) = sequence:varint updates
/// pingRequest (3) = sequence:varint target:id address updates
/// nack      (4) = sequence:varint
/// gossip    (5) = updates
/// sync      (6) = flags:u8(bit 0 requests a reply) count:varint record*   (ids strictly increasing)
/// updates   = count:varint update*
/// update    = record, where bit 2 of the status byte says an accuser id follows (suspect only)
/// record    = id:32 bytes replica:varint address incarnation:varint status:u8 [accuser:id]
/// address   = host:(varint length, UTF-8, at most 255 bytes) port:varint(<= 65535)
/// id        = 32 bytes
/// ```
/// Decoding is strict: unknown versions, kinds, flags and statuses, non-minimal varints,
/// out-of-order sync records and trailing bytes are refused with a `CodecError`; every count
/// is checked against the configured bound and the bytes left before anything is allocated.
public enum MembershipMessage: Hashable, Sendable {
    /// Are you alive? `target` is the member the sender means (a restarted node with a new
    /// identity at the same address must not answer for the old one).
    case ping(sequence: UInt64, target: MemberID, updates: [MemberUpdate])
    /// I am alive: the answer to a ping (or a relayed answer to a ping request).
    case ack(sequence: UInt64, updates: [MemberUpdate])
    /// Please ping `target` at `address` for me and relay its ack (SWIM's indirect probe).
    case pingRequest(sequence: UInt64, target: MemberID, address: MemberAddress, updates: [MemberUpdate])
    /// I asked `target` for you and heard nothing in time (Lifeguard: proves the relay
    /// path works, so a missing ack is the target's fault, not the requester's).
    case nack(sequence: UInt64)
    /// Updates with no probe attached (gossip rounds, hellos, goodbyes).
    case gossip(updates: [MemberUpdate])
    /// (Part of) the sender's full member table, sorted by id; the first part of an
    /// exchange asks for the receiver's table in return.
    case sync(requestsReply: Bool, members: [Member])

    /// The version byte this codec writes and reads.
    public static let version: UInt8 = 1
    /// The largest encoding of one update (id, replica, 255-byte host, port, incarnation,
    /// status, accuser).
    public static let maximumRecordBytes = 32 + 10 + 2 + 255 + 3 + 10 + 1 + 32
    /// The smallest encoding of one record (empty host, one-byte varints).
    static let minimumRecordBytes = 32 + 1 + 1 + 1 + 1 + 1

    enum Kind: UInt8 {
        case ping = 1
        case ack = 2
        case pingRequest = 3
        case nack = 4
        case gossip = 5
        case sync = 6
    }

    // MARK: Encoding

    /// The message's bytes.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter(reservingCapacity: 64)
        writer.writeByte(Self.version)
        switch self {
        case .ping(let sequence, let target, let updates):
            writer.writeByte(Kind.ping.rawValue)
            writer.writeVarint(sequence)
            writer.writeBytes(target.bytes)
            Self.write(updates, to: &writer)
        case .ack(let sequence, let updates):
            writer.writeByte(Kind.ack.rawValue)
            writer.writeVarint(sequence)
            Self.write(updates, to: &writer)
        case .pingRequest(let sequence, let target, let address, let updates):
            writer.writeByte(Kind.pingRequest.rawValue)
            writer.writeVarint(sequence)
            writer.writeBytes(target.bytes)
            Self.write(address, to: &writer)
            Self.write(updates, to: &writer)
        case .nack(let sequence):
            writer.writeByte(Kind.nack.rawValue)
            writer.writeVarint(sequence)
        case .gossip(let updates):
            writer.writeByte(Kind.gossip.rawValue)
            Self.write(updates, to: &writer)
        case .sync(let requestsReply, let members):
            writer.writeByte(Kind.sync.rawValue)
            writer.writeByte(requestsReply ? 1 : 0)
            writer.writeCount(members.count)
            for member in members { Self.write(MemberUpdate(member: member), to: &writer) }
        }
        return writer.bytes
    }

    /// The encoded size of one update.
    static func encodedByteCount(of update: MemberUpdate) -> Int {
        var writer = ByteWriter(reservingCapacity: 64)
        write(update, to: &writer)
        return writer.count
    }

    static func write(_ updates: [MemberUpdate], to writer: inout ByteWriter) {
        writer.writeCount(updates.count)
        for update in updates { write(update, to: &writer) }
    }

    static func write(_ address: MemberAddress, to writer: inout ByteWriter) {
        writer.writeString(address.host)
        writer.writeVarint(UInt64(clamping: address.port))
    }

    static func write(_ update: MemberUpdate, to writer: inout ByteWriter) {
        let member = update.member
        writer.writeBytes(member.id.bytes)
        writer.writeVarint(member.replicaID.rawValue)
        write(member.address, to: &writer)
        writer.writeVarint(member.incarnation)
        let accuser = member.status == .suspect ? update.accuser : nil
        writer.writeByte(member.status.rawValue | (accuser == nil ? 0 : 4))
        if let accuser { writer.writeBytes(accuser.bytes) }
    }

    // MARK: Decoding

    /// Decodes one message from untrusted bytes.
    ///
    /// - Parameters:
    ///   - bytes: the message.
    ///   - maximumBytes: inputs longer than this are refused (`.limitExceeded`).
    ///   - maximumRecords: most updates or sync records in one message.
    /// - Throws: `CodecError` saying what was wrong and at which byte; never traps.
    public static func decode(
        _ bytes: [UInt8], maximumBytes: Int = MembershipConfiguration.default.maximumMessageBytes,
        maximumRecords: Int = MembershipConfiguration.default.maximumMembers
    ) throws(CodecError) -> MembershipMessage {
        let limits = CodecLimits(
            maximumInputBytes: max(maximumBytes, 0), maximumElements: max(maximumRecords, 0), maximumReplicas: 1,
            maximumElementBytes: MemberAddress.maximumHostBytes)
        var reader = try ByteReader(bytes, limits: limits)
        let version = try reader.readByte("version")
        guard version == Self.version else {
            throw CodecError(
                .unsupportedVersion, at: 0, "membership message version \(version), expected \(Self.version)")
        }
        let kindOffset = reader.offset
        let rawKind = try reader.readByte("message kind")
        guard let kind = Kind(rawValue: rawKind) else {
            throw CodecError(.wrongKind, at: kindOffset, "unknown membership message kind \(rawKind)")
        }
        let message: MembershipMessage
        switch kind {
        case .ping:
            let sequence = try reader.readVarint("ping sequence")
            let target = try readID(from: &reader, "ping target")
            message = .ping(sequence: sequence, target: target, updates: try readUpdates(from: &reader))
        case .ack:
            let sequence = try reader.readVarint("ack sequence")
            message = .ack(sequence: sequence, updates: try readUpdates(from: &reader))
        case .pingRequest:
            let sequence = try reader.readVarint("ping request sequence")
            let target = try readID(from: &reader, "ping request target")
            let address = try readAddress(from: &reader)
            message = .pingRequest(
                sequence: sequence, target: target, address: address, updates: try readUpdates(from: &reader))
        case .nack:
            message = .nack(sequence: try reader.readVarint("nack sequence"))
        case .gossip:
            message = .gossip(updates: try readUpdates(from: &reader))
        case .sync:
            let flagOffset = reader.offset
            let flags = try reader.readByte("sync flags")
            guard flags <= 1 else { throw CodecError(.invalidValue, at: flagOffset, "unknown sync flags \(flags)") }
            let count = try reader.readCount(
                limit: limits.maximumElements, minimumItemBytes: minimumRecordBytes, "sync members")
            var members: [Member] = []
            members.reserveCapacity(count)
            for _ in 0..<count {
                let offset = reader.offset
                let update = try readUpdate(from: &reader)
                guard update.accuser == nil else {
                    throw CodecError(.invalidValue, at: offset, "a sync record names an accuser")
                }
                if let last = members.last, !(last.id < update.member.id) {
                    throw CodecError(.notCanonical, at: offset, "sync members are not strictly increasing by id")
                }
                members.append(update.member)
            }
            message = .sync(requestsReply: flags == 1, members: members)
        }
        try reader.expectEnd()
        return message
    }

    static func readID(from reader: inout ByteReader, _ what: String) throws(CodecError) -> MemberID {
        let raw = try reader.readBytes(count: MemberID.byteCount, what)
        return MemberID(bytes: Array(raw))
    }

    static func readAddress(from reader: inout ByteReader) throws(CodecError) -> MemberAddress {
        let host = try reader.readString("host")
        let portOffset = reader.offset
        let port = try reader.readVarint("port")
        guard port <= 65_535 else { throw CodecError(.invalidValue, at: portOffset, "port \(port) is above 65535") }
        return MemberAddress(host: host, port: Int(port))
    }

    static func readUpdates(from reader: inout ByteReader) throws(CodecError) -> [MemberUpdate] {
        let count = try reader.readCount(
            limit: reader.limits.maximumElements, minimumItemBytes: minimumRecordBytes, "updates")
        var updates: [MemberUpdate] = []
        updates.reserveCapacity(count)
        for _ in 0..<count { updates.append(try readUpdate(from: &reader)) }
        return updates
    }

    static func readUpdate(from reader: inout ByteReader) throws(CodecError) -> MemberUpdate {
        let id = try readID(from: &reader, "member id")
        let replica = ReplicaID(try reader.readVarint("replica id"))
        let address = try readAddress(from: &reader)
        let incarnation = try reader.readVarint("incarnation")
        let statusOffset = reader.offset
        let rawStatus = try reader.readByte("status")
        guard rawStatus & ~7 == 0, let status = MemberStatus(rawValue: rawStatus & 3) else {
            throw CodecError(.invalidValue, at: statusOffset, "unknown member status byte \(rawStatus)")
        }
        var accuser: MemberID?
        if rawStatus & 4 != 0 {
            guard status == .suspect else {
                throw CodecError(.invalidValue, at: statusOffset, "only a suspicion names an accuser")
            }
            accuser = try readID(from: &reader, "accuser")
        }
        let member = Member(id: id, replicaID: replica, address: address, incarnation: incarnation, status: status)
        return MemberUpdate(member: member, accuser: accuser)
    }
}
