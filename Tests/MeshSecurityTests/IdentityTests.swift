import Foundation
import Testing

@testable import MeshSecurity

/// Identity keys, node IDs and key files with safe permissions.
@Suite final class IdentityTests {
    /// The directories `temporaryPath` made for this test, removed when it ends.
    private var directories: [URL] = []

    deinit {
        for directory in directories { try? FileManager.default.removeItem(at: directory) }
    }

    func temporaryPath(_ name: String) -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("meshsec-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        directories.append(directory)
        return directory.appendingPathComponent(name).path
    }

    @Test func nodeIDIsSHA256OfThePublicKey() throws {
        let identity = try NodeIdentity.generate()
        #expect(identity.nodeID.bytes == (try Sodium.sha256(identity.publicKey)))
        #expect(identity.nodeID.bytes.count == 32)
        #expect(NodeIdentity.verifyBinding(
            identityPublicKey: identity.publicKey, staticPublicKey: identity.staticKeyPair.publicKey,
            signature: identity.binding))
        #expect(try NodeIdentity.generate().nodeID != identity.nodeID)
    }

    @Test func saveAndLoadRoundTripWithMode0600() throws {
        let path = temporaryPath("node.key")
        let identity = try NodeIdentity.generate()
        try identity.save(to: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let loaded = try NodeIdentity.load(from: path)
        #expect(loaded.nodeID == identity.nodeID)
        #expect(loaded.staticKeyPair.publicKey == identity.staticKeyPair.publicKey)
        // Saving again over an existing file keeps 0600.
        try identity.save(to: path)
        #expect((try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) == 0o600)
    }

    func loadError(_ path: String) throws -> SecurityError.Code {
        try #require(throws: SecurityError.self) { _ = try NodeIdentity.load(from: path) }.code
    }

    @Test func missingFileIsKeyFileMissing() throws {
        #expect(try loadError(temporaryPath("absent.key")) == .keyFileMissing)
    }

    @Test(arguments: [0o644, 0o640, 0o604, 0o660, 0o606])
    func groupOrWorldAccessIsRejected(mode: Int) throws {
        let path = temporaryPath("node.key")
        try NodeIdentity.generate().save(to: path)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        #expect(try loadError(path) == .keyFileInsecurePermissions)
    }

    @Test(arguments: [0, 71, 73, 1000])
    func wrongSizeIsWrongFormat(size: Int) throws {
        let path = temporaryPath("node.key")
        _ = FileManager.default.createFile(
            atPath: path, contents: Data(repeating: 1, count: size), attributes: [.posixPermissions: 0o600])
        #expect(try loadError(path) == .keyFileWrongFormat)
    }

    @Test func wrongMagicIsWrongFormat() throws {
        let path = temporaryPath("node.key")
        _ = FileManager.default.createFile(
            atPath: path, contents: Data(repeating: 1, count: 72), attributes: [.posixPermissions: 0o600])
        #expect(try loadError(path) == .keyFileWrongFormat)
    }

    @Test func directoryIsWrongFormat() throws {
        let path = temporaryPath("dir.key")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: path)
        #expect(try loadError(path) == .keyFileWrongFormat)
    }

    /// Root reads any file regardless of mode, so this case only runs as a normal user.
    @Test(.enabled(if: getuid() != 0)) func unreadableFileIsKeyFileUnreadable() throws {
        let path = temporaryPath("node.key")
        try NodeIdentity.generate().save(to: path)
        try FileManager.default.setAttributes([.posixPermissions: 0o000], ofItemAtPath: path)
        #expect(try loadError(path) == .keyFileUnreadable)
    }

    @Test func unwritableDirectoryIsReported() throws {
        let error = try #require(throws: SecurityError.self) {
            try NodeIdentity.generate().save(to: "/nonexistent-dir-statemesh/node.key")
        }
        #expect(error.code == .keyFileUnreadable)
    }
}

/// Handshake admission control: concurrency cap and per-address token buckets.
@Suite struct HandshakeGateTests {
    let now = ContinuousClock.now

