import Foundation
import MeshStorage
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Crash and throughput tests, in the serialized `MeshStore` suite: they run child processes and time fsyncs.
extension MeshStoreTests {
    /// One line the helper printed after a commit returned: an acknowledged write.
    struct Acknowledged: Hashable {
        let sequence: Int64
        let run: UInt64
        let index: UInt64
    }

    @Test(
        "SIGKILL in the middle of committing loses no acknowledged write, 10 kills in a row (batched: SIGKILL is not power loss)",
        arguments: ["always", "batched"]
    )
    func killLosesNoAcknowledgedWrite(mode: String) throws {
        try withTemporaryDirectory { directory in
            var acknowledged: [Acknowledged] = []
            var generator = SystemRandomNumberGenerator()
            for run in UInt64(0)..<10 {
                let (process, output, errors) = try CrashHelper.start(["append", directory, mode, "\(run)"])
                let target = Int.random(in: 3...80, using: &generator)
                var buffer: [UInt8] = []
                var lines: [String] = []
                var exitedEarly = false
                while lines.count < target {
                    let chunk = output.availableData
                    if chunk.isEmpty {
                        exitedEarly = true
                        break
                    }
                    buffer += chunk
                    lines += takeLines(&buffer)
                }
                // Land the kill at a random point of the next append/commit.
                usleep(UInt32.random(in: 0...3_000, using: &generator))
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                let stderrText = String(decoding: errors.readDataToEndOfFile(), as: UTF8.self)
                try #require(!exitedEarly, "the helper exited on its own: \(stderrText)")
                #expect(process.terminationReason == .uncaughtSignal)
                // Whatever it printed before dying; an unterminated last line was never fully acknowledged.
                buffer += output.readDataToEndOfFile()
                lines += takeLines(&buffer)

                let parsed = try lines.map { line in
                    let fields = line.split(separator: " ")
                    try #require(fields.count == 3, "bad line '\(line)'")
                    return Acknowledged(
                        sequence: try #require(Int64(fields[0])), run: try #require(UInt64(fields[1])),
                        index: try #require(UInt64(fields[2])))
                }
                if let previous = acknowledged.last, let first = parsed.first {
                    #expect(first.sequence > previous.sequence, "a committed sequence was reused after a crash")
                }
                acknowledged += parsed
                try verify(directory: directory, acknowledged: acknowledged)
            }
            print(
                "MeshStorage crash test (\(mode)): 10 SIGKILLs, \(acknowledged.count) acknowledged writes, all present")
        }
    }

    /// Every acknowledged write is in the reopened store: as its record, or covered by the checkpoint; the
    /// metadata written in the same batch as the last record agrees (batches are atomic).
    private func verify(directory: String, acknowledged: [Acknowledged]) throws {
        let store = try MeshStore(directory: directory)
        defer { store.close() }
        let checkpoint = try store.checkpoint()
        let through = checkpoint?.throughSequence ?? 0
        let records = try allRecords(store)
        #expect(zip(records, records.dropFirst()).allSatisfy { $0.sequence < $1.sequence })
        #expect(records.allSatisfy { $0.sequence > through }, "the checkpoint's records were not deleted with it")
        let bySequence = Dictionary(uniqueKeysWithValues: records.map { ($0.sequence, $0.bytes) })
        for write in acknowledged where write.sequence > through {
            let bytes = try #require(bySequence[write.sequence], "acknowledged sequence \(write.sequence) was lost")
            #expect(decodeLittleEndian(bytes) == write.run && decodeLittleEndian(bytes.dropFirst(8)) == write.index)
        }
        let last = try #require(try store.value(forKey: "last"))
        let lastCommitted = max(records.last?.sequence ?? 0, through)
        #expect(Int64(decodeLittleEndian(last)) == lastCommitted, "the metadata and the record of one batch disagree")
        if let newest = acknowledged.last {
            #expect(lastCommitted >= newest.sequence)
        }
        if let checkpoint, let covering = acknowledged.first(where: { $0.sequence == through }) {
            #expect(checkpoint.bytes == littleEndian(covering.run) + littleEndian(covering.index))
        }
    }

    @Test("throughput: commits per second in always and batched mode (printed); every commit is there after reopening")
    func commitThroughput() throws {
        try withTemporaryDirectory { parent in
            let payload = [UInt8](repeating: 0x5A, count: 100)
            var report: [String] = []
            for (name, durability, commits, recordsPerCommit) in [
                ("always", Durability.always, 300, 1),
                ("batched", Durability.batched(intervalMilliseconds: 5), 3_000, 1),
                ("always, 100 records per commit", Durability.always, 100, 100),
                ("batched, 100 records per commit", Durability.batched(intervalMilliseconds: 5), 300, 100),
            ] {
                let directory = parent + "/" + name.replacingOccurrences(of: " ", with: "-")
                let store = try MeshStore(directory: directory, durability: durability)
                let clock = ContinuousClock()
                let elapsed = try clock.measure {
                    for _ in 0..<commits {
                        for _ in 0..<recordsPerCommit { _ = try store.appendRecord(domain: "bench", bytes: payload) }
                        try store.commit()
                    }
                }
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                let statistics = store.statistics
                #expect(statistics.commits == commits)
                store.close()
                let reopened = try MeshStore(directory: directory)
                #expect(try allRecords(reopened).count == commits * recordsPerCommit)
                let meanMilliseconds = seconds * 1000 / Double(commits)
                report.append(
                    "\(name): \(Int(Double(commits) / seconds)) commits/s, \(Int(Double(commits * recordsPerCommit) / seconds)) records/s, "
                        + "mean \(String(format: "%.3f", meanMilliseconds)) ms per batch, longest commit \(statistics.longestCommitDuration)"
                )
            }
            print("MeshStorage throughput (100-byte records):\n  " + report.joined(separator: "\n  "))
        }
    }
}
