import ArgumentParser
import Glibc
import Logging

struct Claworc: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "claworc",
        abstract: "Runs many sandboxed OpenClaw instances behind one web dashboard.",
        subcommands: [Serve.self, BenchLaunch.self])
}

/// `claworc serve`: the process around the application (root check, umask, file limit, the
/// operator's console); the application itself is `buildApplication`'s.
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

    /// Only for test daemons running side by side: the lowest id slot to hand out.
    @Option(name: .customLong("unsafe-test-first-slot"), help: .hidden)
    var unsafeTestFirstSlot: Int64?

    /// Only for the terminal tests: how long a detached terminal session lives, in ms.
    @Option(name: .customLong("unsafe-test-terminal-idle-ms"), help: .hidden)
    var unsafeTestTerminalIdleMs: Int?

    /// Only for the conformance suite: request-head and keep-alive idle timeouts short enough
    /// to test, as HEAD_MS,IDLE_MS. Never documented for users.
    @Option(name: .customLong("unsafe-test-http-timeouts"), help: .hidden)
    var unsafeTestHTTPTimeouts: String?

    func run() async throws {
        let logger = { var l = Logger(label: "claworc"); l.logLevel = .info; return l }()
        guard getuid() == 0 else {
            throw ValidationError("claworc serve must run as root: it creates namespaces and mounts for each instance.")
        }
        let configuration = try Configuration(serve: self)
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
        let host = configuration.host
        let appliance = try buildApplication(configuration: configuration, logger: logger) { port in
            Console.say("claworc listening on http://\(host.contains(":") ? "[\(host)]" : host):\(port)")
        }
        if let code = appliance.setupCode {
            Console.say("""

                ==============================================================
                  Claworc first-time setup code: \(code)
                  Open the dashboard and enter it to create the admin account.
                  (also written to \(DataPaths(root: configuration.dataDir).setupCode))
                ==============================================================

                """)
        }
        try await appliance.run()
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
