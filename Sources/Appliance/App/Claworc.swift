import Glibc
import Logging

/// The command line: `claworc serve …` runs the appliance; `__bench-launch` is a hidden
/// measuring tool (bench/launch.py). Usage errors go to stderr with exit status 64.
enum Claworc {
    static let usage = """
        usage: claworc serve [options]    run the appliance daemon: dashboard, API and instance supervisor
               claworc serve --help       its options
               claworc admin create USERNAME | admin reset-password USERNAME | user list
                                          accounts, on the data dir (see claworc admin --help)
               claworc agent install FILE.tar.gz | agent list
                                          OpenClaw bundles (see claworc agent --help)
        """

    static func main(_ arguments: [String]) async {
        let command = arguments.first
        let rest = arguments.dropFirst()
        do throws(UsageError) {
            switch command {
            case "serve":
                if rest.contains("--help") || rest.contains("-h") { return Console.say(Serve.usage) }
                let serve = try Serve(arguments: rest)
                do { try await serve.run() } catch { fail("\(error)", status: 1) }
            case "admin", "user":
                let sub = rest.first ?? ""
                let command = "\(command!) \(sub)"
                guard ["admin create", "admin reset-password", "user list"].contains(command) else {
                    throw UsageError("unknown command '\(command)'")
                }
                if rest.contains("--help") { return Console.say(AccountCommands.usage) }
                try await AccountCommands.run(command, rest.dropFirst())
            case "agent":
                let command = "agent \(rest.first ?? "")"
                guard ["agent install", "agent list"].contains(command) else { throw UsageError("unknown command '\(command)'") }
                if rest.contains("--help") { return Console.say(AgentCommands.usage) }
                try await AgentCommands.run(command, rest.dropFirst())
            case "__bench-launch":
                let bench = try BenchLaunch(arguments: rest)
                do { try bench.run() } catch { fail("\(error)", status: 1) }
            case nil, "--help", "-h", "help":
                Console.say(usage)
            default:
                throw UsageError("unknown command '\(command!)'")
            }
        } catch {
            let help = switch command {
            case "serve": Serve.usage
            case "__bench-launch": BenchLaunch.usage
            case "admin", "user": AccountCommands.usage
            case "agent": AgentCommands.usage
            default: usage
            }
            fail("\(error.message)\n\(help)", status: 64)
        }
    }

    static func fail(_ message: String, status: Int32) -> Never {
        let line = "claworc: " + message + "\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        exit(status)
    }
}

/// `claworc serve`: the process around the application (root check, umask, file limit, the
/// operator's console); the application itself is `buildApplication`'s.
struct Serve {
    static let usage = """
        usage: claworc serve [options]
          --listen HOST:PORT          address to listen on (default 127.0.0.1:8080)
          --data-dir DIR              state directory (default: $CLAWORC_DATA_DIR or /var/lib/claworc)
          --default-network MODE      network of instances without their own setting: egress (NAT to the
                                      outside, private ranges refused) or none (loopback only); default egress
          --instance-services SET     standard (Xvfb, VNC, Chromium), standard+idle, or none (only the init:
                                      for benchmarks and resource tests); default standard
          --root-mode MODE            host: instances see the host's /usr and /etc read-only; image: an overlay
                                      of --base-dir, writable per instance; default host
          --base-dir DIR              the shared base tree for --root-mode image (default <data-dir>/base)
          --tls MODE                  auto: HTTPS unless --listen is a loopback address; on; off (default auto)
          --tls-cert FILE             PEM certificate chain to serve HTTPS with (default: a self-signed
          --tls-key FILE              ECDSA certificate made on first start in <data-dir>/tls)
          --http-redirect HOST:PORT   also listen with plain HTTP there, only redirecting to HTTPS
          --rp-id NAME                the name passkeys are bound to (default: the host name the browser
                                      used; an IP address cannot have passkeys)
          --cgroup-parent PATH        the cgroup v2 group (a path below /sys/fs/cgroup) to put instances'
                                      cgroups under, e.g. a second delegated systemd unit's, so that the
                                      daemon's own unit can restart (docs/architecture.md, "systemd");
                                      default: the daemon's own cgroup
        """

