import NIOCore
import Synchronization

/// The hand-over of inbound batches from the sessions' event loops to the one consumer: either a task
/// iterating `MeshTransport.inbound` (a queue and at most one waiting consumer), or a receiver on an
/// event loop (`MeshTransport.receiveInbound`), handed each batch as it arrives.
///
/// Not an `AsyncStream`, whose iterator waits in a nonisolated function: here a task consumer waits in a
/// continuation of its own isolation. That halved the Dispatch samples of a node consuming `inbound`, but
/// perf of Swift 6.3 builds still shows each resume enqueued on the global executor (from `deliver`) and
/// switched to the consumer's loop from a Dispatch worker: about 10% of a replicating peer's samples at
/// INCR `-P 1`. A consumer that lives on an event loop therefore takes batches as a receiver, which
/// involves no task at all (the node does).
///
/// Unbounded as a queue: the bound is the transport's back-pressure on each session (reading stops at
/// the high-water marks). After `finish()`, batches already queued are still handed out, then `nil`;
/// batches offered later are dropped. Cancelling the consumer's task finishes the mailbox the same way
/// (an `AsyncStream` also ends when its consumer is cancelled).
/// A consumer that lives on an event loop: `receiveInbound`'s of batches, `receiveEvents`'s of session
/// events.
struct LoopConsumer<Value: Sendable>: Sendable {
    let loop: any EventLoop
    let receive: @Sendable (Value) -> Void

    /// Within this call when it runs on the loop (no queue, no task, no thread hop), else submitted.
    func hand(_ value: Value) {
        if loop.inEventLoop {
            receive(value)
        } else {
            submit(value)
        }
    }

    /// In a task submitted to the loop, after what it runs now (for callers holding a lock).
    func submit(_ value: Value) {
        loop.execute { receive(value) }
    }
}

final class InboundMailbox: Sendable {
    typealias Receiver = LoopConsumer<InboundBatch>

    private struct State {
        var queue: [InboundBatch] = []
        /// Index of the first batch not handed out yet (the queue is compacted as it drains).
        var head = 0
        var waiter: UnsafeContinuation<InboundBatch?, Never>?
        var receiver: Receiver?
        var isFinished = false

        mutating func takeFirst() -> InboundBatch? {
            guard head < queue.count else { return nil }
            let batch = queue[head]
            head += 1
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 64 && head * 2 >= queue.count {
                queue.removeFirst(head)
                head = 0
            }
            return batch
        }
    }

    private let state = Mutex(State())

    private enum Consumer {
        case waiter(UnsafeContinuation<InboundBatch?, Never>)
        case receiver(Receiver)
    }

    /// Hands `batch` to the receiver or the waiting consumer, or queues it; dropped after `finish()`.
    func offer(_ batch: InboundBatch) {
        let consumer = state.withLock { state -> Consumer? in
            guard !state.isFinished else { return nil }
            if let receiver = state.receiver { return .receiver(receiver) }
            if let waiter = state.waiter {
                state.waiter = nil
                return .waiter(waiter)
            }
            state.queue.append(batch)
            return nil
        }
        switch consumer {
        case .waiter(let waiter): waiter.resume(returning: batch)
        case .receiver(let receiver): receiver.hand(batch)
        case nil: break
        }
    }

    /// Makes `receiver` the consumer from now on and hands it the queued batches first; on
    /// `receiver.loop`, so batches offered meanwhile from other loops (submitted to it) come after them.
    /// One consumer at a time: not while a task waits in `next(isolation:)`, and once.
    func install(_ receiver: Receiver) {
        receiver.loop.preconditionInEventLoop()
        let queued = state.withLock { state -> ArraySlice<InboundBatch> in
            precondition(state.waiter == nil && state.receiver == nil, "MeshTransport.inbound has one consumer at a time")
            let queued = state.queue[state.head...]
            state.queue = []
            state.head = 0
            // After `finish()` the queued batches are still handed out, and nothing more.
            if !state.isFinished { state.receiver = receiver }
            return queued
        }
        for batch in queued { receiver.receive(batch) }
    }

    /// No more batches: the consumer gets what is queued, then `nil`; a receiver is let go.
    func finish() {
        let waiter = state.withLock { state -> UnsafeContinuation<InboundBatch?, Never>? in
            state.isFinished = true
            state.receiver = nil
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// The next batch, waiting in `actor`'s isolation; `nil` once finished (or the consumer's task
    /// cancelled) and drained. One consumer at a time.
    func next(isolation actor: isolated (any Actor)?) async -> InboundBatch? {
        if let batch = state.withLock({ $0.takeFirst() }) { return batch }
        return await withTaskCancellationHandler {
            await withUnsafeContinuation(isolation: actor) { (continuation: UnsafeContinuation<InboundBatch?, Never>) in
                let ready = state.withLock { state -> InboundBatch?? in
                    if let batch = state.takeFirst() { return .some(batch) }
                    if state.isFinished { return .some(nil) }
                    precondition(
                        state.waiter == nil && state.receiver == nil, "MeshTransport.inbound has one consumer at a time")
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            // Before or while waiting: either way the consumer gets nil (`isFinished` covers "before").
            let waiter = state.withLock { state -> UnsafeContinuation<InboundBatch?, Never>? in
                state.isFinished = true
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }
}
