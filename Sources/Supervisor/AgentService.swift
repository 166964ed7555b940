import CSandbox
import Glibc
import Sandbox

/// The OpenClaw gateway as an instance service: `openclaw gateway run` from the bundle the
/// daemon mounts at /opt/openclaw, as the agent user, after Chromium (its browser tool attaches
/// to it over DevTools). Its prerequisites are checked before each start so a missing bundle or
/// a too old Node.js shows as `failed` with the remedy instead of a restart loop.
public enum AgentService {
    public static let name = "agent"
    static let bin = ServiceCatalog.agentBundleMount + "/bin"
    static let launcher = bin + "/openclaw"
    static let minimumNodeMajor = 22
    /// OpenClaw's exit status for a config-class startup failure.
    static let invalidConfigExit: Int32 = 78

    /// The bundle is mounted when the instance starts: installing one reaches it at its next start.
    public static let noBundle = "no OpenClaw bundle installed: an admin installs one under Agent, then this instance is restarted"
    public static let invalidConfig = "invalid configuration (exit 78): run `openclaw doctor --fix` in the terminal"

    /// The agent's environment: the agent user's, the bundle's bin first (a bundled `node`
    /// wins over the instance's), and OpenClaw told it is supervised from outside: no
    /// respawned child, no mDNS, no self-update.
    static var environment: [String] {
        ServiceCatalog.agentEnvironment.map { $0.hasPrefix("PATH=") ? "PATH=\(bin):" + $0.dropFirst(5) : $0 } + [
            "OPENCLAW_NO_RESPAWN=1", "OPENCLAW_DISABLE_BONJOUR=1", "OPENCLAW_NO_AUTO_UPDATE=1",
            "OPENCLAW_SUPERVISOR_MODE=external",
        ]
    }

    public static let spec = ServiceSpec(
        name: name, path: launcher, arguments: ["openclaw", "gateway", "run"], environment: environment,
        dependsOn: ["chromium"], readiness: .http(port: ServiceCatalog.gatewayPort, path: "/healthz"),
        // Node loads OpenClaw's few thousand modules before it listens: seconds on a busy host.
        // Stopped first at an instance stop, then Chromium and x11vnc (5 s), then Xvfb (2 s): 2 s
        // keeps the sum under the 10 s the daemon gives the whole instance. The gateway's
        // SIGTERM path (a `shutdown` event, sockets closed with 1012) takes milliseconds.
        readinessTimeoutMs: 60_000, restart: .always, stopSignal: SIGTERM, stopTimeoutMs: 2000,
        uid: ServiceCatalog.agentUID, gid: ServiceCatalog.agentGID, workingDirectory: ServiceCatalog.home,
        preflight: { preflight() }, finalExits: [invalidConfigExit: invalidConfig], openStdin: true)

    /// nil when the agent can start; else why not, naming the remedy.
    static func preflight() -> String? {
        guard FileSystem.exists(launcher) else { return noBundle }
        guard wantsNode(launcher) else { return nil }   // e.g. the test stand-in, a python3 script
        let searched = [bin] + ["/usr/local/bin", "/usr/bin", "/bin"]
        guard let node = searched.map({ $0 + "/node" }).first(where: { access($0, X_OK) == 0 }) else {
            return nodeRemedy("found no node")
        }
        guard let version = NodeVersion.of(node) else { return nodeRemedy("\(node) --version gave no version") }
        guard version.major >= minimumNodeMajor else { return nodeRemedy("found \(version.text) at \(node)") }
        return nil
    }

    static func nodeRemedy(_ found: String) -> String {
        "OpenClaw needs Node.js ≥ \(minimumNodeMajor) (\(found)): install a bundle that carries bin/node, or Node.js ≥ \(minimumNodeMajor) in the instance"
    }

    /// Whether the launcher's `#!` line asks for node (npm's launchers do).
    static func wantsNode(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 256)
        let n = read(fd, &buf, buf.count)
        guard n > 2, buf[0] == 35, buf[1] == 33 else { return false }
        let line = buf[2..<n].prefix { $0 != 10 }
        return String(decoding: line, as: UTF8.self).split(separator: " ").contains { $0 == "node" || $0.hasSuffix("/node") }
    }
}

/// `node --version`, run once per node binary (keyed by its path, size and mtime) as the agent
/// user with the services' confinement, bounded in time: the init's loop waits for it, so it
/// must not hang on a broken node.
enum NodeVersion {
    struct Found { var major: Int; var text: String }
    nonisolated(unsafe) private static var cache: [String: Found] = [:]
    static let timeoutMs: Int32 = 5000

    static func of(_ path: String) -> Found? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        let key = "\(path):\(st.st_size):\(st.st_mtim.tv_sec):\(st.st_mtim.tv_nsec)"
        if let hit = cache[key] { return hit }
        guard let text = run(path) else { return nil }
        let digits = text.drop { $0 == "v" }.prefix { $0.isNumber }
        guard let major = Int(digits) else { return nil }
        let found = Found(major: major, text: String(text.prefix(40)))
        cache[key] = found
        return found
    }

    private static func run(_ path: String) -> String? {
        var out: [Int32] = [-1, -1]
        guard csbx_notify_pipe(&out) == 0 else { return nil }
        let spec = ServiceSpec(name: "node-version", path: path, arguments: ["node", "--version"],
                               environment: AgentService.environment, dependsOn: [], readiness: .started,
                               uid: ServiceCatalog.agentUID, gid: ServiceCatalog.agentGID, workingDirectory: "/")
        var err: Int32 = 0
        let pid = SpawnCall.spawn(spec: spec, extraFDs: [], stdout: out[1], stderr: out[1], err: &err)
        close(out[1])
        defer { close(out[0]) }
        guard pid > 0 else { return nil }
        var bytes: [UInt8] = []
        let deadline = monotonicMs() + Int64(timeoutMs)
        var buf = [UInt8](repeating: 0, count: 256)
        while bytes.count < 4096 {
            let left = deadline - monotonicMs()
            guard left > 0 else { break }
            var p = pollfd(fd: out[0], events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, Int32(left))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { break }
            let n = read(out[0], &buf, buf.count)
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard n > 0 else { break }
            bytes += buf[0..<n]
        }
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = String(decoding: bytes, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
        return text.hasPrefix("v") ? text : nil
    }
}
