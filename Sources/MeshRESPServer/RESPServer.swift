import Logging
import MeshRESP
import MeshReplication
import NIOCore
import NIOPosix
import ServiceLifecycle
import StateMesh
import Synchronization

/// A Redis-protocol (RESP2, and RESP3 after `HELLO 3`) front door to one node: every Redis client
/// becomes a client of the mesh. Counters, strings, sets and hashes map to the node's CRDTs (see
/// the README's "RESP front door" section for each command's meaning under concurrency).
///
/// The server listens on the node's event loop and runs every command there, synchronously against
/// the node's state: a pipeline of commands read together executes in one turn and, in `.always`
/// durability, is answered after one group commit. Run it as a `Service` beside the node (after it
/// in a `ServiceGroup`, so it stops first).
public final class RESPServer: Service, Sendable {
    /// The node served.
    public let node: MeshNode
    /// The configuration.
    public let configuration: RESPServerConfiguration
    let logger: Logger
    let state: RESPServerState
    private let channel = Mutex<(any Channel)?>(nil)
    /// Who waits for the listener; `nil` once it is listening (or failed).
    private let started = Mutex<[CheckedContinuation<Int, any Error>]?>([])

    /// Creates a server for `node`; nothing is bound until `run()`.
    public init(node: MeshNode, configuration: RESPServerConfiguration, logger: Logger = Logger(label: "statemesh.resp")) {
        self.node = node
        self.configuration = configuration
        self.logger = logger
        self.state = RESPServerState(node: node, configuration: configuration, logger: logger)
    }

    /// Waits for the node to run, binds, and serves until task cancellation or graceful shutdown;
    /// then closes the listener and every client connection.
    ///
    /// - Throws: `RESPServerError` when the address cannot be bound; the node's error if it fails to start.
    public func run() async throws {
        try await node.waitUntilRunning()
        let port: Int
        do {
            port = try await start()
        } catch {
            let waiters = started.withLock { waiters in
                defer { waiters = nil }
                return waiters ?? []
            }
            for waiter in waiters { waiter.resume(throwing: error) }
            throw error
        }
        let waiters = started.withLock { waiters in
            defer { waiters = nil }
            return waiters ?? []
        }
        for waiter in waiters { waiter.resume(returning: port) }
        let (stop, stopContinuation) = AsyncStream.makeStream(of: Void.self)
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                for await _ in stop {}
            } onCancel: {
                stopContinuation.finish()
            }
        } onGracefulShutdown: {
            stopContinuation.finish()
        }
        await close()
    }

    /// Waits until the server listens and returns its port.
    ///
    /// - Throws: the error `run()` failed with.
    public func waitUntilListening() async throws -> Int {
        if let port = listeningPort { return port }
        return try await withCheckedThrowingContinuation { continuation in
            let queued = started.withLock { waiters -> Bool in
                guard waiters != nil else { return false }
                waiters!.append(continuation)
                return true
            }
            if !queued {
                if let port = listeningPort {
                    continuation.resume(returning: port)
                } else {
                    continuation.resume(throwing: RESPServerError("the RESP server is not listening"))
                }
            }
        }
    }

    /// The bound port, once listening.
    public var listeningPort: Int? { channel.withLock { $0?.localAddress?.port } }

    private func start() async throws -> Int {
        let state = self.state
        let configuration = self.configuration
        let bound: any Channel
        do {
            bound = try await ServerBootstrap(group: node.eventLoop)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.backlog, value: 511)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { child in
                    child.eventLoop.makeCompletedFuture {
                        try child.pipeline.syncOperations.addHandler(RESPConnectionHandler(state: state))
                    }
                }
                .bind(host: configuration.host, port: configuration.port).get()
        } catch {
            throw RESPServerError("cannot listen on \(configuration.host):\(configuration.port): \(error)")
        }
        let port = bound.localAddress?.port ?? configuration.port
        channel.withLock { $0 = bound }
        try await node.eventLoop.submit {
            state.started(endpoint: "\(configuration.host):\(port)")
        }.get()
        logger.info("RESP front door listening", metadata: ["endpoint": "\(configuration.host):\(port)"])
        return port
    }

    /// Closes the listener and every client.
    public func close() async {
        let bound = channel.withLock { $0 }
        try? await bound?.close()
        let state = self.state
        try? await node.eventLoop.submit { state.closeAll() }.get()
    }
}

/// A failure to start the RESP front door.
public struct RESPServerError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { message }
}
