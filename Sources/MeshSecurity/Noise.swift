/// A generic Noise Protocol Framework engine (revision 34) for the `25519_ChaChaPoly_SHA256` suite.
///
/// Handshake patterns are token lists (section 7), so one `NoiseHandshakeState` runs NN, XX, IK,
/// XXpsk3 and the other interactive patterns; the StateMesh handshake (`MeshHandshake`) drives it
/// with `XXpsk3`. Everything here is sans-IO: bytes in, bytes out.
public enum Noise {
    /// DHLEN for 25519 (section 12.1).
    public static let dhLength = 32
    /// HASHLEN for SHA-256 (section 12.5).
    public static let hashLength = 32
    /// The largest Noise message (section 3).
    public static let maxMessageLength = 65535
    /// The nonce value reserved for REKEY (section 5.1: 2^64-1 must not be used for encryption).
    static let maxNonce = UInt64.max
}

/// One step of a Noise message pattern (rev 34, section 7.1; `psk` from section 9).
public enum NoiseToken: Sendable, Hashable {
    /// Ephemeral public key.
    case e
    /// Static public key (encrypted when a key is set).
    case s
    /// DH(e, re).
    case ee
    /// DH between initiator ephemeral and responder static.
    case es
    /// DH between initiator static and responder ephemeral.
    case se
    /// DH(s, rs).
    case ss
    /// MixKeyAndHash(psk) (section 9.2).
    case psk
}

/// A Noise handshake pattern: pre-messages and message token lists, plus psk modifiers applied.
public struct NoiseHandshakePattern: Sendable, Hashable {
    /// The pattern name as it appears in the protocol name, e.g. `XXpsk3`.
    public var name: String
    /// Tokens the initiator's pre-message (known to the responder in advance) holds: `[]`, `[.s]` or `[.e]`.
    public var initiatorPreMessage: [NoiseToken]
    /// Tokens the responder's pre-message holds.
    public var responderPreMessage: [NoiseToken]
    /// Message token lists; even indices are written by the initiator.
    public var messages: [[NoiseToken]]

    private static func firstIndex(of needle: String, in text: String) -> String.Index? {
        var index = text.startIndex
        while index < text.endIndex {
            if text[index...].hasPrefix(needle) { return index }
            index = text.index(after: index)
        }
        return nil
    }

    /// Whether any psk modifier is present (then `e` tokens also MixKey, section 9.2).
    public var usesPSK: Bool { messages.contains { $0.contains(.psk) } }

    /// Parses a base pattern name with optional psk modifiers (e.g. `XX`, `XXpsk3`, `IKpsk2`, `NNpsk0+psk2`).
    ///
    /// Returns nil for names this engine does not know. Supports the interactive fundamental patterns
    /// of section 7.5 (NN, NK, NX, XN, XK, XX, KN, KK, KX, IN, IK, IX).
    public init?(name: String) {
        var base = name
        var modifiers: [Int] = []
        if let pskStart = Self.firstIndex(of: "psk", in: name) {
            base = String(name[..<pskStart])
            let modifierText = String(name[pskStart...])
            for part in modifierText.split(separator: "+") {
                guard part.hasPrefix("psk"), let index = Int(part.dropFirst(3)) else { return nil }
                modifiers.append(index)
            }
        }
        let table: [String: ([NoiseToken], [NoiseToken], [[NoiseToken]])] = [
            "NN": ([], [], [[.e], [.e, .ee]]),
            "NK": ([], [.s], [[.e, .es], [.e, .ee]]),
            "NX": ([], [], [[.e], [.e, .ee, .s, .es]]),
            "XN": ([], [], [[.e], [.e, .ee], [.s, .se]]),
            "XK": ([], [.s], [[.e, .es], [.e, .ee], [.s, .se]]),
            "XX": ([], [], [[.e], [.e, .ee, .s, .es], [.s, .se]]),
            "KN": ([.s], [], [[.e], [.e, .ee, .se]]),
            "KK": ([.s], [.s], [[.e, .es, .ss], [.e, .ee, .se]]),
            "KX": ([.s], [], [[.e], [.e, .ee, .se, .s, .es]]),
            "IN": ([], [], [[.e, .s], [.e, .ee, .se]]),
            "IK": ([], [.s], [[.e, .es, .s, .ss], [.e, .ee, .se]]),
            "IX": ([], [], [[.e, .s], [.e, .ee, .se, .s, .es]]),
        ]
        guard let (initiatorPre, responderPre, baseMessages) = table[base] else { return nil }
        var messages = baseMessages
        // Section 9.2: psk0 puts a psk token at the start of the first message; pskN (N >= 1) at the end
        // of the Nth message.
        for index in modifiers {
            if index == 0 {
                messages[0].insert(.psk, at: 0)
            } else {
                guard index >= 1, index <= messages.count else { return nil }
                messages[index - 1].append(.psk)
            }
        }
        self.name = name
        self.initiatorPreMessage = initiatorPre
        self.responderPreMessage = responderPre
        self.messages = messages
    }
}

