import Crypto
import Foundation
import MeshSecurity
import Testing

/// An independent Noise_XXpsk3_25519_ChaChaPoly_SHA256 implementation over swift-crypto (BoringSSL), written
/// from the Noise spec (rev 34) and the StateMesh wire layout only; it shares no code with MeshSecurity.
struct OracleNoise {
    static let protocolName = Array("Noise_XXpsk3_25519_ChaChaPoly_SHA256".utf8)
    var chainingKey: [UInt8]
    var hash: [UInt8]
    var key: [UInt8]?
    var nonce: UInt64 = 0

    init(prologue: [UInt8]) {
        hash = Array(SHA256.hash(data: Self.protocolName))  // name is longer than 32 bytes: hash it
        chainingKey = hash
        mixHash(prologue)
    }

    mutating func mixHash(_ data: [UInt8]) { hash = Array(SHA256.hash(data: hash + data)) }

    static func hmac(_ key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: key)))
    }

    static func hkdf(_ chainingKey: [UInt8], _ input: [UInt8]) -> [[UInt8]] {
        let temp = hmac(chainingKey, input)
        let one = hmac(temp, [1])
        let two = hmac(temp, one + [2])
        let three = hmac(temp, two + [3])
        return [one, two, three]
    }

    mutating func mixKey(_ input: [UInt8]) {
        let out = Self.hkdf(chainingKey, input)
        chainingKey = out[0]
        key = out[1]
        nonce = 0
    }

    mutating func mixKeyAndHash(_ input: [UInt8]) {
        let out = Self.hkdf(chainingKey, input)
        chainingKey = out[0]
        mixHash(out[1])
        key = out[2]
        nonce = 0
    }

    static func nonce(_ n: UInt64) throws -> ChaChaPoly.Nonce {
        var bytes = [UInt8](repeating: 0, count: 4)
        withUnsafeBytes(of: n.littleEndian) { bytes += $0 }
        return try ChaChaPoly.Nonce(data: bytes)
    }

    static func seal(key: [UInt8], nonce n: UInt64, ad: [UInt8], plaintext: [UInt8]) throws -> [UInt8] {
        let box = try ChaChaPoly.seal(plaintext, using: SymmetricKey(data: key), nonce: nonce(n), authenticating: ad)
        return Array(box.ciphertext) + Array(box.tag)
    }

    static func open(key: [UInt8], nonce n: UInt64, ad: [UInt8], ciphertext: [UInt8]) throws -> [UInt8] {
        let box = try ChaChaPoly.SealedBox(
            nonce: nonce(n), ciphertext: ciphertext.dropLast(16), tag: ciphertext.suffix(16))
        return Array(try ChaChaPoly.open(box, using: SymmetricKey(data: key), authenticating: ad))
    }

    mutating func encryptAndHash(_ plaintext: [UInt8]) throws -> [UInt8] {
        guard let key else { mixHash(plaintext); return plaintext }
        let out = try Self.seal(key: key, nonce: nonce, ad: hash, plaintext: plaintext)
        nonce += 1
        mixHash(out)
        return out
    }

    mutating func decryptAndHash(_ ciphertext: [UInt8]) throws -> [UInt8] {
        guard let key else { mixHash(ciphertext); return ciphertext }
        let out = try Self.open(key: key, nonce: nonce, ad: hash, ciphertext: ciphertext)
        nonce += 1
        mixHash(ciphertext)
        return out
    }

    static func dh(_ secret: Curve25519.KeyAgreement.PrivateKey, _ publicKey: [UInt8]) throws -> [UInt8] {
        let shared = try secret.sharedSecretFromKeyAgreement(with: .init(rawRepresentation: publicKey))
        return shared.withUnsafeBytes { Array($0) }
    }

    func split() -> (initiatorToResponder: [UInt8], responderToInitiator: [UInt8]) {
        let out = Self.hkdf(chainingKey, [])
        return (out[0], out[1])
    }
}

/// A StateMesh peer built on the oracle: identity payloads, the handshake in either role, and frames.
struct OraclePeer {
    let signing = Curve25519.Signing.PrivateKey()
    let staticKey = Curve25519.KeyAgreement.PrivateKey()
    let ephemeral = Curve25519.KeyAgreement.PrivateKey()
    var noise = OracleNoise(prologue: Array("StateMesh handshake v1".utf8))
    var remoteEphemeral: [UInt8] = []
    var remoteStatic: [UInt8] = []
    var remoteIdentity: [UInt8] = []
    var sendKey: [UInt8] = []
    var receiveKey: [UInt8] = []
    var sendCounter: UInt64 = 0
    var receiveCounter: UInt64 = 0
    let psk: [UInt8]

    init(psk: [UInt8]) { self.psk = psk }

    var identityPublicKey: [UInt8] { Array(signing.publicKey.rawRepresentation) }
    var nodeID: [UInt8] { Array(SHA256.hash(data: identityPublicKey)) }

    func identityPayload() throws -> [UInt8] {
        let staticPublic = Array(staticKey.publicKey.rawRepresentation)
        let signature = try signing.signature(for: Array("StateMesh X25519 static key binding v1".utf8) + staticPublic)
        return [1] + identityPublicKey + Array(signature)
    }

