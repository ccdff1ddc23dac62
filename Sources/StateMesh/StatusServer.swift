import Foundation
import NIOCore
import NIOPosix

/// A read-only status endpoint: every TCP connection receives the node's `NodeStatus` as one JSON
/// document and is closed (no request is read). It binds to loopback by default; `mesh status
/// --node HOST:PORT` reads it.
final class StatusServer: Sendable {
    let channel: any Channel

    /// Binds `host:port` (port 0 picks one) and serves `status()` to each connection.
    static func start(
        host: String, port: Int, status: @escaping @Sendable () async -> NodeStatus
    ) async throws -> StatusServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                let promise = child.eventLoop.makePromise(of: ByteBuffer.self)
                promise.completeWithTask {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    let data = (try? encoder.encode(await status())) ?? Data("{}".utf8)
                    return ByteBuffer(bytes: data + Data("\n".utf8))
                }
                promise.futureResult.whenSuccess { buffer in
                    child.writeAndFlush(buffer).whenComplete { _ in child.close(promise: nil) }
                }
                return child.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: host, port: port).get()
        return StatusServer(channel: channel)
    }

    private init(channel: any Channel) { self.channel = channel }

    /// The bound port.
    var port: Int { channel.localAddress?.port ?? 0 }

    func close() async { try? await channel.close() }
}
