import CSandbox
import Glibc
import Sandbox

/// How the supervisor learns that a started service is ready for its dependents.
public enum Readiness: Sendable, Equatable {
    /// Ready as soon as it runs (nothing to wait for).
    case started
    /// The service writes to an fd we pass it (Xvfb's `-displayfd`), as s6's notification-fd.
    case notifyFD
    /// A TCP connect to 127.0.0.1:port inside the instance succeeds.
    case tcp(port: UInt16)
    /// `GET path` on 127.0.0.1:port answers 200 (an HTTP server that listens before it can
    /// serve, as OpenClaw's gateway does, is not ready at its first accept).
    case http(port: UInt16, path: String)
}

/// When an exited service is started again (systemd's `Restart=`).
public enum RestartMode: Sendable, Equatable {
    /// Never: a clean exit leaves it `stopped`, a failure `failed`.
    case never
    /// Only after a failure (non-zero exit, a signal, or an exit before it was ready).
    case onFailure
    /// After every exit.
    case always
}

/// The delay before an automatic restart: `initialMs` doubling per consecutive restart up to
/// `maxMs`, each delay then moved by a random ±`jitterPercent` %; back to `initialMs` once a
/// run has stayed ready for `stableAfterMs`.
public struct Backoff: Sendable, Equatable {
    public var initialMs: Int64
    public var maxMs: Int64
    public var jitterPercent: Int64
    public var stableAfterMs: Int64

    public init(initialMs: Int64 = 250, maxMs: Int64 = 8000, jitterPercent: Int64 = 10, stableAfterMs: Int64 = 10_000) {
        self.initialMs = initialMs
        self.maxMs = maxMs
        self.jitterPercent = jitterPercent
        self.stableAfterMs = stableAfterMs
    }

    /// The delay before the `step`-th consecutive restart (0-based), without jitter.
    public func baseDelay(step: Int) -> Int64 {
        var d = initialMs
        for _ in 0..<min(step, 40) where d < maxMs { d *= 2 }
        return min(d, maxMs)
    }
}

/// `burst` failed starts within `intervalMs` put the service in `failed` until it is restarted
/// explicitly (systemd's StartLimitBurst/StartLimitIntervalSec, s6's permafailon). A failed
/// start is an exit before readiness, a readiness timeout or a spawn error.
public struct StartLimit: Sendable, Equatable {
    public var burst: Int
    public var intervalMs: Int64

    public init(burst: Int = 5, intervalMs: Int64 = 60_000) {
        self.burst = burst
        self.intervalMs = intervalMs
    }
}

/// What is kept of a service's stdout/stderr: `<name>.log` plus `files - 1` rotated files
/// of at most `fileBytes` each, an in-memory tail of `tailBytes`, and at most
/// `rateBytesPerSecond` accepted per second (the rest is read and dropped, and counted).
public struct LogLimits: Sendable, Equatable {
    public var fileBytes: Int
    public var files: Int
    public var tailBytes: Int
    public var rateBytesPerSecond: Int

    public init(fileBytes: Int = 1 << 20, files: Int = 3, tailBytes: Int = 16 << 10, rateBytesPerSecond: Int = 1 << 20) {
        self.fileBytes = max(fileBytes, 8192)
        self.files = max(files, 1)
        self.tailBytes = tailBytes
        self.rateBytesPerSecond = rateBytesPerSecond
    }

    public var maxDiskBytes: Int { fileBytes * files }
}