    var listen = "127.0.0.1:8080"
    var dataDir: String?
    var defaultNetwork = "egress"
    var instanceServices = "standard"
    var rootMode = "host"
    var baseDir: String?
    var tls = "auto"
    var tlsCertificate: String?
    var tlsKey: String?
    var httpRedirect: String?
    var rpID: String?
    var cgroupParent: String?
    /// Only for the passkey tests: how long a ceremony's challenge lives, in milliseconds.
    var unsafeTestPasskeyTTL: Int?
    /// Only for the conformance suite's negative control: proves a check goes red when its
    /// protection is off. Never documented for users (nor are the other `unsafe-test` options).
    var unsafeTestDisable: [String] = []
    /// Only for the hostile-init tests: the program every instance runs as its init instead of ours.
    var unsafeTestInit: String?
    /// Only for test daemons running side by side: the lowest id slot to hand out.
    var unsafeTestFirstSlot: Int64?
    /// Only for the terminal tests: how long a detached terminal session lives, in ms.
    var unsafeTestTerminalIdleMs: Int?
    /// Only for the conformance suite: request-head and keep-alive idle timeouts short enough
    /// to test, as HEAD_MS,IDLE_MS.
    var unsafeTestHTTPTimeouts: String?

    init(arguments: ArraySlice<String>) throws(UsageError) {
        let options = try CommandOptions(arguments, valued: [
            "listen", "data-dir", "default-network", "instance-services", "root-mode", "base-dir",
            "tls", "tls-cert", "tls-key", "http-redirect", "rp-id", "cgroup-parent",
            "unsafe-test-disable", "unsafe-test-init", "unsafe-test-first-slot", "unsafe-test-http-timeouts",
            "unsafe-test-terminal-idle-ms",
            "unsafe-test-passkey-ttl",
        ], flags: [])
        listen = try options.value("listen") ?? listen
        dataDir = try options.value("data-dir")
        defaultNetwork = try options.value("default-network") ?? defaultNetwork
        instanceServices = try options.value("instance-services") ?? instanceServices
        rootMode = try options.value("root-mode") ?? rootMode
        baseDir = try options.value("base-dir")
        tls = try options.value("tls") ?? tls
        tlsCertificate = try options.value("tls-cert")
        tlsKey = try options.value("tls-key")
        httpRedirect = try options.value("http-redirect")
        rpID = try options.value("rp-id")
        cgroupParent = try options.value("cgroup-parent")
        unsafeTestPasskeyTTL = try options.integer("unsafe-test-passkey-ttl")
        unsafeTestDisable = options.all("unsafe-test-disable")
        unsafeTestInit = try options.value("unsafe-test-init")
        unsafeTestFirstSlot = try options.integer("unsafe-test-first-slot").map(Int64.init)
        unsafeTestHTTPTimeouts = try options.value("unsafe-test-http-timeouts")
        unsafeTestTerminalIdleMs = try options.integer("unsafe-test-terminal-idle-ms")
    }

    func run() async throws {
        let logger = { var l = Logger(label: "claworc"); l.logLevel = .info; return l }()
        guard getuid() == 0 else {
            Claworc.fail("claworc serve must run as root: it creates namespaces and mounts for each instance.", status: 1)
        }
        let configuration: Configuration
        do { configuration = try Configuration(serve: self) } catch { Claworc.fail("\(error.message)\n\(Self.usage)", status: 64) }
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
        let scheme = configuration.transport == .plain ? "http" : "https"
        let appliance = try buildApplication(configuration: configuration, logger: logger) { port in
            Console.say("claworc listening on \(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(port)")
        }
        if let certificate = appliance.certificate {
            // What an admin compares with the browser's certificate viewer before trusting it.
            Console.say("claworc HTTPS certificate \(certificate.certificatePath)\n  SHA-256 fingerprint: \(certificate.fingerprint)")
        }
        if let code = appliance.setupCode {
            Console.say("""

                ==============================================================
                  Claworc first-time setup code: \(code)
                  Open the dashboard and enter it to create the admin account.\(appliance.certificate.map { "\n  Certificate SHA-256: " + $0.fingerprint } ?? "")
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
