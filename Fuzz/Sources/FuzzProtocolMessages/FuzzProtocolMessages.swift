import MeshCRDT
import MeshCodec
import MeshReplication

/// Feeds the input to a replica as protocol messages from peers; the replica must never
/// crash and must keep its invariants (vector, log, buffer accounting and caps).
///
/// Frames: `peer:u8 mode:u8 length:u8 bytes[length]`. Mode bit 0 clear: the bytes are
/// handed over raw. Set: a valid message made by a real peer is encoded and the frame's
/// bytes overwrite some of its bytes (position, value pairs), so mutations reach deep
/// into the decoder and the state machine. Mode bit 1 ticks the replica afterwards. Every
/// frame is followed by a local write to a key the frame's peer byte picks.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let me = ReplicaID(1)
    let peers = (2...5).map { ReplicaID(UInt64($0)) }
    var configuration = ReplicationConfiguration()
    configuration.maximumBufferedDeltas = 16
    configuration.maximumLogDeltas = 16
    configuration.maximumSnapshotBytes = 1 << 16
    let domains = [DomainConfiguration(name: "d"), DomainConfiguration(name: "e", mode: .eventual)]
    var replica = ReplicaStateMachine(
        replicaID: me, domains: domains, peers: peers, configuration: configuration, seed: 1)
    var peer = ReplicaStateMachine(replicaID: peers[0], domains: domains, peers: [me], configuration: configuration, seed: 2)
    var templates: [[UInt8]] = []
    var now = Instant(milliseconds: 1_000_000)
    do {
        _ = try replica.write(.increment(1), to: "c", in: "d", now: now)
        for step in 0..<4 {
            _ = try peer.write(.insert("x\(step)"), to: "s", in: "d", now: now)
            _ = try peer.write(.setField("f", "v\(step)"), to: "m", in: "e", now: now)
            _ = try peer.write(.assign("r\(step)"), to: "r", in: "d", now: now)
            now = now.advanced(by: 10)
            for action in peer.tick(now: now) {
                if case .send(let message, _) = action { templates.append(message.encoded()) }
            }
        }
    } catch {
        fatalError("setup write failed: \(error)")
    }
    templates.append(ReplicationMessage.digest(isReply: false, vectors: [DomainVector(domain: "d", vector: VersionVector())]).encoded())
    templates.append(ReplicationMessage.graft(domain: "d", vector: VersionVector(), minimumEpoch: 3, joinsTree: true).encoded())
    templates.append(ReplicationMessage.beacon(root: ReplicaID(1), round: 9).encoded())
    templates.append(ReplicationMessage.prune.encoded())

    var position = 0
    while position + 3 <= bytes.count {
        let peerByte = bytes[position]
        let sender = ReplicaID(UInt64(2 + peerByte % 5))  // 2…6: one unknown peer too
        let mode = bytes[position + 1]
        let length = Int(bytes[position + 2])
        position += 3
        let body = Array(bytes[position..<min(bytes.count, position + length)])
        position += length
        var message: [UInt8]
        if mode & 1 == 0 || templates.isEmpty {
            message = body
        } else {
            message = templates[Int(mode >> 2) % templates.count]
            var index = 0
            while index + 1 < body.count, !message.isEmpty {
                message[Int(body[index]) % message.count] = body[index + 1]
                index += 2
            }
        }
        now = now.advanced(by: 7)
        _ = replica.receive(message, from: sender, now: now)
        if mode & 2 != 0 { _ = replica.tick(now: now.advanced(by: 500)) }
        // A local write after every frame: whatever a peer sent (a forged count or dot of this
        // replica included) may be refused with a typed error, never make a later write trap.
        let (key, domain, operation): (String, String, WriteOperation) =
            switch peerByte / 5 % 6 {
            case 0: ("c", "d", .increment(1))
            case 1: ("s", "d", .insert("y"))
            case 2: ("m", "e", .setField("f", "w"))
            case 3: ("r", "d", .assign("z"))
            // Clears (Redis DEL): a counter reset raises baselines a forged peer may claim too.
            case 4: ("c", "d", .clear(.counter))
            default: ("r", "d", .clear(.register))
            }
        _ = try? replica.write(operation, to: key, in: domain, now: now)
        if let problem = replica.invariantViolation() {
            fatalError("state corrupted: \(problem)")
        }
    }
    return 0
}
