/// Header flags of a transport frame; authenticated as associated data, read only after the tag verifies.
public struct FrameFlags: OptionSet, Sendable, Hashable {
    /// The raw flag byte.
    public let rawValue: UInt8
    /// Creates flags from the raw byte.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The sender switches to REKEY(k) after this frame; the receiver does the same after verifying it.
    public static let rekey = FrameFlags(rawValue: 1 << 0)
    /// More fragments of the same message follow.
    public static let moreFragments = FrameFlags(rawValue: 1 << 1)
    /// The responder's key confirmation, the first transport frame of a session (empty payload).
    public static let confirmation = FrameFlags(rawValue: 1 << 2)

    static let known: FrameFlags = [.rekey, .moreFragments, .confirmation]
}

/// Wire layout of StateMesh frames.
///
/// ```
/// frame           = length:u32be body                 ; length = body byte count, 1...maxFrameByteCount
/// transport body  = counter:u64le flags:u8 ciphertext tag:16
/// handshake body  = a Noise handshake message (fixed sizes 53, 193, 161 bytes)
/// ```
/// The transport AEAD is ChaCha20-Poly1305-IETF with nonce = 32 zero bits || counter (Noise rev 34,
/// section 12.3) and associated data = the first 13 wire bytes (length prefix, counter, flags), so the
/// length and flags are authenticated too. The counter is sent in clear only to name the close reason:
/// a counter below the expected one is a replay, above it a gap or reorder; either closes the session.
public enum FrameFormat {
    /// Bytes in the length prefix.
    public static let lengthPrefixByteCount = 4
    /// Counter and flags.
    public static let headerByteCount = 9
    /// Poly1305 tag.
    public static let tagByteCount = 16
    /// Smallest transport body: header and tag, empty payload.
    public static let minimumTransportBodyByteCount = headerByteCount + tagByteCount
    /// Wire bytes added to each frame's payload.
    public static let frameOverheadByteCount = lengthPrefixByteCount + headerByteCount + tagByteCount
}

/// An established, mutually authenticated session: a send and a receive cipher with counters, rekeying and
/// message fragmentation. Sans-IO: `seal` produces wire bytes, `open` consumes frame bodies.
///
/// Any error thrown by `open` is fatal for the session (the caller must close the connection), and nothing
/// of a frame is returned or interpreted before its tag verifies.
///
/// ### Invariants
/// - Each direction's counter increases by one per frame and doubles as the Noise nonce `n`.
/// - A sender rekeys after `rekeyAfterFrames` frames or `rekeyAfterDuration`, announcing it with `.rekey`
///   in the frame that is the last under the old key; TCP order makes both sides switch at the same frame.
public struct SecureSession: Sendable {
    /// The authenticated peer.
    public let peer: NodeID
    /// The peer's Ed25519 public key.
    public let peerPublicKey: [UInt8]
    /// The Noise handshake hash (channel binding).
    public let handshakeHash: [UInt8]
    private var sender: NoiseCipherState
    private var receiver: NoiseCipherState
    private var limits: SecurityLimits
    private var framesSinceRekey: UInt64 = 0
    private var keyCreated: ContinuousClock.Instant
    /// Storage of the message being reassembled: bytes `0..<reassembledByteCount` hold the fragments opened
    /// so far; the rest is room for later fragments (grown geometrically, never past `maxMessageByteCount`).
    private var reassembly: [UInt8] = []
    private var reassembledByteCount = 0
    private var isReassembling = false
    /// Rekeys performed by each direction (for tests and metrics).
    public private(set) var sendRekeyCount = 0
    /// Rekeys performed on the receive side.
    public private(set) var receiveRekeyCount = 0

    /// Payload bytes one frame carries at most.
    public var maxPayloadPerFrame: Int { limits.maxFrameByteCount - FrameFormat.minimumTransportBodyByteCount }

    init(
        peer: NodeID, peerPublicKey: [UInt8], handshakeHash: [UInt8], sender: NoiseCipherState,
        receiver: NoiseCipherState, limits: SecurityLimits, now: ContinuousClock.Instant
    ) {
        self.peer = peer
        self.peerPublicKey = peerPublicKey
        self.handshakeHash = handshakeHash
        self.sender = sender
        self.receiver = receiver
        self.limits = limits
        self.keyCreated = now
    }

    /// A copy enforcing different limits (tests use it to give the two ends different caps).
    func withLimits(_ change: (inout SecurityLimits) -> Void) -> SecureSession {
        var copy = self
        change(&copy.limits)
        return copy
    }

