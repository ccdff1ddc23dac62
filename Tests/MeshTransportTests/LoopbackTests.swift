import MeshSecurity
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import MeshTransport

/// Real TCP connections on 127.0.0.1 between several nodes.
@Suite(.timeLimit(.minutes(1))) struct LoopbackTests {
    /// Three nodes connect pairwise and every message arrives once, in order, tagged with its sender.
    @Test func threeNodesExchangeMessages() async throws {
        let ids = try (1...3).map { try TestSupport.identity(UInt8($0)) }
        var nodes: [MeshTransport] = []
        for id in ids { nodes.append(try await TestSupport.node(id, allowing: ids.filter { $0.nodeID != id.nodeID })) }
        let collectors = nodes.map(Collector.init)
        try await nodes[0].dial(host: "127.0.0.1", port: nodes[1].listeningPort!)
        try await nodes[1].dial(host: "127.0.0.1", port: nodes[2].listeningPort!)
        try await nodes[2].dial(host: "127.0.0.1", port: nodes[0].listeningPort!)
        for (index, node) in nodes.enumerated() {
            for other in nodes where other !== node {
                #expect(await node.waitForSession(with: other.nodeID))
                for sequence in 0..<20 {
                    try await node.send(Array("\(index)-\(sequence)".utf8) + [UInt8](repeating: 1, count: sequence * 100), to: other.nodeID)
                }
            }
        }
        for (index, collector) in collectors.enumerated() {
            #expect(await collector.waitFor(count: 40))
            let byPeer = Dictionary(grouping: collector.all, by: \.peer)
            #expect(byPeer.count == 2)
            for (peer, messages) in byPeer {
                let senderIndex = nodes.firstIndex { $0.nodeID == peer }!
                #expect(senderIndex != index)
                #expect(messages.map { String(decoding: $0.bytes.prefix { $0 != 1 }, as: UTF8.self) }
                    == (0..<20).map { "\(senderIndex)-\($0)" })
            }
        }
        for node in nodes { await node.shutdown() }
    }

    /// `receiveInbound`: every message, in order, on the receiver's loop, counted as taken (nothing left
    /// waiting, reading not paused), whether the sessions run on that loop (handed over within the read)
    /// or on NIO's shared group (handed over through the loop); messages that arrived before the receiver
    /// was installed come first.
    @Test(arguments: [true, false]) func receiverOnALoopGetsEveryMessageInOrder(sessionsOnTheLoop: Bool) async throws {
        let a = try TestSupport.identity(1), b = try TestSupport.identity(2)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let nodeA = try await TestSupport.node(a, allowing: [b])
        let nodeB = try MeshTransport(
            identity: b, admission: TestSupport.policy(allowing: [a]),
            configuration: TestSupport.configuration { $0.inboundBufferLimit = 16 },
            eventLoopGroup: sessionsOnTheLoop ? loop : MultiThreadedEventLoopGroup.singleton, logger: TestSupport.logger)
        try await nodeB.start()
        try await nodeA.dial(host: "127.0.0.1", port: nodeB.listeningPort!)
        let early = (0..<10).map { [UInt8(truncatingIfNeeded: $0), 0xEE] }
        try await nodeA.send(contentsOf: early, to: b.nodeID)
        #expect(await TestSupport.eventually { nodeB.core.inboundQueueState(for: a.nodeID)?.messageCount == 10 })

        let received = Mutex<[[UInt8]]>([])
        let offLoop = Atomic<Int>(0)
        try await loop.submit {
            nodeB.receiveInbound(on: loop) { message in
                if !loop.inEventLoop { offLoop.add(1, ordering: .relaxed) }
                #expect(message.peer == a.nodeID)
                received.withLock { $0.append(message.bytes) }
            }
        }.get()
        // Many slices, messages over several frames, far more than `inboundBufferLimit`.
        let burst = (0..<400).map { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] + [UInt8](repeating: 7, count: ($0 % 20) * 9_000) }
        try await nodeA.send(contentsOf: burst, to: b.nodeID)
        #expect(await TestSupport.eventually { received.withLock { $0.count } == early.count + burst.count })
        #expect(received.withLock { $0 } == early + burst)
        #expect(offLoop.load(ordering: .relaxed) == 0)
        let queue = nodeB.core.inboundQueueState(for: a.nodeID)
        #expect(queue?.messageCount == 0 && queue?.byteCount == 0 && queue?.isPaused == false)
        await nodeA.shutdown()
        await nodeB.shutdown()
        try await group.shutdownGracefully()
    }

    /// Large messages (fragmented over several 64 KiB frames) arrive intact.
    @Test func largeMessagesArriveIntact() async throws {
        let a = try TestSupport.identity(1), b = try TestSupport.identity(2)
        let nodeA = try await TestSupport.node(a, allowing: [b])
        let nodeB = try await TestSupport.node(b, allowing: [a])
        let collector = Collector(nodeB)
        try await nodeA.dial(host: "127.0.0.1", port: nodeB.listeningPort!)
        let message = (0..<500_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        try await nodeA.send(message, to: b.nodeID)
        #expect(await collector.waitFor(count: 1))
        #expect(collector.all.first?.bytes == message)
        await nodeA.shutdown()
        await nodeB.shutdown()
    }

    /// Both nodes dial each other at once; afterwards each has exactly one session, the same TCP
    /// connection on both sides, and messages flow.
    @Test func simultaneousDialsResolveToOneSession() async throws {
        let a = try TestSupport.identity(1), b = try TestSupport.identity(2)
        let nodeA = try await TestSupport.node(a, allowing: [b])
        let nodeB = try await TestSupport.node(b, allowing: [a])
        let collectorB = Collector(nodeB)
        async let first: NodeID? = try? nodeA.dial(host: "127.0.0.1", port: nodeB.listeningPort!)
        async let second: NodeID? = try? nodeB.dial(host: "127.0.0.1", port: nodeA.listeningPort!)
        _ = await (first, second)
        #expect(await nodeA.waitForSession(with: b.nodeID))
        #expect(await nodeB.waitForSession(with: a.nodeID))
        // The surviving connection is the same on both ends: A's local port is B's remote port or vice versa.
        let channelA = try #require(nodeA.core.channel(for: b.nodeID))
        let channelB = try #require(nodeB.core.channel(for: a.nodeID))
        #expect(channelA.localAddress?.port == channelB.remoteAddress?.port)
        #expect(channelA.remoteAddress?.port == channelB.localAddress?.port)
        try await nodeA.send([1, 2, 3], to: b.nodeID)
        #expect(await collectorB.waitFor(count: 1))
        await nodeA.shutdown()
        await nodeB.shutdown()
    }

    /// A maintained connection comes back after the session drops.
    @Test func maintainedConnectionReconnects() async throws {
        let a = try TestSupport.identity(1), b = try TestSupport.identity(2)
        let nodeA = try await TestSupport.node(a, allowing: [b])
        let nodeB = try await TestSupport.node(b, allowing: [a])
        nodeA.maintainConnection(host: "127.0.0.1", port: nodeB.listeningPort!, expectedPeer: b.nodeID)
        #expect(await nodeA.waitForSession(with: b.nodeID))
        let first = try #require(nodeA.core.channel(for: b.nodeID))
        try await first.close()
        #expect(await TestSupport.eventually {
            guard let channel = nodeA.core.channel(for: b.nodeID) else { return false }
            return channel !== first
        })
        await nodeA.shutdown()
        await nodeB.shutdown()
    }

    @Test func backoffIsJitteredAndBounded() throws {
        let transport = try MeshTransport(
            identity: try TestSupport.identity(1), admission: TestSupport.policy(allowing: []),
            configuration: TestSupport.configuration { $0.reconnectInitialDelay = .milliseconds(10); $0.reconnectMaxDelay = .seconds(1) })
        var seen = Set<Duration>()
        for attempt in 0..<50 {
            let delay = transport.core.backoffDelay(attempt: attempt)
            #expect(delay >= .zero && delay <= .seconds(1))
            if attempt < 3 { #expect(delay <= .milliseconds(10) * (1 << attempt)) }
            seen.insert(delay)
        }
        #expect(seen.count > 10)
    }

    /// Sending to a peer with no session fails with `.peerNotConnected`.
    @Test func sendWithoutSessionFails() async throws {
        let node = try await TestSupport.node(try TestSupport.identity(1), allowing: [])
        let error = await #expect(throws: SecurityError.self) {
            try await node.send([1], to: try TestSupport.identity(2).nodeID)
        }
        #expect(error?.code == .peerNotConnected)
        await node.shutdown()
    }

    /// Graceful shutdown: messages already sent are delivered, then the stream finishes and sends fail.
    @Test func gracefulShutdownDeliversSentMessages() async throws {
        let a = try TestSupport.identity(1), b = try TestSupport.identity(2)
        let nodeA = try await TestSupport.node(a, allowing: [b])
        let nodeB = try await TestSupport.node(b, allowing: [a])
        let collector = Collector(nodeB)
        try await nodeA.dial(host: "127.0.0.1", port: nodeB.listeningPort!)
        for index in 0..<200 { try await nodeA.send([UInt8(index % 256)], to: b.nodeID) }
        await nodeA.shutdown()
        #expect(await collector.waitFor(count: 200))
        #expect(await #expect(throws: SecurityError.self) { try await nodeA.send([1], to: b.nodeID) }?.code == .peerNotConnected)
        await nodeB.shutdown()
        await collector.task.value  // the inbound stream finished
    }

    /// Key rotation under traffic (install, use, remove) drops no message and keeps admitting new sessions.
    @Test func keyRotationUnderTrafficDropsNothing() async throws {
        let ids = try (1...3).map { try TestSupport.identity(UInt8($0)) }
        var nodes: [MeshTransport] = []
        for id in ids { nodes.append(try await TestSupport.node(id, allowing: ids)) }
        let collector = Collector(nodes[1])
        try await nodes[0].dial(host: "127.0.0.1", port: nodes[1].listeningPort!)
        let total = 3000
        let senderNode = nodes[0]
        let receiverID = ids[1].nodeID
        let sender = Task {
            for index in 0..<total {
                try await senderNode.send(withUnsafeBytes(of: UInt32(index).littleEndian, Array.init), to: receiverID)
                if index % 100 == 0 { await Task.yield() }
            }
        }
        let newKey = [UInt8](repeating: 0x99, count: 32)
        // Phase 1: every node accepts epoch 2.
        for node in nodes { try node.updateAdmission { try $0.installClusterKey(newKey, epoch: 2) } }
        // Phase 2: every node dials with epoch 2; a new handshake under epoch 2 succeeds during traffic.
        for node in nodes { try node.updateAdmission { try $0.useClusterKey(epoch: 2) } }
        try await nodes[2].dial(host: "127.0.0.1", port: nodes[1].listeningPort!)
        // Phase 3: epoch 1 is removed everywhere; a node still dialing with epoch 1 is rejected.
        for node in nodes { try node.updateAdmission { try $0.removeClusterKey(epoch: 1) } }
        try await sender.value
        #expect(await collector.waitFor(count: total))
        let fromSender = collector.all.filter { $0.peer == ids[0].nodeID }
        #expect(fromSender.map { $0.bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) } } == (0..<UInt32(total)).map { $0 })
        let stale = try MeshTransport(
            identity: ids[0], admission: TestSupport.policy(allowing: ids), configuration: TestSupport.configuration(),
            logger: TestSupport.logger)
        await #expect(throws: (any Error).self) { try await stale.dial(host: "127.0.0.1", port: nodes[1].listeningPort!) }
        #expect(await TestSupport.eventually { nodes[1].counters.count(.wrongClusterKey) == 1 })
        await stale.shutdown()
        for node in nodes { await node.shutdown() }
    }
}

