import MeshSecurity
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import MeshTransport

/// The hand-over behind `MeshTransport.inbound` and `receiveInbound`: order, finishing, cancellation of
/// the consumer, a receiver on an event loop.
@Suite(.timeLimit(.minutes(1))) struct InboundMailboxTests {
    private static let peer = try! NodeIdentity.generate().nodeID

    private func batch(_ number: Int) -> InboundBatch {
        InboundBatch(peer: Self.peer, session: number, messages: [[UInt8(number & 0xFF)]])
    }

    private actor Consumer {
        let mailbox: InboundMailbox
        init(_ mailbox: InboundMailbox) { self.mailbox = mailbox }

        /// Takes batches until `nil`, returning their session numbers.
        func drain() async -> [Int] {
            var sessions: [Int] = []
            while let batch = await mailbox.next(isolation: self) { sessions.append(batch.session) }
            return sessions
        }

        func takeOne() async -> Int? { await mailbox.next(isolation: self)?.session }
    }

    /// Batches queued before and while the consumer waits come out in order; after `finish()` what is
    /// queued is still handed out, then `nil`, and later offers are dropped.
    @Test func orderFinishAndDrain() async {
        let mailbox = InboundMailbox()
        for number in 0..<100 { mailbox.offer(batch(number)) }
        let consumer = Consumer(mailbox)
        let drained = Task { await consumer.drain() }
        // Offered from other threads while the consumer waits or drains.
        await withTaskGroup(of: Void.self) { group in
            group.addTask { for number in 100..<300 { mailbox.offer(batch(number)) } }
        }
        mailbox.finish()
        mailbox.offer(batch(999))
        let sessions = await drained.value
        #expect(sessions == Array(0..<300))
        #expect(await consumer.takeOne() == nil, "finished and drained stays nil")
    }

    /// A consumer waiting on an empty mailbox gets the next batch offered.
    @Test func waitingConsumerIsResumed() async throws {
        let mailbox = InboundMailbox()
        let consumer = Consumer(mailbox)
        let taken = Task { await consumer.takeOne() }
        try await Task.sleep(for: .milliseconds(20))
        mailbox.offer(batch(7))
        #expect(await taken.value == 7)
    }

    /// Cancelling a waiting consumer returns `nil` (the node's run loop relies on it to stop) and finishes
    /// the mailbox; cancelling before it waits does too.
    @Test func cancellationEndsTheConsumer() async throws {
        let mailbox = InboundMailbox()
        let consumer = Consumer(mailbox)
        let waiting = Task { await consumer.drain() }
        try await Task.sleep(for: .milliseconds(20))
        waiting.cancel()
        #expect(await waiting.value == [])
        mailbox.offer(batch(1))
        #expect(await consumer.takeOne() == nil, "offers after the consumer was cancelled are dropped")

        let early = InboundMailbox()
        let earlyConsumer = Consumer(early)
        let cancelledFirst = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await earlyConsumer.takeOne()
        }
        #expect(await cancelledFirst.value == nil)
    }

    /// What a receiver was handed, and whether each batch came on its loop.
    private final class Received: Sendable {
        let sessions = Mutex<[Int]>([])
        let offLoop = Atomic<Int>(0)
    }

    /// Something only the receiver holds, to see when the mailbox lets the receiver go.
    private final class Token: Sendable {}

    /// Installs (on `loop`) a receiver recording into `received` and holding a token only it keeps;
    /// returns a closure telling whether the token is still alive.
    private func installReceiver(on loop: any EventLoop, _ mailbox: InboundMailbox, into received: Received)
        async throws -> @Sendable () -> Bool
    {
        let token = Token()
        let isAlive: @Sendable () -> Bool = { [weak token] in token != nil }
        try await loop.submit {
            mailbox.install(
                InboundMailbox.Receiver(loop: loop) { [received, token] batch in
                    withExtendedLifetime(token) {}
                    if !loop.inEventLoop { received.offLoop.add(1, ordering: .relaxed) }
                    received.sessions.withLock { $0.append(batch.session) }
                })
        }.get()
        return isAlive
    }

    /// A receiver gets the batches queued before it was installed first, then each new one: within
    /// `offer` when offered on its loop, through the loop when offered from another thread; in order,
    /// always on its loop. After `finish()` it gets nothing more and is released.
    @Test func receiverOnALoopTakesQueuedThenNewBatchesInOrder() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let mailbox = InboundMailbox()
        for number in 0..<50 { mailbox.offer(batch(number)) }
        let received = Received()
        let receiverIsAlive = try await installReceiver(on: loop, mailbox, into: received)
        #expect(received.sessions.withLock { $0 } == Array(0..<50), "the queued batches, at once")
        // From other threads: handed over through the loop, in order.
        await withTaskGroup(of: Void.self) { group in
            group.addTask { for number in 50..<150 { mailbox.offer(batch(number)) } }
        }
        try await loop.submit {}.get()
        #expect(received.sessions.withLock { $0 } == Array(0..<150))
        // On the loop: within the call.
        try await loop.submit {
            for number in 150..<300 {
                mailbox.offer(batch(number))
                #expect(received.sessions.withLock { $0.last } == number)
            }
        }.get()
        #expect(receiverIsAlive())
        mailbox.finish()
        mailbox.offer(batch(999))
        try await loop.submit {}.get()
        #expect(received.sessions.withLock { $0 } == Array(0..<300), "nothing after finish()")
        #expect(received.offLoop.load(ordering: .relaxed) == 0)
        #expect(!receiverIsAlive(), "finish() lets the receiver go")
        try await group.shutdownGracefully()
    }
}
