import Testing

@testable import MeshSecurity

/// The StateMesh handshake state machine: admission factors, binding, timeouts and malformed input.
@Suite struct HandshakeTests {
    let alice: NodeIdentity
    let bob: NodeIdentity
    let now = ContinuousClock.now

    init() throws {
        alice = try Fixtures.identity(1)
        bob = try Fixtures.identity(2)
    }

    func pair(
        initiatorPolicy: AdmissionPolicy? = nil, responderPolicy: AdmissionPolicy? = nil, initiator: NodeIdentity? = nil,
        expectedPeer: NodeID? = nil
    ) throws -> (MeshHandshake, MeshHandshake) {
        let client = initiator ?? alice
        return (
            try MeshHandshake(
                role: .initiator, identity: client, admission: initiatorPolicy ?? Fixtures.policy(allowing: [bob]),
                now: now, expectedPeer: expectedPeer),
            try MeshHandshake(
                role: .responder, identity: bob, admission: responderPolicy ?? Fixtures.policy(allowing: [client]),
                now: now)
        )
    }

    /// A correct handshake yields sessions that name each other and share a handshake hash.
    @Test func handshakeEstablishesMutualSessions() throws {
        var (initiator, responder) = try pair()
        let (a, b) = try Fixtures.handshake(initiator: &initiator, responder: &responder, now: now)
        #expect(a.peer == bob.nodeID)
        #expect(b.peer == alice.nodeID)
        #expect(a.handshakeHash == b.handshakeHash)
        #expect(initiator.isFinished && responder.isFinished)
    }

    /// Message sizes are the documented fixed sizes.
    @Test func handshakeMessagesHaveFixedSizes() throws {
        var (initiator, responder) = try pair()
        let message1 = try initiator.start()
        let message2 = try #require(try responder.receive(Array(message1.dropFirst(4)), now: now).bytesToSend)
        let message3 = try #require(try initiator.receive(Array(message2.dropFirst(4)), now: now).bytesToSend)
        #expect([message1.count, message2.count, message3.count].map { $0 - 4 } == MeshHandshake.messageByteCounts)
    }

