// swift-tools-version: 6.2
//
// StateMesh: a leaderless, causally consistent state mesh of delta-state CRDTs.
// Layers, lowest first (arrows only point down; see ../shared/DESIGN.md):
//   MeshCRDT -> MeshCodec -> MeshReplication -> MeshSimulation (-> mesh-sim)
//   CSodium -> MeshSecurity -> MeshTransport (+ CMalloc: glibc allocator settings)
//   MeshReplication (for `Instant`) -> MeshMembership (SWIM, sans-IO);  CSQLite -> MeshStorage
//   NIOCore -> MeshRESP (Redis protocol codec, sans-IO)
//   StateMesh + MeshRESP -> MeshRESPServer (a node's Redis-protocol front door) -> MeshConfigFile, mesh
//   StateMesh (MeshNode: all of the above) -> mesh (the command), mesh-crash-writer (a crash-test helper)
import PackageDescription

/// Every target of ours is built in the Swift 6 language mode with warnings as errors.
let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "StateMesh",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "MeshCRDT", targets: ["MeshCRDT"]),
        .library(name: "MeshCodec", targets: ["MeshCodec"]),
        .library(name: "MeshTesting", targets: ["MeshTesting"]),
        .library(name: "MeshReplication", targets: ["MeshReplication"]),
        .library(name: "MeshSimulation", targets: ["MeshSimulation"]),
        .executable(name: "mesh-sim", targets: ["mesh-sim"]),
        .library(name: "MeshSecurity", targets: ["MeshSecurity"]),
        .library(name: "MeshTransport", targets: ["MeshTransport"]),
        .library(name: "StateMesh", targets: ["StateMesh"]),
        .library(name: "MeshRESPServer", targets: ["MeshRESPServer"]),
        .executable(name: "mesh", targets: ["mesh"]),
        .library(name: "MeshStorage", targets: ["MeshStorage"]),
        .library(name: "MeshMembership", targets: ["MeshMembership"]),
        .library(name: "MeshRESP", targets: ["MeshRESP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
    ],
    targets: [
        // MARK: CRDTs and their encoding
        .target(name: "MeshCRDT", swiftSettings: strictSettings),
        .target(name: "MeshCodec", dependencies: ["MeshCRDT"], swiftSettings: strictSettings),
        .target(
            name: "MeshTesting",
            dependencies: [
                "MeshCRDT", "MeshCodec",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: strictSettings
        ),

        // MARK: Replication (sans-IO) and its deterministic simulator
        .target(name: "MeshReplication", dependencies: ["MeshCRDT", "MeshCodec"], swiftSettings: strictSettings),
        .target(
            name: "MeshSimulation",
            dependencies: ["MeshCRDT", "MeshCodec", "MeshReplication"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "mesh-sim",
            dependencies: [
                "MeshSimulation", "MeshReplication",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),

        // MARK: Membership and failure detection (sans-IO; reuses MeshReplication's Instant)
        .target(
            name: "MeshMembership",
            dependencies: ["MeshCRDT", "MeshCodec", "MeshReplication"],
            swiftSettings: strictSettings
        ),

        // MARK: Security and transport
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .target(
            name: "MeshSecurity",
            dependencies: ["CSodium"],
            swiftSettings: strictSettings
        ),
        // glibc's <malloc.h> (mallopt), for MeshTransport.ProcessAllocator; nothing to link.
        .systemLibrary(name: "CMalloc"),
        .target(
            name: "MeshTransport",
            dependencies: [
                "MeshSecurity",
                "CMalloc",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSettings
        ),

        // MARK: The node
        .target(
            name: "StateMesh",
            dependencies: [
                "MeshCRDT", "MeshCodec", "MeshReplication", "MeshSecurity", "MeshTransport", "MeshStorage",
                "MeshMembership",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // The Redis-protocol front door of a node (RESP2/RESP3 server on the node's event loop).
        .target(
            name: "MeshRESPServer",
            dependencies: [
                "StateMesh", "MeshRESP", "MeshReplication", "MeshCRDT",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // The `mesh node` configuration file (JSON + STATEMESH_* environment overrides); used by `mesh`.
        .target(
            name: "MeshConfigFile",
            dependencies: [
                "StateMesh", "MeshSecurity", "MeshReplication", "MeshMembership", "MeshStorage", "MeshRESPServer",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "mesh",
            dependencies: [
                "StateMesh", "MeshConfigFile", "MeshSecurity", "MeshTransport", "MeshReplication", "MeshMembership",
                "MeshStorage", "MeshRESPServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "mesh-crash-writer",
            dependencies: ["StateMesh", "MeshSecurity", "MeshStorage"],
            swiftSettings: strictSettings
        ),

        // MARK: Redis protocol (RESP2/RESP3) codec, sans-IO; used by the RESP server
        .target(
            name: "MeshRESP",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSettings
        ),

        // MARK: Durable local storage
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .target(
            name: "MeshStorage",
            dependencies: ["CSQLite"],
            swiftSettings: strictSettings
        ),
        // Test helper for MeshStorageTests' crash test (appends and commits until SIGKILLed); not a product.
        .executableTarget(
            name: "mesh-storage-crash-helper",
            dependencies: ["MeshStorage"],
            swiftSettings: strictSettings
        ),

        // MARK: Tests
        .testTarget(
            name: "MeshCRDTTests",
            dependencies: [
                "MeshCRDT", "MeshTesting",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MeshCodecTests",
            dependencies: [
                "MeshCRDT", "MeshCodec", "MeshTesting",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MeshReplicationTests",
            dependencies: ["MeshCRDT", "MeshCodec", "MeshReplication"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MeshSimulationTests",
            dependencies: ["MeshCRDT", "MeshReplication", "MeshSimulation", "MeshTesting"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MeshMembershipTests",
            dependencies: ["MeshCRDT", "MeshCodec", "MeshReplication", "MeshMembership"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MeshSecurityTests",
            dependencies: [
                "MeshSecurity",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            exclude: ["Vectors"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MeshTransportTests",
            dependencies: [
                "MeshTransport", "MeshSecurity",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "StateMeshTests",
            dependencies: [
                "StateMesh", "MeshCRDT", "MeshReplication", "MeshSecurity", "MeshStorage", "MeshMembership",
                "MeshConfigFile", "MeshCodec", "MeshTesting",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MeshRESPTests",
            dependencies: ["MeshRESP", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MeshRESPServerTests",
            dependencies: [
                "MeshRESPServer", "MeshRESP", "StateMesh", "MeshSecurity", "MeshTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MeshStorageTests",
            dependencies: ["MeshStorage", "MeshTesting"],
            swiftSettings: strictSettings
        ),
    ]
)
