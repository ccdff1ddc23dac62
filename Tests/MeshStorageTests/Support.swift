import Foundation
import MeshStorage
import MeshTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Runs `body` with a new, empty directory under the temporary directory, removed afterwards.
func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    var template = Array((NSTemporaryDirectory() + "/meshstorage-XXXXXX").utf8CString)
    let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    let path = String(cString: try #require(created))
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// The `StorageError` `body` threw, or nil (any other error is recorded as an issue).
func storageError(_ body: () throws -> Void) -> StorageError? {
    do {
        try body()
        return nil
    } catch let error as StorageError {
        return error
    } catch {
        Issue.record("expected a StorageError, got \(error)")
        return nil
    }
}

func littleEndian(_ value: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}

func decodeLittleEndian(_ bytes: some Collection<UInt8>) -> UInt64 {
    bytes.prefix(8).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * $1.offset) }
}

/// Every record after `sequence`.
func allRecords(_ store: MeshStore, after sequence: Int64 = 0) throws -> [StoredRecord] {
    try store.records(after: sequence, limit: Int.max)
}

/// Overwrites bytes of `path` at `offset`.
func patchFile(_ path: String, at offset: UInt64, with bytes: [UInt8]) throws {
    let handle = try #require(FileHandle(forUpdatingAtPath: path))
    defer { try? handle.close() }
    try handle.seek(toOffset: offset)
    try handle.write(contentsOf: Data(bytes))
    try handle.synchronize()
}

/// tmpfs mounts for the fault tests: a real read-only file system and a real full one. Root's
/// permission checks ignore chmod, so a read-only *mount* is the honest way to get EROFS.
enum Tmpfs {
    // <sys/mount.h> flag values (Linux ABI; the header's enum does not import reliably).
    private static let readOnlyFlag: UInt = 1  // MS_RDONLY
    private static let remountFlag: UInt = 32  // MS_REMOUNT
    private static let detachFlag: Int32 = 2  // MNT_DETACH

    /// Whether this process may mount (root with CAP_SYS_ADMIN, as in CI's container).
    static let isAvailable: Bool = {
        let probe = try? withTemporaryDirectory { path in
            let point = path + "/probe"
            guard mkdir(point, 0o700) == 0, mount(at: point, byteCount: 1 << 20) == 0 else { return false }
            unmount(point)
            return true
        }
        return probe ?? false
    }()

    /// Mounts a tmpfs of `byteCount` bytes at `path` (an existing directory); 0 on success, else errno.
    @discardableResult
    static func mount(at path: String, byteCount: Int) -> Int32 {
        let result = "size=\(byteCount),mode=0700".withCString { options in
            Glibc.mount("tmpfs", path, "tmpfs", 0, options)
        }
        return result == 0 ? 0 : errno
    }

    /// Remounts the tmpfs at `path` read-only (or back to read-write); 0 on success, else errno.
    static func remount(_ path: String, readOnly: Bool) -> Int32 {
        let flags = remountFlag | (readOnly ? readOnlyFlag : 0)
        return Glibc.mount("tmpfs", path, "tmpfs", flags, nil) == 0 ? 0 : errno
    }

    static func unmount(_ path: String) {
        _ = umount2(path, detachFlag)
    }

    /// Runs `body` with a fresh tmpfs of `byteCount` bytes mounted inside a temporary directory.
    static func withMount<T>(byteCount: Int, _ body: (String) throws -> T) throws -> T {
        try withTemporaryDirectory { parent in
            let mountPoint = parent + "/mnt"
            try #require(mkdir(mountPoint, 0o700) == 0)
            let status = mount(at: mountPoint, byteCount: byteCount)
            try #require(status == 0, "mount -t tmpfs failed: \(String(cString: strerror(status)))")
            defer { unmount(mountPoint) }
            return try body(mountPoint)
        }
    }

    /// Free bytes on the file system holding `path`.
    static func freeBytes(_ path: String) throws -> Int {
        var info = statvfs()
        try #require(statvfs(path, &info) == 0)
        return Int(info.f_bavail) * Int(info.f_frsize)
    }
}

/// The test-helper executable, built next to the test bundle by `swift build --build-tests`.
enum CrashHelper {
    /// Starts the helper with `arguments`; stdout and stderr are pipes.
    static func start(_ arguments: [String]) throws -> (process: Process, output: FileHandle, errors: FileHandle) {
        let child = try launch(builtExecutable(named: "mesh-storage-crash-helper"), arguments: arguments)
        return (child.process, child.output, child.errors)
    }
}

/// Splits complete lines off the front of `buffer`; an unterminated tail stays in it.
func takeLines(_ buffer: inout [UInt8]) -> [String] {
    var lines: [String] = []
    while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
        lines.append(String(decoding: buffer[..<newline], as: UTF8.self))
        buffer.removeSubrange(...newline)
    }
    return lines
}
