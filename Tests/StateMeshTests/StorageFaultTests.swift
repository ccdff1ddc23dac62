import Foundation
import StateMesh
import Testing

/// Runs a command; returns its exit status.
@discardableResult
private func shell(_ arguments: [String]) -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
    process.standardError = FileHandle(forWritingAtPath: "/dev/null")
    guard (try? process.run()) != nil else { return -1 }
    process.waitUntilExit()
    return process.terminationStatus
}

/// Whether this process can mount a tmpfs (root with CAP_SYS_ADMIN, as in CI).
private let canMount: Bool = {
    let point = NSTemporaryDirectory() + "statemesh-mount-probe-\(UInt32.random(in: 0...UInt32.max))"
    try? FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: point) }
    guard shell(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", point]) == 0 else { return false }
    shell(["umount", point])
    return true
}()

@Suite("Node storage faults", .serialized)
struct StorageFaultTests {
    /// On a full disk a write fails with `.storageFailed` and the node refuses further writes; after a
    /// restart with space, every write that had returned is there and writes work again.
    @Test(.enabled(if: canMount, "mounting a tmpfs needs root (CAP_SYS_ADMIN)"))
    func diskFullFailsWritesAndLosesNothingAcknowledged() async throws {
        let cluster = try Cluster(count: 1) { $0.checkpointRecordCount = 1_000_000 }
        defer { cluster.removeDirectories() }
        let mountPoint = URL(fileURLWithPath: cluster.directories[0]).deletingLastPathComponent().path + "/mnt"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try #require(shell(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mountPoint]) == 0)
        defer { shell(["umount", "-l", mountPoint]) }
        // The node's data directory lives on the small file system.
        try FileManager.default.createSymbolicLink(atPath: cluster.directories[0], withDestinationPath: mountPoint)

        let node = try await cluster.start(0)
        let map = try node.map("fabric://default/blobs")
        let payload = String(repeating: "x", count: 16 << 10)
        var acknowledged: [String] = []
        var failure: MeshError?
        for index in 0..<1_000 {
            do {
                try await map.set("f\(index)", to: payload)
                acknowledged.append("f\(index)")
            } catch let error as MeshError {
                failure = error
                break
            }
        }
        let error = try #require(failure, "2 MiB never filled up")
        #expect(error.code == .storageFailed)
        #expect(acknowledged.count > 10)
        // Refused from now on, with the same code.
        do {
            try await node.counter("fabric://default/after").increment()
            Issue.record("a write succeeded after a storage failure")
        } catch let error as MeshError {
            #expect(error.code == .storageFailed)
        }
        await cluster.stop(0)

        #expect(shell(["mount", "-o", "remount,size=64m", mountPoint]) == 0)
        let restarted = try await cluster.start(0)
        let fields = try await restarted.map("fabric://default/blobs").entries()
        #expect(Set(acknowledged).isSubset(of: Set(fields.keys)))
        try await restarted.counter("fabric://default/after").increment()
        #expect(try await restarted.counter("fabric://default/after").value() == 1)
        await cluster.stopAll()
    }
}
