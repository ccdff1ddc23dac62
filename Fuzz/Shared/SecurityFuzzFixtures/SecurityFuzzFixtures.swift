// Deterministic fixtures shared by the security fuzzers (FuzzHandshakeMessage, FuzzFrameDecoder).
import MeshSecurity

/// Deterministic handshake states for the fuzzers: fixed identities and ephemeral keys make every session
/// key reproducible, so seed-corpus frames stay valid across runs.
public enum FuzzFixtures {
    static func identity(_ tag: UInt8) -> NodeIdentity {
        // Fixed 32-byte inputs: these calls cannot fail; a failure would be a libsodium defect.
        try! NodeIdentity(seed: [UInt8](repeating: tag, count: 32), staticSecretKey: [UInt8](repeating: tag &+ 100, count: 32))
    }

    /// The initiator's identity.
    public static let alice = identity(1)
    /// The responder's identity.
    public static let bob = identity(2)
    static let key = [UInt8](repeating: 0x42, count: 32)
    /// A fixed instant (timeouts are not under test here).
    public static let now = ContinuousClock.now

    static func policy(_ peer: NodeIdentity) -> AdmissionPolicy {
        try! AdmissionPolicy(allowedPeers: [peer.nodeID], epoch: 1, clusterKey: key)
    }

    /// A fresh responder (awaiting message 1).
    public static let freshResponder = try! MeshHandshake(
        role: .responder, identity: bob, admission: policy(alice), now: now,
        ephemeral: try! NoiseKeyPair(secretKey: [UInt8](repeating: 22, count: 32)))

    /// A fresh initiator and its message 1.
    public static let (initiatorAfterStart, message1): (MeshHandshake, [UInt8]) = {
        var initiator = try! MeshHandshake(
            role: .initiator, identity: alice, admission: policy(bob), now: now,
            ephemeral: try! NoiseKeyPair(secretKey: [UInt8](repeating: 11, count: 32)))
        let message = try! initiator.start()
        return (initiator, Array(message.dropFirst(4)))
    }()

    /// The responder after a valid message 1, and its message 2.
    public static let (responderAfterMessage1, message2): (MeshHandshake, [UInt8]) = {
        var responder = freshResponder
        let out = try! responder.receive(message1, now: now)
        return (responder, Array(out.bytesToSend!.dropFirst(4)))
    }()

    /// The initiator awaiting the confirmation, and its message 3.
    public static let (initiatorAwaitingConfirmation, message3): (MeshHandshake, [UInt8]) = {
        var initiator = initiatorAfterStart
        let out = try! initiator.receive(message2, now: now)
        return (initiator, Array(out.bytesToSend!.dropFirst(4)))
    }()

    /// Established sessions: (initiator side, responder side) and the confirmation frame body.
    public static let (sessions, confirmation): ((SecureSession, SecureSession), [UInt8]) = {
        var responder = responderAfterMessage1
        let out = try! responder.receive(message3, now: now)
        var initiator = initiatorAwaitingConfirmation
        let confirmation = Array(out.bytesToSend!.dropFirst(4))
        let initiatorSession = try! initiator.receive(confirmation, now: now).session!
        return ((initiatorSession, out.session!), confirmation)
    }()
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Seed corpora, written by `LLVMFuzzerInitialize` when `STATEMESH_WRITE_SEEDS` names a directory.
public enum FuzzSeeds {
    /// Handshake seeds: stage byte + the genuine message of that stage, plus truncations.
    public static var handshake: [[UInt8]] {
        let messages = [FuzzFixtures.message1, FuzzFixtures.message2, FuzzFixtures.message3, FuzzFixtures.confirmation]
        var seeds: [[UInt8]] = []
        for (stage, message) in messages.enumerated() {
            seeds.append([UInt8(stage)] + message)
            seeds.append([UInt8(stage)] + message.prefix(message.count / 2))
        }
        return seeds
    }

    /// Frame decoder seeds: chunk byte + sealed frames (small, fragmented), an oversized prefix, a truncation.
    public static var frames: [[UInt8]] {
        var sender = FuzzFixtures.sessions.0
        let now = FuzzFixtures.now
        let small = try! sender.seal(Array("hello mesh".utf8), now: now)
        let empty = try! sender.seal([], now: now)
        let large = try! sender.seal([UInt8](repeating: 0x5A, count: 70_000), now: now)
        return [
            [0] + small,
            [3] + small + empty,
            [16] + small + empty + large,
            [1, 0x00, 0x01, 0x00, 0x01],
            [5] + small.prefix(small.count - 3),
        ]
    }

    /// Writes `seeds` as files `seed-<n>` into `directory`.
    public static func write(_ seeds: [[UInt8]], to directory: String) {
        for (index, seed) in seeds.enumerated() {
            let path = directory + "/seed-\(index)"
            guard let file = fopen(path, "wb") else { continue }
            _ = seed.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
            fclose(file)
        }
    }
}

/// Reads the seed directory from the environment.
public func seedDirectory() -> String? {
    guard let value = getenv("STATEMESH_WRITE_SEEDS") else { return nil }
    return String(cString: value)
}
