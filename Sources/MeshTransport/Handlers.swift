import Logging
import MeshSecurity
import NIOCore

/// What a connection reports to its owner (the transport); all calls happen on the channel's event loop.
protocol ConnectionObserver: Sendable {
    /// The connection is closing because of `error` (counted and logged by the observer).
    func connectionFailed(_ error: SecurityError, duringHandshake: Bool, remote: SocketAddress?, peer: NodeID?)
    /// The handshake slot taken at accept time is free again (called once per accepted connection).
    func handshakeEnded()
    /// A session is up; says whether it is the peer's active one, a duplicate kept open until the peer
    /// closes it, or a duplicate to close now.
    func sessionEstablished(peer: NodeID, initiator: NodeID, channel: any Channel) -> SessionAdmission
    /// A kept session's channel closed: `reason` is nil for an orderly close, else why it failed.
    func sessionClosed(peer: NodeID, session: Int, channel: any Channel, reason: SecurityError?)
    /// Authenticated messages arrived on session number `session`, in order (on the channel's event loop):
    /// the messages one socket read burst opened, handed over together.
    func deliver(peer: NodeID, messages: [[UInt8]], session: Int, channel: any Channel)
}

/// What becomes of a session that completed its handshake (duplicate resolution, see `MeshTransport`).
enum SessionAdmission: Equatable, Sendable {
    /// The peer's active session, with its session number.
    case active(Int)
    /// A duplicate that lost; it stays open and delivers until the peer (the winner's initiator) closes it.
    case standby(Int)
    /// A duplicate that lost and is closed at once (or the transport is shutting down).
    case rejected
}

/// Fired down the pipeline when the handshake completes.
struct SessionEstablishedEvent: Sendable {
    /// The authenticated peer.
    let peer: NodeID
}

