/// A typed failure from MeshSecurity or MeshTransport: a stable, extensible code plus a human-readable message.
///
/// Codes are static members of `SecurityError.Code` (not a public enum) so new reasons can be added
/// without breaking callers that switch over them. Every code that closes a session is also counted
/// in `SecurityCounters`.
public struct SecurityError: Error, Sendable, CustomStringConvertible {
    /// The stable reason for the failure; compare with `==` against the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The short, stable name of the code, used as a metrics dimension and log value.
        public let name: String

        /// Creates a code with a stable name; prefer the predefined static members.
        public init(_ name: String) { self.name = name }

        /// The stable name of the code.
        public var description: String { name }

        // MARK: Session-closing reasons
        /// AEAD verification of the handshake failed where the cluster pre-shared key is mixed in (wrong PSK or epoch).
        public static let wrongClusterKey = Code("wrongClusterKey")
        /// An AEAD tag did not verify (forged or corrupted bytes).
        public static let decryptFailed = Code("decryptFailed")
        /// The peer's identity is not in the allow-list, or is not the identity that was expected.
        public static let unknownIdentity = Code("unknownIdentity")
        /// The peer's Ed25519 signature over its X25519 static key did not verify.
        public static let identityNotBound = Code("identityNotBound")
        /// A frame carried a counter lower than the next expected one (replay).
        public static let replayedFrame = Code("replayedFrame")
        /// A frame carried a counter higher than the next expected one (frames lost or reordered).
        public static let reorderedFrame = Code("reorderedFrame")
        /// A frame was shorter than its header and tag, or the connection ended inside a frame.
        public static let truncatedFrame = Code("truncatedFrame")
        /// A length prefix claimed more than the frame size cap.
        public static let frameTooLarge = Code("frameTooLarge")
        /// A reassembled message would exceed the message size cap.
        public static let messageTooLarge = Code("messageTooLarge")
        /// An authenticated frame had an invalid header (unknown flag bits, misplaced confirmation).
        public static let malformedFrame = Code("malformedFrame")
        /// The handshake did not finish within the configured timeout.
        public static let handshakeTimeout = Code("handshakeTimeout")
        /// The cap on concurrent handshakes was reached.
        public static let tooManyHandshakes = Code("tooManyHandshakes")
        /// The per-address handshake rate limit was exceeded.
        public static let rateLimited = Code("rateLimited")
        /// A handshake message had the wrong length, version or structure.
        public static let malformedHandshake = Code("malformedHandshake")
        /// A Diffie-Hellman result was all zeros (low-order point from the peer).
        public static let invalidPublicKey = Code("invalidPublicKey")
        /// The connection closed before the handshake finished.
        public static let handshakeAborted = Code("handshakeAborted")
        /// A message arrived in a state that does not accept it (e.g. after failure).
        public static let unexpectedMessage = Code("unexpectedMessage")
        /// The 64-bit nonce counter is exhausted; the session must be replaced.
        public static let nonceExhausted = Code("nonceExhausted")
        /// The connection failed for a reason outside the protocol (reset, I/O error).
        public static let connectionLost = Code("connectionLost")
        /// A newer session to the same peer replaced this one (simultaneous dial resolution).
        public static let duplicateSession = Code("duplicateSession")

        // MARK: Local failures
        /// A libsodium call returned an error or libsodium is unusable.
        public static let cryptoFailure = Code("cryptoFailure")
        /// The identity key file does not exist.
        public static let keyFileMissing = Code("keyFileMissing")
        /// The identity key file could not be read or written.
        public static let keyFileUnreadable = Code("keyFileUnreadable")
        /// The identity key file has the wrong size, magic or contents.
        public static let keyFileWrongFormat = Code("keyFileWrongFormat")
        /// The identity key file is readable or writable by group or others.
        public static let keyFileInsecurePermissions = Code("keyFileInsecurePermissions")
        /// A key or argument handed in by the caller had the wrong size or value.
        public static let invalidArgument = Code("invalidArgument")
        /// No session to the requested peer exists.
        public static let peerNotConnected = Code("peerNotConnected")
        /// The transport has been shut down.
        public static let shutDown = Code("shutDown")
    }

    /// The stable reason.
    public var code: Code
    /// What went wrong and where, for logs.
    public var message: String
    /// The underlying error, if any.
    public var cause: (any Error & Sendable)?

    /// Creates an error with a code, a message and an optional cause.
    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// `code: message (cause)`.
    public var description: String {
        if let cause { return "\(code): \(message) (cause: \(cause))" }
        return "\(code): \(message)"
    }
}
