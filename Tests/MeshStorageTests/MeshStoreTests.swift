import Foundation
import Testing

@testable import MeshStorage

#if canImport(Glibc)
    import Glibc
#endif

/// Serialized: the fault tests mount file systems and the throughput test times fsyncs.
@Suite("MeshStore", .serialized)
struct MeshStoreTests {
    // MARK: Round trips

    @Test("metadata: a missing key reads nil; set, overwrite and empty values read back, in the batch and after reopen")
    func metadataRoundTrip() throws {
        try withTemporaryDirectory { directory in
            let store = try MeshStore(directory: directory)
            #expect(try store.value(forKey: "replica") == nil)
            try store.setValue([1, 2, 3], forKey: "replica")
            try store.setValue([], forKey: "empty")
            try store.setValue([0, 0xFF], forKey: "key with \u{0} inside")
            #expect(try store.value(forKey: "replica") == [1, 2, 3])  // reads see the open batch
            try store.setValue([9], forKey: "replica")
            #expect(try store.value(forKey: "replica") == [9])
            try store.commit()
            store.close()

            let reopened = try MeshStore(directory: directory)
            #expect(try reopened.value(forKey: "replica") == [9])
            #expect(try reopened.value(forKey: "empty") == [])
            #expect(try reopened.value(forKey: "key with \u{0} inside") == [0, 0xFF])
            #expect(try reopened.value(forKey: "key with ") == nil)
            #expect(try reopened.value(forKey: "other") == nil)
        }
    }

    @Test("records: appends get increasing sequences and read back ascending, by domain and bytes, paged by limit")
    func recordsRoundTrip() throws {
        try withTemporaryDirectory { directory in
            let store = try MeshStore(directory: directory)
            let first = try store.appendRecord(domain: "fleet", bytes: [1])
            let second = try store.appendRecord(domain: "", bytes: [])
            let third = try store.appendRecord(domain: "fabric://fleet/é", bytes: Array(repeating: 7, count: 100_000))
            #expect(first == 1 && second == 2 && third == 3)
            let expected = [
                StoredRecord(sequence: 1, domain: "fleet", bytes: [1]),
                StoredRecord(sequence: 2, domain: "", bytes: []),
                StoredRecord(sequence: 3, domain: "fabric://fleet/é", bytes: Array(repeating: 7, count: 100_000)),
            ]
            #expect(try allRecords(store) == expected)
            try store.commit()
            #expect(try store.records(after: 1, limit: 1) == [expected[1]])
            #expect(try store.records(after: 0, limit: 2) == Array(expected[0..<2]))
            #expect(try store.records(after: 3, limit: 10) == [])
            #expect(try store.records(after: 0, limit: 0) == [])
            #expect(storageError { _ = try store.records(after: 0, limit: -1) }?.code == .invalidArgument)
            store.close()
            #expect(try allRecords(MeshStore(directory: directory)) == expected)
        }
    }

    @Test("members: set, overwrite and remove read back sorted bytewise by ID (a prefix first)")
    func membersRoundTrip() throws {
        try withTemporaryDirectory { directory in
            let store = try MeshStore(directory: directory)
            try store.setMember([0xB], forID: [2])
            try store.setMember([0xA], forID: [1, 0])
            try store.setMember([0xC], forID: [1])
            try store.setMember([0xD], forID: [0, 255])
            try store.setMember([0xE], forID: [2])  // overwrite
            try store.removeMember(id: [1, 0])
            try store.removeMember(id: [42])  // absent: nothing happens
            let expected: [([UInt8], [UInt8])] = [([0, 255], [0xD]), ([1], [0xC]), ([2], [0xE])]
            #expect(try store.members().map { [$0.id, $0.bytes] } == expected.map { [$0.0, $0.1] })
            try store.commit()
            store.close()
            let reopened = try MeshStore(directory: directory)
            #expect(try reopened.members().map { [$0.id, $0.bytes] } == expected.map { [$0.0, $0.1] })
        }
    }

