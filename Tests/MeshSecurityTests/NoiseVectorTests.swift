import Foundation
import Testing

@testable import MeshSecurity

/// The cacophony test vectors for the 25519/ChaChaPoly/SHA256 suite, checked byte for byte.
@Suite struct NoiseVectorTests {
    struct Vector: Decodable {
        var protocol_name: String
        var init_prologue: String
        var init_ephemeral: String
        var init_static: String?
        var init_remote_static: String?
        var init_psks: [String]?
        var resp_prologue: String
        var resp_ephemeral: String?
        var resp_static: String?
        var resp_remote_static: String?
        var resp_psks: [String]?
        var handshake_hash: String?
        var messages: [Message]
        struct Message: Decodable {
            var payload: String
            var ciphertext: String
        }
    }
    struct File: Decodable { var vectors: [Vector] }

    static let vectors: [Vector] = {
        let directory = String(#filePath).split(separator: "/").dropLast().joined(separator: "/")
        let path = "/" + directory + "/Vectors/noise-25519-chachapoly-sha256.json"
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return (try? JSONDecoder().decode(File.self, from: data).vectors) ?? []
    }()

    @Test func vectorFileLoadsAndContainsRequiredPatterns() {
        let names = Set(Self.vectors.map(\.protocol_name))
        #expect(names.contains("Noise_XX_25519_ChaChaPoly_SHA256"))
        #expect(names.contains("Noise_XXpsk3_25519_ChaChaPoly_SHA256"))
    }

    /// Every vector in the file: each handshake message, the handshake hash and the transport messages match.
    @Test(arguments: vectors.map(\.protocol_name))
    func vectorMatches(protocolName: String) throws {
        let vector = try #require(Self.vectors.first { $0.protocol_name == protocolName })
        func key(_ hex: String?) throws -> NoiseKeyPair? {
            guard let hex else { return nil }
            return try NoiseKeyPair(secretKey: Fixtures.bytes(hex: hex))
        }
        var initiator = try NoiseHandshakeState(
            protocolName: vector.protocol_name, isInitiator: true, prologue: Fixtures.bytes(hex: vector.init_prologue),
            localStatic: key(vector.init_static), localEphemeral: key(vector.init_ephemeral),
            remoteStatic: vector.init_remote_static.map(Fixtures.bytes(hex:)),
            psks: (vector.init_psks ?? []).map(Fixtures.bytes(hex:)))
        var responder = try NoiseHandshakeState(
            protocolName: vector.protocol_name, isInitiator: false, prologue: Fixtures.bytes(hex: vector.resp_prologue),
            localStatic: key(vector.resp_static), localEphemeral: key(vector.resp_ephemeral),
            remoteStatic: vector.resp_remote_static.map(Fixtures.bytes(hex:)),
            psks: (vector.resp_psks ?? []).map(Fixtures.bytes(hex:)))
        var index = 0
        while !initiator.isComplete {
            let message = vector.messages[index]
            let payload = Fixtures.bytes(hex: message.payload)
            let isInitiatorTurn = index % 2 == 0
            let written = isInitiatorTurn
                ? try initiator.writeMessage(payload: payload) : try responder.writeMessage(payload: payload)
            #expect(Fixtures.hex(written) == message.ciphertext, "handshake message \(index)")
            let read = isInitiatorTurn ? try responder.readMessage(written) : try initiator.readMessage(written)
            #expect(read == payload)
            index += 1
        }
        #expect(responder.isComplete)
        if let hash = vector.handshake_hash {
            #expect(Fixtures.hex(initiator.handshakeHash) == hash)
            #expect(Fixtures.hex(responder.handshakeHash) == hash)
        }
        var (initiatorSend, initiatorReceive) = try initiator.split()
        var (responderReceive, responderSend) = try responder.split()
        while index < vector.messages.count {
            let message = vector.messages[index]
            let payload = Fixtures.bytes(hex: message.payload)
            if index % 2 == 0 {
                let sealed = try initiatorSend.encrypt(associatedData: [], plaintext: payload)
                #expect(Fixtures.hex(sealed) == message.ciphertext, "transport message \(index)")
                #expect(try responderReceive.decrypt(associatedData: [], ciphertext: sealed) == payload)
            } else {
                let sealed = try responderSend.encrypt(associatedData: [], plaintext: payload)
                #expect(Fixtures.hex(sealed) == message.ciphertext, "transport message \(index)")
                #expect(try initiatorReceive.decrypt(associatedData: [], ciphertext: sealed) == payload)
            }
            index += 1
        }
    }

    /// A flipped bit in a vector's handshake message is rejected with `.decryptFailed`.
    @Test func tamperedVectorMessageFails() throws {
        let vector = try #require(Self.vectors.first { $0.protocol_name == "Noise_XX_25519_ChaChaPoly_SHA256" })
        var responder = try NoiseHandshakeState(
            protocolName: vector.protocol_name, isInitiator: false, prologue: Fixtures.bytes(hex: vector.resp_prologue),
            localStatic: try NoiseKeyPair(secretKey: Fixtures.bytes(hex: vector.resp_static!)),
            localEphemeral: try NoiseKeyPair(secretKey: Fixtures.bytes(hex: vector.resp_ephemeral!)))
        // Message 1 of XX is cleartext (no key yet); tamper with the prologue binding instead via message 3's path:
        _ = try responder.readMessage(Fixtures.bytes(hex: vector.messages[0].ciphertext))
        _ = try responder.writeMessage(payload: Fixtures.bytes(hex: vector.messages[1].payload))
        var message3 = Fixtures.bytes(hex: vector.messages[2].ciphertext)
        message3[message3.count - 1] ^= 1
        #expect(throws: SecurityError.self) { _ = try responder.readMessage(message3) }
    }
}

/// Pattern names are parsed defensively: unknown or malformed names are rejected, not trapped on.
@Suite struct NoisePatternTests {
    @Test(arguments: ["XX", "XXpsk3", "IKpsk2", "NNpsk0+psk2", "KK", "NK", "XK", "IX", "KX", "NX", "IN", "KN", "XN"])
    func knownPatternsParse(name: String) {
        #expect(NoiseHandshakePattern(name: name) != nil)
    }

    @Test(arguments: ["", "YY", "XXpsk", "XXpsk-1", "XXpsk9", "XXpskx", "psk0"])
    func malformedPatternsAreRejected(name: String) {
        #expect(NoiseHandshakePattern(name: name) == nil)
    }

    @Test func psk3IsAppendedToTheThirdMessage() throws {
        let pattern = try #require(NoiseHandshakePattern(name: "XXpsk3"))
        #expect(pattern.messages == [[.e], [.e, .ee, .s, .es], [.s, .se, .psk]])
        #expect(pattern.usesPSK)
    }

    @Test func unsupportedSuiteIsRejected() {
        #expect(throws: SecurityError.self) {
            _ = try NoiseHandshakeState(protocolName: "Noise_XX_448_AESGCM_BLAKE2b", isInitiator: true, prologue: [])
        }
    }
}