    mutating func checkIdentity(_ payload: [UInt8]) throws {
        try #require(payload.count == 97 && payload[0] == 1)
        let key = try Curve25519.Signing.PublicKey(rawRepresentation: payload[1..<33])
        try #require(key.isValidSignature(payload[33..<97], for: Array("StateMesh X25519 static key binding v1".utf8) + remoteStatic))
        remoteIdentity = Array(payload[1..<33])
    }

    static func framed(_ body: [UInt8]) -> [UInt8] {
        let n = UInt32(body.count)
        return [UInt8(n >> 24), UInt8(n >> 16 & 255), UInt8(n >> 8 & 255), UInt8(n & 255)] + body
    }

    // Initiator role
    mutating func writeMessage1(epoch: UInt32) throws -> [UInt8] {
        let e = Array(ephemeral.publicKey.rawRepresentation)
        noise.mixHash(e)
        noise.mixKey(e)  // psk modifier: e also mixes the key (rev 34, 9.2)
        var payload: [UInt8] = [1]
        withUnsafeBytes(of: epoch.littleEndian) { payload += $0 }
        return Self.framed(e + (try noise.encryptAndHash(payload)))
    }

    mutating func readMessage2(_ body: [UInt8]) throws {
        remoteEphemeral = Array(body[0..<32])
        noise.mixHash(remoteEphemeral)
        noise.mixKey(remoteEphemeral)
        noise.mixKey(try OracleNoise.dh(ephemeral, remoteEphemeral))  // ee
        remoteStatic = try noise.decryptAndHash(Array(body[32..<80]))  // s
        noise.mixKey(try OracleNoise.dh(ephemeral, remoteStatic))  // es
        try checkIdentity(try noise.decryptAndHash(Array(body[80...])))
    }

    mutating func writeMessage3() throws -> [UInt8] {
        var out = try noise.encryptAndHash(Array(staticKey.publicKey.rawRepresentation))  // s
        noise.mixKey(try OracleNoise.dh(staticKey, remoteEphemeral))  // se
        noise.mixKeyAndHash(psk)  // psk
        out += try noise.encryptAndHash(try identityPayload())
        let keys = noise.split()
        sendKey = keys.initiatorToResponder
        receiveKey = keys.responderToInitiator
        return Self.framed(out)
    }

    // Responder role
    mutating func readMessage1(_ body: [UInt8]) throws -> UInt32 {
        remoteEphemeral = Array(body[0..<32])
        noise.mixHash(remoteEphemeral)
        noise.mixKey(remoteEphemeral)
        let payload = try noise.decryptAndHash(Array(body[32...]))
        return UInt32(payload[1]) | UInt32(payload[2]) << 8 | UInt32(payload[3]) << 16 | UInt32(payload[4]) << 24
    }

    mutating func writeMessage2() throws -> [UInt8] {
        let e = Array(ephemeral.publicKey.rawRepresentation)
        noise.mixHash(e)
        noise.mixKey(e)
        noise.mixKey(try OracleNoise.dh(ephemeral, remoteEphemeral))  // ee
        var out = e + (try noise.encryptAndHash(Array(staticKey.publicKey.rawRepresentation)))  // s
        noise.mixKey(try OracleNoise.dh(staticKey, remoteEphemeral))  // es
        out += try noise.encryptAndHash(try identityPayload())
        return Self.framed(out)
    }

    mutating func readMessage3(_ body: [UInt8]) throws {
        remoteStatic = try noise.decryptAndHash(Array(body[0..<48]))  // s
        noise.mixKey(try OracleNoise.dh(ephemeral, remoteStatic))  // se
        noise.mixKeyAndHash(psk)  // psk
        try checkIdentity(try noise.decryptAndHash(Array(body[48...])))
        let keys = noise.split()
        sendKey = keys.responderToInitiator
        receiveKey = keys.initiatorToResponder
    }

    // Frames: length:u32be counter:u64le flags:u8 ciphertext tag, AD = first 13 bytes; .rekey = 1.
    mutating func sealFrame(_ payload: [UInt8], flags: UInt8) throws -> [UInt8] {
        var header: [UInt8] = []
        withUnsafeBytes(of: UInt32(9 + payload.count + 16).bigEndian) { header += $0 }
        withUnsafeBytes(of: sendCounter.littleEndian) { header += $0 }
        header.append(flags)
        let out = header + (try OracleNoise.seal(key: sendKey, nonce: sendCounter, ad: header, plaintext: payload))
        sendCounter += 1
        if flags & 1 != 0 { sendKey = try Self.rekeyed(sendKey) }
        return out
    }

    mutating func openFrame(_ wire: [UInt8]) throws -> (flags: UInt8, payload: [UInt8]) {
        let header = Array(wire[0..<13])
        let counter = wire[4..<12].withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        try #require(counter == receiveCounter)
        let payload = try OracleNoise.open(key: receiveKey, nonce: counter, ad: header, ciphertext: Array(wire[13...]))
        receiveCounter += 1
        if wire[12] & 1 != 0 { receiveKey = try Self.rekeyed(receiveKey) }
        return (wire[12], payload)
    }

