import Testing

@testable import MeshSecurity

/// Transport frames: round trips, fragmentation, rekeying, and every hostile frame closing with its reason.
@Suite struct SessionTests {
    let now = ContinuousClock.now

    func sessions(limits: SecurityLimits = SecurityLimits()) throws -> (SecureSession, SecureSession) {
        let alice = try Fixtures.identity(1)
        let bob = try Fixtures.identity(2)
        var initiator = try MeshHandshake(
            role: .initiator, identity: alice, admission: Fixtures.policy(allowing: [bob]), limits: limits, now: now)
        var responder = try MeshHandshake(
            role: .responder, identity: bob, admission: Fixtures.policy(allowing: [alice]), limits: limits, now: now)
        let pair = try Fixtures.handshake(initiator: &initiator, responder: &responder, now: now)
        return (pair.initiator, pair.responder)
    }

    /// Splits wire bytes into frame bodies with the bounded decoder.
    func bodies(_ wire: [UInt8]) throws -> [[UInt8]] {
        var decoder = FrameDecoder()
        decoder.append(wire)
        var out: [[UInt8]] = []
        while let body = try decoder.nextFrame() { out.append(body) }
        try decoder.finish()
        return out
    }

    func deliver(_ wire: [UInt8], to session: inout SecureSession) throws -> [[UInt8]] {
        try bodies(wire).compactMap { try session.open($0) }
    }

    @Test(arguments: [0, 1, 1024, 65511, 65512, 65536, 200_000])
    func messagesRoundTrip(size: Int) throws {
        var (a, b) = try sessions()
        let message = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let wire = try a.seal(message, now: now)
        #expect(wire.count == a.sealedByteCount(messageByteCount: size))
        #expect(try deliver(wire, to: &b) == [message])
        let reply = try b.seal(message.reversed(), now: now)
        #expect(try deliver(reply, to: &a) == [message.reversed()])
    }

    /// Every frame on the wire is at most 64 KiB (body), even for large messages.
    @Test func framesRespectTheCap() throws {
        var (a, _) = try sessions()
        let wire = try a.seal([UInt8](repeating: 1, count: 300_000), now: now)
        for body in try bodies(wire) { #expect(body.count <= 65536) }
    }

    @Test func rekeyAfterFrameCountKeepsBothSidesInStep() throws {
        var limits = SecurityLimits()
        limits.rekeyAfterFrames = 4
        var (a, b) = try sessions(limits: limits)
        for index in 0..<20 {
            #expect(try deliver(try a.seal([UInt8(index)], now: now), to: &b) == [[UInt8(index)]])
        }
        #expect(a.sendRekeyCount == 5)
        #expect(b.receiveRekeyCount == 5)
    }

    @Test func rekeyAfterDurationKeepsBothSidesInStep() throws {
        var limits = SecurityLimits()
        limits.rekeyAfterDuration = .seconds(10)
        var (a, b) = try sessions(limits: limits)
        _ = try deliver(try a.seal([1], now: now), to: &b)
        #expect(a.sendRekeyCount == 0)
        _ = try deliver(try a.seal([2], now: now.advanced(by: .seconds(11))), to: &b)
        #expect(a.sendRekeyCount == 1 && b.receiveRekeyCount == 1)
        #expect(try deliver(try a.seal([3], now: now.advanced(by: .seconds(12))), to: &b) == [[3]])
    }

    func closeReason(_ body: [UInt8], session: inout SecureSession) throws -> SecurityError.Code {
        try #require(throws: SecurityError.self) { _ = try session.open(body) }.code
    }

    @Test func flippedBitIsDecryptFailed() throws {
        var (a, b) = try sessions()
        for position in [9, 12, 20] {  // two ciphertext bytes and one tag byte; the flags byte is below
            var (a2, b2) = try sessions()
            var body = try bodies(try a2.seal(Array(repeating: 5, count: 8), now: now))[0]
            body[position] ^= 0x10
            #expect(try closeReason(body, session: &b2) == .decryptFailed)
        }
        var body = try bodies(try a.seal([1, 2, 3], now: now))[0]
        body[8] ^= 0x02  // flags byte is authenticated as associated data
        #expect(try closeReason(body, session: &b) == .decryptFailed)
    }

    @Test func replayedFrameIsRejected() throws {
        var (a, b) = try sessions()
        let body = try bodies(try a.seal([1], now: now))[0]
        _ = try b.open(body)
        #expect(try closeReason(body, session: &b) == .replayedFrame)
    }

    @Test func reorderedFrameIsRejected() throws {
        var (a, b) = try sessions()
        _ = try a.seal([1], now: now)  // frame 0 is "lost"
        let second = try bodies(try a.seal([2], now: now))[0]
        #expect(try closeReason(second, session: &b) == .reorderedFrame)
    }

    @Test(arguments: [0, 8, 24])
    func truncatedBodyIsRejected(length: Int) throws {
        var (a, b) = try sessions()
        let body = try bodies(try a.seal([1, 2], now: now))[0]
        #expect(try closeReason(Array(body.prefix(length)), session: &b) == .truncatedFrame)
    }

    /// A frame cut short still inside its length (last byte missing) fails authentication, never decodes.
    @Test func shortenedBodyFailsAuthentication() throws {
        var (a, b) = try sessions()
        let body = try bodies(try a.seal([1, 2, 3, 4], now: now))[0]
        #expect(try closeReason(Array(body.dropLast()), session: &b) == .decryptFailed)
    }

    /// An authentic frame with an unknown flag bit is `.malformedFrame` (flags are read only after the tag verifies).
    @Test func unknownFlagIsMalformedEvenWhenAuthentic() throws {
        var (a, b) = try sessions()
        var wire = [UInt8](repeating: 0, count: 1 + FrameFormat.frameOverheadByteCount)
        let payload: [UInt8] = [7]
        try payload.withUnsafeBytes { p in
            try wire.withUnsafeMutableBytes { o in
                try a.sealFrame(p, flags: FrameFlags(rawValue: 0x80), into: o, now: now)
            }
        }
        #expect(try closeReason(Array(wire.dropFirst(4)), session: &b) == .malformedFrame)
    }

    @Test func sealingOverCapIsRejected() throws {
        var limits = SecurityLimits()
        limits.maxMessageByteCount = 100_000
        var (a, _) = try sessions(limits: limits)
        let error = try #require(throws: SecurityError.self) {
            _ = try a.seal([UInt8](repeating: 0, count: 100_001), now: now)
        }
        #expect(error.code == .messageTooLarge)
    }

