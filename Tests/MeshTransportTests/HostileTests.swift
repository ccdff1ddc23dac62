import MeshSecurity
import NIOCore
import NIOPosix
import Metrics
import MetricsTestKit
import Testing

@testable import MeshTransport

/// Hostile peers: each case asserts the session closes with the right typed reason and that the node keeps
/// serving a well-behaved peer afterwards.
@Suite(.timeLimit(.minutes(1))) struct HostileTests {
    let server: NodeIdentity
    let good: NodeIdentity
    let mallory: NodeIdentity

    init() throws {
        server = try TestSupport.identity(10)
        good = try TestSupport.identity(11)
        mallory = try TestSupport.identity(12)
    }

    /// A node allowing `good` and `mallory` (mallory holds valid credentials but misbehaves on the wire).
    func startServer(_ configure: (inout MeshTransportConfiguration) -> Void = { _ in }) async throws
        -> (MeshTransport, MeshTransport, Collector)
    {
        let node = try await TestSupport.node(server, allowing: [good, mallory], configure: configure)
        let goodNode = try await TestSupport.node(good, allowing: [server])
        return (node, goodNode, Collector(node))
    }

    /// The node still handshakes and delivers for a good peer.
    func expectStillServes(_ node: MeshTransport, _ goodNode: MeshTransport, _ collector: Collector) async throws {
        if goodNode.connectedPeers.isEmpty {
            try await goodNode.dial(host: "127.0.0.1", port: node.listeningPort!)
        }
        let before = collector.all.filter { $0.peer == good.nodeID }.count
        try await goodNode.send(Array("still here".utf8), to: server.nodeID)
        #expect(await collector.waitFor(count: collector.count + 1 - (collector.count - before) ))
        #expect(await TestSupport.eventually { collector.all.filter { $0.peer == self.good.nodeID }.count == before + 1 })
    }

    func finish(_ nodes: MeshTransport...) async {
        for node in nodes { await node.shutdown() }
    }

    @Test func wrongClusterKeyIsRejected() async throws {
        let (node, goodNode, collector) = try await startServer()
        let peer = try await RawPeer.connect(port: node.listeningPort!)
        await #expect(throws: (any Error).self) {
            _ = try await peer.handshake(
                identity: mallory, policy: TestSupport.policy(allowing: [server], key: [UInt8](repeating: 1, count: 32)))
        }
        #expect(await peer.waitClosed())
        #expect(await TestSupport.eventually { node.counters.count(.wrongClusterKey) == 1 })
        try await expectStillServes(node, goodNode, collector)
        await finish(node, goodNode)
    }

    @Test func unknownIdentityIsRejected() async throws {
        let (node, goodNode, collector) = try await startServer()
        let stranger = try TestSupport.identity(99)
        let peer = try await RawPeer.connect(port: node.listeningPort!)
        await #expect(throws: (any Error).self) {
            _ = try await peer.handshake(identity: stranger, policy: TestSupport.policy(allowing: [server]))
        }
        #expect(await peer.waitClosed())
        #expect(await TestSupport.eventually { node.counters.count(.unknownIdentity) == 1 })
        #expect(node.connectedPeers.isEmpty)
        try await expectStillServes(node, goodNode, collector)
        await finish(node, goodNode)
    }

    @Test func staticKeyNotBoundToIdentityIsRejected() async throws {
        let (node, goodNode, collector) = try await startServer()
        // Mallory's allowed identity with a binding signature made for someone else's static key.
        let forged = mallory.withBinding(try TestSupport.identity(98).binding)
        let peer = try await RawPeer.connect(port: node.listeningPort!)
        await #expect(throws: (any Error).self) {
            _ = try await peer.handshake(identity: forged, policy: TestSupport.policy(allowing: [server]))
        }
        #expect(await peer.waitClosed())
        #expect(await TestSupport.eventually { node.counters.count(.identityNotBound) == 1 })
        try await expectStillServes(node, goodNode, collector)
        await finish(node, goodNode)
    }

    /// Establishes a real session as mallory, then lets `attack` send crafted bytes; asserts `reason`.
    func sessionAttack(
        reason: SecurityError.Code, authenticDuringAttack: Int = 0, _ attack: (RawPeer, inout SecureSession) async throws -> Void
    ) async throws {
        let (node, goodNode, collector) = try await startServer()
        let peer = try await RawPeer.connect(port: node.listeningPort!)
        var session = try await peer.handshake(identity: mallory, policy: TestSupport.policy(allowing: [server]))
        #expect(await node.waitForSession(with: mallory.nodeID))
        // One legitimate message first: it is delivered.
        try await peer.send(try session.seal(Array("hello".utf8), now: .now))
        #expect(await TestSupport.eventually { collector.all.contains { $0.peer == self.mallory.nodeID } })
        try await attack(peer, &session)
        #expect(await peer.waitClosed())
        #expect(await TestSupport.eventually { node.counters.count(reason) == 1 }, "expected \(reason), got \(node.counters.snapshot)")
        #expect(await TestSupport.eventually { !node.connectedPeers.contains(self.mallory.nodeID) })
        // Only authentic, in-order frames were delivered; the hostile frame was not. (The authentic ones were
        // handed to `inbound` before the close, but the collector task may not have taken them yet.)
        let expected = 1 + authenticDuringAttack
        #expect(await TestSupport.eventually { collector.all.filter { $0.peer == self.mallory.nodeID }.count >= expected })
        #expect(collector.all.filter { $0.peer == mallory.nodeID }.count == expected)
        try await expectStillServes(node, goodNode, collector)
        await finish(node, goodNode)
    }

    @Test func flippedBitInFrameClosesWithDecryptFailed() async throws {
        try await sessionAttack(reason: .decryptFailed) { peer, session in
            var frame = try session.seal(Array("tampered".utf8), now: .now)
            frame[15] ^= 0x04  // inside the ciphertext
            try await peer.send(frame)
        }
    }

    @Test func replayedFrameClosesWithReplayedFrame() async throws {
        try await sessionAttack(reason: .replayedFrame, authenticDuringAttack: 1) { peer, session in
            let frame = try session.seal(Array("once".utf8), now: .now)
            try await peer.send(frame)
            try await peer.send(frame)
        }
    }

    @Test func skippedFrameClosesWithReorderedFrame() async throws {
        try await sessionAttack(reason: .reorderedFrame) { peer, session in
            _ = try session.seal(Array("lost".utf8), now: .now)
            try await peer.send(try session.seal(Array("early".utf8), now: .now))
        }
    }

    @Test func truncatedFrameClosesWithTruncatedFrame() async throws {
        try await sessionAttack(reason: .truncatedFrame) { peer, session in
            let frame = try session.seal(Array("cut short".utf8), now: .now)
            try await peer.send(Array(frame.prefix(frame.count - 5)))
            await peer.close()  // the stream ends inside the frame
        }
    }

    @Test func lengthOverCapClosesWithFrameTooLarge() async throws {
        try await sessionAttack(reason: .frameTooLarge) { peer, _ in
            try await peer.send([0x00, 0x01, 0x00, 0x01])  // claims 65,537 bytes; nothing else follows
        }
    }

    @Test func handshakeThatNeverFinishesTimesOut() async throws {
        let (node, goodNode, collector) = try await startServer { $0.limits.handshakeTimeout = .seconds(3) }
        let halfway = try await RawPeer.connect(port: node.listeningPort!)
        var machine = try MeshHandshake(
            role: .initiator, identity: mallory, admission: TestSupport.policy(allowing: [server]), now: .now)
        try await halfway.send(try machine.start())
        _ = try await halfway.nextFrame()  // message 2 arrives; message 3 is never sent
        let silent = try await RawPeer.connect(port: node.listeningPort!)
        #expect(await silent.waitClosed())
        #expect(await halfway.waitClosed())
        #expect(await TestSupport.eventually { node.counters.count(.handshakeTimeout) == 2 })
        #expect(await TestSupport.eventually { node.core.state.withLock { $0.gate.activeCount } == 0 })
        try await expectStillServes(node, goodNode, collector)
        await finish(node, goodNode)
    }

    /// Silent connections hold every handshake slot; more are refused at accept time; closing the holders
    /// frees the slots. (Timeouts freeing slots: `handshakeThatNeverFinishesTimesOut`. A short timeout here
    /// let a loaded event loop accept the fifth connection after the first had timed out, so it got a slot.)
    @Test func concurrentHandshakeCapRejectsExcess() async throws {
        let (node, goodNode, collector) = try await startServer {
            $0.limits.maxConcurrentHandshakes = 4
            $0.limits.handshakeTimeout = .seconds(50)
        }
        var peers: [RawPeer] = []
        for _ in 0..<6 { peers.append(try await RawPeer.connect(port: node.listeningPort!)) }
        // Four silent connections hold every slot; the fifth and sixth are refused at accept time.
        #expect(await TestSupport.eventually { node.counters.count(.tooManyHandshakes) == 2 })
        #expect(node.core.state.withLock { $0.gate.activeCount } == 4)
        for peer in peers { await peer.close() }
        #expect(await TestSupport.eventually { node.counters.count(.handshakeAborted) == 4 })
        #expect(await TestSupport.eventually { node.core.state.withLock { $0.gate.activeCount } == 0 })
        #expect(node.counters.count(.handshakeTimeout) == 0)
        try await expectStillServes(node, goodNode, collector)
        await finish(node, goodNode)
    }

    @Test func perAddressRateLimitRejectsBursts() async throws {
        let (node, goodNode, collector) = try await startServer {
            $0.limits.handshakeBurstPerAddress = 5
            $0.limits.handshakesPerSecondPerAddress = 0.5  // one token per 2 s: slow machines cannot refill mid-burst
        }
        var peers: [RawPeer] = []
        for _ in 0..<10 { peers.append(try await RawPeer.connect(port: node.listeningPort!)) }
        #expect(await TestSupport.eventually { node.counters.count(.rateLimited) >= 3 })
        for peer in peers { await peer.close() }
        // After the bucket refills, new handshakes from the same address are admitted again.
        try await Task.sleep(for: .milliseconds(2200))
        try await expectStillServes(node, goodNode, collector)
        await finish(node, goodNode)
    }

    /// 1,000 connections of garbage (oversized lengths, random handshake bodies, partial frames) are all
    /// rejected, no handshake slot leaks, and an established session keeps working throughout.
    @Test(.timeLimit(.minutes(1))) func thousandGarbageConnections() async throws {
        let (node, goodNode, collector) = try await startServer {
            $0.limits.handshakesPerSecondPerAddress = 100_000
            $0.limits.handshakeBurstPerAddress = 100_000
            $0.limits.maxConcurrentHandshakes = 4096  // this test is about parsing garbage, not the cap
            $0.limits.handshakeTimeout = .seconds(2)
        }
        try await goodNode.dial(host: "127.0.0.1", port: node.listeningPort!)
        let port = node.listeningPort!
        let start = ContinuousClock.now
        var generator = SystemRandomNumberGenerator()
        for batch in 0..<20 {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<50 {
                    let kind = (batch * 50 + index) % 3
                    let random = (0..<64).map { _ in UInt8.random(in: 0...255, using: &generator) }
                    group.addTask {
                        let peer = try await RawPeer.connect(port: port)
                        switch kind {
                        case 0: try? await peer.send([0xFF, 0xFF, 0xFF, 0xFF] + random)  // oversized length
                        case 1: try? await peer.send([0, 0, 0, 53] + Array(random.prefix(53)))  // bogus message 1
                        default: try? await peer.send([0, 0, 0, 60] + Array(random.prefix(10)))  // partial frame
                        }
                        await peer.close()
                    }
                }
                try await group.waitForAll()
            }
            try await goodNode.send([UInt8(batch)], to: server.nodeID)
        }
        let rejected: () -> Int = {
            // A handshake timeout is a rejection too: on a loaded machine a connection's close can reach the
            // server after the (2 s) handshake deadline, which then closes it first.
            [.frameTooLarge, .decryptFailed, .truncatedFrame, .handshakeAborted, .malformedHandshake, .connectionLost,
             .tooManyHandshakes, .handshakeTimeout]
                .map { node.counters.count($0) }.reduce(0, +)
        }
        #expect(await TestSupport.eventually(timeout: .seconds(60)) { rejected() == 1000 }, "\(node.counters.snapshot)")
        #expect(node.counters.count(.frameTooLarge) >= 300)  // a third of the inputs claim 4 GiB
        #expect(await TestSupport.eventually { node.core.state.withLock { $0.gate.activeCount } == 0 })
        #expect(node.connectedPeers == [good.nodeID])
        #expect(await collector.waitFor(count: 20))
        #expect(ContinuousClock.now - start < .seconds(30))
        try await expectStillServes(node, goodNode, collector)
        await finish(node, goodNode)
    }
}

/// Rejections are exported to swift-metrics with the typed reason as a dimension.
@Suite struct MetricsTests {
    /// One process-wide test metrics backend (swift-metrics can be bootstrapped once per process).
    static let metrics: TestMetrics = {
        let metrics = TestMetrics()
        MetricsSystem.bootstrap(metrics)
        return metrics
    }()

    @Test func handshakeFailureIsCountedByReason() async throws {
        let metrics = Self.metrics
        let server = try TestSupport.identity(20), stranger = try TestSupport.identity(21)
        let node = try await TestSupport.node(server, allowing: [])
        let before = metrics.counterTotal(label: "statemesh_transport_handshake_failures", dimensions: [("reason", "unknownIdentity")])
        let peer = try await RawPeer.connect(port: node.listeningPort!)
        await #expect(throws: (any Error).self) {
            _ = try await peer.handshake(identity: stranger, policy: TestSupport.policy(allowing: [server]))
        }
        #expect(await TestSupport.eventually {
            metrics.counterTotal(label: "statemesh_transport_handshake_failures", dimensions: [("reason", "unknownIdentity")]) >= before + 1
        })
        await node.shutdown()
    }
}