    @Test("checkpoint: nil at first; replaceCheckpoint covers every record appended so far and deletes them")
    func checkpointRoundTrip() throws {
        try withTemporaryDirectory { directory in
            let store = try MeshStore(directory: directory)
            #expect(try store.checkpoint() == nil)
            try store.replaceCheckpoint([0])  // before any record: covers nothing
            #expect(try store.checkpoint()?.throughSequence == 0)
            for index in 0..<5 { _ = try store.appendRecord(domain: "d", bytes: [UInt8(index)]) }
            try store.commit()
            try store.replaceCheckpoint([1, 2, 3])
            let checkpoint = try #require(try store.checkpoint())
            #expect(checkpoint.bytes == [1, 2, 3] && checkpoint.throughSequence == 5)
            #expect(try allRecords(store) == [])
            let next = try store.appendRecord(domain: "d", bytes: [6])
            #expect(next == 6)
            try store.commit()
            store.close()

            let reopened = try MeshStore(directory: directory)
            let again = try #require(try reopened.checkpoint())
            #expect(again.bytes == [1, 2, 3] && again.throughSequence == 5)
            #expect(try allRecords(reopened) == [StoredRecord(sequence: 6, domain: "d", bytes: [6])])
        }
    }

    @Test("a record with a span takes that many sequences, survives reopening, and counts as many for retention")
    func recordSpans() throws {
        try withTemporaryDirectory { directory in
            let store = try MeshStore(directory: directory)
            #expect(try store.appendRecord(domain: "d", bytes: [1]) == 1)
            #expect(try store.appendRecord(domain: "d", bytes: [2], span: 5) == 6)
            #expect(try store.appendRecord(domain: "d", bytes: [3]) == 7)
            #expect(storageError { _ = try store.appendRecord(domain: "d", bytes: [4], span: 0) }?.code == .invalidArgument)
            try store.commit()
            store.close()
            let reopened = try MeshStore(directory: directory)
            #expect(try allRecords(reopened).map(\.sequence) == [1, 6, 7])
            #expect(try reopened.appendRecord(domain: "d", bytes: [5], span: 2) == 9)
            // The newest 3 sequences are 7...9: the record at 6 (standing for 2...6) goes, 7 and 9 stay.
            try reopened.replaceCheckpoint([0], retainingRecords: 3)
            try reopened.commit()
            #expect(try allRecords(reopened).map(\.sequence) == [7, 9])
        }
    }

    @Test("replaceCheckpoint can retain the newest records as history; a negative count is refused")
    func checkpointRetainsHistory() throws {
        try withTemporaryDirectory { directory in
            let store = try MeshStore(directory: directory)
            for index in 0..<10 { _ = try store.appendRecord(domain: "d", bytes: [UInt8(index)]) }
            try store.replaceCheckpoint([7], retainingRecords: 3)
            try store.commit()
            #expect(try store.checkpoint()?.throughSequence == 10)
            #expect(try allRecords(store).map(\.sequence) == [8, 9, 10])
            #expect(throws: StorageError.self) { try store.replaceCheckpoint([8], retainingRecords: -1) }
            #expect(try store.checkpoint()?.bytes == [7])
        }
    }

    @Test("statistics count committed batches, records, bytes, checkpoints and rollbacks")
    func statisticsCount() throws {
        try withTemporaryDirectory { directory in
            let store = try MeshStore(directory: directory)
            try store.commit()  // nothing open: not a commit
            #expect(store.statistics.commits == 0)
            _ = try store.appendRecord(domain: "d", bytes: [1, 2, 3])
            _ = try store.appendRecord(domain: "d", bytes: [4])
            try store.replaceCheckpoint([9])
            try store.commit()
            _ = try store.appendRecord(domain: "d", bytes: Array(repeating: 0, count: 1000))
            store.rollback()
            let statistics = store.statistics
            #expect(statistics.commits == 1)
            #expect(statistics.recordsAppended == 2)
            #expect(statistics.recordBytesAppended == 4)
            #expect(statistics.checkpointsReplaced == 1)
            #expect(statistics.rollbacks == 1)
            #expect(statistics.lastSequence == 3)
            #expect(statistics.lastCommitDuration > .zero)
            #expect(statistics.totalCommitDuration >= statistics.longestCommitDuration)
        }
    }

