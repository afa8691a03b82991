// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "rapidflow",
    products: [
        .executable(name: "rapidflow", targets: ["rapidflow"]),
        .executable(name: "rapidflow-bench", targets: ["rapidflow-bench"]),
        .library(name: "RapidFlowServer", targets: ["RapidFlowServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
        .package(url: "https://github.com/vapor/sqlite-kit.git", from: "4.5.2"),
        .package(url: "https://github.com/vapor/postgres-kit.git", from: "2.17.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
    ],
    targets: [
        // Domain types, config parsing, validation and errors: no I/O.
        .target(
            name: "RapidFlowCore",
            dependencies: [.product(name: "Yams", package: "Yams")]
        ),
        // The HTTP API's request and response types, shared by the server, the client
        // commands, the runner, the benchmarks and the tests.
        .target(name: "RapidFlowAPI", dependencies: ["RapidFlowCore"]),
        // One call into sqlite-nio's SQLite that Swift cannot make (a C variadic function).
        .target(name: "CRapidFlowSQLite"),
        // The store protocol and its SQL implementation.
        .target(
            name: "RapidFlowStore",
            dependencies: [
                "RapidFlowCore", "CRapidFlowSQLite",
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "SQLiteKit", package: "sqlite-kit"),
                .product(name: "PostgresKit", package: "postgres-kit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // posix_spawn with a new session and a chdir, which Glibc's Swift overlay does not expose.
        .target(name: "CRapidFlowProcess"),
        // Workspaces, executors, process control and log capture.
        .target(
            name: "RapidFlowRunner",
            dependencies: [
                "RapidFlowCore", "CRapidFlowProcess",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // HTTP, WebSocket, scheduling, dispatch and recovery.
        .target(
            name: "RapidFlowServer",
            dependencies: [
                "RapidFlowCore", "RapidFlowAPI", "RapidFlowStore", "RapidFlowRunner",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                // AES-GCM for stored secrets.
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            // The dashboard and the OpenAPI document are compiled into the binary, so the
            // service has no files to find at run time.
            resources: [
                .embedInCode("Resources/openapi.json"),
                .embedInCode("Resources/index.html"),
                .embedInCode("Resources/app.js"),
                .embedInCode("Resources/style.css"),
            ]
        ),
        .executableTarget(
            name: "rapidflow",
            dependencies: [
                "RapidFlowServer", "RapidFlowRunner", "RapidFlowAPI", "RapidFlowCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            plugins: ["RapidFlowBuildInfo"]
        ),
        // Writes the commit being built into the `rapidflow` executable (`rapidflow --version`).
        .plugin(name: "RapidFlowBuildInfo", capability: .buildTool()),
        // Benchmarks with in-run baselines: `swift run -c release rapidflow-bench`, `scripts/bench.sh`.
        .executableTarget(
            name: "rapidflow-bench",
            dependencies: [
                "RapidFlowServer", "RapidFlowRunner", "RapidFlowStore", "RapidFlowAPI", "RapidFlowCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "SQLiteKit", package: "sqlite-kit"),
            ]
        ),
        .testTarget(name: "RapidFlowCoreTests", dependencies: ["RapidFlowCore"]),
        .testTarget(name: "RapidFlowAPITests", dependencies: ["RapidFlowAPI", "RapidFlowCore"]),
        .testTarget(
            name: "RapidFlowStoreTests",
            dependencies: ["RapidFlowStore", .product(name: "PostgresKit", package: "postgres-kit")]
        ),
        // What the server and runner tests share: a service on a free port, its answers read
        // through the API types, raw HTTP and WebSocket clients, `eventually`, test files.
        .target(
            name: "RapidFlowTestSupport",
            dependencies: [
                "RapidFlowServer", "RapidFlowAPI", "RapidFlowCore", "RapidFlowRunner",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/RapidFlowTestSupport"
        ),
        .testTarget(
            name: "RapidFlowRunnerTests",
            dependencies: [
                "RapidFlowRunner",
                // The Nomad executor end to end: a service, the fake agent, a runner it starts.
                "RapidFlowServer", "RapidFlowAPI", "RapidFlowTestSupport",
                // The fake Nomad agent the Nomad tests talk to, over HTTP or TLS.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "RapidFlowServerTests",
            dependencies: [
                "RapidFlowServer", "RapidFlowAPI", "RapidFlowCore", "RapidFlowRunner", "RapidFlowStore", "RapidFlowTestSupport",
                // Routes tested through the router, with no socket (`app.test(.router)`).
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "PostgresKit", package: "postgres-kit"),
                // HMAC-SHA256 for the forges' webhook signatures the tests send.
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            // Recorded forge deliveries, read from their paths.
            exclude: ["Fixtures"]
        ),
    ]
)
