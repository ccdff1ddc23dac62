/// The StateMesh handshake: `Noise_XXpsk3_25519_ChaChaPoly_SHA256` plus identity binding, allow-list
/// admission and key confirmation, as a sans-IO state machine.
///
/// ```
/// -> e                 payload: version:u8=1, epoch:u32le          (53 bytes)
/// <- e, ee, s, es      payload: version:u8=1, ed25519:32, binding:64  (193 bytes)
/// -> s, se, psk        payload: version:u8=1, ed25519:32, binding:64  (161 bytes)
/// <- transport frame with .confirmation (empty payload)
/// ```
/// Where the PSK epoch goes: in the first message's payload, not the prologue. The prologue must be
/// identical on both sides before message 1, but the responder can only choose the PSK after learning
/// the initiator's epoch, and the epoch must reach it somehow; putting it in the payload hashes it into
/// `h`, so a tampered epoch makes message 3 fail (Noise rev 34, section 6: payloads are always hashed).
/// Message 1's payload is "encrypted" under a key derived only from `e` (psk modifier, section 9.2), so
/// the epoch number is public, which it is anyway; the PSK itself first enters at message 3 (psk3).
///
/// The confirmation frame makes the initiator learn that the responder accepted its PSK and identity:
/// both sides report a session only once both are sure of each other.
///
/// Inputs are frame bodies (no length prefix); outputs are wire bytes (with length prefix).
/// Any thrown error ends the handshake: the caller closes the connection and counts `error.code`.
public struct MeshHandshake: Sendable {
    /// The Noise protocol name (rev 34, section 8).
    public static let protocolName = "Noise_XXpsk3_25519_ChaChaPoly_SHA256"
    /// The prologue binds the application and wire version into `h` (section 6).
    public static let prologue: [UInt8] = Array("StateMesh handshake v1".utf8)
    static let payloadVersion: UInt8 = 1
    /// Exact sizes of the three handshake messages (frame bodies).
    public static let messageByteCounts = [53, 193, 161]
    /// The largest handshake message (frame body); also bounds the confirmation frame (25 bytes).
    public static let maxMessageByteCount = 193
    static let identityPayloadByteCount = 1 + 32 + 64

    /// Which side of the connection this is.
    public enum Role: Sendable, Hashable {
        /// Dialed the connection; writes message 1.
        case initiator
        /// Accepted the connection.
        case responder
    }

    /// What the caller must do after an event.
    public struct Output: Sendable {
        /// Wire bytes to send, if any.
        public var bytesToSend: [UInt8]?
        /// The established session, when the handshake has just completed.
        public var session: SecureSession?
    }

    private enum State: Sendable {
        case initial
        case awaitingMessage(Int)
        case awaitingConfirmation(SecureSession)
        case established
        case failed
    }

    /// This side's role.
    public let role: Role
    private let identity: NodeIdentity
    private let admission: AdmissionPolicy
    private let limits: SecurityLimits
    private let expectedPeer: NodeID?
    private var noise: NoiseHandshakeState
    private var state: State = .initial
    private var peerIdentity: (id: NodeID, publicKey: [UInt8])?
    /// The instant after which `checkTimeout` fails.
    public let deadline: ContinuousClock.Instant
    /// The peer's node ID once its identity has been verified.
    public var peer: NodeID? { peerIdentity?.id }

    /// Starts a handshake.
    ///
    /// - Parameters:
    ///   - admission: a snapshot of the allow-list and cluster keys (rotation does not affect a handshake in progress).
    ///   - expectedPeer: for dials to a known node: any other (allowed) identity is rejected as `.unknownIdentity`.
    ///   - ephemeral: a fixed ephemeral key (tests only); nil draws a fresh one from libsodium.
    public init(
        role: Role, identity: NodeIdentity, admission: AdmissionPolicy, limits: SecurityLimits = SecurityLimits(),
        now: ContinuousClock.Instant, expectedPeer: NodeID? = nil, ephemeral: NoiseKeyPair? = nil
    ) throws {
        self.role = role
        self.identity = identity
        self.admission = admission
        self.limits = limits
        self.expectedPeer = expectedPeer
        self.deadline = now.advanced(by: limits.handshakeTimeout)
        var psks: [[UInt8]] = []
        if role == .initiator {
            guard let key = admission.clusterKey(epoch: admission.dialingEpoch) else {
                throw SecurityError(.invalidArgument, "dialing epoch has no cluster key")
            }
            psks.append(key)
        }
        self.noise = try NoiseHandshakeState(
            protocolName: Self.protocolName, isInitiator: role == .initiator, prologue: Self.prologue,
            localStatic: identity.staticKeyPair, localEphemeral: ephemeral, psks: psks)
    }

    /// Initiator only: the first message's wire bytes.
    public mutating func start() throws -> [UInt8] {
        guard role == .initiator, case .initial = state else {
            throw SecurityError(.unexpectedMessage, "start() is for a fresh initiator")
        }
        var payload: [UInt8] = [Self.payloadVersion]
        withUnsafeBytes(of: admission.dialingEpoch.littleEndian) { payload += $0 }
        let message = try noise.writeMessage(payload: payload)
        state = .awaitingMessage(1)
        return Self.framed(message)
    }

    /// Throws `.handshakeTimeout` when `now` is past the deadline.
    public func checkTimeout(now: ContinuousClock.Instant) throws {
        if now >= deadline {
            throw SecurityError(.handshakeTimeout, "handshake did not finish within \(limits.handshakeTimeout)")
        }
    }