    // MARK: Batches and durability

    @Test("durability modes set SQLite as documented: WAL always, synchronous FULL for .always and NORMAL for .batched")
    func durabilityModesConfigureSQLite() throws {
        try withTemporaryDirectory { directory in
            let always = try MeshStore(directory: directory + "/always")
            #expect(try always.pragma("journal_mode") == "wal")
            #expect(try always.pragma("synchronous") == "2")  // FULL: the log is fsynced at every commit
            #expect(try always.pragma("busy_timeout") == "2000")
            #expect(try always.pragma("user_version") == "\(MeshStore.schemaVersion)")
            let batched = try MeshStore(
                directory: directory + "/batched", durability: .batched(intervalMilliseconds: 5))
            #expect(try batched.pragma("journal_mode") == "wal")
            #expect(try batched.pragma("synchronous") == "1")  // NORMAL: fsync only at WAL checkpoints
        }
    }

    @Test("an uncommitted batch is lost by close(); a committed one survives reopening")
    func onlyCommittedBatchesSurvive() throws {
        try withTemporaryDirectory { directory in
            let store = try MeshStore(directory: directory)
            #expect(!store.hasUncommittedChanges)
            _ = try store.appendRecord(domain: "d", bytes: [1])
            try store.setValue([1], forKey: "k")
            try store.setMember([1], forID: [1])
            #expect(store.hasUncommittedChanges)
            try store.commit()
            #expect(!store.hasUncommittedChanges)

            _ = try store.appendRecord(domain: "d", bytes: [2])
            try store.setValue([2], forKey: "k")
            try store.setMember([2], forID: [2])
            try store.replaceCheckpoint([2])
            #expect(store.hasUncommittedChanges)
            store.close()  // commits nothing

            let reopened = try MeshStore(directory: directory)
            #expect(try allRecords(reopened) == [StoredRecord(sequence: 1, domain: "d", bytes: [1])])
            #expect(try reopened.value(forKey: "k") == [1])
            #expect(try reopened.members().map(\.id) == [[1]])
            #expect(try reopened.checkpoint() == nil)
        }
    }

    @Test("rollback() discards the open batch: reads return the last committed state")
    func rollbackDiscardsTheBatch() throws {
        try withTemporaryDirectory { directory in
            let store = try MeshStore(directory: directory)
            try store.setValue([1], forKey: "k")
            try store.commit()
            try store.setValue([2], forKey: "k")
            _ = try store.appendRecord(domain: "d", bytes: [2])
            try store.setMember([2], forID: [2])
            store.rollback()
            #expect(!store.hasUncommittedChanges)
            #expect(try store.value(forKey: "k") == [1])
            #expect(try allRecords(store) == [])
            #expect(try store.members().isEmpty)
            store.rollback()  // nothing open: nothing happens
            try store.setValue([3], forKey: "k")
            try store.commit()
            #expect(try store.value(forKey: "k") == [3])
        }
    }

    @Test("replaceCheckpoint is atomic with its batch: rollback restores the records and the previous checkpoint")
    func checkpointRollbackRestoresRecords() throws {
        try withTemporaryDirectory { directory in
            let store = try MeshStore(directory: directory)
            for index in 1...3 { _ = try store.appendRecord(domain: "d", bytes: [UInt8(index)]) }
            try store.replaceCheckpoint([0xA])  // through 3
            for index in 4...6 { _ = try store.appendRecord(domain: "d", bytes: [UInt8(index)]) }
            try store.commit()
            let committedRecords = try allRecords(store)
            #expect(committedRecords.map(\.sequence) == [4, 5, 6])

            try store.replaceCheckpoint([0xB])  // would cover 4...6
            #expect(try allRecords(store) == [])
            #expect(try store.checkpoint()?.throughSequence == 6)
            store.rollback()
            #expect(try allRecords(store) == committedRecords)
            let restored = try #require(try store.checkpoint())
            #expect(restored.bytes == [0xA] && restored.throughSequence == 3)

            try store.replaceCheckpoint([0xC])
            try store.commit()
            store.close()
            let reopened = try MeshStore(directory: directory)
            #expect(try allRecords(reopened) == [])
            let final = try #require(try reopened.checkpoint())
            #expect(final.bytes == [0xC] && final.throughSequence == 6)
        }
    }

