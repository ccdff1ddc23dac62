import MeshSecurity
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import MeshTransport

/// Collects a transport's session events in the background.
final class EventLog: Sendable {
    final class Store: Sendable {
        let events = Mutex<[TransportEvent]>([])
    }
    let store = Store()
    let task: Task<Void, Never>

    init(_ transport: MeshTransport) {
        let store = self.store
        task = Task {
            for await event in transport.events { store.events.withLock { $0.append(event) } }
        }
    }

    var all: [TransportEvent] { store.events.withLock { $0 } }

    /// The events as short strings: `+peer` for established, `-peer:reason` for closed (`-peer:nil` orderly).
    func summary(naming names: [NodeID: String]) -> [String] {
        all.map { event in
            switch event {
            case .sessionEstablished(let peer): "+\(names[peer] ?? "?")"
            case .sessionClosed(let peer, let reason): "-\(names[peer] ?? "?"):\(reason.map { $0.code.name } ?? "nil")"
            }
        }
    }

    func waitFor(count: Int, timeout: Duration = .seconds(30)) async -> Bool {
        await TestSupport.eventually(timeout: timeout) { self.all.count >= count }
    }
}

/// `events`, `disconnect` and `stopMaintaining`: what the node layer builds its peer set from.
@Suite(.timeLimit(.minutes(1))) struct EventTests {
    /// A dial gives each side one `sessionEstablished`; `disconnect` gives the caller `sessionClosed(nil)`
    /// synchronously, the peer `sessionClosed(nil)` for the orderly close; shutdown finishes the stream.
    @Test func establishDisconnectAndShutdownEvents() async throws {
        let a = try TestSupport.identity(1), b = try TestSupport.identity(2)
        let names = [a.nodeID: "a", b.nodeID: "b"]
        let nodeA = try await TestSupport.node(a, allowing: [b])
        let nodeB = try await TestSupport.node(b, allowing: [a])
        let logA = EventLog(nodeA), logB = EventLog(nodeB)
        try await nodeA.dial(host: "127.0.0.1", port: nodeB.listeningPort!)
        #expect(await logA.waitFor(count: 1))
        #expect(await logB.waitFor(count: 1))
        #expect(logA.summary(naming: names) == ["+b"])
        #expect(logB.summary(naming: names) == ["+a"])

        await nodeA.disconnect(b.nodeID)
        #expect(nodeA.connectedPeers.isEmpty)
        #expect(await logA.waitFor(count: 2))
        #expect(await logB.waitFor(count: 2))
        #expect(await TestSupport.eventually { nodeB.connectedPeers.isEmpty })
        #expect(logA.summary(naming: names) == ["+b", "-b:nil"])
        #expect(logB.summary(naming: names) == ["+a", "-a:nil"])
        await nodeA.disconnect(b.nodeID)  // no session: nothing happens

        try await nodeB.dial(host: "127.0.0.1", port: nodeA.listeningPort!)
        #expect(await logA.waitFor(count: 3))
        await nodeA.shutdown()
        await logA.task.value  // finished by shutdown
        #expect(logA.summary(naming: names) == ["+b", "-b:nil", "+b", "-b:shutDown"])
        #expect(await logB.waitFor(count: 4))
        #expect(logB.summary(naming: names) == ["+a", "-a:nil", "+a", "-a:nil"])
        await nodeB.shutdown()
        await logB.task.value
    }

    /// A second session from the same initiator takes over from the first without any event on either side.
    /// The initiator closes the older session as soon as the responder confirms the newer one, so the
    /// responder must hold the newer one before it confirms; repeated, since a wrong order shows as a race.
    @Test func takeoverByADuplicateSessionEmitsNothing() async throws {
        let a = try TestSupport.identity(1), b = try TestSupport.identity(2)
        let names = [a.nodeID: "a", b.nodeID: "b"]
        let nodeA = try await TestSupport.node(a, allowing: [b])
        let nodeB = try await TestSupport.node(b, allowing: [a])
        let logA = EventLog(nodeA), logB = EventLog(nodeB)
        let collector = Collector(nodeB)
        try await nodeA.dial(host: "127.0.0.1", port: nodeB.listeningPort!)
        for round in 1...25 {
            let older = try #require(nodeA.core.channel(for: b.nodeID))
            try await nodeA.dial(host: "127.0.0.1", port: nodeB.listeningPort!)
            let newer = try #require(nodeA.core.channel(for: b.nodeID))
            #expect(older !== newer)  // the newer session took over
            #expect(await TestSupport.eventually { !older.isActive })
            try await nodeA.send([UInt8(round)], to: b.nodeID)
            #expect(await collector.waitFor(count: round))
        }
        try await Task.sleep(for: .milliseconds(100))  // let any (wrong) close event arrive
        #expect(logA.summary(naming: names) == ["+b"])
        #expect(logB.summary(naming: names) == ["+a"])
        await nodeA.shutdown()
        await nodeB.shutdown()
    }

    /// Under simultaneous dials each side publishes exactly one establishment and no close: the loser is
    /// closed by the winner's initiator only once both sides hold the winner.
    @Test(arguments: 0..<10) func simultaneousDialsPublishOneEstablishment(round: Int) async throws {
        let a = try TestSupport.identity(1), b = try TestSupport.identity(2)
        let names = [a.nodeID: "a", b.nodeID: "b"]
        let nodeA = try await TestSupport.node(a, allowing: [b])
        let nodeB = try await TestSupport.node(b, allowing: [a])
        let logA = EventLog(nodeA), logB = EventLog(nodeB)
        async let dialAB = nodeA.dial(host: "127.0.0.1", port: nodeB.listeningPort!)
        async let dialBA = nodeB.dial(host: "127.0.0.1", port: nodeA.listeningPort!)
        _ = try? await dialAB
        _ = try? await dialBA
        #expect(await nodeA.waitForSession(with: b.nodeID))
        #expect(await nodeB.waitForSession(with: a.nodeID))
        try await Task.sleep(for: .milliseconds(200))  // let the losing connections' closes settle
        #expect(logA.summary(naming: names) == ["+b"])
        #expect(logB.summary(naming: names) == ["+a"])
        // Both ended up on the same TCP connection.
        let channelA = try #require(nodeA.core.channel(for: b.nodeID))
        let channelB = try #require(nodeB.core.channel(for: a.nodeID))
        #expect(channelA.localAddress?.port == channelB.remoteAddress?.port)
        await nodeA.shutdown()
        await nodeB.shutdown()
    }

    /// A maintained connection redials after `disconnect`; after `stopMaintaining` it stays closed.
    @Test func stopMaintainingLetsADisconnectStick() async throws {
        let a = try TestSupport.identity(1), b = try TestSupport.identity(2)
        let nodeA = try await TestSupport.node(a, allowing: [b]) { $0.reconnectInitialDelay = .milliseconds(10) }
        let nodeB = try await TestSupport.node(b, allowing: [a])
        let port = nodeB.listeningPort!
        nodeA.maintainConnection(host: "127.0.0.1", port: port, expectedPeer: b.nodeID)
        #expect(await nodeA.waitForSession(with: b.nodeID))

        await nodeA.disconnect(b.nodeID)
        #expect(await nodeA.waitForSession(with: b.nodeID))  // redialed

        nodeA.stopMaintaining(host: "127.0.0.1", port: port)
        await nodeA.disconnect(b.nodeID)
        try await Task.sleep(for: .milliseconds(300))  // many reconnect delays
        #expect(nodeA.connectedPeers.isEmpty)
        #expect(nodeB.connectedPeers.isEmpty)
        await nodeA.shutdown()
        await nodeB.shutdown()
    }
}