/// Batched sends keep order and arrive completely.
@Suite struct BatchSendTests {
    @Test func batchedSendsArriveInOrder() async throws {
        let a = try TestSupport.identity(1), b = try TestSupport.identity(2)
        let nodeA = try await TestSupport.node(a, allowing: [b])
        let nodeB = try await TestSupport.node(b, allowing: [a])
        let collector = Collector(nodeB)
        try await nodeA.dial(host: "127.0.0.1", port: nodeB.listeningPort!)
        let batch = (0..<300).map { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] + [UInt8](repeating: 0, count: $0 * 10) }
        try await nodeA.send(contentsOf: batch, to: b.nodeID)
        #expect(await collector.waitFor(count: 300))
        #expect(collector.all.map(\.bytes) == batch)
        // A burst of many slices (about 4.8 MiB, 19 slices of 256 KiB): every message, in order.
        let long = (0..<240).map { [UInt8(truncatingIfNeeded: $0)] + [UInt8](repeating: UInt8(truncatingIfNeeded: $0 * 7), count: 20_000) }
        try await nodeA.send(contentsOf: long, to: b.nodeID)
        #expect(await collector.waitFor(count: 300 + long.count))
        #expect(Array(collector.all.map(\.bytes).dropFirst(300)) == long)
        await nodeA.shutdown()
        await nodeB.shutdown()
    }

    /// A burst the peer stops reading, then a session that closes under it: the send throws instead of
    /// waiting forever, and the sender keeps working.
    @Test(.timeLimit(.minutes(1))) func burstFailsWhenTheSessionClosesMidway() async throws {
        let a = try TestSupport.identity(1), b = try TestSupport.identity(2)
        let nodeA = try await TestSupport.node(a, allowing: [b])
        let nodeB = try await TestSupport.node(b, allowing: [a]) { $0.inboundBufferLimit = 4 }
        try await nodeA.dial(host: "127.0.0.1", port: nodeB.listeningPort!)
        #expect(await nodeB.waitForSession(with: a.nodeID))
        let burst = (0..<256).map { [UInt8(truncatingIfNeeded: $0)] + [UInt8](repeating: 0x33, count: 65_535) }
        let finished = Mutex(false)
        let sending = Task {
            defer { finished.withLock { $0 = true } }
            try await nodeA.send(contentsOf: burst, to: b.nodeID)
        }
        // Nobody consumes on B, so B stops reading and the 16 MiB burst stalls in the socket buffers.
        #expect(await TestSupport.eventually { nodeB.core.inboundQueueState(for: a.nodeID)?.isPaused == true })
        try await Task.sleep(for: .milliseconds(200))
        #expect(!finished.withLock { $0 })
        await nodeB.shutdown()
        // Awaited only once it has finished: a send that never returns fails the test instead of hanging it.
        let didFinish = await TestSupport.eventually(timeout: .seconds(60)) { finished.withLock { $0 } }
        #expect(didFinish)
        if didFinish { await #expect(throws: (any Error).self) { try await sending.value } }
        await nodeA.shutdown()
    }
}
