import Benchmark
import CSodiumBench
import Logging
import MeshSecurity
import MeshTransport
import NIOPosix

// Handshakes, in-memory seal+open, and encrypted loopback TCP throughput through MeshTransport.
// scripts/bench-transport.sh turns the p50 time per operation (nanoseconds) into MB/s using the bytes
// per operation named in each benchmark and prints it beside the raw libsodium AEAD figure.

enum Fixture {
    static func identity(_ tag: UInt8) -> NodeIdentity {
        try! NodeIdentity(seed: [UInt8](repeating: tag, count: 32), staticSecretKey: [UInt8](repeating: tag &+ 100, count: 32))
    }
    static let alice = identity(1)
    static let bob = identity(2)
    static let key = [UInt8](repeating: 0x42, count: 32)
    static func policy(_ peer: NodeIdentity) -> AdmissionPolicy {
        try! AdmissionPolicy(allowedPeers: [peer.nodeID], epoch: 1, clusterKey: key)
    }

    /// One complete StateMesh handshake between two in-memory state machines (both sides' work).
    static func handshake() throws -> (SecureSession, SecureSession) {
        let now = ContinuousClock.now
        var initiator = try MeshHandshake(role: .initiator, identity: alice, admission: policy(bob), now: now)
        var responder = try MeshHandshake(role: .responder, identity: bob, admission: policy(alice), now: now)
        let message1 = try initiator.start()
        let message2 = try responder.receive(Array(message1.dropFirst(4)), now: now).bytesToSend!
        let message3 = try initiator.receive(Array(message2.dropFirst(4)), now: now).bytesToSend!
        let final = try responder.receive(Array(message3.dropFirst(4)), now: now)
        let initiatorSession = try initiator.receive(Array(final.bytesToSend!.dropFirst(4)), now: now).session!
        return (initiatorSession, final.session!)
    }
}

/// Two transports on their own event loop threads with one session between them.
final class Loopback: @unchecked Sendable {
    let senderGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let receiverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var sender: MeshTransport!
    var receiver: MeshTransport!

    func start() async throws {
        var configuration = MeshTransportConfiguration()
        configuration.inboundBufferLimit = 1 << 20
        configuration.socketBufferByteCount = 4 << 20  // bulk transfer: fewer wake-ups per MiB
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        sender = try MeshTransport(
            identity: Fixture.alice, admission: Fixture.policy(Fixture.bob), configuration: configuration,
            eventLoopGroup: senderGroup, logger: logger)
        receiver = try MeshTransport(
            identity: Fixture.bob, admission: Fixture.policy(Fixture.alice), configuration: configuration,
            eventLoopGroup: receiverGroup, logger: logger)
        let port = try await receiver.start()
        try await sender.dial(host: "127.0.0.1", port: port)
        guard await receiver.waitForSession(with: Fixture.alice.nodeID) else { fatalError("no session") }
    }

    /// Sends `batch` and waits until all of it has been received and opened.
    func roundTrip(_ batch: [[UInt8]]) async throws {
        async let sent: Void = sender.send(contentsOf: batch, to: Fixture.bob.nodeID)
        var received = 0
        for await _ in receiver.inbound {
            received += 1
            if received == batch.count { break }
        }
        try await sent
    }

    func stop() async throws {
        await sender.shutdown()
        await receiver.shutdown()
        try await senderGroup.shutdownGracefully()
        try await receiverGroup.shutdownGracefully()
    }
}

nonisolated(unsafe) var loopback = Loopback()

let benchmarks: @Sendable () -> Void = {
    // The allocator settings `mesh` runs its nodes with (see ProcessAllocator); STATEMESH_MALLOC_DEFAULTS=1
    // measures glibc's defaults instead.
    ProcessAllocator.tuneForStreamingUnlessOptedOut()
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]
    let configuration = Benchmark.Configuration(
        metrics: metrics, timeUnits: .nanoseconds, warmupIterations: 3, maxDuration: .seconds(3),
        maxIterations: 100_000)

    // bytes-per-op=0: one op is one full handshake (initiator + responder work, 4 messages).
    Benchmark("Handshake XXpsk3 (both sides)", configuration: configuration) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try Fixture.handshake()) }
    }

    for size in [1024, 65536] {
        // bytes-per-op=size: raw libsodium ChaCha20-Poly1305-IETF encryption of one message (13 bytes of
        // associated data, like a frame header), the ceiling the transport is compared with; measured by the
        // same harness in the same run as the transport figures.
        Benchmark("Raw IETF encrypt \(size / 1024) KiB", configuration: configuration) { benchmark in
            precondition(sodium_init() >= 0)
            let key = [UInt8](repeating: 7, count: Int(crypto_aead_chacha20poly1305_ietf_KEYBYTES))
            var nonce = [UInt8](repeating: 0, count: Int(crypto_aead_chacha20poly1305_ietf_NPUBBYTES))
            let associatedData = [UInt8](repeating: 1, count: 13)
            let message = [UInt8](repeating: 0xA5, count: size)
            var output = [UInt8](repeating: 0, count: size + Int(crypto_aead_chacha20poly1305_ietf_ABYTES))
            var outputLength: UInt64 = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                nonce[4] &+= 1
                let rc = crypto_aead_chacha20poly1305_ietf_encrypt(
                    &output, &outputLength, message, UInt64(size), associatedData, UInt64(associatedData.count), nil,
                    nonce, key)
                precondition(rc == 0)
                blackHole(output[0])
            }
        }

        // bytes-per-op=size: seal one message and open it again.
        Benchmark("Seal+open \(size / 1024) KiB", configuration: configuration) { benchmark in
            var (sender, receiver) = try Fixture.handshake()
            let message = [UInt8](repeating: 0xA5, count: size)
            let now = ContinuousClock.now
            var output = [UInt8](repeating: 0, count: sender.sealedByteCount(messageByteCount: size))
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                let written = try message.withUnsafeBytes { input in
                    try output.withUnsafeMutableBytes { try sender.seal(input, into: $0, now: now) }
                }
                var offset = 0
                while offset < written {
                    let length = output[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
                    let opened = try output.withUnsafeBytes {
                        try receiver.open(UnsafeRawBufferPointer(rebasing: $0[offset + 4..<offset + 4 + length]))
                    }
                    blackHole(opened)
                    offset += 4 + length
                }
            }
        }
    }

    for (size, batchCount) in [(1024, 4096), (65536, 256)] {
        let batch = (0..<batchCount).map { _ in [UInt8](repeating: 0x3C, count: size) }
        // bytes-per-op=size*batchCount: one op sends a batch over loopback TCP and waits until all are received.
        Benchmark(
            "Loopback \(size / 1024) KiB x\(batchCount)", configuration: configuration,
            closure: { benchmark in
                for _ in benchmark.scaledIterations { try await loopback.roundTrip(batch) }
            },
            setup: {
                loopback = Loopback()
                try await loopback.start()
            },
            teardown: { try await loopback.stop() })
    }
}