    @Test("sequences increase strictly across checkpoints, rollbacks and reopening; committed ones are never reused")
    func sequencesAreMonotonic() throws {
        try withTemporaryDirectory { directory in
            var seen: [Int64] = []
            let store = try MeshStore(directory: directory)
            seen.append(try store.appendRecord(domain: "d", bytes: []))  // 1
            seen.append(try store.appendRecord(domain: "d", bytes: []))  // 2
            try store.replaceCheckpoint([])  // deletes every record
            try store.commit()
            seen.append(try store.appendRecord(domain: "d", bytes: []))  // 3, although the log is empty
            store.rollback()
            seen.append(try store.appendRecord(domain: "d", bytes: []))  // 4: a rolled-back 3 is not reused here
            try store.commit()
            store.close()

            var reopened = try MeshStore(directory: directory)
            seen.append(try reopened.appendRecord(domain: "d", bytes: []))  // 5
            try reopened.replaceCheckpoint([])
            try reopened.commit()
            reopened.close()

            reopened = try MeshStore(directory: directory)  // log empty, checkpoint through 5
            #expect(try allRecords(reopened) == [])
            seen.append(try reopened.appendRecord(domain: "d", bytes: []))
            #expect(seen == [1, 2, 3, 4, 5, 6])
            #expect(reopened.statistics.lastSequence == 6)
        }
    }

    // MARK: Opening, closing, bounds

    @Test("init creates missing directories with mode 0700; isFresh is true only for a new or wiped directory")
    func freshDirectories() throws {
        try withTemporaryDirectory { parent in
            let directory = parent + "/a/b/data"
            let store = try MeshStore(directory: directory, durability: .batched(intervalMilliseconds: 5))
            #expect(store.isFresh)
            #expect(store.directory == directory)
            #expect(store.durability == .batched(intervalMilliseconds: 5))
            #expect(store.databasePath == directory + "/statemesh.sqlite")
            var status = stat()
            try #require(stat(directory, &status) == 0)
            #expect(status.st_mode & 0o777 == 0o700)
            try store.setValue([7], forKey: "replica")
            try store.commit()
            store.close()

            let reopened = try MeshStore(directory: directory)
            #expect(!reopened.isFresh)
            #expect(try reopened.value(forKey: "replica") == [7])
            reopened.close()

            try FileManager.default.removeItem(atPath: directory)  // wiped
            let wiped = try MeshStore(directory: directory)
            #expect(wiped.isFresh)
            #expect(try wiped.value(forKey: "replica") == nil)
        }
    }

    @Test("after close() every call throws .closed, close() is idempotent, and the directory can be opened again")
    func closedStoreRefusesCalls() throws {
        try withTemporaryDirectory { directory in
            let store = try MeshStore(directory: directory)
            store.close()
            store.close()
            store.rollback()
            #expect(!store.hasUncommittedChanges)
            #expect(storageError { _ = try store.value(forKey: "k") }?.code == .closed)
            #expect(storageError { try store.setValue([], forKey: "k") }?.code == .closed)
            #expect(storageError { _ = try store.appendRecord(domain: "d", bytes: []) }?.code == .closed)
            #expect(storageError { _ = try store.records(after: 0, limit: 1) }?.code == .closed)
            #expect(storageError { try store.replaceCheckpoint([]) }?.code == .closed)
            #expect(storageError { _ = try store.checkpoint() }?.code == .closed)
            #expect(storageError { try store.setMember([], forID: [1]) }?.code == .closed)
            #expect(storageError { try store.removeMember(id: [1]) }?.code == .closed)
            #expect(storageError { _ = try store.members() }?.code == .closed)
            #expect(storageError { try store.commit() }?.code == .closed)
            _ = try MeshStore(directory: directory)
        }
    }

