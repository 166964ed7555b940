import NIOCore
import Sandbox

/// Everything the daemon is told at start, parsed and checked once; the rest of the code sees
/// only these types, never the command line's strings.
struct Configuration: Sendable {
    /// The network of instances without a setting of their own.
    enum Network: String, Sendable { case egress, none }
    enum RootMode: Sendable, Equatable {
        /// The host's /usr and /etc, read-only.
        case host
        /// An overlay of this base tree, writable per instance.
        case image(baseDir: String)
    }
    /// standard: Xvfb, VNC, Chromium; standard+idle: plus a fourth, idle service (for measuring
    /// the init with four services); none: only the init.
    enum InstanceServices: String, Sendable { case standard, none, standardIdle = "standard+idle" }
    /// How clients reach the dashboard. HTTPS is the default off loopback: on a LAN a session
    /// cookie over plain HTTP is anyone's to read.
    enum Transport: Sendable, Equatable {
        case plain
        /// With the operator's certificate and key, or (nil) one the appliance makes for itself.
        case https(certificate: String?, key: String?)
    }
    /// Protections --unsafe-test-disable can switch off (the negative control only).
    enum Protection: String, Sendable, CaseIterable { case seccomp }
    /// How much of the host the appliance takes over. `system` is the daemon's: it moves itself
    /// into its cgroup leaf, replaces the nftables table and seals its binary for the inits.
    /// `detached` touches none of that, and instances cannot start: for in-process tests.
    enum HostAccess: Sendable { case system, detached }

    /// Switches only the conformance suite uses; never documented for users.
    struct UnsafeTestSwitches: Sendable {
        var disabled: Set<Protection> = []
        /// The program every instance runs as its init instead of ours (hostile-init tests).
        var initProgram: String?
        /// Request-head and keep-alive idle timeouts short enough to test.
        var httpTimeouts: (head: TimeAmount, idle: TimeAmount)?
        /// The lowest id slot this daemon hands out (1 in production). Test daemons running side
        /// by side get apart ranges: starting an instance kills what runs in its slot's range.
        var firstSlot: Int64 = 1
        /// How long a terminal session lives with nobody attached (30 minutes in production).
        var terminalIdleMs = 30 * 60 * 1000
        /// A passkey challenge's lifetime in milliseconds (2 minutes in production).
        var passkeyChallengeMs: Int64?
    }

    var host: String
    var port: Int
    var dataDir: String
    var defaultNetwork: Network = .egress
    var rootMode: RootMode = .host
    var instanceServices: InstanceServices = .standard
    var hostAccess: HostAccess = .system
    var transport: Transport = .plain
    /// A plain-HTTP listener that only redirects to the HTTPS one.
    var redirect: (host: String, port: Int)?
    /// The WebAuthn RP ID; nil: the host name each request came by.
    var rpID: String?
    /// The cgroup (a path below the cgroup2 mount, "/system.slice/x.service") the instances'
    /// tree goes under; nil: the daemon's own.
    var cgroupParent: String?
    var unsafe = UnsafeTestSwitches()

    init(host: String = "127.0.0.1", port: Int = 8080, dataDir: String) {
        self.host = host
        self.port = port
        self.dataDir = dataDir
    }