    func failure(_ initiator: inout MeshHandshake, _ responder: inout MeshHandshake) throws -> SecurityError {
        try #require(throws: SecurityError.self) {
            _ = try Fixtures.handshake(initiator: &initiator, responder: &responder, now: now)
        }
    }

    /// A wrong PSK for the same epoch fails at message 3 as `.wrongClusterKey`.
    @Test func wrongClusterKeyIsRejected() throws {
        var (initiator, responder) = try pair(
            initiatorPolicy: Fixtures.policy(allowing: [bob], key: [UInt8](repeating: 9, count: 32)))
        #expect(try failure(&initiator, &responder).code == .wrongClusterKey)
    }

    /// An epoch the responder does not accept fails at message 1 as `.wrongClusterKey`.
    @Test func unknownEpochIsRejected() throws {
        var (initiator, responder) = try pair(initiatorPolicy: Fixtures.policy(allowing: [bob], epoch: 7))
        #expect(try failure(&initiator, &responder).code == .wrongClusterKey)
    }

    /// A responder not in the initiator's allow-list is rejected by the initiator.
    @Test func unknownResponderIsRejected() throws {
        var (initiator, responder) = try pair(initiatorPolicy: Fixtures.policy(allowing: []))
        #expect(try failure(&initiator, &responder).code == .unknownIdentity)
    }

    /// An initiator not in the responder's allow-list is rejected by the responder.
    @Test func unknownInitiatorIsRejected() throws {
        var (initiator, responder) = try pair(responderPolicy: Fixtures.policy(allowing: []))
        #expect(try failure(&initiator, &responder).code == .unknownIdentity)
    }

    /// A dial that expects a specific node rejects any other allowed node.
    @Test func unexpectedPeerIsRejected() throws {
        let carol = try Fixtures.identity(3)
        var (initiator, responder) = try pair(expectedPeer: carol.nodeID)
        #expect(try failure(&initiator, &responder).code == .unknownIdentity)
    }

    /// An identity whose signature does not cover its static key is rejected as `.identityNotBound`.
    @Test func unboundStaticKeyIsRejected() throws {
        let mallory = try Fixtures.identity(4)
        // Mallory presents a binding signature made for a different static key.
        let forged = mallory.withBinding(try Fixtures.identity(5).binding)
        var (initiator, responder) = try pair(initiator: forged)
        #expect(try failure(&initiator, &responder).code == .identityNotBound)
    }

    /// A handshake past its deadline fails as `.handshakeTimeout`, even when a valid message arrives.
    @Test func lateMessageTimesOut() throws {
        var (initiator, responder) = try pair()
        let message1 = try initiator.start()
        let late = now.advanced(by: .seconds(6))
        #expect(throws: Never.self) { try responder.checkTimeout(now: now.advanced(by: .seconds(4))) }
        let error = try #require(throws: SecurityError.self) {
            _ = try responder.receive(Array(message1.dropFirst(4)), now: late)
        }
        #expect(error.code == .handshakeTimeout)
    }

    /// Wrong-length and random handshake messages are `.malformedHandshake`/`.decryptFailed`, never a trap.
    @Test(arguments: [0, 1, 52, 54, 193, 4000])
    func malformedFirstMessageIsRejected(length: Int) throws {
        var (_, responder) = try pair()
        let error = try #require(throws: SecurityError.self) {
            _ = try responder.receive([UInt8](repeating: 0xAB, count: length), now: now)
        }
        #expect(error.code == .malformedHandshake)
    }

    /// A correctly sized message 1 with a flipped payload bit fails authentication.
    @Test func tamperedFirstMessageIsRejected() throws {
        var (initiator, responder) = try pair()
        var message1 = Array(try initiator.start().dropFirst(4))
        message1[40] ^= 0x01
        let error = try #require(throws: SecurityError.self) { _ = try responder.receive(message1, now: now) }
        #expect(error.code == .decryptFailed)
    }

    /// A low-order ephemeral key (all-zero DH output) is rejected.
    @Test func lowOrderEphemeralIsRejected() throws {
        var (other, _) = try pair()
        _ = try other.start()
        var message2 = [UInt8](repeating: 0, count: 193)  // e = 0 (a low-order point)
        message2[100] = 1
        let error = try #require(throws: SecurityError.self) { _ = try other.receive(message2, now: now) }
        #expect(error.code == .invalidPublicKey)
    }

    /// Messages after failure or out of order are rejected.
    @Test func messageAfterFailureIsRejected() throws {
        var (initiator, responder) = try pair()
        let message1 = Array(try initiator.start().dropFirst(4))
        #expect(throws: SecurityError.self) { _ = try responder.receive([1, 2, 3], now: now) }
        let error = try #require(throws: SecurityError.self) { _ = try responder.receive(message1, now: now) }
        #expect(error.code == .unexpectedMessage)
    }

    /// Rotation: a responder accepting two epochs admits initiators on either, and removal stops the old one.
    @Test func clusterKeyRotation() throws {
        let newKey = [UInt8](repeating: 0x77, count: 32)
        var responderPolicy = try Fixtures.policy(allowing: [alice])
        try responderPolicy.installClusterKey(newKey, epoch: 2)
        var oldInitiatorPolicy = try Fixtures.policy(allowing: [bob])
        var (a, b) = try pair(initiatorPolicy: oldInitiatorPolicy, responderPolicy: responderPolicy)
        _ = try Fixtures.handshake(initiator: &a, responder: &b, now: now)
        try oldInitiatorPolicy.installClusterKey(newKey, epoch: 2)
        try oldInitiatorPolicy.useClusterKey(epoch: 2)
        (a, b) = try pair(initiatorPolicy: oldInitiatorPolicy, responderPolicy: responderPolicy)
        _ = try Fixtures.handshake(initiator: &a, responder: &b, now: now)
        try responderPolicy.useClusterKey(epoch: 2)
        try responderPolicy.removeClusterKey(epoch: 1)
        (a, b) = try pair(initiatorPolicy: Fixtures.policy(allowing: [bob]), responderPolicy: responderPolicy)
        #expect(try failure(&a, &b).code == .wrongClusterKey)
        #expect(throws: SecurityError.self) { try responderPolicy.removeClusterKey(epoch: 2) }
        #expect(throws: SecurityError.self) { try responderPolicy.useClusterKey(epoch: 9) }
    }

    /// Two handshakes between the same parties use fresh ephemerals: different handshake hashes and keys.
    @Test func handshakesHaveForwardSecrecyFreshness() throws {
        var (a1, b1) = try pair()
        var (a2, b2) = try pair()
        let first = try Fixtures.handshake(initiator: &a1, responder: &b1, now: now)
        let second = try Fixtures.handshake(initiator: &a2, responder: &b2, now: now)
        #expect(first.initiator.handshakeHash != second.initiator.handshakeHash)
    }
}
