import Synchronization
import Foundation

/// An executable built by this package, found beside the running test binary (`swift build --build-tests`
/// builds every product into that directory).
public func builtExecutable(named name: String) throws -> URL {
    let running =
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    let url = URL(fileURLWithPath: running).deletingLastPathComponent().appendingPathComponent(name)
    guard FileManager.default.isExecutableFile(atPath: url.path) else {
        throw MissingExecutable(path: url.path)
    }
    return url
}

/// `builtExecutable(named:)` found no executable file at `path`.
public struct MissingExecutable: Error, CustomStringConvertible {
    public let path: String
    public var description: String { "\(path) is missing: build all products (swift build --build-tests)" }
}

/// What a child process left: its exit status and everything it wrote.
public struct ChildProcessResult: Sendable {
    public let status: Int32
    public let standardOutput: String
    public let standardError: String
}

/// A started child process and the read ends of its stdout and stderr pipes.
public struct LaunchedProcess {
    public let process: Process
    public let output: FileHandle
    public let errors: FileHandle
}

/// Starts `executable` with `arguments`, with this process's environment plus `environment` (an entry set
/// to `nil` is removed); its stdout and stderr are pipes. Read both (a child blocks once a pipe is full).
public func launch(
    _ executable: URL, arguments: [String], environment: [String: String?] = [:]
) throws -> LaunchedProcess {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if !environment.isEmpty {
        var merged = ProcessInfo.processInfo.environment
        for (name, value) in environment { merged[name] = value }
        process.environment = merged
    }
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    return LaunchedProcess(process: process, output: output.fileHandleForReading, errors: errors.fileHandleForReading)
}

/// Runs `executable` with `arguments` to completion (environment as in `launch`). The waiting happens off
/// the cooperative pool (`runBlocking`).
public func runToCompletion(
    _ executable: URL, arguments: [String], environment: [String: String?] = [:]
) async throws -> ChildProcessResult {
    try await runBlocking {
        let child = try launch(executable, arguments: arguments, environment: environment)
        // Drain stderr beside stdout, so a child that fills one pipe while we wait on the other cannot stall.
        let errorData = Mutex<Data>(Data())
        let drained = DispatchSemaphore(value: 0)
        let errors = child.errors
        DispatchQueue(label: "statemesh.testing.stderr").async {
            let data = errors.readDataToEndOfFile()
            errorData.withLock { $0 = data }
            drained.signal()
        }
        let out = child.output.readDataToEndOfFile()
        drained.wait()
        child.process.waitUntilExit()
        return ChildProcessResult(
            status: child.process.terminationStatus, standardOutput: String(decoding: out, as: UTF8.self),
            standardError: String(decoding: errorData.withLock { $0 }, as: UTF8.self))
    }
}
