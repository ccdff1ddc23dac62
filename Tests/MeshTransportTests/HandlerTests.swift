import Logging
import MeshSecurity
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Synchronization
import Testing

@testable import MeshTransport

/// The frame decoder, handshake handler and session handler on `EmbeddedChannel`, without sockets.
@Suite struct HandlerTests {
    static func frame(_ body: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(body.count), endianness: .big)
        buffer.writeBytes(body)
        return buffer
    }

    /// Feeds `input` to a fresh splitter in reads of the given sizes (cycled) and returns the bodies.
    static func split(_ input: [UInt8], reads: [Int]) throws -> (bodies: [[UInt8]], pending: Int) {
        let handler = LengthPrefixFrameHandler(maxFrameByteCount: 65536)
        let channel = EmbeddedChannel(handler: handler)
        var offset = 0
        var index = 0
        while offset < input.count {
            let count = min(reads[index % reads.count], input.count - offset)
            try channel.writeInbound(ByteBuffer(bytes: input[offset..<offset + count]))
            offset += count
            index += 1
        }
        var bodies: [[UInt8]] = []
        while let body = try channel.readInbound(as: ByteBuffer.self) { bodies.append(Array(body.readableBytesView)) }
        return (bodies, handler.pendingByteCount)
    }

    /// Whole, one byte at a time, in reads that cut prefixes and bodies anywhere, and in random splits: the
    /// same bodies come out, and nothing is left pending.
    @Test func frameSplitterYieldsTheSameBodiesForAnySplit() throws {
        let bodies: [[UInt8]] = [
            [1], [2, 3, 4], [UInt8](repeating: 7, count: 300), [UInt8](repeating: 9, count: 64),
            (0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 5) }, [5, 6], (0..<70_000 / 3).map { UInt8(truncatingIfNeeded: $0) },
        ]
        var input: [UInt8] = []
        for body in bodies { input += Array(Self.frame(body).readableBytesView) }
        var generator = SystemRandomNumberGenerator()
        let splits: [[Int]] = [
            [input.count], [1], [2], [3], [5], [4096], [65539], [65540], [65541], [100_000], [1, 65535, 7],
            (0..<50).map { _ in Int.random(in: 1...20_000, using: &generator) },
        ]
        for reads in splits {
            let result = try Self.split(input, reads: reads)
            #expect(result.bodies == bodies, "reads \(reads.prefix(5))")
            #expect(result.pending == 0)
        }
    }

    @Test func frameSplitterAcceptsExactlyTheCap() throws {
        let channel = EmbeddedChannel(handler: LengthPrefixFrameHandler(maxFrameByteCount: 65536))
        try channel.writeInbound(Self.frame([UInt8](repeating: 3, count: 65536)))
        #expect(try channel.readInbound(as: ByteBuffer.self)?.readableBytes == 65536)
        #expect(try channel.finish().isClean)
    }

    /// A claimed length over the cap fails as soon as the prefix is in, even when it arrives split, and
    /// nothing after it is passed on.
    @Test(arguments: [[4], [1, 3], [3, 1], [2, 1, 1]])
    func frameSplitterRejectsLengthOverCapAtOnce(reads: [Int]) throws {
        let handler = LengthPrefixFrameHandler(maxFrameByteCount: 65536)
        let channel = EmbeddedChannel(handler: handler)
        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 1, 7]))  // a good one-byte frame first
        let prefix: [UInt8] = [0x00, 0x01, 0x00, 0x01]
        var offset = 0
        var caught: SecurityError?
        for count in reads {
            do {
                try channel.writeInbound(ByteBuffer(bytes: prefix[offset..<offset + count]))
            } catch let error as SecurityError {
                caught = error
            }
            offset += count
        }
        #expect(caught?.code == .frameTooLarge)
        #expect(handler.pendingByteCount == 0)
        try channel.writeInbound(Self.frame([1, 2, 3]))  // ignored after the error
        #expect(try channel.readInbound(as: ByteBuffer.self)?.readableBytes == 1)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        _ = try? channel.finish()
    }

    @Test func frameSplitterReportsTruncationAtEndOfStream() throws {
        let channel = EmbeddedChannel(handler: LengthPrefixFrameHandler(maxFrameByteCount: 65536))
        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 9, 1, 2]))
        let error = try #require(throws: SecurityError.self) { _ = try channel.finish() }
        #expect(error.code == .truncatedFrame)
    }

    /// A frame that spans reads is held only as the bytes received, however large its claimed length.
    @Test func frameSplitterHoldsOnlyReceivedBytes() throws {
        let handler = LengthPrefixFrameHandler(maxFrameByteCount: 65536)
        let channel = EmbeddedChannel(handler: handler)
        try channel.writeInbound(ByteBuffer(bytes: [0, 1, 0, 0, 1, 2]))  // claims 65,536, has 2
        #expect(handler.pendingByteCount == 6)
        try channel.writeInbound(ByteBuffer(bytes: [3]))
        #expect(handler.pendingByteCount == 7)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        _ = try? channel.finish()
    }

    struct Pair {
        let client: EmbeddedChannel
        let server: EmbeddedChannel
        let clientEstablished: EventLoopFuture<NodeID>
        let serverEstablished: EventLoopFuture<NodeID>
    }

    func makeChannel(
        role: MeshHandshake.Role, identity: NodeIdentity, peer: NodeIdentity, timeout: Duration = .seconds(5),
        key: [UInt8] = [UInt8](repeating: 0x42, count: 32), observer: (any ConnectionObserver)? = nil
    ) throws -> (EmbeddedChannel, EventLoopFuture<NodeID>) {
        let channel = EmbeddedChannel()
        let promise = channel.eventLoop.makePromise(of: NodeID.self)
        var limits = SecurityLimits()
        limits.handshakeTimeout = timeout
        let machine = try MeshHandshake(
            role: role, identity: identity,
            admission: AdmissionPolicy(allowedPeers: [peer.nodeID], epoch: 1, clusterKey: key), limits: limits,
            now: .now)
        try channel.pipeline.syncOperations.addHandler(LengthPrefixFrameHandler(maxFrameByteCount: 65536))
        try channel.pipeline.syncOperations.addHandler(
            HandshakeHandler(
                machine: machine, localID: identity.nodeID, timeout: timeout, observer: observer, holdsGateSlot: false,
                established: promise, logger: Logger(label: "test")))
        return (channel, promise.futureResult)
    }

    func pair(
        clientKey: [UInt8] = [UInt8](repeating: 0x42, count: 32), serverObserver: (any ConnectionObserver)? = nil
    ) throws -> Pair {
        let alice = try TestSupport.identity(1), bob = try TestSupport.identity(2)
        let (client, clientEstablished) = try makeChannel(role: .initiator, identity: alice, peer: bob, key: clientKey)
        let (server, serverEstablished) = try makeChannel(
            role: .responder, identity: bob, peer: alice, observer: serverObserver)
        try server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        return Pair(client: client, server: server, clientEstablished: clientEstablished, serverEstablished: serverEstablished)
    }

    /// Moves every outbound byte of `from` into `to`, one byte per `writeInbound` when `byteByByte`.
    @discardableResult
    func shuttle(from: EmbeddedChannel, to: EmbeddedChannel, byteByByte: Bool) throws -> Int {
        var moved = 0
        while let buffer = try from.readOutbound(as: ByteBuffer.self) {
            if byteByByte {
                for byte in buffer.readableBytesView { try to.writeInbound(ByteBuffer(bytes: [byte])) }
            } else {
                try to.writeInbound(buffer)
            }
            moved += buffer.readableBytes
        }
        return moved
    }

    func establish(_ pair: Pair, byteByByte: Bool) throws {
        for _ in 0..<4 {
            try shuttle(from: pair.client, to: pair.server, byteByByte: byteByByte)
            try shuttle(from: pair.server, to: pair.client, byteByByte: byteByByte)
        }
    }

    @Test(arguments: [false, true])
    func handshakeAndMessagesOverEmbeddedChannels(byteByByte: Bool) throws {
        let pair = try pair()
        try establish(pair, byteByByte: byteByByte)
        #expect(try pair.clientEstablished.wait() == (try TestSupport.identity(2)).nodeID)
        #expect(try pair.serverEstablished.wait() == (try TestSupport.identity(1)).nodeID)
        // The handshake handler replaced itself with the session handler.
        #expect(throws: (any Error).self) { _ = try pair.client.pipeline.syncOperations.handler(type: HandshakeHandler.self) }
        for size in [0, 1, 1000, 70_000] {
            let message = (0..<size).map { UInt8(truncatingIfNeeded: $0) }
            try pair.client.writeOutbound(message)
            try shuttle(from: pair.client, to: pair.server, byteByByte: byteByByte && size < 2000)
            #expect(try pair.server.readInbound(as: [UInt8].self) == message)
            try pair.server.writeOutbound(message.reversed() as [UInt8])
            try shuttle(from: pair.server, to: pair.client, byteByByte: false)
            #expect(try pair.client.readInbound(as: [UInt8].self) == message.reversed())
        }
    }

    /// What a session handler reports to its owner, recorded in order.
    final class RecordingObserver: ConnectionObserver {
        enum Event: Equatable { case delivered([[UInt8]]), failed(SecurityError.Code), closed }
        private let recorded = Mutex<[Event]>([])
        var events: [Event] { recorded.withLock { $0 } }

        func connectionFailed(_ error: SecurityError, duringHandshake: Bool, remote: SocketAddress?, peer: NodeID?) {
            recorded.withLock { $0.append(.failed(error.code)) }
        }
        func handshakeEnded() {}
        func sessionEstablished(peer: NodeID, initiator: NodeID, channel: any Channel) -> SessionAdmission { .active(1) }
        func sessionClosed(peer: NodeID, session: Int, channel: any Channel, reason: SecurityError?) {
            recorded.withLock { $0.append(.closed) }
        }
        func deliver(peer: NodeID, messages: [[UInt8]], session: Int, channel: any Channel) {
            recorded.withLock { $0.append(.delivered(messages)) }
        }
    }

    /// Counts the writes that reach the head of a pipeline.
    final class WriteCounter: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = ByteBuffer
        let count = Mutex(0)
        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            count.withLock { $0 += 1 }
            context.write(data, promise: promise)
        }
    }

    /// Records how many writes had left the responder when the session was handed over.
    final class EstablishmentObserver: ConnectionObserver {
        let writes: WriteCounter
        let writesAtEstablishment = Mutex<Int?>(nil)
        init(writes: WriteCounter) { self.writes = writes }

        func connectionFailed(_ error: SecurityError, duringHandshake: Bool, remote: SocketAddress?, peer: NodeID?) {}
        func handshakeEnded() {}
        func sessionEstablished(peer: NodeID, initiator: NodeID, channel: any Channel) -> SessionAdmission {
            let written = writes.count.withLock { $0 }
            writesAtEstablishment.withLock { $0 = written }
            return .active(1)
        }
        func sessionClosed(peer: NodeID, session: Int, channel: any Channel, reason: SecurityError?) {}
        func deliver(peer: NodeID, messages: [[UInt8]], session: Int, channel: any Channel) {}
    }

    /// The responder hands the session over before its key confirmation leaves: the initiator closes an
    /// older session as soon as the confirmation arrives, and a responder not yet holding the newer one
    /// would take that close for the peer going away.
    @Test func responderHoldsTheSessionBeforeConfirming() throws {
        let writes = WriteCounter()
        let observer = EstablishmentObserver(writes: writes)
        let pair = try pair(serverObserver: observer)
        try pair.server.pipeline.syncOperations.addHandler(writes, position: .first)
        try establish(pair, byteByByte: false)
        _ = try pair.clientEstablished.wait()
        #expect(observer.writesAtEstablishment.withLock { $0 } == 1)  // message 2 only
        #expect(writes.count.withLock { $0 } == 2)  // then the confirmation
    }

    /// The messages one read burst opens reach the observer together, in order, at the end of the burst; and
    /// those opened before a forged frame in the same burst are still delivered before the session fails.
    @Test func sessionHandsOverEachReadBurstAndDeliversBeforeFailing() throws {
        let observer = RecordingObserver()
        let pair = try pair(serverObserver: observer)
        try establish(pair, byteByByte: false)
        _ = try pair.serverEstablished.wait()
        let messages = (0..<3).map { index in [UInt8](repeating: UInt8(index), count: 100 + index) }
        for message in messages { try pair.client.writeOutbound(message) }
        var burst = ByteBuffer()
        while var buffer = try pair.client.readOutbound(as: ByteBuffer.self) { burst.writeBuffer(&buffer) }
        pair.server.pipeline.fireChannelRead(burst)  // one socket read (writeInbound would also end the burst)
        #expect(observer.events.isEmpty)  // opened, held until the burst ends
        pair.server.pipeline.fireChannelReadComplete()
        #expect(observer.events == [.delivered(messages)])

        for message in messages.prefix(2) { try pair.client.writeOutbound(message) }
        try pair.client.writeOutbound([UInt8](repeating: 9, count: 32))
        var frames: [ByteBuffer] = []
        while let buffer = try pair.client.readOutbound(as: ByteBuffer.self) { frames.append(buffer) }
        var forged = frames.removeLast()
        let index = forged.readerIndex + 20
        forged.setInteger(forged.getInteger(at: index, as: UInt8.self)! ^ 0x01, at: index)
        var second = ByteBuffer()
        for var frame in frames + [forged] { second.writeBuffer(&frame) }
        pair.server.pipeline.fireChannelRead(second)
        #expect(
            observer.events == [.delivered(messages), .delivered(Array(messages.prefix(2))), .failed(.decryptFailed), .closed])
        #expect(!pair.server.isActive)
    }

    @Test func flippedBitClosesEmbeddedSession() throws {
        let pair = try pair()
        try establish(pair, byteByByte: false)
        try pair.client.writeOutbound([UInt8](repeating: 1, count: 32))
        var frame = try #require(try pair.client.readOutbound(as: ByteBuffer.self))
        let index = frame.readerIndex + 20
        frame.setInteger(frame.getInteger(at: index, as: UInt8.self)! ^ 0x80, at: index)
        let error = try #require(throws: SecurityError.self) { try pair.server.writeInbound(frame) }
        #expect(error.code == .decryptFailed)
        #expect(!pair.server.isActive)
        #expect(try pair.server.readInbound(as: [UInt8].self) == nil)
    }

    @Test func wrongClusterKeyFailsEmbeddedHandshake() throws {
        let pair = try pair(clientKey: [UInt8](repeating: 1, count: 32))
        #expect(throws: SecurityError.self) { try establish(pair, byteByByte: false) }
        let error = try #require(throws: SecurityError.self) { _ = try pair.serverEstablished.wait() }
        #expect(error.code == .wrongClusterKey)
        #expect(!pair.server.isActive)
    }

    @Test func embeddedHandshakeTimesOut() throws {
        let alice = try TestSupport.identity(1), bob = try TestSupport.identity(2)
        let (server, established) = try makeChannel(
            role: .responder, identity: bob, peer: alice, timeout: .seconds(1))
        try server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        server.embeddedEventLoop.advanceTime(by: .milliseconds(999))
        #expect(server.isActive)
        server.embeddedEventLoop.advanceTime(by: .milliseconds(2))
        let error = try #require(throws: SecurityError.self) { _ = try established.wait() }
        #expect(error.code == .handshakeTimeout)
        #expect(!server.isActive)
    }
}