    /// Wire bytes `seal` writes for a message of `messageByteCount` bytes (one frame per `maxPayloadPerFrame`).
    public func sealedByteCount(messageByteCount: Int) -> Int {
        let frames = max(1, (messageByteCount + maxPayloadPerFrame - 1) / maxPayloadPerFrame)
        return messageByteCount + frames * FrameFormat.frameOverheadByteCount
    }

    /// Seals `message` as one or more frames into `output`, which must hold `sealedByteCount` bytes; returns bytes written.
    ///
    /// Throws `.messageTooLarge` above `maxMessageByteCount`, `.nonceExhausted` after 2^64-1 frames.
    public mutating func seal(
        _ message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, now: ContinuousClock.Instant
    ) throws -> Int {
        guard message.count <= limits.maxMessageByteCount else {
            throw SecurityError(.messageTooLarge, "message of \(message.count) bytes over the cap")
        }
        let total = sealedByteCount(messageByteCount: message.count)
        guard output.count >= total else { throw SecurityError(.invalidArgument, "seal output too small") }
        var consumed = 0
        var written = 0
        repeat {
            let chunk = min(maxPayloadPerFrame, message.count - consumed)
            let isLast = consumed + chunk == message.count
            let part = UnsafeRawBufferPointer(rebasing: message[consumed..<consumed + chunk])
            let frame = UnsafeMutableRawBufferPointer(
                rebasing: output[written..<written + chunk + FrameFormat.frameOverheadByteCount])
            try sealFrame(part, flags: isLast ? [] : .moreFragments, into: frame, now: now)
            consumed += chunk
            written += frame.count
        } while consumed < message.count
        return written
    }

    /// Seals `message` and returns the wire bytes (convenience over `seal(_:into:now:)`).
    public mutating func seal(_ message: [UInt8], now: ContinuousClock.Instant) throws -> [UInt8] {
        guard message.count <= limits.maxMessageByteCount else {
            throw SecurityError(.messageTooLarge, "message of \(message.count) bytes over the cap")
        }
        let total = sealedByteCount(messageByteCount: message.count)
        // Every byte of the output is written by `seal` (headers, ciphertext, tags): no zero-filling first.
        return try [UInt8](unsafeUninitializedCapacity: total) { (buffer, count) in
            let written = try message.withUnsafeBytes { (m) in try seal(m, into: UnsafeMutableRawBufferPointer(buffer), now: now) }
            count = written
        }
    }

