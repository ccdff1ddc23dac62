internal import CSodium

/// Thin, checked wrappers over the libsodium 1.0.18 primitives StateMesh uses.
///
/// Every size constant is compared with libsodium's own size function when the library is
/// initialised, and every return code is checked: a failing call becomes a thrown
/// `SecurityError(.cryptoFailure)`, never a silently ignored status.
enum Sodium {
    static let aeadKeyByteCount = 32
    static let aeadNonceByteCount = 12
    static let aeadTagByteCount = 16
    static let x25519ByteCount = 32
    static let sha256ByteCount = 32
    static let hmacKeyByteCount = 32
    static let ed25519PublicKeyByteCount = 32
    static let ed25519SecretKeyByteCount = 64
    static let ed25519SeedByteCount = 32
    static let ed25519SignatureByteCount = 64

    /// `sodium_init` runs exactly once (Swift guarantees thread-safe lazy initialisation of static lets).
    /// A failure here is a broken deployment (wrong libsodium build), not remote input, so it traps
    /// with a precise message: continuing without a working crypto library is never safe.
    private static let initialised: Bool = {
        precondition(sodium_init() >= 0, "libsodium: sodium_init failed")
        let checks: [(String, Int, Int)] = [
            ("aead key", aeadKeyByteCount, crypto_aead_chacha20poly1305_ietf_keybytes()),
            ("aead nonce", aeadNonceByteCount, crypto_aead_chacha20poly1305_ietf_npubbytes()),
            ("aead tag", aeadTagByteCount, crypto_aead_chacha20poly1305_ietf_abytes()),
            ("x25519 scalar", x25519ByteCount, crypto_scalarmult_scalarbytes()),
            ("x25519 point", x25519ByteCount, crypto_scalarmult_bytes()),
            ("sha256", sha256ByteCount, crypto_hash_sha256_bytes()),
            ("hmac-sha256", sha256ByteCount, crypto_auth_hmacsha256_bytes()),
            ("hmac-sha256 key", hmacKeyByteCount, crypto_auth_hmacsha256_keybytes()),
            ("ed25519 public key", ed25519PublicKeyByteCount, crypto_sign_ed25519_publickeybytes()),
            ("ed25519 secret key", ed25519SecretKeyByteCount, crypto_sign_ed25519_secretkeybytes()),
            ("ed25519 seed", ed25519SeedByteCount, crypto_sign_ed25519_seedbytes()),
            ("ed25519 signature", ed25519SignatureByteCount, crypto_sign_ed25519_bytes()),
        ]
        for (name, ours, theirs) in checks {
            precondition(ours == theirs, "libsodium: \(name) is \(theirs) bytes, StateMesh expects \(ours)")
        }
        return true
    }()

    /// Initialises libsodium on first use; cheap afterwards.
    @inline(__always)
    static func ensureInitialised() {
        _ = initialised
    }

    static func failure(_ what: String) -> SecurityError {
        SecurityError(.cryptoFailure, "libsodium \(what) failed")
    }

    // MARK: Randomness

