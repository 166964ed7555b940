// swift-tools-version:6.1
import PackageDescription

// Size rules (docs/architecture.md, research swift-stack.md): Hummingbird with no traits so
// full Foundation/ICU never links; SQLite through our own wrapper over the system library.
let package = Package(
    name: "claworc",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "claworc", targets: ["Appliance"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        // Syscalls Swift cannot reach (clone3, pivot_root, SCM_RIGHTS cmsg macros) and the
        // async-signal-safe child side of every launch.
        .target(name: "CSandbox", linkerSettings: [.linkedLibrary("seccomp")]),
        // The system libsqlite3 (header from libsqlite3-dev), bound at run time so the
        // instance init, an exec of this binary, never loads it.
        .target(name: "CSQLite"),
        // The system OpenSSL 3 (headers from libssl-dev), bound at run time like SQLite.
        .target(name: "COpenSSL"),
        // The system zlib (headers from zlib1g-dev), bound at run time: agent bundle uploads.
        .target(name: "CZlib"),
        // The dashboard, packed by scripts/pack-web.py and linked in with .incbin.
        .target(name: "CAssets", exclude: ["assets.bin"]),
        .target(name: "Sandbox", dependencies: ["CSandbox"]),
        .target(name: "Supervisor", dependencies: ["CSandbox", "Sandbox"]),
        .executableTarget(
            name: "Appliance",
            dependencies: [
                "Sandbox", "Supervisor", "CSQLite", "COpenSSL", "CZlib", "CAssets",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Dashboard"]
        ),
        // HummingbirdTesting drives the router in process; it links into the tests only.
        .testTarget(name: "ApplianceTests", dependencies: [
            "Appliance",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
        .testTarget(name: "SupervisorTests", dependencies: ["Supervisor"]),
    ]
)