    /// Whether the session has been handed out (or the handshake failed).
    public var isFinished: Bool {
        switch state {
        case .established, .failed: return true
        default: return false
        }
    }

    /// Processes one received frame body.
    public mutating func receive(_ body: [UInt8], now: ContinuousClock.Instant) throws -> Output {
        do {
            try checkTimeout(now: now)
            return try step(body, now: now)
        } catch let error as SecurityError {
            state = .failed
            throw error
        } catch {
            state = .failed
            throw SecurityError(.cryptoFailure, "unexpected error: \(error)")
        }
    }

    private mutating func step(_ body: [UInt8], now: ContinuousClock.Instant) throws -> Output {
        switch (role, state) {
        case (.responder, .initial):
            try Self.checkLength(body, message: 0)
            let payload = try noise.readMessage(body)
            guard payload.count == 5, payload[0] == Self.payloadVersion else {
                throw SecurityError(.malformedHandshake, "message 1 payload has the wrong version or size")
            }
            let epoch = UInt32(payload[1]) | UInt32(payload[2]) << 8 | UInt32(payload[3]) << 16 | UInt32(payload[4]) << 24
            guard let key = admission.clusterKey(epoch: epoch) else {
                throw SecurityError(.wrongClusterKey, "initiator uses cluster key epoch \(epoch), not accepted here")
            }
            try noise.appendPSK(key)
            let reply = try noise.writeMessage(payload: identityPayload())
            state = .awaitingMessage(2)
            return Output(bytesToSend: Self.framed(reply))

        case (.initiator, .awaitingMessage(1)):
            try Self.checkLength(body, message: 1)
            let payload = try noise.readMessage(body)
            try admitPeer(payload: payload)
            let reply = try noise.writeMessage(payload: identityPayload())
            let session = try makeSession(now: now)
            state = .awaitingConfirmation(session)
            return Output(bytesToSend: Self.framed(reply))

        case (.responder, .awaitingMessage(2)):
            try Self.checkLength(body, message: 2)
            let payload: [UInt8]
            do {
                payload = try noise.readMessage(body)
            } catch let error as SecurityError where error.code == .decryptFailed && noise.remoteStatic != nil {
                // `s` decrypted (its key does not involve the PSK) but the payload, encrypted after
                // MixKeyAndHash(psk), did not: the initiator holds a different key for this epoch.
                throw SecurityError(.wrongClusterKey, "message 3 failed authentication after the PSK was mixed in")
            }
            try admitPeer(payload: payload)
            var session = try makeSession(now: now)
            let confirmation = try session.sealConfirmation(now: now)
            state = .established
            return Output(bytesToSend: confirmation, session: session)

        case (.initiator, .awaitingConfirmation(var session)):
            guard body.count == FrameFormat.minimumTransportBodyByteCount else {
                throw SecurityError(.malformedHandshake, "confirmation frame has \(body.count) bytes")
            }
            try session.openConfirmation(body)
            state = .established
            return Output(bytesToSend: nil, session: session)

        default:
            throw SecurityError(.unexpectedMessage, "handshake message in state \(state)")
        }
    }

    private static func checkLength(_ body: [UInt8], message index: Int) throws {
        guard body.count == messageByteCounts[index] else {
            throw SecurityError(
                .malformedHandshake, "handshake message \(index + 1) has \(body.count) bytes, expected \(messageByteCounts[index])")
        }
    }

    private func identityPayload() -> [UInt8] {
        [Self.payloadVersion] + identity.publicKey + identity.binding
    }

    /// Verifies the binding signature, then the allow-list and expected identity.
    private mutating func admitPeer(payload: [UInt8]) throws {
        guard payload.count == Self.identityPayloadByteCount, payload[0] == Self.payloadVersion,
            let remoteStatic = noise.remoteStatic
        else {
            throw SecurityError(.malformedHandshake, "identity payload has the wrong version or size")
        }
        let publicKey = Array(payload[1..<33])
        let signature = Array(payload[33..<97])
        guard NodeIdentity.verifyBinding(identityPublicKey: publicKey, staticPublicKey: remoteStatic, signature: signature)
        else {
            throw SecurityError(.identityNotBound, "peer's static key is not signed by its identity key")
        }
        let id = try NodeID(ed25519PublicKey: publicKey)
        guard admission.allowedPeers.contains(id) else {
            throw SecurityError(.unknownIdentity, "peer \(id) is not in the allow-list")
        }
        if let expectedPeer, expectedPeer != id {
            throw SecurityError(.unknownIdentity, "expected peer \(expectedPeer), got \(id)")
        }
        peerIdentity = (id, publicKey)
    }

    private func makeSession(now: ContinuousClock.Instant) throws -> SecureSession {
        guard let peerIdentity else { throw SecurityError(.unexpectedMessage, "peer not verified") }
        let (initiatorToResponder, responderToInitiator) = try noise.split()
        let isInitiator = role == .initiator
        return SecureSession(
            peer: peerIdentity.id, peerPublicKey: peerIdentity.publicKey, handshakeHash: noise.handshakeHash,
            sender: isInitiator ? initiatorToResponder : responderToInitiator,
            receiver: isInitiator ? responderToInitiator : initiatorToResponder, limits: limits, now: now)
    }

    private static func framed(_ message: [UInt8]) -> [UInt8] {
        let length = UInt32(message.count)
        return [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)] + message
    }
}
