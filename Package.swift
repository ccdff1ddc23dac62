// swift-tools-version: 6.2
//
// StateMesh: a leaderless, causally consistent state mesh of delta-state CRDTs.
// Layers, lowest first (arrows only point down; see ../shared/DESIGN.md):
//   MeshCRDT -> MeshCodec -> (MeshReplication -> MeshSimulation)
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
    ],
    dependencies: [
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
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
    ]
)
