import Logging
import MeshSecurity
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import MeshTransport

/// Fixtures for transport tests: identities, policies, node construction, polling and a raw test client.
enum TestSupport {
    static let clusterKey = [UInt8](repeating: 0x42, count: 32)

    static func identity(_ tag: UInt8) throws -> NodeIdentity {
        try NodeIdentity(seed: [UInt8](repeating: tag, count: 32), staticSecretKey: [UInt8](repeating: tag &+ 100, count: 32))
    }

    static func policy(allowing peers: [NodeIdentity], epoch: UInt32 = 1, key: [UInt8] = clusterKey) throws
        -> AdmissionPolicy
    {
        try AdmissionPolicy(allowedPeers: Set(peers.map(\.nodeID)), epoch: epoch, clusterKey: key)
    }

    static func configuration(_ change: (inout MeshTransportConfiguration) -> Void = { _ in })
        -> MeshTransportConfiguration
    {
        var configuration = MeshTransportConfiguration()
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configuration.limits.handshakeTimeout = .seconds(5)
        change(&configuration)
        return configuration
    }

    static let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }()

    /// A started node allowing `peers`.
    static func node(
        _ identity: NodeIdentity, allowing peers: [NodeIdentity],
        configure: (inout MeshTransportConfiguration) -> Void = { _ in }
    ) async throws -> MeshTransport {
        let transport = try MeshTransport(
            identity: identity, admission: policy(allowing: peers), configuration: configuration(configure),
            logger: logger)
        try await transport.start()
        return transport
    }

    /// Polls `condition` until it holds or `timeout` passes.
    static func eventually(timeout: Duration = .seconds(30), _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return condition()
    }
}

/// Collects a transport's inbound messages in the background.
final class Collector: Sendable {
    final class Store: Sendable {
        let messages = Mutex<[InboundMessage]>([])
    }
    let store = Store()
    let task: Task<Void, Never>

    init(_ transport: MeshTransport) {
        let store = self.store
        task = Task {
            for await message in transport.inbound { store.messages.withLock { $0.append(message) } }
        }
    }

    var all: [InboundMessage] { store.messages.withLock { $0 } }
    var count: Int { store.messages.withLock { $0.count } }

    func waitFor(count: Int, timeout: Duration = .seconds(30)) async -> Bool {
        await TestSupport.eventually(timeout: timeout) { self.count >= count }
    }
}

/// A hand-driven client speaking raw bytes: used to act as a hostile or misbehaving peer.
final class RawPeer: Sendable {
    final class Sink: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received = Mutex<[UInt8]>([])
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            received.withLock { $0 += buffer.readableBytesView }
        }
    }

    let channel: any Channel
    let sink: Sink
    let consumed = Mutex(0)

    private init(channel: any Channel, sink: Sink) {
        self.channel = channel
        self.sink = sink
    }

    static func connect(port: Int) async throws -> RawPeer {
        let sink = Sink()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(sink) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawPeer(channel: channel, sink: sink)
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).get()
    }

    /// The next complete frame body from the server.
    func nextFrame(timeout: Duration = .seconds(30)) async throws -> [UInt8] {
        var frame: [UInt8]?
        _ = await TestSupport.eventually(timeout: timeout) {
            let bytes = sink.received.withLock { $0 }
            let start = consumed.withLock { $0 }
            let closed = !channel.isActive
            guard bytes.count - start >= 4 else { return closed }
            let length = bytes[start..<start + 4].reduce(0) { $0 << 8 | Int($1) }
            guard bytes.count - start - 4 >= length else { return closed }
            frame = Array(bytes[start + 4..<start + 4 + length])
            consumed.withLock { $0 = start + 4 + length }
            return true
        }
        guard let frame else { throw SecurityError(.handshakeAborted, "no complete frame before close or timeout") }
        return frame
    }

    /// Runs the initiator side of the handshake with `identity`; returns the session.
    func handshake(identity: NodeIdentity, policy: AdmissionPolicy) async throws -> SecureSession {
        var machine = try MeshHandshake(role: .initiator, identity: identity, admission: policy, now: .now)
        try await send(try machine.start())
        let message2 = try await nextFrame()
        try await send(try #require(try machine.receive(message2, now: .now).bytesToSend))
        let confirmation = try await nextFrame()
        return try #require(try machine.receive(confirmation, now: .now).session)
    }

    var isClosed: Bool { !channel.isActive }

    func waitClosed(timeout: Duration = .seconds(30)) async -> Bool {
        await TestSupport.eventually(timeout: timeout) { !self.channel.isActive }
    }

    func close() async {
        try? await channel.close()
    }
}