/// `inbound` applies back-pressure instead of dropping: a consumer that falls behind stops the peer's
/// connection from being read, and every message arrives once it catches up.
@Suite(.timeLimit(.minutes(1))) struct InboundBackPressureTests {
    @Test func slowConsumerPausesReadingAndLosesNothing() async throws {
        let a = try TestSupport.identity(1), b = try TestSupport.identity(2)
        let nodeA = try await TestSupport.node(a, allowing: [b])
        let limit = 10
        let nodeB = try await TestSupport.node(b, allowing: [a]) { $0.inboundBufferLimit = limit }
        try await nodeA.dial(host: "127.0.0.1", port: nodeB.listeningPort!)
        #expect(await nodeB.waitForSession(with: a.nodeID))
        let messageByteCount = 16 << 10
        let batch = (0..<400).map { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] + [UInt8](repeating: 0x5A, count: messageByteCount - 2) }
        let sending = Task { try await nodeA.send(contentsOf: batch, to: b.nodeID) }

        // Nobody consumes: reading pauses and the queue stops growing near the mark. What one read loop had
        // already decoded when the mark was crossed still arrives: at most `readsPerEvent` reads.
        #expect(await TestSupport.eventually { nodeB.core.inboundQueueState(for: a.nodeID)?.isPaused == true })
        try await Task.sleep(for: .milliseconds(300))
        let queued = try #require(nodeB.core.inboundQueueState(for: a.nodeID))
        let burst = Int(MeshTransportConfiguration.readsPerEvent) * MeshTransportConfiguration.maxReadByteCount / messageByteCount + 1
        #expect(queued.isPaused)
        #expect(queued.messageCount >= limit)
        #expect(queued.messageCount <= limit + burst)
        #expect(queued.messageCount < batch.count)

        // The consumer catches up: reading resumes, everything arrives in order, nothing was dropped.
        var iterator = nodeB.inbound.makeAsyncIterator()
        for index in 0..<batch.count {
            let message = try #require(await iterator.next())
            #expect(message.bytes == batch[index])
            if message.bytes != batch[index] { break }
        }
        try await sending.value
        #expect(nodeB.counters.count(.inboundOverflow) == 0)
        let drained = try #require(nodeB.core.inboundQueueState(for: a.nodeID))
        #expect(drained.messageCount == 0 && drained.byteCount == 0 && !drained.isPaused)
        await nodeA.shutdown()
        await nodeB.shutdown()
    }

    /// `receiveEvents`: every event from then on, in order, on the receiver's loop, and none on `events`;
    /// released at shutdown (whose closes still arrive).
    @Test func receiverOnALoopGetsTheEventsInOrder() async throws {
        let a = try TestSupport.identity(1), b = try TestSupport.identity(2)
        let names = [a.nodeID: "a", b.nodeID: "b"]
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let nodeA = try await TestSupport.node(a, allowing: [b])
        let nodeB = try await TestSupport.node(b, allowing: [a])
        let stream = EventLog(nodeA)
        let received = Mutex<[String]>([])
        let offLoop = Atomic<Int>(0)
        nodeA.receiveEvents(on: loop) { event in
            if !loop.inEventLoop { offLoop.add(1, ordering: .relaxed) }
            let line: String
            switch event {
            case .sessionEstablished(let peer): line = "+\(names[peer] ?? "?")"
            case .sessionClosed(let peer, let reason): line = "-\(names[peer] ?? "?"):\(reason.map { $0.code.name } ?? "nil")"
            }
            received.withLock { $0.append(line) }
        }
        try await nodeA.dial(host: "127.0.0.1", port: nodeB.listeningPort!)
        #expect(await TestSupport.eventually { received.withLock { $0 } == ["+b"] })
        await nodeA.disconnect(b.nodeID)
        #expect(await TestSupport.eventually { received.withLock { $0 }.count == 2 })
        try await nodeA.dial(host: "127.0.0.1", port: nodeB.listeningPort!)
        await nodeA.shutdown()
        #expect(await TestSupport.eventually { received.withLock { $0 }.count == 4 })
        #expect(received.withLock { $0 } == ["+b", "-b:nil", "+b", "-b:shutDown"])
        #expect(offLoop.load(ordering: .relaxed) == 0)
        #expect(stream.all.isEmpty, "events went to the receiver, not to `events`")
        #expect(nodeA.core.eventReceiver.withLock { $0 == nil }, "shutdown releases the receiver")
        await nodeB.shutdown()
        try await group.shutdownGracefully()
    }
}
