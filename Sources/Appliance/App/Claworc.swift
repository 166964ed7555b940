import ArgumentParser
import Glibc
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import Sandbox

struct Claworc: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "claworc",
        abstract: "Runs many sandboxed OpenClaw instances behind one web dashboard.",
        subcommands: [Serve.self, BenchLaunch.self])
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the appliance daemon: dashboard, API and instance supervisor.")

    @Option(help: "Address to listen on, host:port.")
    var listen = "127.0.0.1:8080"

    @Option(name: .customLong("data-dir"), help: "State directory (default: $CLAWORC_DATA_DIR or /var/lib/claworc).")
    var dataDir: String?

    @Option(name: .customLong("default-network"),
            help: "Network of instances without their own setting: egress (NAT to the outside, private ranges refused) or none (loopback only).")
    var defaultNetwork = "egress"

    @Option(name: .customLong("instance-services"),
            help: "standard (Xvfb, VNC, Chromium) or none (only the init: for benchmarks and resource tests).")
    var instanceServices = "standard"

    @Option(name: .customLong("root-mode"),
            help: "host: instances see the host's /usr and /etc read-only. image: an overlay of --base-dir, writable per instance.")
    var rootMode = "host"

    @Option(name: .customLong("base-dir"), help: "The shared base root filesystem tree for --root-mode image (default: <data-dir>/base).")
    var baseDir: String?

    /// Only for the conformance suite's negative control: proves a check goes red when its
    /// protection is off. Never documented for users.
    @Option(name: .customLong("unsafe-test-disable"), help: .hidden)
    var unsafeTestDisable: [String] = []

    /// Only for the hostile-init tests: the program every instance runs as its init instead
    /// of ours. Never documented for users.
    @Option(name: .customLong("unsafe-test-init"), help: .hidden)
    var unsafeTestInit: String?

    /// Only for the conformance suite: request-head and keep-alive idle timeouts short enough
    /// to test, as HEAD_MS,IDLE_MS. Never documented for users.
    @Option(name: .customLong("unsafe-test-http-timeouts"), help: .hidden)
    var unsafeTestHTTPTimeouts: String?

    func run() async throws {
        let logger = { var l = Logger(label: "claworc"); l.logLevel = .info; return l }()
        guard getuid() == 0 else {
            throw ValidationError("claworc serve must run as root: it creates namespaces and mounts for each instance.")
        }
        // Everything created under the data dir without an explicit mode (the SQLite file and
        // its -wal/-shm, logs) is private to root: the database holds the password hashes.
        umask(0o077)
        // Every connection is a descriptor; the soft limit a shell or unit starts us with
        // (often 1024) is far below what the host allows.
        var files = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &files) == 0 && files.rlim_cur < files.rlim_max {
            files.rlim_cur = files.rlim_max
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &files)
        }
        let (host, port) = try Self.parse(listen: listen)
        let root = dataDir ?? ProcessInfoLite.environment("CLAWORC_DATA_DIR") ?? "/var/lib/claworc"
        let paths = DataPaths(root: root)
        try paths.prepare()
        let store = try Store(path: paths.database)
        let accounts = Accounts(store: store, setupCodePath: paths.setupCode)
        if let code = try accounts.issueSetupCodeIfNeeded() {
            Console.say("""

                ==============================================================
                  Claworc first-time setup code: \(code)
                  Open the dashboard and enter it to create the admin account.
                  (also written to \(paths.setupCode))
                ==============================================================

                """)
        }
        let assets = try StaticAssets()
        var limits = ConnectionLimits()
        if let text = unsafeTestHTTPTimeouts {
            guard let (head, idle) = ConnectionLimits.testTimeouts(text) else {
                throw ValidationError("--unsafe-test-http-timeouts takes HEAD_MS,IDLE_MS")
            }
            limits = ConnectionLimits(headTimeout: head, idleTimeout: idle)
            logger.critical("UNSAFE: HTTP timeouts set for testing", metadata: ["head_ms": "\(head.nanoseconds / 1_000_000)",
                                                                                "idle_ms": "\(idle.nanoseconds / 1_000_000)"])
        }
        let disabled = Set(unsafeTestDisable)
        guard disabled.isSubset(of: ["seccomp"]) else {
            throw ValidationError("--unsafe-test-disable accepts only: seccomp")
        }
        if let unsafeTestInit {
            logger.critical("UNSAFE: instances run a test program as their init", metadata: ["init": "\(unsafeTestInit)"])
        }
        if !disabled.isEmpty {
            logger.critical("UNSAFE: protections disabled for testing", metadata: ["disabled": "\(disabled.sorted())"])
        }
        guard defaultNetwork == "egress" || defaultNetwork == "none" else {
            throw ValidationError("--default-network must be egress or none")
        }
        guard instanceServices == "standard" || instanceServices == "none" else {
            throw ValidationError("--instance-services must be standard or none")
        }
        guard rootMode == "host" || rootMode == "image" else { throw ValidationError("--root-mode must be host or image") }
        var baseRoot: String?
        if rootMode == "image" {
            let base = baseDir ?? root + "/base"
            guard FileSystem.isDirectory(base + "/usr") else {
                throw ValidationError("--root-mode image needs a root filesystem tree at \(base) (it has no /usr)")
            }
            baseRoot = base
        }
        let manager = try InstanceManager(store: store, paths: paths, logger: logger, disabled: disabled,
                                          defaultNetwork: defaultNetwork, services: instanceServices, baseRoot: baseRoot,
                                          initProgram: unsafeTestInit)

        let router = Router(context: AppContext.self)
        router.middlewares.add(ErrorEnvelopeMiddleware(logger: logger))
        router.middlewares.add(SessionMiddleware(accounts: accounts))
        APIRoutes(accounts: accounts, manager: manager).register(on: router)
        assets.register(on: router)

        let wsRouter = Router(context: AppContext.self)
        wsRouter.middlewares.add(ErrorEnvelopeMiddleware(logger: logger))
        wsRouter.middlewares.add(SessionMiddleware(accounts: accounts))
        VNCProxy(manager: manager).register(on: wsRouter)

        let app = Application(
            router: router,
            server: Self.server(webSocketRouter: wsRouter, limits: limits),
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                Console.say("claworc listening on http://\(host.contains(":") ? "[\(host)]" : host):\(port)")
            },
            logger: logger)

        if let network = manager.network, !network.guardsForwarding {
            logger.notice("IPv4 forwarding was already on before claworc enabled it: the host routes between its other networks as configured; claworc filters only its instances' traffic")
        }
        await manager.resume()
        let sweeper = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                await manager.sweep()
            }
        }
        try await app.runService()
        sweeper.cancel()
        await manager.shutdownAll()
    }

    /// HTTP/1 with the WebSocket upgrade (the VNC relay), inside the connection limits.
    static func server(webSocketRouter: Router<AppContext>, limits: ConnectionLimits) -> HTTPServerBuilder {
        let webSocketResponder = webSocketRouter.buildResponder()
        return HTTPServerBuilder { responder in
            LimitedChildChannel(
                inner: HTTP1WebSocketUpgradeChannel(
                    responder: responder, webSocketResponder: webSocketResponder,
                    configuration: .init(http1: .init(additionalChannelHandlers: [ResponseEndWatcher()]),
                                         ws: .init(maxFrameSize: 1 << 20))),
                limits: limits)
        }
    }

    static func parse(listen: String) throws -> (String, Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
              (0...65535).contains(port) else {
            throw ValidationError("--listen must be host:port, for example 127.0.0.1:8080")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }
}

enum ProcessInfoLite {
    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let s = String(cString: value)
        return s.isEmpty ? nil : s
    }
}

/// Lines meant for the operator's console, flushed at once (stdout is often a pipe).
enum Console {
    static func say(_ text: String) {
        let line = text + "\n"
        _ = line.withCString { write(1, $0, strlen($0)) }
    }
}
