/// What waits to be sent to one peer, and whether a burst of it is on its way (`MeshNode.enqueue`).
///
/// Everything queued in one turn of the node's loop leaves as one burst at the end of that turn; while a
/// burst is being written later messages wait and follow as the next burst, so bursts never interleave
/// and a peer's messages keep their order. The queue is bounded by `capacity`; beyond it messages are
/// refused (gossip repairs what they carried). The node does the I/O; this type only decides.
package struct PeerOutbox: Sendable {
    /// Which outbox this is: a peer's outbox dropped (session gone, offline, blocked) and made again is
    /// a new one, and the completion of a burst of the old one must not touch it.
    package let generation: UInt64
    /// How many messages may wait.
    package let capacity: Int
    /// Framed messages in send order, not yet handed to the transport.
    package private(set) var queued: [[UInt8]] = []
    /// Whether a burst is being written; the next waits for it.
    package private(set) var isWriting = false
    /// Whether a write of `queued` is scheduled for the end of this turn of the node's loop.
    package private(set) var isWriteScheduled = false

    package init(generation: UInt64, capacity: Int) {
        self.generation = generation
        self.capacity = capacity
    }

    /// What `enqueue` did with a message.
    package enum Enqueued: Equatable, Sendable {
        /// Queued; the caller schedules `takeBurst()` for the end of this turn of its loop.
        case queuedScheduleWrite
        /// Queued behind a write already scheduled or in flight.
        case queued
        /// Refused: `capacity` messages wait already.
        case refused
    }

    /// Whether a message would be refused now.
    package var isFull: Bool { queued.count >= capacity }

    /// Queues `message` unless the outbox is full.
    package mutating func enqueue(_ message: [UInt8]) -> Enqueued {
        guard !isFull else { return .refused }
        queued.append(message)
        guard !isWriteScheduled && !isWriting else { return .queued }
        isWriteScheduled = true
        return .queuedScheduleWrite
    }

    /// The scheduled write (or the end of the previous burst): the burst to hand to the transport now,
    /// in order, or nothing while a burst is in flight. A burst returned is in flight until `burstEnded()`.
    package mutating func takeBurst() -> [[UInt8]] {
        isWriteScheduled = false
        guard !isWriting, !queued.isEmpty else { return [] }
        isWriting = true
        defer { queued = [] }
        return queued
    }

    /// The burst in flight ended: written, failed midway (its rest is lost), or refused by the transport
    /// (no session; all of it lost). Gossip repairs what was lost. After a written or failed burst the
    /// caller takes the next one with `takeBurst()`; after a refusal the next `enqueue` schedules a write.
    package mutating func burstEnded() {
        isWriting = false
    }
}
