import Foundation
import Testing

@testable import MeshSecurity

/// Replays the committed fuzz seeds and every file in `Fuzz/FailCases/<Target>/` through the same checks the
/// libFuzzer harnesses make, so a crash saved there becomes a permanent unit test.
@Suite struct FuzzRegressionTests {
    static let fuzzDirectory: String = {
        let testsDirectory = String(#filePath).split(separator: "/").dropLast(3).joined(separator: "/")
        return "/" + testsDirectory + "/Fuzz"
    }()

    static func inputs(_ target: String) -> [String] {
        var paths: [String] = []
        for kind in ["Corpus", "FailCases"] {
            let directory = "\(fuzzDirectory)/\(kind)/\(target)"
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            paths += names.filter { !$0.hasPrefix(".") }.sorted().map { "\(directory)/\($0)" }
        }
        return paths
    }

    /// The fuzzers' deterministic fixture: fixed identities and ephemeral keys.
    struct Fixture {
        let now = ContinuousClock.now
        let responder: MeshHandshake
        let initiatorAfterStart: MeshHandshake
        let responderAfterMessage1: MeshHandshake
        let initiatorAwaitingConfirmation: MeshHandshake
        let messages: [[UInt8]]
        let receiverSession: SecureSession

        init() throws {
            let alice = try Fixtures.identity(1), bob = try Fixtures.identity(2)
            responder = try MeshHandshake(
                role: .responder, identity: bob, admission: Fixtures.policy(allowing: [alice]), now: now,
                ephemeral: NoiseKeyPair(secretKey: [UInt8](repeating: 22, count: 32)))
            var initiator = try MeshHandshake(
                role: .initiator, identity: alice, admission: Fixtures.policy(allowing: [bob]), now: now,
                ephemeral: NoiseKeyPair(secretKey: [UInt8](repeating: 11, count: 32)))
            let message1 = Array(try initiator.start().dropFirst(4))
            initiatorAfterStart = initiator
            var responder1 = responder
            let message2 = Array(try responder1.receive(message1, now: now).bytesToSend!.dropFirst(4))
            responderAfterMessage1 = responder1
            let message3 = Array(try initiator.receive(message2, now: now).bytesToSend!.dropFirst(4))
            initiatorAwaitingConfirmation = initiator
            let final = try responder1.receive(message3, now: now)
            messages = [message1, message2, message3, Array(final.bytesToSend!.dropFirst(4))]
            receiverSession = final.session!
        }
    }

    @Test(arguments: inputs("FuzzHandshakeMessage"))
    func handshakeInputIsHandled(path: String) throws {
        let fixture = try Fixture()
        let data = try #require(FileManager.default.contents(atPath: path).map { [UInt8]($0) })
        guard let first = data.first else { return }
        let stage = Int(first % 4)
        var machine = [
            fixture.responder, fixture.initiatorAfterStart, fixture.responderAfterMessage1,
            fixture.initiatorAwaitingConfirmation,
        ][stage]
        let body = Array(data.dropFirst())
        do {
            _ = try machine.receive(body, now: fixture.now)
            #expect(body == fixture.messages[stage], "only the genuine message may be accepted")
        } catch {
            #expect(error is SecurityError)
            #expect(body != fixture.messages[stage])
        }
    }

    @Test(arguments: inputs("FuzzFrameDecoder"))
    func frameInputIsHandled(path: String) throws {
        let fixture = try Fixture()
        let data = try #require(FileManager.default.contents(atPath: path).map { [UInt8]($0) })
        guard let first = data.first else { return }
        let chunk = (Int(first & 7) + 1) << Int(first >> 5)
        var decoder = FrameDecoder(maxFrameByteCount: 65536)
        var session = fixture.receiverSession
        var offset = 1
        do {
            while offset < data.count {
                let end = min(data.count, offset + chunk)
                decoder.append(data[offset..<end])
                offset = end
                #expect(decoder.bufferedByteCount <= offset)
                while let body = try decoder.nextFrame() {
                    #expect(body.count <= 65536)
                    _ = try session.open(body)
                }
            }
            try decoder.finish()
        } catch {
            #expect(error is SecurityError)
        }
    }

    /// The seeds include the genuine frames; they open to the messages the seed generator sealed.
    @Test func genuineSeedFramesOpen() throws {
        let fixture = try Fixture()
        let seed = try #require(FileManager.default.contents(atPath: "\(Self.fuzzDirectory)/Corpus/FuzzFrameDecoder/seed-0"))
        var decoder = FrameDecoder()
        decoder.append(Array(seed.dropFirst()))
        var session = fixture.receiverSession
        let body = try #require(try decoder.nextFrame())
        #expect(try session.open(body) == Array("hello mesh".utf8))
    }
}