/// One declared service: what to run, as whom, after what, how it is known to be ready, what
/// happens when it exits and how it is stopped. The supervisor interprets this; nothing about
/// a particular service is written as control flow.
public struct ServiceSpec: Sendable {
    public var name: String
    public var path: String
    public var arguments: [String]
    public var environment: [String]
    public var uid: uid_t
    public var gid: gid_t
    public var workingDirectory: String
    /// Started only once each of these is `ready`; stopped before them.
    public var dependsOn: [String]
    public var readiness: Readiness
    /// A start not ready after this long is killed and counts as a failed start.
    public var readinessTimeoutMs: Int64
    public var restart: RestartMode
    public var backoff: Backoff
    public var startLimit: StartLimit
    /// Sent to the service's process group on stop; SIGKILL follows after `stopTimeoutMs`.
    public var stopSignal: Int32
    public var stopTimeoutMs: Int64
    public var logs: LogLimits
    /// Files removed before every start (stale locks a killed process leaves behind).
    public var staleFiles: [String]
    /// Chromium builds its own sandbox from user namespaces; every other service gets the
    /// add-on seccomp filter that forbids creating namespaces.
    public var mayCreateNamespaces: Bool
    /// Runs in the init just before each start; a text instead of nil puts the service in
    /// `failed` with that reason (a missing prerequisite that a restart cannot fix).
    public var preflight: (@Sendable () -> String?)?
    /// Exit codes that mean "restarting will not help" (OpenClaw's 78, invalid configuration):
    /// such an exit is final, `failed` with this reason until restarted explicitly.
    public var finalExits: [Int32: String]
    /// stdin is a pipe whose write end the init holds open for the process's lifetime (a
    /// program that stops at EOF on stdin keeps running; /dev/null would end it).
    public var openStdin: Bool

    public init(name: String, path: String, arguments: [String], environment: [String],
                dependsOn: [String], readiness: Readiness, readinessTimeoutMs: Int64 = 30_000,
                restart: RestartMode = .always, backoff: Backoff = Backoff(), startLimit: StartLimit = StartLimit(),
                stopSignal: Int32 = SIGTERM, stopTimeoutMs: Int64 = 5000, logs: LogLimits = LogLimits(),
                staleFiles: [String] = [],
                uid: uid_t, gid: gid_t, workingDirectory: String, mayCreateNamespaces: Bool = false,
                preflight: (@Sendable () -> String?)? = nil, finalExits: [Int32: String] = [:], openStdin: Bool = false) {
        self.preflight = preflight
        self.finalExits = finalExits
        self.openStdin = openStdin
        self.name = name
        self.path = path
        self.arguments = arguments
        self.environment = environment
        self.dependsOn = dependsOn
        self.readiness = readiness
        self.readinessTimeoutMs = readinessTimeoutMs
        self.restart = restart
        self.backoff = backoff
        self.startLimit = startLimit
        self.stopSignal = stopSignal
        self.stopTimeoutMs = stopTimeoutMs
        self.logs = logs
        self.staleFiles = staleFiles
        self.uid = uid
        self.gid = gid
        self.workingDirectory = workingDirectory
        self.mayCreateNamespaces = mayCreateNamespaces
    }
}

/// The services every instance runs: a virtual display, a VNC server on it, Chromium and the
/// OpenClaw agent (AgentService.swift).
public enum ServiceCatalog {
    public static let agentUID: uid_t = 1000
    public static let agentGID: gid_t = 1000
    public static let home = "/home/claworc"
    /// Chromium's own user: it may create namespaces (its sandbox), so nothing the agent can
    /// write or signal may reach it. The agent drives it over DevTools and VNC only.
    public static let browserUID: uid_t = 1001
    public static let browserGID: gid_t = 1001
    public static let browserHome = MountPlan.browserHomePath
    public static let display = ":0"
    public static let vncPort: UInt16 = 5900
    public static let devToolsPort: UInt16 = 9222
    /// The OpenClaw gateway (its default port), on 127.0.0.1 inside the instance.
    public static let gatewayPort: UInt16 = 18789
    /// The daemon's LLM key proxy as the instance sees it: a listening socket on 127.0.0.1
    /// inside the instance's network namespace whose connections the daemon accepts.
    public static let llmProxyPort: UInt16 = 8399
    /// The active OpenClaw bundle, mounted read-only.
    public static let agentBundleMount = MountPlan.agentBundlePath
    public static let runtimeDir = "/run/user/1000"
    public static func runtimeDir(_ uid: uid_t) -> String { "/run/user/\(uid)" }
    /// Where the services' log files are written inside the instance (bound from the host's
    /// `<data-dir>/instances/<id>/logs`; only the instance's root may write it).
    public static let logDirectory = MountPlan.logsPath
    /// All services' log files of one instance together stay under this.
    public static let instanceLogBudget = 16 << 20

    public static let agentEnvironment = [
        "HOME=\(home)", "USER=claworc", "LOGNAME=claworc", "SHELL=/bin/bash",
        "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "DISPLAY=\(display)",
        "XDG_RUNTIME_DIR=\(runtimeDir)",
    ]

