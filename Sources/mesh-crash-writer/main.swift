// A test helper for the crash tests: one StateMesh node with no peers that writes set elements
// `PREFIX-<n>` for n = START, START+1, … to `fabric://crash/acknowledged` and prints `ack <n>` on
// stdout after each write returned (was acknowledged). The test SIGKILLs it at a random moment,
// restarts the node from the same data directory and checks every printed element is there.
//
//   mesh-crash-writer DATA_DIRECTORY always|batched START [PREFIX]
import Foundation
import MeshSecurity
import MeshStorage
import StateMesh

let arguments = CommandLine.arguments
guard arguments.count >= 4, let start = Int(arguments[3]) else {
    FileHandle.standardError.write(Data("usage: mesh-crash-writer DATA_DIRECTORY always|batched START [PREFIX]\n".utf8))
    exit(2)
}
let durability: Durability = arguments[2] == "batched" ? .batched(intervalMilliseconds: 20) : .always
let prefix = arguments.count > 4 ? arguments[4] : "w"

do {
    let identity = try NodeIdentity.generate()
    let admission = try AdmissionPolicy(allowedPeers: [], epoch: 1, clusterKey: [UInt8](repeating: 7, count: 32))
    var configuration = MeshNodeConfiguration(identity: identity, admission: admission, dataDirectory: arguments[1])
    configuration.durability = durability
    configuration.domains = [.init(name: "crash")]
    configuration.checkpointRecordCount = 500
    let node = try MeshNode(configuration: configuration)
    let runner = Task { try await node.run() }
    try await node.waitUntilRunning()
    let set = try node.set("fabric://crash/acknowledged")
    var index = start
    while true {
        try await set.insert("\(prefix)-\(index)")
        // Unbuffered: a line on stdout means the write was acknowledged.
        FileHandle.standardOutput.write(Data("ack \(index)\n".utf8))
        index += 1
    }
    _ = runner
} catch {
    FileHandle.standardError.write(Data("mesh-crash-writer: \(error)\n".utf8))
    exit(1)
}