    /// The `serve` command line, checked; errors read as the option's usage.
    init(serve options: Serve) throws(UsageError) {
        (host, port) = try Self.parse(listen: options.listen)
        dataDir = options.dataDir ?? ProcessInfoLite.environment("CLAWORC_DATA_DIR") ?? "/var/lib/claworc"
        transport = try Self.transport(options, host: host)
        if let listen = options.httpRedirect {
            guard case .https = transport else { throw UsageError("--http-redirect needs HTTPS (see --tls)") }
            let (redirectHost, redirectPort) = try Self.parse(listen: listen, option: "--http-redirect")
            redirect = (redirectHost, redirectPort)
        }
        if let name = options.rpID {
            let lowered = name.lowercased()
            guard Passkeys.isName(lowered) else {
                throw UsageError("--rp-id must be a host name (such as claworc.local), not an IP address")
            }
            rpID = lowered
        }
        if let parent = options.cgroupParent {
            let parts = parent.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            guard parent.hasPrefix("/"), parent.count > 1, !parent.contains("\0"),
                  parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
                throw UsageError("--cgroup-parent must be an absolute cgroup path such as /system.slice/claworc-instances.service")
            }
            cgroupParent = parent
        }
        if let ttl = options.unsafeTestPasskeyTTL {
            guard ttl > 0 else { throw UsageError("--unsafe-test-passkey-ttl takes milliseconds") }
            unsafe.passkeyChallengeMs = Int64(ttl)
        }
        if let text = options.unsafeTestHTTPTimeouts {
            guard let timeouts = ConnectionLimits.testTimeouts(text) else {
                throw UsageError("--unsafe-test-http-timeouts takes HEAD_MS,IDLE_MS")
            }
            unsafe.httpTimeouts = timeouts
        }
        var disabled: Set<Protection> = []
        for name in options.unsafeTestDisable {
            guard let protection = Protection(rawValue: name) else {
                throw UsageError("--unsafe-test-disable accepts only: \(Protection.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            disabled.insert(protection)
        }
        unsafe.disabled = disabled
        unsafe.initProgram = options.unsafeTestInit
        if let first = options.unsafeTestFirstSlot {
            guard (1...InstanceIDs.maxSlot).contains(first) else {
                throw UsageError("--unsafe-test-first-slot must be between 1 and \(InstanceIDs.maxSlot)")
            }
            unsafe.firstSlot = first
        }
        if let idle = options.unsafeTestTerminalIdleMs {
            guard (100...86_400_000).contains(idle) else {
                throw UsageError("--unsafe-test-terminal-idle-ms must be between 100 and 86400000")
            }
            unsafe.terminalIdleMs = idle
        }
        guard let network = Network(rawValue: options.defaultNetwork) else {
            throw UsageError("--default-network must be egress or none")
        }
        defaultNetwork = network
        guard let services = InstanceServices(rawValue: options.instanceServices) else {
            throw UsageError("--instance-services must be standard, standard+idle or none")
        }
        instanceServices = services
        switch options.rootMode {
        case "host": rootMode = .host
        case "image":
            let base = options.baseDir ?? dataDir + "/base"
            guard FileSystem.isDirectory(base + "/usr") else {
                throw UsageError("--root-mode image needs a root filesystem tree at \(base) (it has no /usr)")
            }
            rootMode = .image(baseDir: base)
        default: throw UsageError("--root-mode must be host or image")
        }
    }

    var baseRoot: String? {
        if case .image(let base) = rootMode { return base }
        return nil
    }

    /// `--tls auto` (the default) is HTTPS unless the address is loopback; `--tls-cert` and
    /// `--tls-key` come together.
    private static func transport(_ options: Serve, host: String) throws(UsageError) -> Transport {
        guard (options.tlsCertificate == nil) == (options.tlsKey == nil) else {
            throw UsageError("--tls-cert and --tls-key go together")
        }
        let given = options.tlsCertificate != nil
        switch options.tls {
        case "on": return .https(certificate: options.tlsCertificate, key: options.tlsKey)
        case "off":
            guard !given else { throw UsageError("--tls off contradicts --tls-cert") }
            return .plain
        case "auto":
            return given || !MachineNames.isLoopback(host) ? .https(certificate: options.tlsCertificate, key: options.tlsKey) : .plain
        default: throw UsageError("--tls must be auto, on or off")
        }
    }

    static func parse(listen: String, option: String = "--listen") throws(UsageError) -> (String, Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
              (0...65535).contains(port) else {
            throw UsageError("\(option) must be host:port, for example 127.0.0.1:8080")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }
}