    @Test func concurrencyCapAndRelease() throws {
        var limits = SecurityLimits()
        limits.maxConcurrentHandshakes = 2
        var gate = HandshakeGate(limits: limits)
        try gate.admit(address: "a", now: now)
        try gate.admit(address: "b", now: now)
        #expect(throws: SecurityError.self) { try gate.admit(address: "c", now: now) }
        gate.finish()
        try gate.admit(address: "c", now: now)
        #expect(gate.activeCount == 2)
    }

    @Test func perAddressRateLimitRefills() throws {
        var limits = SecurityLimits()
        limits.handshakeBurstPerAddress = 3
        limits.handshakesPerSecondPerAddress = 1
        var gate = HandshakeGate(limits: limits)
        for _ in 0..<3 {
            try gate.admit(address: "10.0.0.1", now: now)
            gate.finish()
        }
        let error = try #require(throws: SecurityError.self) { try gate.admit(address: "10.0.0.1", now: now) }
        #expect(error.code == .rateLimited)
        try gate.admit(address: "10.0.0.2", now: now)  // other addresses unaffected
        try gate.admit(address: "10.0.0.1", now: now.advanced(by: .milliseconds(1100)))
    }

    @Test func trackedAddressesStayBounded() throws {
        var limits = SecurityLimits()
        limits.maxTrackedAddresses = 10
        limits.handshakeBurstPerAddress = 2
        limits.handshakesPerSecondPerAddress = 1000
        var gate = HandshakeGate(limits: limits)
        for index in 0..<100 {
            try gate.admit(address: "host-\(index)", now: now.advanced(by: .milliseconds(index * 10)))
            gate.finish()
            #expect(gate.trackedAddressCount <= 10)
        }
    }
}

/// The bounded length-prefix decoder.
@Suite struct FrameDecoderTests {
    @Test func oversizedLengthIsRejectedBeforeTheBodyArrives() throws {
        var decoder = FrameDecoder(maxFrameByteCount: 65536)
        decoder.append([0x00, 0x01, 0x00, 0x01])  // 65537
        let error = try #require(throws: SecurityError.self) { _ = try decoder.nextFrame() }
        #expect(error.code == .frameTooLarge)
        var huge = FrameDecoder()
        huge.append([0xFF, 0xFF, 0xFF, 0xFF])
        #expect(throws: SecurityError.self) { _ = try huge.nextFrame() }
    }

    @Test func exactCapIsAccepted() throws {
        var decoder = FrameDecoder(maxFrameByteCount: 65536)
        decoder.append([0x00, 0x01, 0x00, 0x00] + [UInt8](repeating: 7, count: 65536))
        #expect(try decoder.nextFrame()?.count == 65536)
    }

    @Test func oneByteAtATimeYieldsTheSameFrames() throws {
        let frames: [[UInt8]] = [[1], [2, 3], [UInt8](repeating: 9, count: 300)]
        var wire: [UInt8] = []
        for frame in frames {
            let n = UInt32(frame.count)
            wire += [UInt8(n >> 24), UInt8(n >> 16 & 255), UInt8(n >> 8 & 255), UInt8(n & 255)] + frame
        }
        var decoder = FrameDecoder()
        var out: [[UInt8]] = []
        for byte in wire {
            decoder.append([byte])
            while let frame = try decoder.nextFrame() { out.append(frame) }
        }
        #expect(out == frames)
        try decoder.finish()
    }

    @Test func endOfStreamInsideAFrameIsTruncated() throws {
        var decoder = FrameDecoder()
        decoder.append([0, 0, 0, 10, 1, 2])
        #expect(try decoder.nextFrame() == nil)
        let error = try #require(throws: SecurityError.self) { try decoder.finish() }
        #expect(error.code == .truncatedFrame)
    }

    @Test func zeroLengthIsTruncated() throws {
        var decoder = FrameDecoder()
        decoder.append([0, 0, 0, 0])
        let error = try #require(throws: SecurityError.self) { _ = try decoder.nextFrame() }
        #expect(error.code == .truncatedFrame)
    }
}
