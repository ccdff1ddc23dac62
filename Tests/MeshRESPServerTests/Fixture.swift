#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import MeshTesting
import MeshRESP
import MeshRESPServer
import MeshSecurity
import NIOCore
import StateMesh
import Synchronization
import Testing

/// A few in-process nodes over encrypted loopback, each with a RESP front door on a free port.
final class RESPMesh: Sendable {
    let identities: [NodeIdentity]
    let base: String
    let nodes: Mutex<[MeshNode]> = Mutex([])
    let servers: Mutex<[RESPServer]> = Mutex([])
    let tasks: Mutex<[Task<Void, any Error>]> = Mutex([])
    let ports: Mutex<[Int]> = Mutex([])

    /// Starts `count` nodes (node 0 seeds the others) and their RESP servers; waits until the mesh is formed.
    init(
        count: Int, durability: Durability = .always,
        tuning: @Sendable (inout RESPServerConfiguration) -> Void = { _ in },
        nodeTuning: @Sendable (inout MeshNodeConfiguration) -> Void = { _ in }
    ) async throws {
        identities = try (0..<count).map { _ in try NodeIdentity.generate() }
        var template = Array("/tmp/statemesh-resp-XXXXXX".utf8CString)
        base = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        let admission = try AdmissionPolicy(
            allowedPeers: Set(identities.map(\.nodeID)), epoch: 1, clusterKey: [UInt8](repeating: 7, count: 32))
        var seedPort: Int?
        for index in 0..<count {
            var configuration = MeshNodeConfiguration(
                identity: identities[index], admission: admission, dataDirectory: "\(base)/node-\(index)")
            configuration.durability = durability
            configuration.replication.gossipIntervalMilliseconds = 50
            configuration.membership.probeIntervalMilliseconds = 200
            configuration.membership.probeTimeoutMilliseconds = 100
            configuration.domains = [DomainConfiguration(name: "default"), DomainConfiguration(name: "fleet")]
            if let seedPort { configuration.seeds = [MemberAddress(host: "127.0.0.1", port: seedPort)] }
            nodeTuning(&configuration)
            var logger = Logger(label: "resp-test")
            logger.logLevel = .warning
            let node = try MeshNode(configuration: configuration, logger: logger)
            var respConfiguration = RESPServerConfiguration(port: 0)
            tuning(&respConfiguration)
            let server = RESPServer(node: node, configuration: respConfiguration, logger: logger)
            let nodeTask = Task { try await node.run() }
            let serverTask = Task { try await server.run() }
            tasks.withLock { $0 += [nodeTask, serverTask] }
            nodes.withLock { $0.append(node) }
            servers.withLock { $0.append(server) }
            try await node.waitUntilRunning()
            let port = try await server.waitUntilListening()
            ports.withLock { $0.append(port) }
            if seedPort == nil { seedPort = await node.listeningPort }
        }
        if count > 1 {
            let formed = await eventually(timeout: .seconds(60)) {
                for node in self.nodes.withLock({ $0 }) {
                    let alive = await node.status().peers.count { $0.state == "alive" && $0.isConnected }
                    if alive < count - 1 { return false }
                }
                return true
            }
            try #require(formed, "the mesh did not form")
        }
    }

    func node(_ index: Int) -> MeshNode { nodes.withLock { $0[index] } }
    func port(_ index: Int) -> Int { ports.withLock { $0[index] } }

    /// A connected client of node `index`'s front door.
    func client(_ index: Int) throws -> RESPClient { try RESPClient(port: port(index)) }

    /// Stops servers and nodes and removes the data.
    func stop() async {
        for server in servers.withLock({ $0 }) { await server.close() }
        for node in nodes.withLock({ $0 }) { await node.shutdown() }
        for task in tasks.withLock({ $0 }) { task.cancel() }
        try? FileManager.default.removeItem(atPath: base)
    }
}

/// A RESP client over a POSIX socket (test-only; replies parsed by `RESPReplyParser`).
///
/// Its socket calls block, so each runs through `runBlocking` on a thread of its own: a blocking call
/// made on a cooperative thread (a `WAIT` of seconds, a read until the server closes) would stall the
/// nodes under test, which need those threads to resume after every suspension.
/// `@unchecked Sendable`: one test task uses a client, and awaits each call before the next, so its
/// parser and buffer are never touched by two threads at once.
final class RESPClient: @unchecked Sendable {
    let descriptor: Int32
    private var parser = RESPReplyParser()
    private var buffer = ByteBuffer()

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(descriptor)
            throw ClientError("connect to \(port) failed: errno \(errno)")
        }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(descriptor) }

    struct ClientError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Sends raw bytes.
    func send(_ bytes: [UInt8]) async throws {
        try await runBlocking { try self.sendNow(bytes) }
    }

    /// Encodes a command as a multibulk request.
    static func encode(_ arguments: [String]) -> [UInt8] {
        encode(bytes: arguments.map { Array($0.utf8) })
    }

    /// Encodes a command whose arguments are any bytes (not necessarily UTF-8) as a multibulk request.
    static func encode(bytes arguments: [[UInt8]]) -> [UInt8] {
        var bytes = Array("*\(arguments.count)\r\n".utf8)
        for argument in arguments {
            bytes += Array("$\(argument.count)\r\n".utf8) + argument + [13, 10]
        }
        return bytes
    }

    /// Sends a command and reads its reply.
    @discardableResult
    func call(_ arguments: String...) async throws -> RESPValue {
        try await call(bytes: arguments.map { Array($0.utf8) })
    }

    /// Sends a command whose arguments are any bytes and reads its reply.
    @discardableResult
    func call(bytes arguments: [[UInt8]]) async throws -> RESPValue {
        let request = Self.encode(bytes: arguments)
        return try await runBlocking {
            try self.sendNow(request)
            return try self.readNow()
        }
    }

    /// Reads one reply (or push); throws when the server closed the connection.
    func read() async throws -> RESPValue {
        try await runBlocking { try self.readNow() }
    }

    /// Whether the server closed the connection (reads until EOF, up to the receive timeout).
    func isClosedByServer() async -> Bool {
        await runBlocking {
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = chunk.withUnsafeMutableBytes { recv(self.descriptor, $0.baseAddress, $0.count, 0) }
                if count == 0 { return true }
                if count < 0 { return errno == ECONNRESET }
            }
        }
    }

    private func sendNow(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw ClientError("send failed: errno \(errno)") }
            sent += count
        }
    }

    private func readNow() throws -> RESPValue {
        while true {
            if let value = try parser.next(from: &buffer) { return value }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw ClientError(count == 0 ? "connection closed" : "recv failed: errno \(errno)") }
            buffer.writeBytes(chunk[..<count])
        }
    }
}

extension RESPValue {
    /// The text of a simple or bulk string.
    var text: String? {
        switch self {
        case .simpleString(let text): text
        case .bulkString(let bytes): String(decoding: bytes, as: UTF8.self)
        case .verbatimString(_, let text): text
        default: nil
        }
    }

    var integer: Int64? { if case .integer(let value) = self { value } else { nil } }

    var errorLine: String? { if case .error(let line) = self { line } else { nil } }

    var elements: [RESPValue]? {
        switch self {
        case .array(let values), .set(let values), .push(let values), .map(let values): values
        default: nil
        }
    }

    var texts: [String]? { elements?.compactMap(\.text) }
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(
    timeout: Duration = .seconds(30), every interval: Duration = .milliseconds(20),
    _ condition: () async throws -> Bool
) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if (try? await condition()) == true { return true }
        try? await Task.sleep(for: interval)
    }
    return (try? await condition()) == true
}