    @Test("oversized blobs and keys, bad intervals and empty paths are refused with .invalidArgument, batch untouched")
    func boundsAreEnforced() throws {
        try withTemporaryDirectory { directory in
            let store = try MeshStore(directory: directory)
            _ = try store.appendRecord(domain: "d", bytes: [1])
            let oversized = [UInt8](repeating: 0, count: MeshStore.maximumBlobByteCount + 1)
            let longKey = String(repeating: "k", count: MeshStore.maximumKeyByteCount + 1)
            #expect(
                storageError { _ = try store.appendRecord(domain: "d", bytes: oversized) }?.code == .invalidArgument)
            #expect(storageError { try store.setValue(oversized, forKey: "k") }?.code == .invalidArgument)
            #expect(storageError { try store.replaceCheckpoint(oversized) }?.code == .invalidArgument)
            #expect(storageError { try store.setMember(oversized, forID: [1]) }?.code == .invalidArgument)
            #expect(storageError { try store.setValue([], forKey: longKey) }?.code == .invalidArgument)
            #expect(storageError { _ = try store.appendRecord(domain: longKey, bytes: []) }?.code == .invalidArgument)
            #expect(
                storageError { try store.setMember([], forID: Array(repeating: 1, count: 4097)) }?.code
                    == .invalidArgument)
            #expect(store.hasUncommittedChanges)  // the refused calls left the batch as it was
            try store.commit()
            #expect(try allRecords(store).map(\.bytes) == [[1]])
            let atLimit = [UInt8](repeating: 0xEE, count: MeshStore.maximumBlobByteCount)
            try store.setValue(atLimit, forKey: "big")  // exactly the limit is accepted
            try store.commit()
            #expect(try store.value(forKey: "big") == atLimit)