    /// The responder's key-confirmation frame (wire bytes).
    mutating func sealConfirmation(now: ContinuousClock.Instant) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: FrameFormat.frameOverheadByteCount) { (buffer, count) in
            try sealFrame(
                UnsafeRawBufferPointer(start: nil, count: 0), flags: .confirmation,
                into: UnsafeMutableRawBufferPointer(buffer), now: now)
            count = FrameFormat.frameOverheadByteCount
        }
    }

    mutating func sealFrame(
        _ payload: UnsafeRawBufferPointer, flags requested: FrameFlags, into frame: UnsafeMutableRawBufferPointer,
        now: ContinuousClock.Instant
    ) throws {
        guard let key = sender.key else { throw SecurityError(.invalidArgument, "session without a send key") }
        let counter = sender.nonce
        guard counter != Noise.maxNonce else { throw SecurityError(.nonceExhausted, "send counter exhausted") }
        var flags = requested
        let rekeyDue = framesSinceRekey + 1 >= limits.rekeyAfterFrames || keyCreated.duration(to: now) >= limits.rekeyAfterDuration
        if rekeyDue { flags.insert(.rekey) }
        let bodyCount = UInt32(frame.count - FrameFormat.lengthPrefixByteCount)
        frame.storeBytes(of: bodyCount.bigEndian, toByteOffset: 0, as: UInt32.self)
        frame.storeBytes(of: counter.littleEndian, toByteOffset: 4, as: UInt64.self)
        frame.storeBytes(of: flags.rawValue, toByteOffset: 12, as: UInt8.self)
        let headerEnd = FrameFormat.lengthPrefixByteCount + FrameFormat.headerByteCount
        try key.withUnsafeBytes { (k) in
            try Sodium.aeadEncrypt(
                key: k, counter: counter, associatedData: UnsafeRawBufferPointer(rebasing: frame[0..<headerEnd]),
                plaintext: payload, output: UnsafeMutableRawBufferPointer(rebasing: frame[headerEnd...]))
        }
        sender.nonce += 1
        framesSinceRekey += 1
        if rekeyDue {
            try sender.rekey()
            framesSinceRekey = 0
            keyCreated = now
            sendRekeyCount += 1
        }
    }

    /// Authenticates and decrypts one frame body; returns a complete message, or nil while fragments accumulate.
    ///
    /// Throws (and the session must close): `.truncatedFrame` (body shorter than header and tag),
    /// `.frameTooLarge`, `.replayedFrame` / `.reorderedFrame` (counter not the expected one),
    /// `.decryptFailed` (tag did not verify), `.malformedFrame` (unknown or misplaced flags),
    /// `.messageTooLarge` (reassembly over the cap).
    ///
    /// Copies: a single-frame message is decrypted straight from `body` into the returned array; each
    /// further fragment of a multi-frame message is decrypted straight into the reassembly storage, which
    /// grows geometrically up to `maxMessageByteCount`. No intermediate plaintext array exists.
    public mutating func open(_ body: UnsafeRawBufferPointer) throws -> [UInt8]? {
        guard isReassembling else {
            // A full frame is usually the first fragment of a longer message (a sender fills frames), so its
            // array gets `fragmentSlackByteCount` bytes of room: a message just over one frame (64 KiB is
            // 65,511 + 25 bytes) is then reassembled with no copy and no reallocation. The room is sized from
            // the frame length (bounded by the frame cap), never from anything the frame claims.
            let payloadCount = body.count - FrameFormat.minimumTransportBodyByteCount
            let room = payloadCount == maxPayloadPerFrame ? min(Self.fragmentSlackByteCount, limits.maxMessageByteCount - payloadCount) : 0
            var (flags, payload) = try openFrame(body, room: max(0, room))
            guard !flags.contains(.confirmation) else {
                throw SecurityError(.malformedFrame, "confirmation frame after the session was established")
            }
            guard flags.contains(.moreFragments) else {
                if payload.count > payloadCount { payload.removeLast(payload.count - payloadCount) }
                return payload
            }
            guard payloadCount <= limits.maxMessageByteCount else {
                throw SecurityError(.messageTooLarge, "reassembled message over \(limits.maxMessageByteCount) bytes")
            }
            reassembly = payload  // no copy: the first fragment's array becomes the reassembly storage
            reassembledByteCount = payloadCount
            isReassembling = true
            return nil
        }
        let payloadCount = body.count - FrameFormat.minimumTransportBodyByteCount
        let needed = reassembledByteCount + max(0, payloadCount)
        guard payloadCount >= 0, body.count <= limits.maxFrameByteCount, needed <= limits.maxMessageByteCount else {
            // Malformed sizes or over the message cap: authenticate into a scratch array first, so the close
            // reason is the frame's own defect (truncated, oversized, forged, replayed) when it has one.
            let (flags, _) = try openFrame(body)
            guard !flags.contains(.confirmation) else {
                throw SecurityError(.malformedFrame, "confirmation frame after the session was established")
            }
            throw SecurityError(.messageTooLarge, "reassembled message over \(limits.maxMessageByteCount) bytes")
        }
        reserveReassembly(byteCount: needed)
        let start = reassembledByteCount
        // Moved out while `openFrame` mutates `self` (exclusive access), and back: the storage stays unique.
        var storage: [UInt8] = []
        swap(&storage, &reassembly)
        defer { swap(&storage, &reassembly) }
        let flags = try storage.withUnsafeMutableBytes { (bytes) in
            try openFrame(body, into: UnsafeMutableRawBufferPointer(rebasing: bytes[start..<needed]))
        }
        // Authenticated from here on; bytes past `reassembledByteCount` were never exposed.
        guard !flags.contains(.confirmation) else {
            throw SecurityError(.malformedFrame, "confirmation frame after the session was established")
        }
        reassembledByteCount = needed
        if flags.contains(.moreFragments) { return nil }
        isReassembling = false
        var message: [UInt8] = []
        swap(&message, &storage)  // `storage` (now empty) goes back into `reassembly` on return
        message.removeLast(message.count - reassembledByteCount)  // keeps the storage, drops the unused room
        reassembledByteCount = 0
        return message
    }

    /// Makes `reassembly` hold at least `byteCount` bytes, keeping its first `reassembledByteCount`; grows
    /// geometrically (amortised linear copying for long messages) but never past `maxMessageByteCount`.
    private mutating func reserveReassembly(byteCount: Int) {
        guard reassembly.count < byteCount else { return }
        let size = min(limits.maxMessageByteCount, max(byteCount, reassembly.count * 2))
        let kept = reassembledByteCount
        reassembly = reassembly.withUnsafeBytes { (old) in
            [UInt8](unsafeUninitializedCapacity: size) { (buffer, count) in
                let raw = UnsafeMutableRawBufferPointer(buffer)
                if kept > 0 { raw.copyMemory(from: UnsafeRawBufferPointer(rebasing: old[0..<kept])) }
                // The room past `kept` is not zero-filled: `UInt8` has no invalid values, the decryption of a
                // later fragment writes a region before anything reads it, and whatever is not written is
                // trimmed off before the message is returned (or dropped with the failed session).
                count = size
            }
        }
    }

    /// Opens a frame body given as an array (convenience over `open(_:)` with a raw buffer).
    public mutating func open(_ body: [UInt8]) throws -> [UInt8]? {
        try body.withUnsafeBytes { (b) in try open(b) }
    }

    /// Opens the responder's confirmation frame; anything else is an error.
    mutating func openConfirmation(_ body: [UInt8]) throws {
        let (flags, payload) = try body.withUnsafeBytes { (b) in try openFrame(b) }
        guard flags.subtracting(.rekey) == .confirmation, payload.isEmpty else {
            throw SecurityError(.malformedFrame, "first responder frame is not a key confirmation")
        }
    }

    /// Room left after a full frame's payload for the rest of a message just over one frame.
    static let fragmentSlackByteCount = 4096

    /// Opens one frame into a new array of its payload size plus `room` bytes (no zero-filling: the
    /// decryption writes the payload, the array is only returned when the tag verified, and the room, never
    /// read, is either written by a later fragment or trimmed off; `UInt8` has no invalid values).
    private mutating func openFrame(_ body: UnsafeRawBufferPointer, room: Int = 0) throws -> (FrameFlags, [UInt8]) {
        let payloadCount = try checkFrame(body)
        var flags = FrameFlags()
        let plaintext = try [UInt8](unsafeUninitializedCapacity: payloadCount + room) { (buffer, count) in
            flags = try openFrame(
                body, into: UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[0..<payloadCount]))
            count = payloadCount + room
        }
        return (flags, plaintext)
    }

    /// The checks that need no key: size bounds and the counter. Returns the payload byte count.
    private func checkFrame(_ body: UnsafeRawBufferPointer) throws -> Int {
        guard body.count >= FrameFormat.minimumTransportBodyByteCount else {
            throw SecurityError(.truncatedFrame, "frame body of \(body.count) bytes is shorter than header and tag")
        }
        guard body.count <= limits.maxFrameByteCount else {
            throw SecurityError(.frameTooLarge, "frame body of \(body.count) bytes over the cap")
        }
        guard receiver.key != nil else { throw SecurityError(.invalidArgument, "session without a receive key") }
        let expected = receiver.nonce
        let counter = UInt64(littleEndian: body.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard counter == expected else {
            if counter < expected {
                throw SecurityError(.replayedFrame, "frame counter \(counter), expected \(expected)")
            }
            throw SecurityError(.reorderedFrame, "frame counter \(counter), expected \(expected)")
        }
        guard expected != Noise.maxNonce else { throw SecurityError(.nonceExhausted, "receive counter exhausted") }
        return body.count - FrameFormat.minimumTransportBodyByteCount
    }

    /// Authenticates one frame body and decrypts its payload into `output` (exactly the payload size);
    /// advances the receive counter and applies a rekey only after the tag verified. On a throw, `output`
    /// holds no plaintext of this frame that the caller may use.
    private mutating func openFrame(_ body: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer)
        throws -> FrameFlags
    {
        let payloadCount = try checkFrame(body)
        guard output.count == payloadCount, let key = receiver.key else {
            throw SecurityError(.invalidArgument, "open output of \(output.count) bytes for a \(payloadCount)-byte payload")
        }
        let counter = receiver.nonce
        // Associated data: the length prefix as sent, then counter and flags (13 bytes), in a 16-byte stack
        // buffer (no heap allocation per frame).
        var adStorage: (UInt64, UInt64) = (0, 0)
        let verified = try withUnsafeMutableBytes(of: &adStorage) { (adBytes) in
            adBytes.storeBytes(of: UInt32(body.count).bigEndian, toByteOffset: 0, as: UInt32.self)
            adBytes.baseAddress!.advanced(by: 4).copyMemory(from: body.baseAddress!, byteCount: FrameFormat.headerByteCount)
            let associatedData = UnsafeRawBufferPointer(rebasing: adBytes[0..<13])
            return try key.withUnsafeBytes { (k) in
                try Sodium.aeadDecrypt(
                    key: k, counter: counter, associatedData: associatedData,
                    ciphertext: UnsafeRawBufferPointer(rebasing: body[FrameFormat.headerByteCount...]), output: output)
            }
        }
        guard verified else { throw SecurityError(.decryptFailed, "frame \(counter) failed authentication") }
        receiver.nonce += 1
        let flags = FrameFlags(rawValue: body.load(fromByteOffset: 8, as: UInt8.self))
        guard FrameFlags.known.isSuperset(of: flags) else {
            throw SecurityError(.malformedFrame, "unknown frame flags \(flags.rawValue)")
        }
        if flags.contains(.rekey) {
            try receiver.rekey()
            receiveRekeyCount += 1
        }
        return flags
    }
}

