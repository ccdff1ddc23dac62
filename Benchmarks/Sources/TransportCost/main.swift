import Foundation
import Logging
import MeshSecurity
import MeshTransport
import NIOPosix

// CPU cost of the encrypted loopback path: sends GIB gibibytes of SIZE-byte messages from one transport to
// another (each on its own event-loop thread, as in TransportBenchmarks' "Loopback" rows) and prints the
// throughput and the process's CPU seconds (user + system) and minor page faults per GiB moved. On a busy
// machine throughput swings with the load; CPU per GiB moves much less, so it is the figure to compare
// two builds with while other work runs.
//
//   swift run -c release --package-path Benchmarks transport-cost [SIZE] [GIB]

// The allocator settings `mesh` runs its nodes with, unless STATEMESH_MALLOC_DEFAULTS=1.
let allocatorTuned = ProcessAllocator.tuneForStreamingUnlessOptedOut()
let size = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1])! : 65536
let gibibytes = CommandLine.arguments.count > 2 ? Double(CommandLine.arguments[2])! : 4
let batchBytes = 16 << 20
let batchCount = max(1, batchBytes / size)
let batches = Int((gibibytes * Double(1 << 30)) / Double(batchCount * size))

func identity(_ tag: UInt8) -> NodeIdentity {
    try! NodeIdentity(seed: [UInt8](repeating: tag, count: 32), staticSecretKey: [UInt8](repeating: tag &+ 100, count: 32))
}
let alice = identity(1)
let bob = identity(2)
let key = [UInt8](repeating: 0x42, count: 32)
func policy(_ peer: NodeIdentity) -> AdmissionPolicy {
    try! AdmissionPolicy(allowedPeers: [peer.nodeID], epoch: 1, clusterKey: key)
}

func usage() -> (cpu: Double, faults: Int) {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    return (cpu, usage.ru_minflt)
}

let senderGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let receiverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
var configuration = MeshTransportConfiguration()
configuration.inboundBufferLimit = 1 << 20
configuration.socketBufferByteCount = 4 << 20
var logger = Logger(label: "transport-cost")
logger.logLevel = .warning
let sender = try MeshTransport(
    identity: alice, admission: policy(bob), configuration: configuration, eventLoopGroup: senderGroup, logger: logger)
let receiver = try MeshTransport(
    identity: bob, admission: policy(alice), configuration: configuration, eventLoopGroup: receiverGroup, logger: logger)
let port = try await receiver.start()
try await sender.dial(host: "127.0.0.1", port: port)
guard await receiver.waitForSession(with: alice.nodeID) else { fatalError("no session") }

let batch = (0..<batchCount).map { _ in [UInt8](repeating: 0x3C, count: size) }
func roundTrip() async throws {
    async let sent: Void = sender.send(contentsOf: batch, to: bob.nodeID)
    var received = 0
    for await _ in receiver.inbound {
        received += 1
        if received == batchCount { break }
    }
    try await sent
}
for _ in 0..<3 { try await roundTrip() }  // warm-up

let start = usage()
let clock = ContinuousClock()
let began = clock.now
for _ in 0..<batches { try await roundTrip() }
let elapsed = began.duration(to: clock.now)
let end = usage()
let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
let moved = Double(batches * batchCount * size)
let gib = moved / Double(1 << 30)
print(String(
    format: "%d-byte messages, %.2f GiB, allocator %@: %.1f MB/s, %.3f CPU s/GiB, %.0f minor faults/GiB, load %@",
    size, gib, allocatorTuned ? "tuned" : "glibc defaults", moved / seconds / 1e6, (end.cpu - start.cpu) / gib,
    Double(end.faults - start.faults) / gib,
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8).split(separator: " ").first.map(String.init)) ?? "?"))
await sender.shutdown()
await receiver.shutdown()
try await senderGroup.shutdownGracefully()
try await receiverGroup.shutdownGracefully()