    /// `count` bytes from libsodium's CSPRNG.
    static func randomBytes(_ count: Int) -> [UInt8] {
        ensureInitialised()
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) }
        return out
    }

    /// A uniformly random integer in `0..<upperBound` (upperBound > 0).
    static func randomUniform(_ upperBound: UInt32) -> UInt32 {
        ensureInitialised()
        return randombytes_uniform(upperBound)
    }

    // MARK: Hashing

    /// SHA-256 of the concatenation of `parts`.
    static func sha256(_ parts: [UInt8]...) throws -> [UInt8] {
        ensureInitialised()
        var state = crypto_hash_sha256_state()
        guard crypto_hash_sha256_init(&state) == 0 else { throw failure("sha256 init") }
        for part in parts {
            let rc = part.withUnsafeBufferPointer { crypto_hash_sha256_update(&state, $0.baseAddress, UInt64($0.count)) }
            guard rc == 0 else { throw failure("sha256 update") }
        }
        var out = [UInt8](repeating: 0, count: sha256ByteCount)
        let rc = out.withUnsafeMutableBufferPointer { crypto_hash_sha256_final(&state, $0.baseAddress!) }
        guard rc == 0 else { throw failure("sha256 final") }
        return out
    }

    /// HMAC-SHA256 with `key` (any length) over the concatenation of `parts`.
    static func hmacSHA256(key: [UInt8], _ parts: [UInt8]...) throws -> [UInt8] {
        ensureInitialised()
        guard !key.isEmpty else { throw SecurityError(.invalidArgument, "HMAC key must not be empty") }
        var state = crypto_auth_hmacsha256_state()
        let rcInit = key.withUnsafeBufferPointer { crypto_auth_hmacsha256_init(&state, $0.baseAddress!, $0.count) }
        guard rcInit == 0 else { throw failure("hmac-sha256 init") }
        for part in parts {
            let rc = part.withUnsafeBufferPointer {
                crypto_auth_hmacsha256_update(&state, $0.baseAddress, UInt64($0.count))
            }
            guard rc == 0 else { throw failure("hmac-sha256 update") }
        }
        var out = [UInt8](repeating: 0, count: sha256ByteCount)
        let rc = out.withUnsafeMutableBufferPointer { crypto_auth_hmacsha256_final(&state, $0.baseAddress!) }
        guard rc == 0 else { throw failure("hmac-sha256 final") }
        return out
    }

    /// Noise HKDF (rev 34, section 4.3) with HMAC-SHA256, returning `outputCount` (2 or 3) outputs of 32 bytes.
    static func hkdf(chainingKey: [UInt8], inputKeyMaterial: [UInt8], outputCount: Int) throws
        -> [[UInt8]]
    {
        let tempKey = try hmacSHA256(key: chainingKey, inputKeyMaterial)
        let output1 = try hmacSHA256(key: tempKey, [0x01])
        let output2 = try hmacSHA256(key: tempKey, output1, [0x02])
        if outputCount == 2 { return [output1, output2] }
        let output3 = try hmacSHA256(key: tempKey, output2, [0x03])
        return [output1, output2, output3]
    }

    // MARK: X25519

    /// A fresh X25519 key pair from libsodium's CSPRNG.
    static func x25519KeyPair() throws -> (publicKey: [UInt8], secretKey: [UInt8]) {
        let secret = randomBytes(x25519ByteCount)
        return (try x25519PublicKey(secretKey: secret), secret)
    }

    /// The X25519 public key for `secretKey`.
    static func x25519PublicKey(secretKey: [UInt8]) throws -> [UInt8] {
        ensureInitialised()
        guard secretKey.count == x25519ByteCount else {
            throw SecurityError(.invalidArgument, "X25519 secret key must be 32 bytes, got \(secretKey.count)")
        }
        var out = [UInt8](repeating: 0, count: x25519ByteCount)
        let rc = out.withUnsafeMutableBufferPointer { o in
            secretKey.withUnsafeBufferPointer { crypto_scalarmult_base(o.baseAddress!, $0.baseAddress!) }
        }
        guard rc == 0 else { throw failure("crypto_scalarmult_base") }
        return out
    }

    /// X25519(secretKey, publicKey); rejects an all-zero result (libsodium returns -1 for it), which a
    /// low-order public key from a hostile peer produces (Noise rev 34, section 12.1 allows rejecting it).
    static func x25519(secretKey: [UInt8], publicKey: [UInt8]) throws -> [UInt8] {
        ensureInitialised()
        guard secretKey.count == x25519ByteCount, publicKey.count == x25519ByteCount else {
            throw SecurityError(.invalidArgument, "X25519 keys must be 32 bytes")
        }
        var out = [UInt8](repeating: 0, count: x25519ByteCount)
        let rc = out.withUnsafeMutableBufferPointer { o in
            secretKey.withUnsafeBufferPointer { s in
                publicKey.withUnsafeBufferPointer { p in crypto_scalarmult(o.baseAddress!, s.baseAddress!, p.baseAddress!) }
            }
        }
        guard rc == 0 else { throw SecurityError(.invalidPublicKey, "X25519 produced the all-zero output") }
        return out
    }

    // MARK: Ed25519

    /// An Ed25519 key pair derived from a 32-byte seed.
    static func ed25519KeyPair(seed: [UInt8]) throws -> (publicKey: [UInt8], secretKey: [UInt8]) {
        ensureInitialised()
        guard seed.count == ed25519SeedByteCount else {
            throw SecurityError(.invalidArgument, "Ed25519 seed must be 32 bytes, got \(seed.count)")
        }
        var publicKey = [UInt8](repeating: 0, count: ed25519PublicKeyByteCount)
        var secretKey = [UInt8](repeating: 0, count: ed25519SecretKeyByteCount)
        let rc = publicKey.withUnsafeMutableBufferPointer { p in
            secretKey.withUnsafeMutableBufferPointer { s in
                seed.withUnsafeBufferPointer { crypto_sign_seed_keypair(p.baseAddress!, s.baseAddress!, $0.baseAddress!) }
            }
        }
        guard rc == 0 else { throw failure("crypto_sign_seed_keypair") }
        return (publicKey, secretKey)
    }

    /// A detached Ed25519 signature of `message` (the concatenation of `parts`).
    static func ed25519Sign(secretKey: [UInt8], message: [UInt8]) throws -> [UInt8] {
        ensureInitialised()
        guard secretKey.count == ed25519SecretKeyByteCount else {
            throw SecurityError(.invalidArgument, "Ed25519 secret key must be 64 bytes")
        }
        var signature = [UInt8](repeating: 0, count: ed25519SignatureByteCount)
        let rc = signature.withUnsafeMutableBufferPointer { sig in
            secretKey.withUnsafeBufferPointer { sk in
                message.withUnsafeBufferPointer { m in
                    crypto_sign_detached(sig.baseAddress!, nil, m.baseAddress, UInt64(m.count), sk.baseAddress!)
                }
            }
        }
        guard rc == 0 else { throw failure("crypto_sign_detached") }
        return signature
    }

    /// Whether `signature` is a valid Ed25519 signature of `message` by `publicKey`.
    static func ed25519Verify(publicKey: [UInt8], message: [UInt8], signature: [UInt8]) -> Bool {
        ensureInitialised()
        guard publicKey.count == ed25519PublicKeyByteCount, signature.count == ed25519SignatureByteCount else {
            return false
        }
        return signature.withUnsafeBufferPointer { sig in
            publicKey.withUnsafeBufferPointer { pk in
                message.withUnsafeBufferPointer { m in
                    crypto_sign_verify_detached(sig.baseAddress!, m.baseAddress, UInt64(m.count), pk.baseAddress!) == 0
                }
            }
        }
    }

    // MARK: ChaCha20-Poly1305 IETF

    /// The Noise nonce for ChaChaPoly (rev 34, section 12.3): 32 bits of zeros then the 64-bit counter little-endian.
    @inline(__always)
    static func withNonce<R>(_ counter: UInt64, _ body: (UnsafePointer<UInt8>) -> R) -> R {
        // Three UInt32s have no padding, unlike (UInt32, UInt64): bytes 4..<12 hold the counter little-endian.
        var nonce: (UInt32, UInt32, UInt32) = (0, UInt32(truncatingIfNeeded: counter).littleEndian,
            UInt32(truncatingIfNeeded: counter >> 32).littleEndian)
        return withUnsafeBytes(of: &nonce) { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// Encrypts `plaintext` into `output` (`plaintext.count + 16` bytes: ciphertext then tag), in place allowed.
    static func aeadEncrypt(
        key: UnsafeRawBufferPointer, counter: UInt64, associatedData: UnsafeRawBufferPointer,
        plaintext: UnsafeRawBufferPointer, output: UnsafeMutableRawBufferPointer
    ) throws {
        ensureInitialised()
        guard key.count == aeadKeyByteCount, output.count == plaintext.count + aeadTagByteCount else {
            throw SecurityError(.invalidArgument, "AEAD encrypt: bad key or output size")
        }
        var outLength: UInt64 = 0
        let rc = withNonce(counter) { nonce in
            crypto_aead_chacha20poly1305_ietf_encrypt(
                output.baseAddress!.assumingMemoryBound(to: UInt8.self), &outLength,
                plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(plaintext.count),
                associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(associatedData.count),
                nil, nonce, key.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        guard rc == 0, outLength == UInt64(output.count) else { throw failure("aead encrypt") }
    }

    /// Verifies the tag at the end of `ciphertext` and only then decrypts into `output` (`ciphertext.count - 16` bytes).
    /// Returns false when the tag does not verify; `output` must then be treated as garbage.
    static func aeadDecrypt(
        key: UnsafeRawBufferPointer, counter: UInt64, associatedData: UnsafeRawBufferPointer,
        ciphertext: UnsafeRawBufferPointer, output: UnsafeMutableRawBufferPointer
    ) throws -> Bool {
        ensureInitialised()
        guard key.count == aeadKeyByteCount, ciphertext.count >= aeadTagByteCount,
            output.count == ciphertext.count - aeadTagByteCount
        else {
            throw SecurityError(.invalidArgument, "AEAD decrypt: bad key or buffer size")
        }
        let messageCount = output.count
        func run(_ destination: UnsafeMutablePointer<UInt8>) -> Int32 {
            withNonce(counter) { nonce in
                crypto_aead_chacha20poly1305_ietf_decrypt_detached(
                    destination, nil,
                    ciphertext.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(messageCount),
                    ciphertext.baseAddress!.assumingMemoryBound(to: UInt8.self) + messageCount,
                    associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(associatedData.count),
                    nonce, key.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        let rc: Int32
        if let base = output.baseAddress, messageCount > 0 {
            rc = run(base.assumingMemoryBound(to: UInt8.self))
        } else {
            var scratch: UInt8 = 0  // a valid destination for an empty message
            rc = withUnsafeMutablePointer(to: &scratch) { run($0) }
        }
        return rc == 0
    }

    /// Overwrites `bytes` with zeros in a way the optimiser cannot remove.
    static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { if let base = $0.baseAddress { sodium_memzero(base, $0.count) } }
    }

    /// Constant-time equality of two equally long byte strings.
    static func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        ensureInitialised()
        guard lhs.count == rhs.count else { return false }
        if lhs.isEmpty { return true }
        return lhs.withUnsafeBytes { l in rhs.withUnsafeBytes { r in sodium_memcmp(l.baseAddress!, r.baseAddress!, l.count) == 0 } }
    }
}
