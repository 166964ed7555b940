import CSandbox
import Glibc
import Sandbox

/// Restart policy: every exit is restarted, after a delay that doubles from 250 ms up to
/// 8 s and resets once the service has stayed ready for 10 s.
struct RestartPolicy {
    static let initialBackoffMs: Int64 = 250
    static let maxBackoffMs: Int64 = 8000
    static let stableAfterMs: Int64 = 10_000
    static let readinessTimeoutMs: Int64 = 30_000
    static let stopTimeoutMs: Int64 = 5000
    static let probeIntervalMs: Int64 = 100
}

enum ServiceState: String {
    case waiting, starting, running, backoff, failed, stopping, stopped
}

final class SupervisedService {
    let spec: ServiceSpec
    var state: ServiceState = .waiting
    var pid: pid_t = 0
    var restarts = 0
    var lastExit: String?
    var error: String?
    var notifyFD: Int32 = -1
    var backoffMs = RestartPolicy.initialBackoffMs
    var nextStartAt: Int64 = 0
    var startedAt: Int64 = 0
    var readyAt: Int64 = 0
    var nextProbeAt: Int64 = 0
    var stopDeadline: Int64 = 0
    /// Set when we stopped it on purpose (a dependency went down); its exit is not a failure.
    var stopRequested = false

    init(spec: ServiceSpec) { self.spec = spec }

    var status: ServiceStatus {
        ServiceStatus(name: spec.name, state: state.rawValue, pid: pid > 0 ? pid : nil,
                      restarts: restarts, lastExit: lastExit, error: error)
    }
}

func monotonicMs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