/// A bounded, sans-IO length-prefix decoder: append received bytes, take complete frame bodies out.
///
/// The claimed length is checked against the cap before anything is reserved for the frame, so a hostile
/// length never causes an allocation; the buffer never holds more than what was actually received.
public struct FrameDecoder: Sendable {
    /// The largest accepted body length.
    public let maxFrameByteCount: Int
    private var buffer: [UInt8] = []
    private var readIndex = 0

    /// Creates a decoder accepting bodies of `1...maxFrameByteCount` bytes.
    public init(maxFrameByteCount: Int = 65536) {
        self.maxFrameByteCount = maxFrameByteCount
    }

    /// Appends received bytes.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compactIfWorthwhile()
        buffer.append(contentsOf: bytes)
    }

    /// Appends received bytes.
    public mutating func append(_ bytes: [UInt8]) {
        compactIfWorthwhile()
        buffer.append(contentsOf: bytes)
    }

    /// Appends received bytes.
    public mutating func append(_ bytes: ArraySlice<UInt8>) {
        compactIfWorthwhile()
        buffer.append(contentsOf: bytes)
    }

    private mutating func compactIfWorthwhile() {
        if readIndex > 0 && readIndex >= buffer.count / 2 {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
    }

    /// Bytes received and not yet returned as a frame.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// The next complete frame body, or nil if more bytes are needed.
    ///
    /// Throws `.frameTooLarge` for a length over the cap and `.truncatedFrame` for a zero length.
    public mutating func nextFrame() throws -> [UInt8]? {
        guard bufferedByteCount >= FrameFormat.lengthPrefixByteCount else { return nil }
        let length = Int(buffer[readIndex]) << 24 | Int(buffer[readIndex + 1]) << 16
            | Int(buffer[readIndex + 2]) << 8 | Int(buffer[readIndex + 3])
        try Self.check(length: length, maxFrameByteCount: maxFrameByteCount)
        guard bufferedByteCount >= FrameFormat.lengthPrefixByteCount + length else { return nil }
        let start = readIndex + FrameFormat.lengthPrefixByteCount
        readIndex = start + length
        return Array(buffer[start..<readIndex])
    }

    /// The next complete frame body lent in place to `body` (no copy; the pointer is valid only inside the
    /// closure), or nil if more bytes are needed. The frame counts as taken even when `body` throws.
    ///
    /// Throws `.frameTooLarge` for a length over the cap and `.truncatedFrame` for a zero length.
    public mutating func withNextFrame<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) throws -> Result? {
        guard bufferedByteCount >= FrameFormat.lengthPrefixByteCount else { return nil }
        let length = Int(buffer[readIndex]) << 24 | Int(buffer[readIndex + 1]) << 16
            | Int(buffer[readIndex + 2]) << 8 | Int(buffer[readIndex + 3])
        try Self.check(length: length, maxFrameByteCount: maxFrameByteCount)
        guard bufferedByteCount >= FrameFormat.lengthPrefixByteCount + length else { return nil }
        let start = readIndex + FrameFormat.lengthPrefixByteCount
        readIndex = start + length
        return try buffer.withUnsafeBytes { (bytes) in try body(UnsafeRawBufferPointer(rebasing: bytes[start..<start + length])) }
    }

    /// Checks a claimed body length: `.frameTooLarge` above the cap, `.truncatedFrame` for zero.
    public static func check(length: Int, maxFrameByteCount: Int) throws {
        guard length <= maxFrameByteCount else {
            throw SecurityError(.frameTooLarge, "length prefix claims \(length) bytes, cap is \(maxFrameByteCount)")
        }
        guard length > 0 else { throw SecurityError(.truncatedFrame, "zero-length frame") }
    }

    /// Call at end of stream: throws `.truncatedFrame` if a partial frame is left.
    public func finish() throws {
        guard bufferedByteCount == 0 else {
            throw SecurityError(.truncatedFrame, "stream ended with \(bufferedByteCount) bytes of an incomplete frame")
        }
    }

}
