import MeshConfigFile
import MeshRESPServer
import ArgumentParser
import Logging
import ServiceLifecycle
import StateMesh
import MeshTransport

/// `mesh node`: run one node until SIGINT or SIGTERM.
struct Node: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one node until SIGINT or SIGTERM (graceful: peers are told, storage is flushed).",
        discussion: """
            The configuration file is JSON (every key is listed in the README with its default); any key
            can be overridden by an environment variable STATEMESH_<KEY> with `.` written as `_`, e.g.
            STATEMESH_LISTEN_PORT=7410. A wrong or missing option is reported with the file, the key and
            the reason, and the node does not start.
            """
    )

    @Option(name: .long, help: "The node's configuration file (JSON).")
    var config: String

    func run() async throws {
        ProcessAllocator.tuneForStreamingUnlessOptedOut()  // see README, Configuration
        let file: NodeConfigFile
        let configuration: MeshNodeConfiguration
        let resp: RESPServerConfiguration?
        do {
            file = try await NodeConfigFile.load(file: config)
            configuration = try file.nodeConfiguration()
            resp = try file.respConfiguration()
        } catch let error as ConfigurationError {
            throw ValidationError("configuration error: \(error)")
        }
        let level = file.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "statemesh")
        let node = try MeshNode(configuration: configuration, logger: logger)
        // The front door comes after the node: a group shuts down in reverse order, so clients are
        // disconnected before the node flushes and leaves.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: node)]
        if let resp {
            services.append(.init(service: RESPServer(node: node, configuration: resp, logger: logger)))
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
