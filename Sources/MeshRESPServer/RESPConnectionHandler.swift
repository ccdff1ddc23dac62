import MeshRESP
import MeshReplication
import NIOCore
import StateMesh

/// One client connection: parses its requests, runs them against the node on the node's loop, and
/// answers in order.
///
/// Replies of a pipeline that wrote anything are held until the writes are durable (`.always`:
/// the next group commit; `.batched`: at once), and replies never overtake earlier ones. Reading
/// pauses while a command blocks (`WAIT`), while replies wait for a commit, or while the client
/// does not read what it was sent (back-pressure instead of buffering without bound).
///
/// ### Invariants
/// Runs only on the node's event loop (its channel is registered there).
final class RESPConnectionHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let state: RESPServerState
    let node: MeshNode
    private var context: ChannelHandlerContext?

    /// The client's ID (`CLIENT ID`), 0 until registered.
    private(set) var id: UInt64 = 0
    var name: String?
    var libraryName: String?
    var version = RESPVersion.resp2
    var isAuthenticated: Bool
    var remoteAddress = ""
    let connectedAt = ContinuousClock.now
    /// The last command's name as received, upper-cased (`CLIENT LIST` shows it lower-cased; lowering it
    /// per command would cost every command a string).
    var lastCommand: String?

    private var parser: RESPRequestParser
    /// Bytes received and not yet parsed.
    private var inbound: ByteBuffer?
    /// Keyspace channels and patterns this client subscribed to.
    var channels = Set<String>()
    var patterns = Set<String>()
    var isSubscribed: Bool { !channels.isEmpty || !patterns.isEmpty }
    /// Per domain, this connection's newest write (what `WAIT` waits for): one entry per domain written,
    /// so at most one per replicated domain. An array searched from the slot written last, rather than
    /// a dictionary that hashed the domain's name on every write.
    var lastWrites: [WriteID] = []
    /// Where in `lastWrites` the newest write went (checked first: clients mostly write one domain).
    private var lastWriteSlot = 0
    /// Open `SCAN` iterations: cursor → the key snapshot and how far it got.
    var scans: [UInt64: ScanIteration] = [:]
    var nextScanCursor: UInt64 = 1
    /// Whether a command of the current batch wrote (its replies wait for durability).
    var batchWrote = false

    /// Replies waiting for a commit, each with the commit ticket it waits for.
    private var held = CircularBuffer<(buffer: ByteBuffer, ticket: UInt64)>()
    private var ticketsIssued: UInt64 = 0
    private var ticketsDone: UInt64 = 0
    /// A blocked command (`WAIT`): no further command runs until it answers.
    var blocked: BlockedWait?
    private var isReadPending = false
    private var isClosing = false
    private var closesWhenFlushed = false
    /// Bytes written while the channel was not writable (pub/sub pushes): over the limit, the client is dropped.
    private var bytesWhileUnwritable = 0
    /// The last batch's reply buffer, kept to answer the next batch in: once the channel has written
    /// it, clearing it keeps its storage, where allocating a buffer per batch cost two allocations
    /// and two frees per request at `-P 1`. (While the channel still holds it, clearing it makes a
    /// new one: a `ByteBuffer` is a value.)
    private var spareOutput: ByteBuffer?
    /// Reply buffers up to this capacity are kept (a large reply's buffer is not held on to).
    private static let maximumSpareOutputCapacity = 4096
    /// Whether replies were written to the channel and wait for the server's flush at the end of this
    /// turn of the loop (`RESPServerState.flushLater`).
    private var hasUnflushedReplies = false

    init(state: RESPServerState) {
        self.state = state
        self.node = state.node
        self.isAuthenticated = state.configuration.password == nil
        self.parser = RESPRequestParser(limits: state.configuration.limits)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        remoteAddress = context.channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
        guard let id = state.register(self) else {
            var out = context.channel.allocator.buffer(capacity: 64)
            out.writeRESPError("ERR max number of clients reached")
            isClosing = true
            closeAfterWriting(out, context: context)
            return
        }
        self.id = id
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isClosing = true
        blocked?.timer?.cancel()
        blocked = nil
        if id != 0 { state.unregister(id, channels: channels, patterns: patterns) }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !isClosing, !closesWhenFlushed else { return }
        var bytes = unwrapInboundIn(data)
        if inbound == nil {
            inbound = bytes
        } else {
            inbound!.writeBuffer(&bytes)
        }
        if inbound!.readableBytes > state.configuration.maximumPipelineBytes {
            var out = context.channel.allocator.buffer(capacity: 128)
            out.writeRESPError(
                "ERR Protocol error: \(inbound!.readableBytes) unexecuted bytes exceed the query buffer limit of \(state.configuration.maximumPipelineBytes)")
            state.protocolErrors += 1
            failConnection(with: out)
            return
        }
        processInbound()
    }

    func read(context: ChannelHandlerContext) {
        if mayRead {
            context.read()
        } else {
            isReadPending = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            bytesWhileUnwritable = 0
            resumeReading()
        }
        context.fireChannelWritabilityChanged()
    }

    private var mayRead: Bool {
        blocked == nil && held.count < 64 && (context?.channel.isWritable ?? false)
    }

    private func resumeReading() {
        guard isReadPending, mayRead, let context else { return }
        isReadPending = false
        context.read()
    }

    // MARK: Running commands

    /// Parses and runs every complete command received, unless a command blocks.
    func processInbound() {
        guard !isClosing, !closesWhenFlushed, blocked == nil, inbound != nil, let context else { return }
        var out: ByteBuffer
        if let spare = spareOutput.take() {
            out = spare
            out.clear()
        } else {
            out = context.channel.allocator.buffer(capacity: 256)
        }
        batchWrote = false
        var failure: RESPProtocolError?
        var closeAfter = false
        var commandsRun: Int64 = 0
        state.isRunningCommands = true
        defer { state.isRunningCommands = false }
        node.assumeIsolated { node in
            while self.blocked == nil {
                let arguments: [ByteBuffer]?
                do throws(RESPProtocolError) {
                    arguments = try self.parser.next(from: &self.inbound!)
                } catch {
                    failure = error
                    break
                }
                guard let arguments else { break }
                if arguments.isEmpty { continue }
                self.state.commandsProcessed += 1
                commandsRun += 1
                if self.run(arguments, node: node, into: &out) == .close {
                    closeAfter = true
                    break
                }
            }
        }
        if inbound?.readableBytes == 0 {
            inbound = nil
        } else if let buffer = inbound, buffer.readerIndex > 65_536 {
            inbound!.discardReadBytes()
        }
        if commandsRun > 0 { state.metrics.commands.increment(by: commandsRun) }
        if let failure {
            state.protocolErrors += 1
            state.logger.debug("RESP client \(id) at \(remoteAddress) closed: \(failure)")
            out.writeRESPError("ERR \(failure.message)")
            emit(out, wrote: batchWrote)
            closeWhenFlushed()
            return
        }
        emit(out, wrote: batchWrote)
        if out.capacity <= Self.maximumSpareOutputCapacity { spareOutput = out }
        if closeAfter { closeWhenFlushed() }
        state.publishStatus(force: false)
    }

    /// Remembers `id` as this connection's newest write in its domain (for `WAIT`).
    func noteWrite(_ id: WriteID) {
        if lastWriteSlot < lastWrites.count && lastWrites[lastWriteSlot].domain == id.domain {
            lastWrites[lastWriteSlot] = id
        } else if let slot = lastWrites.firstIndex(where: { $0.domain == id.domain }) {
            lastWrites[slot] = id
            lastWriteSlot = slot
        } else {
            lastWrites.append(id)
            lastWriteSlot = lastWrites.count - 1
        }
    }

    /// Sends `out` now, or holds it behind earlier held replies or until this batch's writes are durable.
    func emit(_ out: ByteBuffer, wrote: Bool) {
        guard let context else { return }
        if wrote && state.acknowledgesAfterCommit {
            ticketsIssued += 1
            let ticket = ticketsIssued
            held.append((out, ticket))
            node.assumeIsolated { node in
                node.whenDurable { [weak self] error in self?.committed(ticket: ticket, error: error) }
            }
        } else if held.isEmpty {
            guard out.readableBytes > 0 else { return }
            // Written now, flushed once every connection ready in this turn of the loop has been read,
            // as Redis answers (its `beforeSleep` writes the replies of all the clients it read). Flushed
            // one by one, each reply woke the client again and again: redis-benchmark, waiting in
            // `epoll_wait` between replies, was woken per reply, and that wake-up made our write syscall
            // cost about twice what Redis's own did. Order is kept: the channel sends what it was given
            // in order, and every later write or flush comes after this one.
            context.write(wrapOutboundOut(out), promise: nil)
            if !hasUnflushedReplies {
                hasUnflushedReplies = true
                state.flushLater(self)
            }
        } else {
            held.append((out, ticketsIssued))
        }
    }

    private func committed(ticket: UInt64, error: MeshError?) {
        guard let context, !isClosing else { return }
        if let error {
            // The held replies claim writes that are not durable: none of them may reach the client.
            held.removeAll()
            var out = context.channel.allocator.buffer(capacity: 128)
            out.writeRESPError("ERR storage failed, the writes of this pipeline are not acknowledged: \(error.message)")
            failConnection(with: out)
            return
        }
        ticketsDone = max(ticketsDone, ticket)
        var wroteAny = false
        while let first = held.first, first.ticket <= ticketsDone {
            held.removeFirst()
            if first.buffer.readableBytes > 0 {
                context.write(wrapOutboundOut(first.buffer), promise: nil)
                wroteAny = true
            }
        }
        if wroteAny { context.flush() }
        if held.isEmpty && closesWhenFlushed {
            closeNow()
            return
        }
        // Not now: this runs inside the node's commit, which its caller may follow by sending (a tick
        // pushes right after committing). Commands run here would add own writes that the send could
        // carry before they are durable. The next turn of the loop is after that send.
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let handler = bound.value
            handler.resumeReading()
            if handler.blocked == nil && handler.inbound != nil { handler.processInbound() }
        }
    }

    /// Flushes the replies `emit` wrote (called by the server at the end of the loop's turn).
    func flushReplies() {
        guard hasUnflushedReplies else { return }
        hasUnflushedReplies = false
        context?.flush()
    }

    /// Answers a blocked command and goes on with the commands queued behind it.
    func unblock(with out: ByteBuffer) {
        blocked?.timer?.cancel()
        blocked = nil
        emit(out, wrote: false)
        resumeReading()
        processInbound()
    }

    /// Closes after everything already answered has been sent.
    func closeWhenFlushed() {
        if held.isEmpty {
            closeNow()
        } else {
            closesWhenFlushed = true
            inbound = nil
        }
    }

    private func closeNow() {
        guard let context else { return }
        isClosing = true
        closeAfterWriting(context.channel.allocator.buffer(capacity: 0), context: context)
    }

    /// Writes `out` after everything already written, then closes.
    private func closeAfterWriting(_ out: ByteBuffer, context: ChannelHandlerContext) {
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in bound.value.close(promise: nil) }
    }

    /// Sends `out` (an error) after what was already answered and closes: the connection's input
    /// can no longer be trusted.
    private func failConnection(with out: ByteBuffer) {
        guard let context else { return }
        isClosing = true
        inbound = nil
        closeAfterWriting(out, context: context)
    }

    /// Closes the connection at once (server shutdown).
    func close() {
        isClosing = true
        context?.close(promise: nil)
    }

    // MARK: Pub/sub delivery

    func deliverMessage(channel: String, message: String) {
        guard let context, !isClosing else { return }
        var out = context.channel.allocator.buffer(capacity: 32 + channel.utf8.count + message.utf8.count)
        out.writeRESPPushHeader(count: 3, version: version)
        out.writeRESPBulkString("message")
        out.writeRESPBulkString(channel)
        out.writeRESPBulkString(message)
        push(out, context: context)
    }

    func deliverPatternMessage(pattern: String, channel: String, message: String) {
        guard let context, !isClosing else { return }
        var out = context.channel.allocator.buffer(capacity: 48 + pattern.utf8.count + channel.utf8.count + message.utf8.count)
        out.writeRESPPushHeader(count: 4, version: version)
        out.writeRESPBulkString("pmessage")
        out.writeRESPBulkString(pattern)
        out.writeRESPBulkString(channel)
        out.writeRESPBulkString(message)
        push(out, context: context)
    }

    /// Pushes a notification; a client that lets more than `maximumOutputBytes` pile up is dropped.
    private func push(_ out: ByteBuffer, context: ChannelHandlerContext) {
        if !context.channel.isWritable {
            bytesWhileUnwritable += out.readableBytes
            if bytesWhileUnwritable > state.configuration.maximumOutputBytes {
                state.logger.notice(
                    "RESP client \(id) dropped: \(bytesWhileUnwritable) notification bytes unread (client output buffer limit)")
                close()
                return
            }
        }
        state.notificationsSent += 1
        state.metrics.notifications.increment()
        if held.isEmpty {
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        } else {
            held.append((out, ticketsIssued))
        }
    }
}

/// A `SCAN` in progress: the sorted key names when it started and the next index.
struct ScanIteration {
    let keys: [String]
    var next: Int
}

/// A `WAIT` in progress.
struct BlockedWait {
    let replicas: Int
    let deadline: NIODeadline?
    var timer: Scheduled<Void>?
}