/// An X25519 key pair used by the Noise engine.
public struct NoiseKeyPair: Sendable {
    /// The 32-byte public key.
    public let publicKey: [UInt8]
    /// The 32-byte secret key; keep it in memory only.
    let secretKey: [UInt8]

    /// A fresh key pair from libsodium's CSPRNG.
    public static func generate() throws -> NoiseKeyPair {
        let pair = try Sodium.x25519KeyPair()
        return NoiseKeyPair(publicKey: pair.publicKey, secretKey: pair.secretKey)
    }

    /// The key pair for a given 32-byte secret key (tests and test vectors inject fixed keys this way).
    public init(secretKey: [UInt8]) throws {
        self.publicKey = try Sodium.x25519PublicKey(secretKey: secretKey)
        self.secretKey = secretKey
    }

    private init(publicKey: [UInt8], secretKey: [UInt8]) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }
}

/// Noise CipherState (rev 34, section 5.1): a ChaChaPoly key and a 64-bit nonce counter.
public struct NoiseCipherState: Sendable {
    /// The key, or nil before the first MixKey.
    var key: [UInt8]?
    /// The next nonce.
    public internal(set) var nonce: UInt64 = 0

    /// Creates an empty cipher state.
    public init() {}

    init(key: [UInt8]) {
        self.key = key
    }

    /// Whether a key is set.
    public var hasKey: Bool { key != nil }

    /// ENCRYPT(k, n++, ad, plaintext), or the plaintext unchanged when no key is set (section 5.1).
    public mutating func encrypt(associatedData: [UInt8], plaintext: [UInt8]) throws -> [UInt8] {
        guard let key else { return plaintext }
        guard nonce != Noise.maxNonce else { throw SecurityError(.nonceExhausted, "Noise nonce exhausted") }
        let counter = nonce
        let outputCount = plaintext.count + Sodium.aeadTagByteCount
        // The AEAD writes every output byte: no zero-filling first.
        let output = try [UInt8](unsafeUninitializedCapacity: outputCount) { (buffer, count) in
            try key.withUnsafeBytes { (k) in
                try associatedData.withUnsafeBytes { (ad) in
                    try plaintext.withUnsafeBytes { (p) in
                        try Sodium.aeadEncrypt(
                            key: k, counter: counter, associatedData: ad, plaintext: p,
                            output: UnsafeMutableRawBufferPointer(buffer))
                    }
                }
            }
            count = outputCount
        }
        nonce += 1
        return output
    }

    /// DECRYPT(k, n++, ad, ciphertext); throws `.decryptFailed` (nonce unchanged) when the tag does not verify.
    public mutating func decrypt(associatedData: [UInt8], ciphertext: [UInt8]) throws -> [UInt8] {
        guard let key else { return ciphertext }
        guard nonce != Noise.maxNonce else { throw SecurityError(.nonceExhausted, "Noise nonce exhausted") }
        guard ciphertext.count >= Sodium.aeadTagByteCount else {
            throw SecurityError(.decryptFailed, "ciphertext shorter than the tag")
        }
        var output = [UInt8](repeating: 0, count: ciphertext.count - Sodium.aeadTagByteCount)
        let counter = nonce
        let verified = try key.withUnsafeBytes { (k) in
            try associatedData.withUnsafeBytes { (ad) in
                try ciphertext.withUnsafeBytes { (c) in
                    try output.withUnsafeMutableBytes { (o) in
                        try Sodium.aeadDecrypt(key: k, counter: counter, associatedData: ad, ciphertext: c, output: o)
                    }
                }
            }
        }
        guard verified else { throw SecurityError(.decryptFailed, "AEAD tag did not verify") }
        nonce += 1
        return output
    }

