#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A node's identifier: the full 32-byte SHA-256 of its Ed25519 public key.
///
/// All 32 bytes are kept (no truncation) so collisions are as hard as SHA-256 second preimages;
/// ordering is lexicographic over the bytes, which resolves simultaneous dials deterministically.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The 32 hash bytes.
    public let bytes: [UInt8]

    /// The node ID for an Ed25519 public key: SHA-256(publicKey).
    public init(ed25519PublicKey: [UInt8]) throws {
        guard ed25519PublicKey.count == Sodium.ed25519PublicKeyByteCount else {
            throw SecurityError(.invalidArgument, "Ed25519 public key must be 32 bytes")
        }
        self.bytes = try Sodium.sha256(ed25519PublicKey)
    }

    /// Lexicographic byte order.
    public static func < (lhs: NodeID, rhs: NodeID) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    /// The first 8 bytes in hex (enough to tell nodes apart in logs).
    public var description: String {
        bytes.prefix(8).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// A node's long-term identity: an Ed25519 signing key pair, and the X25519 static key it signs for Noise.
///
/// The X25519 static key used in the handshake is bound to the identity by `binding`, an Ed25519
/// signature over `bindingContext || x25519PublicKey`; peers verify it before admitting the node.
/// Key material stays in memory and in the key file (see `save(to:)`), never in logs.
public struct NodeIdentity: Sendable {
    /// Domain separation for the binding signature, so it can never be confused with another signed message.
    static let bindingContext: [UInt8] = Array("StateMesh X25519 static key binding v1".utf8)

    /// The Ed25519 public key.
    public let publicKey: [UInt8]
    let seed: [UInt8]
    let signingSecretKey: [UInt8]
    /// The X25519 static key pair used as Noise `s`.
    public let staticKeyPair: NoiseKeyPair
    /// Ed25519 signature over `bindingContext || staticKeyPair.publicKey`.
    public let binding: [UInt8]
    /// SHA-256 of `publicKey`.
    public let nodeID: NodeID

    /// A fresh identity from libsodium's CSPRNG.
    public static func generate() throws -> NodeIdentity {
        try NodeIdentity(seed: Sodium.randomBytes(Sodium.ed25519SeedByteCount), staticSecretKey: Sodium.randomBytes(32))
    }

    /// The identity for a 32-byte Ed25519 seed and a 32-byte X25519 secret key.
    public init(seed: [UInt8], staticSecretKey: [UInt8]) throws {
        let pair = try Sodium.ed25519KeyPair(seed: seed)
        self.seed = seed
        self.publicKey = pair.publicKey
        self.signingSecretKey = pair.secretKey
        self.staticKeyPair = try NoiseKeyPair(secretKey: staticSecretKey)
        self.binding = try Sodium.ed25519Sign(
            secretKey: pair.secretKey, message: Self.bindingContext + staticKeyPair.publicKey)
        self.nodeID = try NodeID(ed25519PublicKey: pair.publicKey)
    }

    /// Whether `signature` binds `staticPublicKey` to the Ed25519 key `identityPublicKey`.
    public static func verifyBinding(identityPublicKey: [UInt8], staticPublicKey: [UInt8], signature: [UInt8]) -> Bool {
        Sodium.ed25519Verify(
            publicKey: identityPublicKey, message: bindingContext + staticPublicKey, signature: signature)
    }

    /// A copy whose binding signature is replaced (tests use it to build an identity whose static key is not bound).
    package func withBinding(_ signature: [UInt8]) -> NodeIdentity {
        NodeIdentity(copying: self, binding: signature)
    }

    private init(copying other: NodeIdentity, binding: [UInt8]) {
        publicKey = other.publicKey
        seed = other.seed
        signingSecretKey = other.signingSecretKey
        staticKeyPair = other.staticKeyPair
        nodeID = other.nodeID
        self.binding = binding
    }

    // MARK: Key files

    /// Key file layout: 8-byte magic `SMESHID1`, 32-byte Ed25519 seed, 32-byte X25519 secret key (72 bytes).
    static let fileMagic: [UInt8] = Array("SMESHID1".utf8)
    static let fileByteCount = 72

    /// Writes the identity to `path` with mode 0600 (write to a temporary file, fsync, rename).
    ///
    /// Throws `.keyFileUnreadable` when the file cannot be created or written.
    public func save(to path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Self.fileError(.keyFileUnreadable, "cannot create \(temporary)") }
        var contents = Self.fileMagic + seed + staticKeyPair.secretKey
        defer { Sodium.wipe(&contents) }
        // The umask can only clear bits, but an existing temp file keeps its mode: force 0600.
        guard fchmod(fd, 0o600) == 0 else {
            close(fd)
            throw Self.fileError(.keyFileUnreadable, "cannot chmod \(temporary)")
        }
        let written = contents.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == contents.count, synced else {
            unlink(temporary)
            throw Self.fileError(.keyFileUnreadable, "cannot write \(temporary)")
        }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw Self.fileError(.keyFileUnreadable, "cannot rename \(temporary) to \(path)")
        }
    }

    /// Reads an identity saved by `save(to:)`.
    ///
    /// Throws `.keyFileMissing` (no such file), `.keyFileUnreadable` (permission or I/O error),
    /// `.keyFileInsecurePermissions` (any group or other permission bit set, e.g. world-readable),
    /// or `.keyFileWrongFormat` (not a regular 72-byte file with the right magic).
    public static func load(from path: String) throws -> NodeIdentity {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { throw SecurityError(.keyFileMissing, "identity key file \(path) does not exist") }
            throw fileError(.keyFileUnreadable, "cannot stat \(path)")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw SecurityError(.keyFileWrongFormat, "\(path) is not a regular file")
        }
        guard info.st_mode & 0o077 == 0 else {
            let mode = String(info.st_mode & 0o777, radix: 8)
            throw SecurityError(
                .keyFileInsecurePermissions, "\(path) has mode \(mode); group/other must have no access (chmod 600)")
        }
        guard Int(info.st_size) == fileByteCount else {
            throw SecurityError(.keyFileWrongFormat, "\(path) is \(info.st_size) bytes, expected \(fileByteCount)")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fileError(.keyFileUnreadable, "cannot open \(path)") }
        defer { close(fd) }
        var contents = [UInt8](repeating: 0, count: fileByteCount + 1)
        defer { Sodium.wipe(&contents) }
        let count = contents.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count >= 0 else { throw fileError(.keyFileUnreadable, "cannot read \(path)") }
        guard count == fileByteCount, Array(contents[0..<8]) == fileMagic else {
            throw SecurityError(.keyFileWrongFormat, "\(path) is not a StateMesh identity key file")
        }
        return try NodeIdentity(seed: Array(contents[8..<40]), staticSecretKey: Array(contents[40..<72]))
    }

    private static func fileError(_ code: SecurityError.Code, _ message: String) -> SecurityError {
        let reason = String(cString: strerror(errno))
        return SecurityError(code, "\(message): \(reason)")
    }
}
