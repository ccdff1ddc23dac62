import MeshSecurity
import Testing

@testable import MeshTransport

/// The hand-over behind `MeshTransport.inbound`: order, finishing, cancellation of the consumer.
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
}