    /// REKEY (section 4.2 and 11.3): k = first 32 bytes of ENCRYPT(k, 2^64-1, empty, 32 zero bytes); n is unchanged.
    public mutating func rekey() throws {
        guard var old = key else { return }
        var output = [UInt8](repeating: 0, count: 32 + Sodium.aeadTagByteCount)
        let zeros = [UInt8](repeating: 0, count: 32)
        try old.withUnsafeBytes { (k) in
            try zeros.withUnsafeBytes { (p) in
                try output.withUnsafeMutableBytes { (o) in
                    try Sodium.aeadEncrypt(
                        key: k, counter: Noise.maxNonce, associatedData: UnsafeRawBufferPointer(start: nil, count: 0),
                        plaintext: p, output: o)
                }
            }
        }
        Sodium.wipe(&old)
        key = Array(output.prefix(32))
        Sodium.wipe(&output)
    }
}

/// Noise SymmetricState (rev 34, section 5.2): chaining key, handshake hash and a CipherState.
struct NoiseSymmetricState: Sendable {
    var cipher = NoiseCipherState()
    var chainingKey: [UInt8]
    var handshakeHash: [UInt8]

    /// InitializeSymmetric(protocol_name).
    init(protocolName: String) throws {
        let name = Array(protocolName.utf8)
        if name.count <= Noise.hashLength {
            handshakeHash = name + [UInt8](repeating: 0, count: Noise.hashLength - name.count)
        } else {
            handshakeHash = try Sodium.sha256(name)
        }
        chainingKey = handshakeHash
    }

    mutating func mixKey(_ inputKeyMaterial: [UInt8]) throws {
        let outputs = try Sodium.hkdf(chainingKey: chainingKey, inputKeyMaterial: inputKeyMaterial, outputCount: 2)
        chainingKey = outputs[0]
        cipher = NoiseCipherState(key: outputs[1])  // HASHLEN is 32, so temp_k needs no truncation.
    }

    mutating func mixHash(_ data: [UInt8]) throws {
        handshakeHash = try Sodium.sha256(handshakeHash, data)
    }

    mutating func mixKeyAndHash(_ inputKeyMaterial: [UInt8]) throws {
        let outputs = try Sodium.hkdf(chainingKey: chainingKey, inputKeyMaterial: inputKeyMaterial, outputCount: 3)
        chainingKey = outputs[0]
        try mixHash(outputs[1])
        cipher = NoiseCipherState(key: outputs[2])
    }

    mutating func encryptAndHash(_ plaintext: [UInt8]) throws -> [UInt8] {
        let ciphertext = try cipher.encrypt(associatedData: handshakeHash, plaintext: plaintext)
        try mixHash(ciphertext)
        return ciphertext
    }

    mutating func decryptAndHash(_ ciphertext: [UInt8]) throws -> [UInt8] {
        let plaintext = try cipher.decrypt(associatedData: handshakeHash, ciphertext: ciphertext)
        try mixHash(ciphertext)
        return plaintext
    }

    /// Split() (section 5.2): two cipher states, initiator-to-responder first.
    func split() throws -> (NoiseCipherState, NoiseCipherState) {
        let outputs = try Sodium.hkdf(chainingKey: chainingKey, inputKeyMaterial: [], outputCount: 2)
        return (NoiseCipherState(key: outputs[0]), NoiseCipherState(key: outputs[1]))
    }
}

/// Noise HandshakeState (rev 34, section 5.3) driven by a token-list pattern.
///
/// Call `writeMessage`/`readMessage` alternately starting with the initiator's write; after the last
/// message, `isComplete` is true and `split()` yields the transport cipher states.
/// Errors: `.decryptFailed` (tag did not verify), `.malformedHandshake` (wrong length or order),
/// `.invalidPublicKey` (all-zero DH), `.invalidArgument` (missing keys or psks).
public struct NoiseHandshakeState: Sendable {
    /// The pattern this handshake runs.
    public let pattern: NoiseHandshakePattern
    /// Whether this side is the initiator.
    public let isInitiator: Bool
    var symmetric: NoiseSymmetricState
    var localStatic: NoiseKeyPair?
    var localEphemeral: NoiseKeyPair?
    /// The remote static public key, once known.
    public private(set) var remoteStatic: [UInt8]?
    /// The remote ephemeral public key, once known.
    public private(set) var remoteEphemeral: [UInt8]?
    var psks: [[UInt8]]
    /// Index of the next message in `pattern.messages`.
    public private(set) var messageIndex = 0