    /// REKEY (rev 34, 4.2): first 32 bytes of ENCRYPT(k, 2^64-1, empty, 32 zero bytes).
    static func rekeyed(_ key: [UInt8]) throws -> [UInt8] {
        Array(try OracleNoise.seal(key: key, nonce: .max, ad: [], plaintext: [UInt8](repeating: 0, count: 32)).prefix(32))
    }
}

/// MeshSecurity interoperates with an independent swift-crypto implementation in both roles, including rekeying.
@Suite struct InteropTests {
    func limits() -> SecurityLimits {
        var limits = SecurityLimits()
        limits.rekeyAfterFrames = 3
        return limits
    }

    @Test func meshInitiatorWithOracleResponder() throws {
        let me = try Fixtures.identity(1)
        var oracle = OraclePeer(psk: Fixtures.clusterKey)
        let oracleID = try NodeID(ed25519PublicKey: oracle.identityPublicKey)
        var policy = try Fixtures.policy(allowing: [])
        policy.allowedPeers.insert(oracleID)
        let now = ContinuousClock.now
        var handshake = try MeshHandshake(role: .initiator, identity: me, admission: policy, limits: limits(), now: now)
        let message1 = try handshake.start()
        #expect(try oracle.readMessage1(Array(message1.dropFirst(4))) == 1)
        let message2 = try oracle.writeMessage2()
        let out = try handshake.receive(Array(message2.dropFirst(4)), now: now)
        let message3 = try #require(out.bytesToSend)
        try oracle.readMessage3(Array(message3.dropFirst(4)))
        #expect(oracle.remoteIdentity == me.publicKey)
        let confirmation = try oracle.sealFrame([], flags: 4)
        var session = try #require(try handshake.receive(Array(confirmation.dropFirst(4)), now: now).session)
        #expect(session.peer == oracleID)
        try exchange(session: &session, oracle: &oracle, now: now)
    }

    @Test func oracleInitiatorWithMeshResponder() throws {
        let me = try Fixtures.identity(2)
        var oracle = OraclePeer(psk: Fixtures.clusterKey)
        var policy = try Fixtures.policy(allowing: [])
        policy.allowedPeers.insert(try NodeID(ed25519PublicKey: oracle.identityPublicKey))
        let now = ContinuousClock.now
        var handshake = try MeshHandshake(role: .responder, identity: me, admission: policy, limits: limits(), now: now)
        let message1 = try oracle.writeMessage1(epoch: 1)
        let message2 = try #require(try handshake.receive(Array(message1.dropFirst(4)), now: now).bytesToSend)
        try oracle.readMessage2(Array(message2.dropFirst(4)))
        #expect(oracle.remoteIdentity == me.publicKey)
        let message3 = try oracle.writeMessage3()
        let out = try handshake.receive(Array(message3.dropFirst(4)), now: now)
        var session = try #require(out.session)
        let confirmation = try oracle.openFrame(try #require(out.bytesToSend))
        #expect(confirmation.flags & 4 != 0 && confirmation.payload.isEmpty)
        try exchange(session: &session, oracle: &oracle, now: now)
    }

    /// Ten messages each way, crossing several rekeys (every 3 frames) on both sides.
    func exchange(session: inout SecureSession, oracle: inout OraclePeer, now: ContinuousClock.Instant) throws {
        for index in 0..<10 {
            let message = Array("mesh \(index)".utf8)
            let wire = try session.seal(message, now: now)
            let opened = try oracle.openFrame(wire)
            #expect(opened.payload == message)
            let reply = Array("oracle \(index)".utf8)
            let oracleWire = try oracle.sealFrame(reply, flags: (index % 3 == 2) ? 1 : 0)
            #expect(try session.open(Array(oracleWire.dropFirst(4))) == reply)
        }
        #expect(session.sendRekeyCount == 3)
        #expect(session.receiveRekeyCount == 3)
    }

    /// The oracle with a different PSK is rejected by a MeshSecurity responder as `.wrongClusterKey`.
    @Test func oracleWithWrongPSKIsRejected() throws {
        let me = try Fixtures.identity(3)
        var oracle = OraclePeer(psk: [UInt8](repeating: 7, count: 32))
        var policy = try Fixtures.policy(allowing: [])
        policy.allowedPeers.insert(try NodeID(ed25519PublicKey: oracle.identityPublicKey))
        let now = ContinuousClock.now
        var handshake = try MeshHandshake(role: .responder, identity: me, admission: policy, now: now)
        let message2 = try #require(try handshake.receive(Array(try oracle.writeMessage1(epoch: 1).dropFirst(4)), now: now).bytesToSend)
        try oracle.readMessage2(Array(message2.dropFirst(4)))
        let message3 = try oracle.writeMessage3()
        let error = try #require(throws: SecurityError.self) { _ = try handshake.receive(Array(message3.dropFirst(4)), now: now) }
        #expect(error.code == .wrongClusterKey)
    }
}
