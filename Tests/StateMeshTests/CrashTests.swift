#if canImport(Glibc)
import Glibc
#endif
import Foundation
import MeshSecurity
import MeshStorage
import MeshTesting
import StateMesh
import Testing

/// Runs `mesh-crash-writer` (built next to the test binary), SIGKILLs it after `acknowledgements`
/// acknowledged writes, and returns every index it printed as acknowledged. The reads and waits run off
/// the cooperative pool (`runBlocking`).
private func writeUntilKilled(directory: String, mode: String, start: Int, acknowledgements: Int) async throws -> [Int] {
    try await runBlocking {
        try writeUntilKilledBlocking(directory: directory, mode: mode, start: start, acknowledgements: acknowledgements)
    }
}

private func writeUntilKilledBlocking(directory: String, mode: String, start: Int, acknowledgements: Int) throws -> [Int] {
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        .appendingPathComponent("mesh-crash-writer")
    guard FileManager.default.isExecutableFile(atPath: binary.path) else {
        throw MeshError(.invalidRequest, "\(binary.path) is missing: build all products (swift build --build-tests)")
    }
    let process = Process()
    process.executableURL = binary
    process.arguments = [directory, mode, "\(start)"]
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    var acknowledged: [Int] = []
    var pending = Data()
    let handle = output.fileHandleForReading
    func absorb(_ data: Data) {
        pending.append(data)
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
            pending.removeSubrange(pending.startIndex...newline)
            if line.hasPrefix("ack "), let index = Int(line.dropFirst(4)) { acknowledged.append(index) }
        }
    }
    while acknowledged.count < acknowledgements {
        let data = handle.availableData
        if data.isEmpty { break }  // the writer died on its own
        absorb(data)
    }
    kill(process.processIdentifier, SIGKILL)
    // Lines already printed before the kill were acknowledged too.
    absorb(handle.readDataToEndOfFile())
    process.waitUntilExit()
    return acknowledged
}

/// Opens the node on `directory` in this process and returns the elements it recovered.
private func recoveredElements(directory: String, durability: Durability) async throws -> Set<String> {
    let admission = try AdmissionPolicy(allowedPeers: [], epoch: 1, clusterKey: [UInt8](repeating: 7, count: 32))
    var configuration = MeshNodeConfiguration(
        identity: try NodeIdentity.generate(), admission: admission, dataDirectory: directory)
    configuration.durability = durability
    configuration.domains = [.init(name: "crash")]
    let node = try MeshNode(configuration: configuration)
    let runner = Task { try await node.run() }
    try await node.waitUntilRunning()
    let elements = try await node.set("fabric://crash/acknowledged").elements()
    await node.shutdown()
    _ = try await runner.value
    return elements
}

@Suite("Crash recovery (SIGKILL)", .serialized)
struct CrashTests {
    /// In `always` mode, 20 SIGKILLs at random moments lose no acknowledged write, and the replica ID survives.
    @Test func alwaysModeLosesNothingAcrossTwentyKills() async throws {
        let directory = NSTemporaryDirectory() + "statemesh-crash-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var generator = SystemRandomNumberGenerator()
        var everything: Set<String> = []
        var next = 0
        var total = 0
        for _ in 0..<20 {
            let target = Int.random(in: 5...120, using: &generator)
            let acknowledged = try await writeUntilKilled(directory: directory, mode: "always", start: next, acknowledgements: target)
            #expect(acknowledged.count >= target, "the writer stopped early")
            everything.formUnion(acknowledged.map { "w-\($0)" })
            total += acknowledged.count
            let recovered = try await recoveredElements(directory: directory, durability: .always)
            let lost = everything.subtracting(recovered)
            #expect(lost.isEmpty, "lost acknowledged writes: \(lost.sorted().prefix(10))")
            next = (acknowledged.max() ?? next) + 1_000
        }
        #expect(total >= 100)
    }

    /// In `batched` mode a kill may lose acknowledged writes, but only the newest ones (a suffix of the
    /// acknowledged sequence, from the last group-commit interval), never one in the middle.
    @Test func batchedModeLosesOnlyTheNewestWrites() async throws {
        let directory = NSTemporaryDirectory() + "statemesh-batched-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var next = 0
        var lostTotal = 0
        var acknowledgedTotal = 0
        for round in 0..<5 {
            let acknowledged = try await writeUntilKilled(
                directory: directory, mode: "batched", start: next, acknowledgements: 300 + round * 50)
            let recovered = try await recoveredElements(directory: directory, durability: .batched(intervalMilliseconds: 20))
            let present = acknowledged.map { recovered.contains("w-\($0)") }
            // Present writes form a prefix: after the first lost one, none is present.
            if let firstLost = present.firstIndex(of: false) {
                #expect(!present[firstLost...].contains(true), "a write in the middle was lost")
            }
            lostTotal += present.filter { !$0 }.count
            acknowledgedTotal += acknowledged.count
            next = (acknowledged.max() ?? next) + 1_000
        }
        print("batched mode: \(lostTotal) of \(acknowledgedTotal) acknowledged writes lost across 5 kills")
    }
}
