// swift-tools-version: 6.2
//
// StateMesh fuzzers: a sub-package of libFuzzer targets, one executable per
// fuzzer. Build and run one with `scripts/fuzz.sh TARGET SECONDS`; the script
// finds every folder under Fuzz/Sources, so a new fuzzer is a folder plus one
// line in `fuzzers` below.
//
// Each target defines `LLVMFuzzerTestOneInput` with `@_cdecl` and no
// `main.swift`: libFuzzer (`--sanitize=fuzzer`) supplies `main`, and
// `-parse-as-library` stops the Swift compiler from expecting one.
import PackageDescription

/// Every fuzzer: its name (the folder `Sources/NAME`), the StateMesh products it
/// uses, and the shared helper targets (folders under `Shared/`) it uses.
let fuzzers: [(name: String, products: [String], helpers: [String])] = [
    ("FuzzDecode", ["MeshCRDT", "MeshCodec"], []),
    ("FuzzMergeLaws", ["MeshCRDT", "MeshTesting"], []),
    ("FuzzHandshakeMessage", ["MeshSecurity"], ["SecurityFuzzFixtures"]),
    ("FuzzFrameDecoder", ["MeshSecurity"], ["SecurityFuzzFixtures"]),
    ("FuzzSchedule", ["MeshReplication", "MeshSimulation"], []),
    ("FuzzProtocolMessages", ["MeshCRDT", "MeshCodec", "MeshReplication"], []),
    ("FuzzMembershipMessages", ["MeshCRDT", "MeshCodec", "MeshReplication", "MeshMembership"], []),
    ("FuzzCheckpoint", ["MeshCodec", "MeshReplication"], []),
    ("FuzzRESP", ["MeshRESP"], []),
]

/// Products of other packages a fuzzer names directly: MeshRESP's API takes and returns NIOCore's `ByteBuffer`.
let externalProducts: [String: [Target.Dependency]] = [
    "FuzzRESP": [.product(name: "NIOCore", package: "swift-nio")]
]

/// Code shared by several fuzzers (not fuzzers themselves): name and StateMesh products.
let helpers: [(name: String, products: [String])] = [
    ("SecurityFuzzFixtures", ["MeshSecurity"])
]

let package = Package(
    name: "StateMeshFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        // `name:` gives the root its identity; a bare path would take the folder name.
        .package(name: "StateMesh", path: ".."),
        // The same URL and version as the root Package.swift, for FuzzRESP's `import NIOCore`.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: fuzzers.map { fuzzer in
        .executableTarget(
            name: fuzzer.name,
            dependencies: fuzzer.products.map { .product(name: $0, package: "StateMesh") }
                + fuzzer.helpers.map { .target(name: $0) } + (externalProducts[fuzzer.name] ?? []),
            path: "Sources/\(fuzzer.name)",
            swiftSettings: [.swiftLanguageMode(.v6), .unsafeFlags(["-parse-as-library"])]
        )
    }
        + helpers.map { helper in
            .target(
                name: helper.name,
                dependencies: helper.products.map { .product(name: $0, package: "StateMesh") },
                path: "Shared/\(helper.name)",
                swiftSettings: [.swiftLanguageMode(.v6)]
            )
        }
)