    /// InitializeHandshake (section 5.3).
    ///
    /// - Parameters:
    ///   - protocolName: e.g. `Noise_XXpsk3_25519_ChaChaPoly_SHA256`; only the 25519/ChaChaPoly/SHA256 suite is accepted.
    ///   - localEphemeral: a fixed ephemeral key for test vectors; nil generates one when the `e` token is written.
    ///   - psks: pre-shared keys consumed in order by `psk` tokens (32 bytes each); more can be added with `appendPSK`.
    public init(
        protocolName: String, isInitiator: Bool, prologue: [UInt8], localStatic: NoiseKeyPair? = nil,
        localEphemeral: NoiseKeyPair? = nil, remoteStatic: [UInt8]? = nil, remoteEphemeral: [UInt8]? = nil,
        psks: [[UInt8]] = []
    ) throws {
        let parts = protocolName.split(separator: "_")
        guard parts.count == 5, parts[0] == "Noise", parts[2] == "25519", parts[3] == "ChaChaPoly",
            parts[4] == "SHA256", let pattern = NoiseHandshakePattern(name: String(parts[1]))
        else {
            throw SecurityError(.invalidArgument, "unsupported Noise protocol \(protocolName)")
        }
        guard psks.allSatisfy({ $0.count == 32 }) else {
            throw SecurityError(.invalidArgument, "Noise PSKs must be 32 bytes")
        }
        self.pattern = pattern
        self.isInitiator = isInitiator
        self.symmetric = try NoiseSymmetricState(protocolName: protocolName)
        self.localStatic = localStatic
        self.localEphemeral = localEphemeral
        self.remoteStatic = remoteStatic
        self.remoteEphemeral = remoteEphemeral
        self.psks = psks
        try symmetric.mixHash(prologue)
        // Pre-messages (section 7.1): initiator's first, then responder's, hashed in that order.
        for (tokens, ownedByInitiator) in [(pattern.initiatorPreMessage, true), (pattern.responderPreMessage, false)] {
            for token in tokens {
                let isLocal = ownedByInitiator == isInitiator
                let key: [UInt8]?
                switch token {
                case .s: key = isLocal ? localStatic?.publicKey : remoteStatic
                case .e: key = isLocal ? localEphemeral?.publicKey : remoteEphemeral
                default: key = nil
                }
                guard let key else {
                    throw SecurityError(.invalidArgument, "pre-message key for \(token) missing")
                }
                try symmetric.mixHash(key)
                if token == .e && pattern.usesPSK { try symmetric.mixKey(key) }
            }
        }
    }

    /// Adds a pre-shared key for a later `psk` token (the StateMesh responder learns its epoch from message 1).
    public mutating func appendPSK(_ psk: [UInt8]) throws {
        guard psk.count == 32 else { throw SecurityError(.invalidArgument, "Noise PSKs must be 32 bytes") }
        psks.append(psk)
    }

    /// Whether all handshake messages have been processed.
    public var isComplete: Bool { messageIndex >= pattern.messages.count }

    /// Whether the next message is ours to write.
    public var isMyTurn: Bool { !isComplete && (messageIndex % 2 == 0) == isInitiator }

    /// The handshake hash `h` (channel binding value, section 11.2).
    public var handshakeHash: [UInt8] { symmetric.handshakeHash }

    private func dhPair(_ token: NoiseToken) throws -> ([UInt8], [UInt8]) {
        // For `es` the initiator uses its e with the responder's s; the responder its s with the initiator's e.
        let localIsFirst: Bool
        let (first, second): (NoiseToken, NoiseToken)
        switch token {
        case .ee: (first, second) = (.e, .e)
        case .es: (first, second) = (.e, .s)
        case .se: (first, second) = (.s, .e)
        case .ss: (first, second) = (.s, .s)
        default: throw SecurityError(.invalidArgument, "not a DH token")
        }
        localIsFirst = isInitiator
        let localKind = localIsFirst ? first : second
        let remoteKind = localIsFirst ? second : first
        let local = localKind == .e ? localEphemeral : localStatic
        let remote = remoteKind == .e ? remoteEphemeral : remoteStatic
        guard let local, let remote else {
            throw SecurityError(.malformedHandshake, "key for \(token) not available")
        }
        return (local.secretKey, remote)
    }