            #expect(
                storageError {
                    _ = try MeshStore(directory: directory + "/x", durability: .batched(intervalMilliseconds: 0))
                }?
                .code == .invalidArgument)
            #expect(storageError { _ = try MeshStore(directory: "") }?.code == .invalidArgument)
        }
    }

    // MARK: Faults

    @Test("a second store on an owned directory fails with .locked, in this process; it opens once the first closes")
    func secondStoreInProcessIsLocked() throws {
        try withTemporaryDirectory { directory in
            let first = try MeshStore(directory: directory)
            let error = storageError { _ = try MeshStore(directory: directory) }
            #expect(error?.code == .locked)
            #expect(error?.path == directory)
            try first.setValue([1], forKey: "k")  // the failed open did not disturb the owner
            try first.commit()
            first.close()
            let second = try MeshStore(directory: directory)
            #expect(try second.value(forKey: "k") == [1])
        }
    }

    /// A child process being started holds a copy of the lock's descriptor from fork until exec; a node
    /// restarted in place meanwhile must wait for it rather than fail.
    @Test("a lock released within the wait is taken; one held past it fails with .locked")
    func lockReleasedSoonIsWaitedFor() throws {
        try withTemporaryDirectory { directory in
            let holder = open(directory + "/statemesh.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            try #require(holder >= 0)
            try #require(flock(holder, LOCK_EX | LOCK_NB) == 0)
            let started = ContinuousClock.now
            #expect(storageError { _ = try MeshStore(directory: directory) }?.code == .locked)
            #expect(ContinuousClock.now - started >= .milliseconds(MeshStore.lockWaitMilliseconds))

            let release = DispatchSemaphore(value: 0)
            DispatchQueue(label: "lock holder").async {
                usleep(200_000)
                close(holder)
                release.signal()
            }
            let store = try MeshStore(directory: directory)
            #expect(store.isFresh)
            release.wait()
        }
    }

    @Test("a store held by another process fails with .locked; SIGKILLing that process releases the directory")
    func storeInOtherProcessIsLocked() throws {
        try withTemporaryDirectory { directory in
            let (process, output, _) = try CrashHelper.start(["hold", directory])
            defer {
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                process.waitUntilExit()
            }
            var buffer: [UInt8] = []
            var lines: [String] = []
            while lines.isEmpty {
                let chunk = output.availableData
                try #require(!chunk.isEmpty, "the helper exited before opening the store")
                buffer += chunk
                lines += takeLines(&buffer)
            }
            #expect(lines == ["ready"])
            #expect(storageError { _ = try MeshStore(directory: directory) }?.code == .locked)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let store = try MeshStore(directory: directory)
            #expect(!store.isFresh)  // the helper created it
        }
    }

    @Test("garbage in statemesh.sqlite is reported as .corrupt when opening")
    func garbageFileIsCorrupt() throws {
        try withTemporaryDirectory { directory in
            var generator = SplitMix(seed: 42)
            let garbage = (0..<65_536).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            try Data(garbage).write(to: URL(fileURLWithPath: directory + "/statemesh.sqlite"))
            let error = storageError { _ = try MeshStore(directory: directory) }
            #expect(error?.code == .corrupt)
            #expect(error?.path == directory + "/statemesh.sqlite")
            #expect(error?.sqliteResultCode != nil)
        }
    }

    @Test("a damaged page in a valid database is reported as .corrupt on opening or on the first read")
    func damagedPageIsCorrupt() throws {
        try withTemporaryDirectory { directory in
            let store = try MeshStore(directory: directory)
            for index in 0..<500 {
                _ = try store.appendRecord(domain: "d", bytes: Array(repeating: UInt8(index & 0xFF), count: 1000))
            }
            try store.commit()
            store.close()
            let database = directory + "/statemesh.sqlite"
            try #require(!FileManager.default.fileExists(atPath: database + "-wal"), "close() checkpoints the log")
            let size = try #require(FileManager.default.attributesOfItem(atPath: database)[.size] as? Int)
            try #require(size > 16 * 4096)
            // Keep page 1 (header and schema), overwrite every later page: table roots and leaves.
            try patchFile(database, at: 4096, with: Array(repeating: 0xA5, count: size - 4096))

            let error = storageError {
                let damaged = try MeshStore(directory: directory)
                _ = try damaged.records(after: 0, limit: 1_000)
            }
            #expect(error?.code == .corrupt)
        }
    }

    @Test(
        "a database whose user_version is newer, or which is not a StateMesh database, is refused with .schemaVersion")
    func unknownSchemaIsRefused() throws {
        try withTemporaryDirectory { directory in
            let store = try MeshStore(directory: directory)
            try store.setValue([1], forKey: "k")
            try store.commit()
            store.close()
            let database = directory + "/statemesh.sqlite"
            try #require(!FileManager.default.fileExists(atPath: database + "-wal"), "close() checkpoints the log")

            // The SQLite header keeps user_version at offset 60 and application_id at 68 (big-endian).
            try patchFile(database, at: 60, with: [0, 0, 0, 2])
            let newer = storageError { _ = try MeshStore(directory: directory) }
            #expect(newer?.code == .schemaVersion)
            #expect(newer?.message.contains("version 2") == true)

            try patchFile(database, at: 60, with: [0, 0, 0, 1])
            try patchFile(database, at: 68, with: [0, 0, 0, 7])
            #expect(storageError { _ = try MeshStore(directory: directory) }?.code == .schemaVersion)

            try patchFile(database, at: 68, with: Array("StMe".utf8))
            #expect(try MeshStore(directory: directory).value(forKey: "k") == [1])  // restored: opens again
        }
    }

    @Test(
        "a read-only mount is refused with .readOnly, for an existing store and for a new directory, without damage",
        .enabled(
            if: Tmpfs.isAvailable,
            "mounting a tmpfs needs root (CAP_SYS_ADMIN); read-only is untestable by chmod as root")
    )
    func readOnlyMountIsRefused() throws {
        try Tmpfs.withMount(byteCount: 8 << 20) { mountPoint in
            let directory = mountPoint + "/data"
            let store = try MeshStore(directory: directory)
            _ = try store.appendRecord(domain: "d", bytes: [1])
            try store.commit()
            store.close()

            try #require(Tmpfs.remount(mountPoint, readOnly: true) == 0)
            let existing = storageError { _ = try MeshStore(directory: directory) }
            #expect(existing?.code == .readOnly)
            #expect(existing?.message.contains("Read-only file system") == true)
            #expect(storageError { _ = try MeshStore(directory: mountPoint + "/new") }?.code == .readOnly)

            try #require(Tmpfs.remount(mountPoint, readOnly: false) == 0)
            let reopened = try MeshStore(directory: directory)
            #expect(try allRecords(reopened) == [StoredRecord(sequence: 1, domain: "d", bytes: [1])])
        }
    }

    @Test(
        "a full disk fails the batch with .diskFull, rolls it back whole, and reopening shows the last good batch exactly",
        .enabled(if: Tmpfs.isAvailable, "mounting a tmpfs needs root (CAP_SYS_ADMIN)")
    )
    func diskFullRollsBackTheBatch() throws {
        try Tmpfs.withMount(byteCount: 4 << 20) { mountPoint in
            let directory = mountPoint + "/data"
            let store = try MeshStore(directory: directory)
            let good = [
                StoredRecord(sequence: 1, domain: "d", bytes: Array(repeating: 1, count: 1000)),
                StoredRecord(sequence: 2, domain: "d", bytes: Array(repeating: 2, count: 1000)),
            ]
            for record in good { _ = try store.appendRecord(domain: record.domain, bytes: record.bytes) }
            try store.setValue([1], forKey: "k")
            try store.setMember([1], forID: [1])
            try store.replaceCheckpoint([0xC])  // covers 1...2
            _ = try store.appendRecord(domain: "d", bytes: [3])
            try store.commit()
            let goodRecords = try allRecords(store)
            #expect(goodRecords == [StoredRecord(sequence: 3, domain: "d", bytes: [3])])

            // Leave about 256 KiB free, then try to commit a 1 MiB batch.
            let ballast = mountPoint + "/ballast"
            let fill = try Tmpfs.freeBytes(mountPoint) - (256 << 10)
            try #require(fill > 0)
            try Data(count: fill).write(to: URL(fileURLWithPath: ballast))
            let error = storageError {
                for index in 0..<16 {
                    _ = try store.appendRecord(domain: "big", bytes: Array(repeating: UInt8(index), count: 64 << 10))
                }
                try store.setValue([2], forKey: "k")
                try store.setMember([2], forID: [2])
                try store.removeMember(id: [1])
                try store.replaceCheckpoint([0xD])
                try store.commit()
            }
            #expect(error?.code == .diskFull, "\(String(describing: error))")
            #expect(error?.message.contains("rolled back") == true)
            #expect(!store.hasUncommittedChanges)
            // In this process: the last good batch, nothing of the failed one.
            #expect(try allRecords(store) == goodRecords)
            #expect(try store.value(forKey: "k") == [1])
            #expect(try store.members().map(\.id) == [[1]])
            #expect(try store.checkpoint()?.bytes == [0xC])
            store.close()

            try FileManager.default.removeItem(atPath: ballast)
            let reopened = try MeshStore(directory: directory)
            #expect(try allRecords(reopened) == goodRecords)
            #expect(try reopened.value(forKey: "k") == [1])
            #expect(try reopened.members().map { [$0.id, $0.bytes] } == [[[1], [1]]])
            let checkpoint = try #require(try reopened.checkpoint())
            #expect(checkpoint.bytes == [0xC] && checkpoint.throughSequence == 2)
            // And it still works: the next batch commits.
            let next = try reopened.appendRecord(domain: "d", bytes: [4])
            try reopened.commit()
            #expect(next > 3)
            #expect(try allRecords(reopened).map(\.sequence) == [3, next])
        }
    }
}

/// SplitMix64, for reproducible garbage.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
