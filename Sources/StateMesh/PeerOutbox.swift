/// What waits to be sent to one peer (`MeshNode.enqueue`).
struct PeerOutbox {
    /// Which outbox this is: a peer's outbox dropped (session gone, offline, blocked) and made again is
    /// a new one, and the completion of a burst of the old one must not touch it.
    let generation: UInt64
    /// Framed messages in send order, not yet handed to the transport.
    var queued: [[UInt8]] = []
    /// Whether a burst is being written; the next waits for it, so bursts never interleave.
    var isWriting = false
    /// Whether a write of `queued` is scheduled for the end of this turn of the node's loop.
    var isWriteScheduled = false
}
