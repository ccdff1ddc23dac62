import MeshConfigFile
import ArgumentParser
import Foundation
import MeshSecurity

/// `mesh keygen`: a node identity, and optionally a cluster key.
struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a node identity key file (and optionally a cluster pre-shared key).",
        discussion: """
            Writes DIR/identity.key (mode 0600) and prints the node's public key: put it in every node's
            `cluster.allowed_peers`. With --cluster-key, also writes DIR/cluster.key, 32 random bytes that
            every node of the cluster must share (copy it securely, mode 0600).
            """
    )

    @Option(name: .long, help: "Directory for the key files (created if missing).")
    var out: String

    @Flag(name: .long, help: "Also create DIR/cluster.key, a new random cluster pre-shared key.")
    var clusterKey = false

    @Flag(name: .long, help: "Replace existing key files.")
    var force = false

    func run() throws {
        try FileManager.default.createDirectory(
            atPath: out, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let identityPath = (out as NSString).appendingPathComponent("identity.key")
        if FileManager.default.fileExists(atPath: identityPath) && !force {
            throw ValidationError("\(identityPath) exists; use --force to replace it")
        }
        let identity = try NodeIdentity.generate()
        try identity.save(to: identityPath)
        print("identity:   \(identityPath)")
        print("node ID:    \(identity.nodeID.bytes.hex)")
        print("public key: \(identity.publicKey.hex)")
        if clusterKey {
            let keyPath = (out as NSString).appendingPathComponent("cluster.key")
            if FileManager.default.fileExists(atPath: keyPath) && !force {
                throw ValidationError("\(keyPath) exists; use --force to replace it")
            }
            var generator = SystemRandomNumberGenerator()
            let key = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
            guard FileManager.default.createFile(
                atPath: keyPath, contents: Data(key), attributes: [.posixPermissions: 0o600])
            else { throw ValidationError("cannot write \(keyPath)") }
            print("cluster key: \(keyPath)")
        }
    }
}
