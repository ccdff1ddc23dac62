import MeshSecurity
import Testing

/// Hex helpers and small fixtures shared by the MeshSecurity tests.
enum Fixtures {
    static func bytes(hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var iterator = hex.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            out.append(UInt8(String([high, low]), radix: 16)!)
        }
        return out
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// A deterministic identity derived from one byte.
    static func identity(_ tag: UInt8) throws -> NodeIdentity {
        try NodeIdentity(seed: [UInt8](repeating: tag, count: 32), staticSecretKey: [UInt8](repeating: tag &+ 100, count: 32))
    }

    static let clusterKey = [UInt8](repeating: 0x42, count: 32)

    static func policy(allowing peers: [NodeIdentity], epoch: UInt32 = 1, key: [UInt8] = clusterKey) throws
        -> AdmissionPolicy
    {
        try AdmissionPolicy(allowedPeers: Set(peers.map(\.nodeID)), epoch: epoch, clusterKey: key)
    }

    /// Runs a full handshake between two in-memory state machines; returns both sessions or the first error.
    static func handshake(
        initiator: inout MeshHandshake, responder: inout MeshHandshake, now: ContinuousClock.Instant = .now
    ) throws -> (initiator: SecureSession, responder: SecureSession) {
        var toResponder = try initiator.start()
        var initiatorSession: SecureSession?
        var responderSession: SecureSession?
        while initiatorSession == nil || responderSession == nil {
            let out = try responder.receive(Array(toResponder.dropFirst(4)), now: now)
            if let session = out.session { responderSession = session }
            guard let toInitiator = out.bytesToSend else { break }
            let back = try initiator.receive(Array(toInitiator.dropFirst(4)), now: now)
            if let session = back.session { initiatorSession = session }
            guard let next = back.bytesToSend else { continue }
            toResponder = next
        }
        return (try #require(initiatorSession), try #require(responderSession))
    }
}
