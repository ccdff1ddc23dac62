import MeshSecurity
import NIOCore

/// A bounded length-prefix decoder: emits each frame body (without its 4-byte prefix) as a `ByteBuffer` slice.
///
/// The claimed length is checked against `maxFrameByteCount` as soon as the 4 prefix bytes are in, before
/// anything waits for or reserves the body: a hostile length fails with `.frameTooLarge` at once, and the
/// decoder's buffer never holds more than one frame plus what the socket delivered in one read.
/// End of stream inside a frame fails with `.truncatedFrame`.
struct LengthPrefixFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    let maxFrameByteCount: Int

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else {
            return .needMoreData
        }
        // The same check as MeshSecurity's sans-IO decoder: cap first, before waiting for the body.
        try FrameDecoder.check(length: Int(length), maxFrameByteCount: maxFrameByteCount)
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        guard let body = buffer.readSlice(length: Int(length)) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(body))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0 {
            let count = buffer.readableBytes
            buffer.moveReaderIndex(to: buffer.writerIndex)
            throw SecurityError(.truncatedFrame, "connection ended with \(count) bytes of an incomplete frame")
        }
        return .needMoreData
    }
}
