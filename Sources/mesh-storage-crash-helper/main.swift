// mesh-storage-crash-helper: the child process of MeshStorageTests' crash and lock tests.
//
//   mesh-storage-crash-helper append <directory> <always|batched> <run>
//       Appends one record per batch, with a metadata write in the same batch and a checkpoint every
//       25th batch; after each commit() returns it writes "<sequence> <run> <index>\n" to stdout
//       (unbuffered), so every line printed is a committed, acknowledged write. Runs until killed
//       (at most 100,000 batches).
//   mesh-storage-crash-helper hold <directory>
//       Opens the store, writes "ready\n" and sleeps until killed (at most 60 s).
//   mesh-storage-crash-helper bench <directory> <always|batched> <commits> <records-per-commit>
//       Times <commits> batches of 100-byte records and prints commits/s and records/s (for the README's
//       figures from a release build: `swift build -c release --product mesh-storage-crash-helper`).
//
// Record bytes: run (8 bytes little-endian), index (8 bytes little-endian), 48 bytes of 0xA5.
// Exit status 2 on bad arguments, 1 on a storage error (printed to stderr).
import MeshStorage

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

func emit(_ text: String, to descriptor: Int32) {
    let bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { buffer in
            write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
        }
        if written < 0 {
            if errno == EINTR { continue }
            exit(3)  // the reader is gone; nothing left to tell
        }
        offset += written
    }
}

func littleEndian(_ value: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    emit("usage: mesh-storage-crash-helper append <directory> <always|batched> <run> | hold <directory>\n", to: 2)
    exit(2)
}

do throws(StorageError) {
    switch arguments[1] {
    case "append" where arguments.count == 5:
        let durability: Durability = arguments[3] == "batched" ? .batched(intervalMilliseconds: 5) : .always
        guard let run = UInt64(arguments[4]) else {
            emit("run must be a number\n", to: 2)
            exit(2)
        }
        let store = try MeshStore(directory: arguments[2], durability: durability)
        for index in UInt64(0)..<100_000 {
            let payload = littleEndian(run) + littleEndian(index) + [UInt8](repeating: 0xA5, count: 48)
            let sequence = try store.appendRecord(domain: "crash", bytes: payload)
            try store.setValue(littleEndian(UInt64(sequence)), forKey: "last")
            if index % 25 == 24 {
                try store.replaceCheckpoint(littleEndian(run) + littleEndian(index))
            }
            try store.commit()
            emit("\(sequence) \(run) \(index)\n", to: 1)
        }
    case "hold":
        let store = try MeshStore(directory: arguments[2])
        emit("ready\n", to: 1)
        sleep(60)
        store.close()
    case "bench" where arguments.count == 6:
        let durability: Durability = arguments[3] == "batched" ? .batched(intervalMilliseconds: 5) : .always
        guard let commits = Int(arguments[4]), let perCommit = Int(arguments[5]), commits > 0, perCommit > 0 else {
            emit("commits and records-per-commit must be positive numbers\n", to: 2)
            exit(2)
        }
        let store = try MeshStore(directory: arguments[2], durability: durability)
        let payload = [UInt8](repeating: 0x5A, count: 100)
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<commits {
            for _ in 0..<perCommit { _ = try store.appendRecord(domain: "bench", bytes: payload) }
            try store.commit()
        }
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let statistics = store.statistics
        store.close()
        let mean = statistics.totalCommitDuration / statistics.commits
        emit(
            "\(arguments[3]) \(perCommit) record(s)/commit: \(Int(Double(commits) / seconds)) commits/s, "
                + "\(Int(Double(commits * perCommit) / seconds)) records/s, mean commit() \(mean), "
                + "longest \(statistics.longestCommitDuration)\n", to: 1)
    default:
        emit("unknown command \(arguments[1])\n", to: 2)
        exit(2)
    }
} catch {
    emit("mesh-storage-crash-helper: \(error)\n", to: 2)
    exit(1)
}
