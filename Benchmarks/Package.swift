// swift-tools-version: 6.2
//
// StateMesh benchmarks: a sub-package so the root package does not depend on
// package-benchmark. Run from the repository root:
//   swift package --package-path Benchmarks benchmark          # package-benchmark suite
//   swift run -c release --package-path Benchmarks crdt-compare  # same-run peer comparison
//   scripts/bench.sh                                           # both, with the rust `crdts` peer
import PackageDescription

let package = Package(
    name: "StateMeshBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // `name:` gives the root its identity; a bare path would take the folder name.
        .package(name: "StateMesh", path: ".."),
        // ordo-one/package-benchmark under its current name (same repository and
        // tag; the plugin warns about the legacy `package-benchmark` identity).
        .package(
            url: "https://github.com/ordo-one/benchmark.git",
            from: "1.38.1",
            traits: ["MallocInterposer"]
        ),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        // package-benchmark suite: ns per operation, allocations, throughput.
        .executableTarget(
            name: "CRDTBenchmarks",
            dependencies: [
                .product(name: "MeshCRDT", package: "StateMesh"),
                .product(name: "MeshCodec", package: "StateMesh"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/CRDTBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6), .treatAllWarnings(as: .error)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // libsodium itself, for the raw AEAD baseline measured in the same suite run.
        .systemLibrary(
            name: "CSodiumBench",
            path: "Sources/CSodiumBench",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        // Handshakes, seal/open and encrypted loopback TCP throughput, and raw libsodium AEAD beside them.
        .executableTarget(
            name: "TransportBenchmarks",
            dependencies: [
                "CSodiumBench",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MeshSecurity", package: "StateMesh"),
                .product(name: "MeshTransport", package: "StateMesh"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/TransportBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6), .treatAllWarnings(as: .error)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The rust `crdts` peer driver's workloads, run with our API, same output format.
        .executableTarget(
            name: "crdt-compare",
            dependencies: [
                .product(name: "MeshCRDT", package: "StateMesh"),
                .product(name: "MeshCodec", package: "StateMesh"),
            ],
            path: "Sources/CRDTPeerCompare",
            swiftSettings: [.swiftLanguageMode(.v6), .treatAllWarnings(as: .error)]
        ),
        // CPU seconds and page faults per GiB through the encrypted loopback path (steadier than throughput
        // on a loaded machine, for comparing builds).
        .executableTarget(
            name: "transport-cost",
            dependencies: [
                .product(name: "MeshSecurity", package: "StateMesh"),
                .product(name: "MeshTransport", package: "StateMesh"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/TransportCost",
            swiftSettings: [.swiftLanguageMode(.v6), .treatAllWarnings(as: .error)]
        ),
        // N nodes over encrypted loopback: write throughput, convergence time, bytes per update, memory.
        .executableTarget(
            name: "node-bench",
            dependencies: [
                .product(name: "StateMesh", package: "StateMesh"),
                .product(name: "MeshSecurity", package: "StateMesh"),
                .product(name: "MeshReplication", package: "StateMesh"),
                .product(name: "MeshMembership", package: "StateMesh"),
                .product(name: "MeshStorage", package: "StateMesh"),
                .product(name: "MeshTransport", package: "StateMesh"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/NodeBench",
            swiftSettings: [.swiftLanguageMode(.v6), .treatAllWarnings(as: .error)]
        ),
    ]
)