    private mutating func mixDH(_ token: NoiseToken) throws {
        let (secret, remote) = try dhPair(token)
        var shared = try Sodium.x25519(secretKey: secret, publicKey: remote)
        defer { Sodium.wipe(&shared) }
        try symmetric.mixKey(shared)
    }

    private mutating func mixPSK() throws {
        guard !psks.isEmpty else { throw SecurityError(.invalidArgument, "no PSK for psk token") }
        var psk = psks.removeFirst()
        defer { Sodium.wipe(&psk) }
        try symmetric.mixKeyAndHash(psk)
    }

    /// WriteMessage(payload) (section 5.3): returns the handshake message bytes.
    public mutating func writeMessage(payload: [UInt8]) throws -> [UInt8] {
        guard isMyTurn else { throw SecurityError(.unexpectedMessage, "not this side's turn to write") }
        var out: [UInt8] = []
        for token in pattern.messages[messageIndex] {
            switch token {
            case .e:
                let ephemeral = try localEphemeral ?? NoiseKeyPair.generate()
                localEphemeral = ephemeral
                out += ephemeral.publicKey
                try symmetric.mixHash(ephemeral.publicKey)
                if pattern.usesPSK { try symmetric.mixKey(ephemeral.publicKey) }  // Section 9.2.
            case .s:
                guard let localStatic else { throw SecurityError(.invalidArgument, "local static key missing") }
                out += try symmetric.encryptAndHash(localStatic.publicKey)
            case .ee, .es, .se, .ss:
                try mixDH(token)
            case .psk:
                try mixPSK()
            }
        }
        out += try symmetric.encryptAndHash(payload)
        guard out.count <= Noise.maxMessageLength else {
            throw SecurityError(.invalidArgument, "Noise message longer than 65535 bytes")
        }
        messageIndex += 1
        return out
    }

    /// ReadMessage(message) (section 5.3): returns the decrypted payload.
    ///
    /// Never traps on hostile input: short messages throw `.malformedHandshake`, forged ones `.decryptFailed`.
    /// After a throw the state is unspecified and must be discarded (Noise section 5.3: abort the handshake).
    public mutating func readMessage(_ message: [UInt8]) throws -> [UInt8] {
        guard !isComplete, !isMyTurn else { throw SecurityError(.unexpectedMessage, "not this side's turn to read") }
        guard message.count <= Noise.maxMessageLength else {
            throw SecurityError(.malformedHandshake, "Noise message longer than 65535 bytes")
        }
        var offset = 0
        func take(_ count: Int) throws -> [UInt8] {
            guard message.count - offset >= count else {
                throw SecurityError(.malformedHandshake, "handshake message truncated at byte \(offset)")
            }
            defer { offset += count }
            return Array(message[offset..<offset + count])
        }
        for token in pattern.messages[messageIndex] {
            switch token {
            case .e:
                let key = try take(Noise.dhLength)
                remoteEphemeral = key
                try symmetric.mixHash(key)
                if pattern.usesPSK { try symmetric.mixKey(key) }  // Section 9.2.
            case .s:
                let length = symmetric.cipher.hasKey ? Noise.dhLength + Sodium.aeadTagByteCount : Noise.dhLength
                remoteStatic = try symmetric.decryptAndHash(try take(length))
            case .ee, .es, .se, .ss:
                try mixDH(token)
            case .psk:
                try mixPSK()
            }
        }
        let rest = Array(message[offset...])
        if symmetric.cipher.hasKey && rest.count < Sodium.aeadTagByteCount {
            throw SecurityError(.malformedHandshake, "handshake payload shorter than the tag")
        }
        let payload = try symmetric.decryptAndHash(rest)
        messageIndex += 1
        return payload
    }

    /// Split() after the final message: `(initiatorToResponder, responderToInitiator)`.
    public func split() throws -> (NoiseCipherState, NoiseCipherState) {
        guard isComplete else { throw SecurityError(.unexpectedMessage, "handshake not complete") }
        return try symmetric.split()
    }
}