/// Drives the sans-IO `MeshHandshake` on a channel: writes its messages, enforces the handshake timeout,
/// and on success swaps itself for a `SecureSessionHandler` holding the session.
final class HandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var machine: MeshHandshake
    private let localID: NodeID
    private let timeout: Duration
    private let observer: (any ConnectionObserver)?
    private let holdsGateSlot: Bool
    private let established: EventLoopPromise<NodeID>?
    private let logger: Logger
    private var timeoutTask: Scheduled<Void>?
    private var isDone = false

    init(
        machine: MeshHandshake, localID: NodeID, timeout: Duration, observer: (any ConnectionObserver)?,
        holdsGateSlot: Bool, established: EventLoopPromise<NodeID>?, logger: Logger
    ) {
        self.machine = machine
        self.localID = localID
        self.timeout = timeout
        self.observer = observer
        self.holdsGateSlot = holdsGateSlot
        self.established = established
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { activate(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        activate(context: context)
        context.fireChannelActive()
    }

    private func activate(context: ChannelHandlerContext) {
        guard timeoutTask == nil, !isDone else { return }
        let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timeoutTask = context.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) {
            let (handler, context) = loopBound.value
            handler.fail(
                context: context,
                SecurityError(.handshakeTimeout, "handshake did not finish within \(handler.timeout)"))
        }
        if machine.role == .initiator {
            do {
                send(try machine.start(), context: context)
            } catch {
                fail(context: context, error)
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !isDone else {
            context.fireChannelRead(data)  // frames after the handshake, before this handler is removed
            return
        }
        let frame = unwrapInboundIn(data)
        do {
            // Handshake frames have fixed small sizes: refuse anything larger before copying it.
            guard frame.readableBytes <= MeshHandshake.maxMessageByteCount else {
                throw SecurityError(.malformedHandshake, "handshake frame of \(frame.readableBytes) bytes")
            }
            let output = try machine.receive(Array(frame.readableBytesView), now: .now)
            if let session = output.session {
                try establish(context: context, session: session, confirmation: output.bytesToSend)
            } else if let bytes = output.bytesToSend {
                send(bytes, context: context)
            }
        } catch {
            fail(context: context, error)
        }
    }

    private func send(_ bytes: [UInt8], context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
    }

    /// Hands the session to the observer, then sends the responder's key confirmation: the initiator acts
    /// on the confirmation (a takeover closes its older session at once), so this node must hold the new
    /// session before the confirmation leaves, or the older session's close could be seen here first and
    /// published as the peer going away.
    private func establish(context: ChannelHandlerContext, session: SecureSession, confirmation: [UInt8]?) throws {
        isDone = true
        timeoutTask?.cancel()
        if holdsGateSlot { observer?.handshakeEnded() }
        let sessionHandler = SecureSessionHandler(session: session, observer: observer, logger: logger)
        try context.pipeline.syncOperations.addHandler(sessionHandler, position: .after(self))
        let initiator = machine.role == .initiator ? localID : session.peer
        if let observer {
            let admission = observer.sessionEstablished(
                peer: session.peer, initiator: initiator, channel: context.channel)
            if let confirmation { send(confirmation, context: context) }
            switch admission {
            case .active(let number), .standby(let number):
                sessionHandler.sessionNumber = number
                context.fireUserInboundEventTriggered(SessionEstablishedEvent(peer: session.peer))
            case .rejected:
                sessionHandler.markClosedQuietly()
                context.close(promise: nil)
            }
        } else {
            if let confirmation { send(confirmation, context: context) }
            context.fireUserInboundEventTriggered(SessionEstablishedEvent(peer: session.peer))
        }
        established?.succeed(session.peer)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !isDone else {
            context.fireErrorCaught(error)
            return
        }
        fail(context: context, error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !isDone {
            fail(context: context, SecurityError(.handshakeAborted, "connection closed during the handshake"))
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeoutTask?.cancel()
    }

    private func fail(context: ChannelHandlerContext, _ error: any Error) {
        guard !isDone else { return }
        isDone = true
        timeoutTask?.cancel()
        let securityError = error as? SecurityError
            ?? SecurityError(.handshakeAborted, "connection error during the handshake: \(error)")
        observer?.connectionFailed(
            securityError, duringHandshake: true, remote: context.channel.remoteAddress, peer: machine.peer)
        if holdsGateSlot { observer?.handshakeEnded() }
        if observer == nil { context.fireErrorCaught(securityError) }
        established?.fail(securityError)
        context.close(promise: nil)
    }
}

/// Seals outbound messages (`[UInt8]`) into frames and opens inbound frames into messages.
///
/// Any failure to open a frame closes the connection with its typed reason; no byte of a frame is
/// passed on before its tag verifies.
///
/// With an observer, the messages opened during one socket read burst are handed over together at
/// `channelReadComplete` (and before any failure or close), so the consumer wakes once per burst instead
/// of once per message; a burst is bounded by the channel's reads per event times the largest read.
final class SecureSessionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = [UInt8]
    typealias OutboundIn = [UInt8]
    typealias OutboundOut = ByteBuffer

    private(set) var session: SecureSession
    private let observer: (any ConnectionObserver)?
    private let logger: Logger
    private var isClosed = false
    /// The handler's context while it is in the pipeline (for `writeSealed` called from outside a callback).
    private var context: ChannelHandlerContext?
    /// Messages opened in the current read burst, not yet handed to the observer.
    private var openedMessages: [[UInt8]] = []
    /// The observer's number for this session (set when the observer kept it).
    var sessionNumber = 0

    init(session: SecureSession, observer: (any ConnectionObserver)?, logger: Logger) {
        self.session = session
        self.observer = observer
        self.logger = logger
    }

    /// Used when the connection closes for duplicate resolution: no failure is reported twice.
    func markClosedQuietly() { isClosed = true }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !isClosed else { return }
        let frame = unwrapInboundIn(data)
        do {
            let message = try frame.withUnsafeReadableBytes { try session.open($0) }
            if let message {
                if observer != nil {
                    openedMessages.append(message)
                } else {
                    context.fireChannelRead(wrapInboundOut(message))
                }
            }
        } catch {
            fail(context: context, error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        deliverOpenedMessages(context: context)
        context.fireChannelReadComplete()
    }

    /// Hands the messages opened so far to the observer (they are authenticated, whatever comes next).
    private func deliverOpenedMessages(context: ChannelHandlerContext) {
        guard let observer, !openedMessages.isEmpty else { return }
        observer.deliver(peer: session.peer, messages: openedMessages, session: sessionNumber, channel: context.channel)
        openedMessages.removeAll(keepingCapacity: true)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        writeSealed(CollectionOfOne(unwrapOutboundIn(data)), context: context, promise: promise)
    }

    /// Seals `messages` into one buffer and writes it towards the socket without flushing; on the event loop.
    /// Bursts use it for many messages at once: one allocation and one pipeline write per group of messages
    /// instead of per message.
    func writeSealed(_ messages: some Collection<[UInt8]>, promise: EventLoopPromise<Void>?) {
        guard let context else {
            promise?.fail(SecurityError(.peerNotConnected, "session closed"))
            return
        }
        writeSealed(messages, context: context, promise: promise)
    }

    private func writeSealed(
        _ messages: some Collection<[UInt8]>, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?
    ) {
        guard !isClosed else {
            promise?.fail(SecurityError(.peerNotConnected, "session closed"))
            return
        }
        do {
            var count = 0
            for message in messages { count += session.sealedByteCount(messageByteCount: message.count) }
            let now = ContinuousClock.now
            var buffer = context.channel.allocator.buffer(capacity: count)
            try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { output in
                var offset = 0
                for message in messages {
                    offset += try message.withUnsafeBytes { input in
                        try session.seal(input, into: UnsafeMutableRawBufferPointer(rebasing: output[offset..<count]), now: now)
                    }
                }
                return offset
            }
            context.write(wrapOutboundOut(buffer), promise: promise)
        } catch {
            promise?.fail(error)
            fail(context: context, error)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context: context, error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deliverOpenedMessages(context: context)
        if !isClosed {
            isClosed = true
            observer?.sessionClosed(peer: session.peer, session: sessionNumber, channel: context.channel, reason: nil)
        }
        context.fireChannelInactive()
    }

    private func fail(context: ChannelHandlerContext, _ error: any Error) {
        guard !isClosed else { return }
        deliverOpenedMessages(context: context)
        isClosed = true
        let securityError = error as? SecurityError
            ?? SecurityError(.connectionLost, "connection error: \(error)")
        if let observer {
            observer.connectionFailed(
                securityError, duringHandshake: false, remote: context.channel.remoteAddress, peer: session.peer)
            observer.sessionClosed(
                peer: session.peer, session: sessionNumber, channel: context.channel, reason: securityError)
        } else {
            context.fireErrorCaught(securityError)
        }
        context.close(promise: nil)
    }
}
