// swift-tools-version: 6.2
// Three replicas write concurrently and converge by exchanging encoded deltas.
import PackageDescription

let package = Package(
    name: "ReplicaSync",
    platforms: [.macOS(.v15)],
    dependencies: [
        // `name:` matters: a bare path dependency takes its identity from the folder name.
        .package(name: "StateMesh", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "ReplicaSync",
            dependencies: [
                .product(name: "MeshCRDT", package: "StateMesh"),
                .product(name: "MeshCodec", package: "StateMesh"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6), .treatAllWarnings(as: .error)]
        ),
    ]
)