    @Test func reassemblyOverCapIsMessageTooLarge() throws {
        var senderLimits = SecurityLimits()
        senderLimits.maxMessageByteCount = 200_000
        var (a, b) = try sessions(limits: senderLimits)
        // Same session keys, but the receiver enforces a smaller cap than the sender.
        var receiver = b.withLimits { $0.maxMessageByteCount = 100_000 }
        let frames = try bodies(try a.seal([UInt8](repeating: 3, count: 150_000), now: now))
        var code: SecurityError.Code?
        for frame in frames {
            do { _ = try receiver.open(frame) } catch let error as SecurityError { code = error.code; break }
        }
        #expect(code == .messageTooLarge)
    }

    /// Frames lent in place by `withNextFrame` open to the same messages, including fragmented ones decrypted
    /// straight into the reassembly storage, back to back in one session (reassembly state resets).
    @Test func lentFramesReassembleBackToBack() throws {
        var limits = SecurityLimits()
        limits.maxMessageByteCount = 300_000
        var (a, b) = try sessions(limits: limits)
        let sizes = [65536, 3, 300_000, 65511, 65512, 131_022, 0, 200_000]
        var wire: [UInt8] = []
        var messages: [[UInt8]] = []
        for (index, size) in sizes.enumerated() {
            let message = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ index) }
            messages.append(message)
            wire += try a.seal(message, now: now)
        }
        var decoder = FrameDecoder()
        decoder.append(wire)
        var opened: [[UInt8]] = []
        while let result = try decoder.withNextFrame({ try b.open($0) }) {
            if let message = result { opened.append(message) }
        }
        try decoder.finish()
        #expect(opened == messages)
    }

    /// A forged continuation fragment is `.decryptFailed`, not taken into the message being reassembled;
    /// likewise a forged fragment that would also exceed the cap reports the forgery first.
    @Test(arguments: [false, true])
    func forgedContinuationFragmentIsDecryptFailed(overCap: Bool) throws {
        var senderLimits = SecurityLimits()
        senderLimits.maxMessageByteCount = 200_000
        var (a, b) = try sessions(limits: senderLimits)
        var receiver = b.withLimits { $0.maxMessageByteCount = overCap ? 100_000 : 200_000 }
        var frames = try bodies(try a.seal([UInt8](repeating: 3, count: 150_000), now: now))
        #expect(frames.count == 3)
        #expect(try receiver.open(frames[0]) == nil)
        frames[1][40] ^= 0x01
        #expect(try closeReason(frames[1], session: &receiver) == .decryptFailed)
    }

    /// A confirmation flag on a continuation fragment is `.malformedFrame`, after authentication.
    @Test func confirmationFlagInsideAMessageIsMalformed() throws {
        var (a, b) = try sessions()
        var first = [UInt8](repeating: 0, count: 10 + FrameFormat.frameOverheadByteCount)
        var second = [UInt8](repeating: 0, count: 10 + FrameFormat.frameOverheadByteCount)
        let payload = [UInt8](repeating: 9, count: 10)
        try payload.withUnsafeBytes { p in
            try first.withUnsafeMutableBytes { try a.sealFrame(p, flags: .moreFragments, into: $0, now: now) }
            try second.withUnsafeMutableBytes { try a.sealFrame(p, flags: .confirmation, into: $0, now: now) }
        }
        #expect(try b.open(Array(first.dropFirst(4))) == nil)
        #expect(try closeReason(Array(second.dropFirst(4)), session: &b) == .malformedFrame)
    }

    @Test func confirmationAfterEstablishmentIsMalformed() throws {
        var (a, b) = try sessions()
        let confirmation = try a.sealConfirmation(now: now)
        #expect(try closeReason(Array(confirmation.dropFirst(4)), session: &b) == .malformedFrame)
    }
}

