import MeshSecurity
import NIOCore

/// A bounded length-prefix splitter: emits each frame body (without its 4-byte prefix) as a `ByteBuffer`.
///
/// The claimed length is checked against `maxFrameByteCount` as soon as the 4 prefix bytes are in, before
/// anything waits for or reserves the body: a hostile length fails with `.frameTooLarge` at once. Nothing is
/// ever allocated from a claimed length: the only buffer this handler allocates holds bytes actually
/// received. End of stream inside a frame fails with `.truncatedFrame`.
///
/// Copies: a frame that lies within one socket read is passed on as a slice of that read (no copy). Only a
/// frame that spans reads is joined, copying exactly its own bytes once (unlike `ByteToMessageHandler`,
/// which appends every following read to the leftover of the previous one).
///
/// ### Invariants
/// - `pending` holds the start of at most one incomplete frame and never more than was received.
/// - `spare` is at most one frame's buffer (4 + `maxFrameByteCount` bytes), kept while the connection lives.
/// - After an error nothing more is emitted.
final class LengthPrefixFrameHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let maxFrameByteCount: Int
    /// The start of an incomplete frame, prefix included: a slice of the read it came in while nothing else
    /// has been joined to it, then a buffer of its own.
    private var pending: ByteBuffer?
    /// The buffer of the last joined frame, kept for the next join once the frame has been handled (opening
    /// is synchronous, so it is then uniquely ours again): a session streaming large frames reuses one
    /// buffer of at most one frame instead of allocating (and page-faulting) one per spanning frame.
    private var spare: ByteBuffer?
    private var isStopped = false

    init(maxFrameByteCount: Int) {
        self.maxFrameByteCount = maxFrameByteCount
    }

    /// Bytes of an incomplete frame held (for tests).
    var pendingByteCount: Int { pending?.readableBytes ?? 0 }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !isStopped else { return }
        var incoming = unwrapInboundIn(data)
        do {
            if var partial = pending {
                pending = nil
                guard var frame = try complete(&partial, from: &incoming, allocator: context.channel.allocator) else {
                    pending = partial  // still incomplete; `incoming` is used up
                    return
                }
                context.fireChannelRead(wrapInboundOut(frame))
                if frame.readerIndex == FrameFormat.lengthPrefixByteCount {  // a joined buffer, not a read's slice
                    frame.clear()
                    spare = frame
                }
            }
            while !isStopped, let frame = try nextFrame(from: &incoming) {
                context.fireChannelRead(wrapInboundOut(frame))
            }
            if !isStopped && incoming.readableBytes > 0 { pending = incoming }
        } catch {
            isStopped = true
            pending = nil
            context.fireErrorCaught(error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let leftover = isStopped ? 0 : pendingByteCount
        isStopped = true
        pending = nil
        if leftover > 0 {
            context.fireErrorCaught(
                SecurityError(.truncatedFrame, "connection ended with \(leftover) bytes of an incomplete frame"))
        }
        context.fireChannelInactive()
    }

    /// The next whole frame body in `buffer` as a slice of it, or nil when it holds no whole frame.
    private func nextFrame(from buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else {
            return nil
        }
        // The same check as MeshSecurity's sans-IO decoder: cap first, before waiting for the body.
        try FrameDecoder.check(length: Int(length), maxFrameByteCount: maxFrameByteCount)
        guard buffer.readableBytes >= FrameFormat.lengthPrefixByteCount + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: FrameFormat.lengthPrefixByteCount)
        return buffer.readSlice(length: Int(length))
    }

    /// Joins to `partial` the bytes of `incoming` that belong to its frame, and no more; returns the body
    /// once the frame is whole, or nil when `incoming` ran out first.
    private func complete(_ partial: inout ByteBuffer, from incoming: inout ByteBuffer, allocator: ByteBufferAllocator)
        throws -> ByteBuffer?
    {
        let prefix = FrameFormat.lengthPrefixByteCount
        if partial.readableBytes < prefix {
            let take = min(prefix - partial.readableBytes, incoming.readableBytes)
            join(&partial, incoming.readSlice(length: take)!, allocator: allocator)
            guard partial.readableBytes == prefix else { return nil }
        }
        let length = Int(partial.getInteger(at: partial.readerIndex, endianness: .big, as: UInt32.self)!)
        try FrameDecoder.check(length: length, maxFrameByteCount: maxFrameByteCount)
        let take = min(prefix + length - partial.readableBytes, incoming.readableBytes)
        join(&partial, incoming.readSlice(length: take)!, allocator: allocator)
        guard partial.readableBytes == prefix + length else { return nil }
        partial.moveReaderIndex(forwardBy: prefix)
        return partial
    }

    /// Appends `part` to `partial`, first moving `partial` into a buffer of its own when it is a slice of a
    /// read or out of room. The new capacity comes from bytes received only, never from the claimed length:
    /// what is needed now, or twice what is held when a frame trickles in over many small reads (so joining
    /// stays linear), capped at one whole frame.
    private func join(_ partial: inout ByteBuffer, _ part: ByteBuffer, allocator: ByteBufferAllocator) {
        var part = part
        if partial.readerIndex != 0 || partial.writableBytes < part.readableBytes {
            let needed = partial.readableBytes + part.readableBytes
            let capacity = max(needed, min(2 * partial.readableBytes, FrameFormat.lengthPrefixByteCount + maxFrameByteCount))
            var owned: ByteBuffer
            if var reused = spare, reused.capacity >= capacity {
                spare = nil
                reused.clear()
                owned = reused
            } else {
                owned = allocator.buffer(capacity: capacity)
            }
            owned.writeBuffer(&partial)
            partial = owned
        }
        partial.writeBuffer(&part)
    }
}