    /// x11vnc's defaults cost seconds before a viewer sees the first Chromium frame (measured,
    /// docs/performance.md): it starts "napping" (long sleeps between screen polls while
    /// nothing happened), times the first full update to guess the link speed (a viewer that
    /// reads 4 MB slowly looks like a modem and gets throttled), and serves clients from the
    /// polling loop. `-nonap`, `-speeds lan` and `-threads` (a thread per client) remove those;
    /// `-wait`/`-defer` 10 ms halve the poll and update delays (default 20).
    public static let vncArguments = [
        "x11vnc", "-display", display, "-rfbport", String(vncPort), "-localhost",
        "-forever", "-shared", "-nopw", "-quiet",
        "-nonap", "-speeds", "lan", "-threads", "-wait", "10", "-defer", "10",
    ]

    /// The service set an instance runs: "standard", or "none" for an instance of only its
    /// init; "standard+idle" adds a fourth, trivial service (used to measure the init).
    public static func named(_ set: String, screen: String = "1280x800") -> [ServiceSpec] {
        switch set {
        case "none": return []
        case "standard+idle": return standard(screen: screen) + [idle]
        default: return standard(screen: screen)
        }
    }

    /// A service that only sleeps, as the agent.
    public static let idle = ServiceSpec(
        name: "idle", path: "/bin/sleep", arguments: ["sleep", "infinity"], environment: agentEnvironment,
        dependsOn: [], readiness: .started, uid: agentUID, gid: agentGID, workingDirectory: home)

    public static func standard(screen: String = "1280x800") -> [ServiceSpec] {
        let size = screen.split(separator: "x").map(String.init)
        let windowSize = size.count == 2 ? "\(size[0]),\(size[1])" : "1280,800"
        let browserEnv = [
            "HOME=\(browserHome)", "USER=browser", "LOGNAME=browser", "SHELL=/bin/sh",
            "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "DISPLAY=\(display)",
            "XDG_RUNTIME_DIR=\(runtimeDir(browserUID))",
        ]
        let profile = "\(browserHome)/profile"
        // Stop timeouts: the agent first, then Chromium and x11vnc together, then Xvfb; 2 s +
        // 5 s + 2 s stays under the 10 s the daemon gives the whole instance.
        return [
            ServiceSpec(
                name: "xvfb", path: "/usr/bin/Xvfb",
                arguments: ["Xvfb", display, "-screen", "0", "\(screen)x24", "-nolisten", "tcp", "-displayfd", "3"],
                environment: agentEnvironment,
                dependsOn: [], readiness: .notifyFD, readinessTimeoutMs: 30_000,
                restart: .always, stopSignal: SIGTERM, stopTimeoutMs: 2000,
                uid: agentUID, gid: agentGID, workingDirectory: home),
            ServiceSpec(
                name: "vnc", path: "/usr/bin/x11vnc",
                arguments: vncArguments,
                environment: agentEnvironment,
                dependsOn: ["xvfb"], readiness: .tcp(port: vncPort), readinessTimeoutMs: 30_000,
                restart: .always, stopSignal: SIGTERM, stopTimeoutMs: 5000,
                uid: agentUID, gid: agentGID, workingDirectory: home),
            ServiceSpec(
                name: "chromium", path: "/usr/lib/chromium/chromium",
                arguments: ["chromium", "--user-data-dir=\(profile)",
                            "--remote-debugging-address=127.0.0.1",
                            "--remote-debugging-port=\(devToolsPort)",
                            "--no-first-run", "--no-default-browser-check", "--password-store=basic",
                            "--disable-component-update", "--disable-background-networking", "--ozone-platform=x11",
                            "--window-position=0,0", "--window-size=\(windowSize)", "about:blank"],
                environment: browserEnv,
                dependsOn: ["xvfb"], readiness: .tcp(port: devToolsPort), readinessTimeoutMs: 30_000,
                restart: .always, stopSignal: SIGTERM, stopTimeoutMs: 5000,
                staleFiles: ["\(profile)/SingletonLock", "\(profile)/SingletonSocket", "\(profile)/SingletonCookie"],
                uid: browserUID, gid: browserGID, workingDirectory: browserHome, mayCreateNamespaces: true),
            AgentService.spec,
        ]
    }
}
