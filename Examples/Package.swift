// swift-tools-version: 6.2
// StateMesh's examples, one package so that CI builds StateMesh and its dependencies once for all of them.
// Each example is an executable target that ends by printing PASS (exit 0) or FAIL (exit 1):
//   swift run --package-path Examples ReplicaSync      CRDTs only: three offline replicas exchange encoded deltas
//   swift run --package-path Examples AgentTelemetry   four nodes over encrypted loopback, one site goes offline
//   swift run --package-path Examples OfflinePeers     peer processes write offline, one is SIGKILLed and restarted
import PackageDescription

/// Swift 6 language mode, warnings as errors (as in the root package).
let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "StateMeshExamples",
    platforms: [.macOS(.v15)],
    dependencies: [
        // `name:` matters: a bare path dependency takes its identity from the folder name.
        .package(name: "StateMesh", path: ".."),
        // The same swift-log StateMesh uses: the examples quiet the nodes' logs to warnings.
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "ReplicaSync",
            dependencies: [
                .product(name: "MeshCRDT", package: "StateMesh"),
                .product(name: "MeshCodec", package: "StateMesh"),
            ],
            path: "ReplicaSync/Sources/ReplicaSync",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "AgentTelemetry",
            dependencies: [
                .product(name: "StateMesh", package: "StateMesh"),
                .product(name: "MeshSecurity", package: "StateMesh"),
                .product(name: "MeshMembership", package: "StateMesh"),
                .product(name: "MeshReplication", package: "StateMesh"),
                .product(name: "MeshCRDT", package: "StateMesh"),
                .product(name: "MeshStorage", package: "StateMesh"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "AgentTelemetry/Sources/AgentTelemetry",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "OfflinePeers",
            dependencies: [
                .product(name: "StateMesh", package: "StateMesh"),
                .product(name: "MeshSecurity", package: "StateMesh"),
                .product(name: "MeshMembership", package: "StateMesh"),
                .product(name: "MeshStorage", package: "StateMesh"),
                .product(name: "MeshReplication", package: "StateMesh"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "OfflinePeers/Sources/OfflinePeers",
            swiftSettings: strictSettings
        ),
    ]
)