func log(_ message: String) {
    let line = "claworc-init: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

/// The services of one instance and their state machine. Single-threaded: the init's poll
/// loop calls in here; nothing else touches it.
final class ServiceSupervisor {
    private(set) var services: [SupervisedService]
    private(set) var shuttingDown = false

    init(specs: [ServiceSpec]) {
        services = specs.map(SupervisedService.init)
    }

    var statuses: [ServiceStatus] { services.map(\.status) }
    var allStopped: Bool { services.allSatisfy { $0.pid == 0 } }

    private func service(named name: String) -> SupervisedService? {
        services.first { $0.spec.name == name }
    }

    private func dependenciesReady(_ s: SupervisedService) -> Bool {
        s.spec.dependsOn.allSatisfy { service(named: $0)?.state == .running }
    }

    /// Descriptors to watch for readiness notifications (only while a service is starting).
    var notifyFDs: [Int32] { services.compactMap { $0.notifyFD >= 0 && $0.state == .starting ? $0.notifyFD : nil } }

    func notifyReadable(_ fd: Int32, now: Int64) {
        guard let s = services.first(where: { $0.notifyFD == fd }) else { return }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = read(fd, &buf, buf.count)
        if n < 0 && (errno == EINTR || errno == EAGAIN) { return }
        if n > 0 {
            // Keep our end open until the service exits: it may write its notification in
            // several pieces, and a closed pipe would kill it with EPIPE (Xvfb treats a failed
            // -displayfd write as fatal).
            if s.state == .starting { markReady(s, now: now) }
        } else {
            close(fd)
            s.notifyFD = -1
        }
    }

    private func markReady(_ s: SupervisedService, now: Int64) {
        s.state = .running
        s.readyAt = now
        s.error = nil
        log("\(s.spec.name) ready (pid \(s.pid))")
    }

    /// Advances every service's state machine; returns the next time it needs a call.
    func advance(now: Int64) -> Int64 {
        var next = now + 1000
        for s in services {
            switch s.state {
            case .waiting, .backoff, .failed:
                guard !shuttingDown else { s.state = .stopped; continue }
                if dependenciesReady(s) {
                    if now >= s.nextStartAt { start(s, now: now) } else { next = min(next, s.nextStartAt) }
                }
            case .starting:
                if !dependenciesReady(s) {
                    stop(s, now: now, reason: "dependency went down")
                } else if now - s.startedAt > RestartPolicy.readinessTimeoutMs {
                    s.error = "not ready after \(RestartPolicy.readinessTimeoutMs / 1000) s"
                    kill(-s.pid, SIGKILL)
                } else if case .tcp(let port) = s.spec.readiness, now >= s.nextProbeAt {
                    if Probe.tcpAccepts(port: port) { markReady(s, now: now) } else {
                        s.nextProbeAt = now + RestartPolicy.probeIntervalMs
                    }
                }
                next = min(next, s.state == .starting && s.spec.readiness != .notifyFD
                           ? s.nextProbeAt : now + RestartPolicy.probeIntervalMs)
            case .running:
                if !dependenciesReady(s) { stop(s, now: now, reason: "dependency went down") }
            case .stopping:
                if now >= s.stopDeadline && s.pid > 0 {
                    log("\(s.spec.name) ignored SIGTERM; sending SIGKILL")
                    kill(-s.pid, SIGKILL)
                    kill(s.pid, SIGKILL)
                    s.stopDeadline = now + 1000
                }
                next = min(next, s.stopDeadline)
            case .stopped:
                break
            }
        }
        return next
    }

    private func start(_ s: SupervisedService, now: Int64) {
        for file in s.spec.staleFiles { unlink(file) }
        var extra: [Int32] = []
        var notifyWrite: Int32 = -1
        if s.spec.readiness == .notifyFD {
            var p: [Int32] = [-1, -1]
            if csbx_notify_pipe(&p) == 0 {
                s.notifyFD = p[0]
                notifyWrite = p[1]
                extra.append(p[1])
            }
        }
        var err: Int32 = 0
        let pid = SpawnCall.spawn(spec: s.spec, extraFDs: extra, err: &err)
        if notifyWrite >= 0 { close(notifyWrite) }
        guard pid > 0 else {
            if s.notifyFD >= 0 { close(s.notifyFD); s.notifyFD = -1 }
            s.state = .failed
            s.error = "cannot start \(s.spec.path): \(SpawnCall.describe(err))"
            log(s.error!)
            scheduleRestart(s, now: now)
            return
        }
        s.pid = pid
        s.state = .starting
        s.startedAt = now
        s.nextProbeAt = now + 50
        s.stopRequested = false
        log("\(s.spec.name) started (pid \(pid))")
    }

    private func scheduleRestart(_ s: SupervisedService, now: Int64) {
        s.nextStartAt = now + s.backoffMs
        s.backoffMs = min(s.backoffMs * 2, RestartPolicy.maxBackoffMs)
    }

    private func stop(_ s: SupervisedService, now: Int64, reason: String) {
        guard s.pid > 0 else { s.state = shuttingDown ? .stopped : .waiting; return }
        log("stopping \(s.spec.name): \(reason)")
        s.stopRequested = true
        s.state = .stopping
        s.stopDeadline = now + RestartPolicy.stopTimeoutMs
        kill(-s.pid, SIGTERM)
        kill(s.pid, SIGTERM)
    }

    /// Records the exit of a reaped child; returns false if it was none of ours.
    func childExited(pid: pid_t, status: Int32, now: Int64) {
        guard let s = services.first(where: { $0.pid == pid }) else { return }
        let description = status & 0x7f == 0 ? "exit \((status >> 8) & 0xff)" : "signal \(status & 0x7f)"
        s.lastExit = description
        s.pid = 0
        if s.notifyFD >= 0 { close(s.notifyFD); s.notifyFD = -1 }
        // The process group may still hold helpers (Chromium's zygote); take them down too.
        kill(-pid, SIGKILL)
        if shuttingDown {
            s.state = .stopped
            log("\(s.spec.name) stopped (\(description))")
            return
        }
        if s.stopRequested {
            s.state = .waiting
            s.nextStartAt = now
            log("\(s.spec.name) stopped (\(description)); waiting for its dependencies")
            return
        }
        if s.state == .running && now - s.readyAt >= RestartPolicy.stableAfterMs {
            s.backoffMs = RestartPolicy.initialBackoffMs
        }
        s.restarts += 1
        s.state = .backoff
        scheduleRestart(s, now: now)
        log("\(s.spec.name) exited (\(description)); restarting in \(s.nextStartAt - now) ms")
    }

    func beginShutdown(now: Int64) {
        guard !shuttingDown else { return }
        shuttingDown = true
        log("shutting down")
        for s in services.reversed() { stop(s, now: now, reason: "instance stopping") }
    }
}

enum Probe {
    static func tcpAccepts(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return connectLoopback(fd: fd, port: port)
    }

    static func connectLoopback(fd: Int32, port: UInt16) -> Bool {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return rc == 0
    }
}

/// The add-on filter stacked on every process the init starts that may not create
/// namespaces; built once, in the single-threaded init, before anything is spawned.
enum Confinement {
    nonisolated(unsafe) static var enabled = true
    nonisolated(unsafe) private static var built: [UInt8]?

    /// Compiled on first use, so an instance acknowledges its launch before paying for it.
    static var noNamespaces: [UInt8] {
        guard enabled else { return [] }
        if let built { return built }
        do { built = try SeccompProfile.noNamespaces.build() } catch {
            // Starting a service less confined than promised is not an option.
            log("cannot build the add-on seccomp filter: \(error)")
            exit(1)
        }
        return built ?? []
    }
}

enum SpawnCall {
    static func describe(_ err: Int32) -> String {
        let step = err >> 16
        let text = FileSystem.errorText(err & 0xffff)
        return step == 0 ? text : "\(String(cString: csbx_spawn_step_name(err))): \(text)"
    }

    static func spawn(spec: ServiceSpec, extraFDs: [Int32], stdout: Int32 = 1, stderr: Int32 = 2,
                      err: inout Int32) -> pid_t {
        var keep: [UnsafeMutablePointer<CChar>] = []
        defer { keep.forEach { free($0) } }
        func cArray(_ items: [String]) -> [UnsafeMutablePointer<CChar>?] {
            var arr: [UnsafeMutablePointer<CChar>?] = items.map { let p = strdup($0)!; keep.append(p); return p }
            arr.append(nil)
            return arr
        }
        let argv = cArray(spec.arguments)
        let envp = cArray(spec.environment)
        let filter = spec.mayCreateNamespaces ? [] : Confinement.noNamespaces
        return filter.withUnsafeBytes { filterBytes in spec.path.withCString { path in
            spec.workingDirectory.withCString { cwd in
                argv.withUnsafeBufferPointer { a in
                    envp.withUnsafeBufferPointer { e in
                        extraFDs.withUnsafeBufferPointer { x in
                            var s = csbx_spawn_spec()
                            s.path = path
                            s.argv = a.baseAddress
                            s.envp = e.baseAddress
                            s.cwd = cwd
                            s.uid = spec.uid
                            s.gid = spec.gid
                            s.stdin_fd = -1
                            s.stdout_fd = stdout
                            s.stderr_fd = stderr
                            s.extra_fds = x.baseAddress
                            s.n_extra = Int32(x.count)
                            s.drop_all_caps = spec.uid == 0 ? 0 : 1
                            s.seccomp_filter = filterBytes.baseAddress
                            s.seccomp_len = filterBytes.count
                            return csbx_spawn(&s, &err)
                        }
                    }
                }
            }
        } }
    }
}
