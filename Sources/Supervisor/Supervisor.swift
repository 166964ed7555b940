import CSandbox
import Glibc
import Sandbox

/// The services of one instance and their state machine. Single-threaded: the init's poll
/// loop calls in here; nothing else touches it. The loop polls `pollFDs` (readiness pipes and
/// log pipes) and hands readable ones to `readable`, reaps children and reports each through
/// `childExited`, and calls `advance` when it returns (or earlier).
final class ServiceSupervisor {
    private(set) var services: [SupervisedService]
    private(set) var shuttingDown = false
    var onEvent: (ServiceEvent) -> Void
    /// The instance's cgroup `memory.events`: an `oom_kill` increase seen when a service
    /// dies of SIGKILL is counted against that service.
    let memoryEventsPath: String?
    var oomKillsSeen = 0
    private var random: UInt64
    static let instanceStopping = "instance stopping"

    /// `logDirectory`: where log files go (nil: in-memory tails only). The services' file
    /// limits are scaled down together if their sum exceeds `logBudget`.
    init(specs: [ServiceSpec], logDirectory: String? = nil, logBudget: Int = ServiceCatalog.instanceLogBudget,
         memoryEventsPath: String? = nil, onEvent: @escaping (ServiceEvent) -> Void = { _ in }) {
        let wanted = specs.reduce(0) { $0 + $1.logs.maxDiskBytes }
        services = specs.map { spec in
            var limits = spec.logs
            if wanted > logBudget { limits.fileBytes = max(8192, Int(Int64(limits.fileBytes) * Int64(logBudget) / Int64(wanted))) }
            return SupervisedService(spec: spec, log: ServiceLog(name: spec.name, limits: limits, directory: logDirectory))
        }
        self.memoryEventsPath = memoryEventsPath
        self.onEvent = onEvent
        random = UInt64(bitPattern: monotonicMs()) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(getpid())
        if random == 0 { random = 1 }
        oomKillsSeen = readOOMKills() ?? 0
        for s in services {
            if let missing = s.spec.dependsOn.first(where: { name in !specs.contains { $0.name == name } }) {
                s.state = .failed
                s.reason = "unknown dependency \(missing)"
                s.error = s.reason
            }
        }
    }

    var statuses: [ServiceStatus] { services.map(\.status) }
    var allStopped: Bool { services.allSatisfy { $0.pid == 0 } }

    func service(named name: String) -> SupervisedService? {
        services.first { $0.spec.name == name }
    }

    /// The first dependency that is not ready, if any.
    private func blocker(_ s: SupervisedService) -> SupervisedService? {
        for name in s.spec.dependsOn {
            guard let d = service(named: name) else { continue }
            if d.state != .ready { return d }
        }
        return nil
    }

    private func emit(_ s: SupervisedService) {
        let event = ServiceEvent(service: s.spec.name, state: s.state, pid: s.pid > 0 ? s.pid : nil,
                                 restarts: s.restarts, lastExit: s.lastExit, oomKills: s.oomKills,
                                 reason: s.reason, atMs: Timestamp.wallMs())
        s.log.note("\(s.state.rawValue)\(s.pid > 0 ? " (pid \(s.pid))" : "")\(s.reason.map { ": \($0)" } ?? "")", now: 0)
        onEvent(event)
    }

    func set(_ s: SupervisedService, _ state: ServiceState, reason: String?) {
        guard s.state != state || s.reason != reason else { return }
        s.state = state
        s.reason = reason
        emit(s)
    }

    // ---- descriptors --------------------------------------------------------------------

    /// Descriptors the loop polls for reading: readiness pipes of starting services and every
    /// open log pipe.
    var pollFDs: [Int32] {
        var fds: [Int32] = []
        for s in services {
            if s.notifyFD >= 0 && s.state == .starting { fds.append(s.notifyFD) }
            if s.probeFD >= 0 { fds.append(s.probeFD) }
            if s.outFD >= 0 { fds.append(s.outFD) }
            if s.errFD >= 0 { fds.append(s.errFD) }
        }
        return fds
    }

    func readable(_ fd: Int32, now: Int64) {
        for s in services {
            if fd == s.outFD {
                if !s.log.drain(fd: fd, stream: 0, now: now) { close(fd); s.outFD = -1 }
                return
            }
            if fd == s.errFD {
                if !s.log.drain(fd: fd, stream: 1, now: now) { close(fd); s.errFD = -1 }
                return
            }
            if fd == s.probeFD {
                probeReadable(s, now: now)
                return
            }
            if fd == s.notifyFD {
                var buf = [UInt8](repeating: 0, count: 64)
                let n = read(fd, &buf, buf.count)
                if n < 0 && (errno == EINTR || errno == EAGAIN) { return }
                if n > 0 {
                    // Keep our end open until the service exits: it may write its notification
                    // in several pieces, and a closed pipe would kill it with EPIPE (Xvfb treats
                    // a failed -displayfd write as fatal).
                    if s.state == .starting { markReady(s, now: now) }
                } else {
                    close(fd)
                    s.notifyFD = -1
                }
                return
            }
        }
    }

    /// The in-memory tail of a service's log.
    func logTail(of name: String) -> String? { service(named: name)?.log.tailText }

    func markReady(_ s: SupervisedService, now: Int64) {
        if s.probeFD >= 0 { endProbe(s, now: now) }
        s.readyAt = now
        s.error = nil
        set(s, .ready, reason: nil)
    }

    // ---- the state machine --------------------------------------------------------------

    /// Advances every service's state machine; returns the next time it needs a call.
    func advance(now: Int64) -> Int64 {
        var next = now + 1000
        for s in services {
            switch s.state {
            case .waiting, .backoff:
                if shuttingDown { set(s, .stopped, reason: "instance stopping (not running)"); continue }
                if let d = blocker(s) {
                    set(s, .waiting, reason: "waiting for \(d.spec.name) (\(d.state.rawValue))")
                } else if now >= s.nextStartAt {
                    start(s, now: now)
                } else {
                    next = min(next, s.nextStartAt)
                }
            case .starting:
                if !shuttingDown, let d = blocker(s) {
                    stop(s, now: now, intent: .dependency, reason: "\(d.spec.name) is \(d.state.rawValue)")
                } else if now - s.startedAt >= s.spec.readinessTimeoutMs {
                    s.timeoutWhy = "not ready after \(s.spec.readinessTimeoutMs) ms"
                    s.error = s.timeoutWhy
                    set(s, .stopping, reason: s.timeoutWhy)
                    s.stopIntent = .none   // its exit is a failed start
                    kill(-s.pid, SIGKILL)
                    kill(s.pid, SIGKILL)
                    s.stopDeadline = now + SupervisorTiming.killRepeatMs
                } else {
                    if case .tcp(let port) = s.spec.readiness, now >= s.nextProbeAt {
                        if Probe.tcpAccepts(port: port) { markReady(s, now: now) } else {
                            s.nextProbeAt = now + SupervisorTiming.probeIntervalMs
                        }
                    }
                    if case .http(let port, let path) = s.spec.readiness { probeHTTP(s, port: port, path: path, now: now) }
                    if s.state == .starting {
                        next = min(next, s.startedAt + s.spec.readinessTimeoutMs)
                        switch s.spec.readiness {
                        case .tcp: next = min(next, s.nextProbeAt)
                        case .http: next = min(next, s.probeFD >= 0 ? s.probeDeadline : s.nextProbeAt)
                        default: break
                        }
                    }
                }
            case .ready:
                if !shuttingDown, let d = blocker(s) {
                    stop(s, now: now, intent: .dependency, reason: "\(d.spec.name) is \(d.state.rawValue)")
                }
            case .stopping:
                if now >= s.stopDeadline && s.pid > 0 {
                    let sig = s.spec.stopSignal == SIGTERM ? "SIGTERM" : "signal \(s.spec.stopSignal)"
                    log("\(s.spec.name) ignored \(sig); sending SIGKILL")
                    s.log.note("ignored \(sig) for \(s.spec.stopTimeoutMs) ms; SIGKILL", now: now)
                    kill(-s.pid, SIGKILL)
                    kill(s.pid, SIGKILL)
                    s.stopDeadline = now + SupervisorTiming.killRepeatMs
                }
                next = min(next, s.stopDeadline)
            case .failed, .stopped:
                break
            }
        }
        if shuttingDown {
            // Reverse dependency order: a service is signalled once none of its dependents runs.
            for s in services.reversed() where s.pid > 0 && s.state != .stopping {
                let dependentRuns = services.contains { $0.pid > 0 && $0.spec.dependsOn.contains(s.spec.name) }
                if !dependentRuns {
                    stop(s, now: now, intent: .shutdown, reason: Self.instanceStopping)
                    next = min(next, s.stopDeadline)
                }
            }
        }
        return next
    }

    private func start(_ s: SupervisedService, now: Int64) {
        if let missing = s.spec.preflight?() {
            s.error = missing
            set(s, .failed, reason: missing)
            return
        }
        if access(s.spec.path, X_OK) != 0 {
            let why = FileSystem.errorText(errno)
            s.error = "cannot execute \(s.spec.path): \(why)"
            set(s, .failed, reason: s.error)
            return
        }
        for file in s.spec.staleFiles { unlink(file) }
        closePipes(s)
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
        var input: [Int32] = [-1, -1]
        if s.spec.openStdin {
            // Blocking at both ends (a service reads its stdin as it expects); close-on-exec so
            // no other child inherits the write end.
            if pipe(&input) == 0 { for fd in input { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) } } else { input = [-1, -1] }
        }
        var out: [Int32] = [-1, -1]
        var err: [Int32] = [-1, -1]
        if csbx_notify_pipe(&out) != 0 { out = [-1, -1] }
        if csbx_notify_pipe(&err) != 0 { err = [-1, -1] }
        var spawnError: Int32 = 0
        let pid = SpawnCall.spawn(spec: s.spec, extraFDs: extra, stdin: input[0], stdout: out[1] >= 0 ? out[1] : 1,
                                  stderr: err[1] >= 0 ? err[1] : 2, err: &spawnError)
        for fd in [notifyWrite, out[1], err[1], input[0]] where fd >= 0 { close(fd) }
        s.outFD = out[0]
        s.errFD = err[0]
        s.stdinFD = input[1]
        guard pid > 0 else {
            closePipes(s)
            let text = SpawnCall.describe(spawnError)
            s.error = "cannot start \(s.spec.path): \(text)"
            let errnoPart = spawnError & 0xffff
            if errnoPart == ENOENT || errnoPart == EACCES || errnoPart == ENOEXEC {
                set(s, .failed, reason: s.error)   // it will not get better by itself
            } else {
                failedStart(s, now: now, why: s.error!)
            }
            return
        }
        s.pid = pid
        s.startedAt = now
        s.startedWallMs = Timestamp.wallMs()
        s.readyAt = 0
        s.nextProbeAt = now + SupervisorTiming.probeIntervalMs
        s.stopIntent = .none
        set(s, .starting, reason: nil)
        if s.spec.readiness == .started { markReady(s, now: now) }
    }

    private func closePipes(_ s: SupervisedService) {
        if s.notifyFD >= 0 { close(s.notifyFD); s.notifyFD = -1 }
        if s.stdinFD >= 0 { close(s.stdinFD); s.stdinFD = -1 }
        if s.probeFD >= 0 { close(s.probeFD); s.probeFD = -1; s.probeBytes = [] }
        if s.outFD >= 0 { _ = s.log.drain(fd: s.outFD, stream: 0, now: monotonicMs()); close(s.outFD); s.outFD = -1 }
        if s.errFD >= 0 { _ = s.log.drain(fd: s.errFD, stream: 1, now: monotonicMs()); close(s.errFD); s.errFD = -1 }
    }

    /// A start that did not reach readiness: backoff, or `failed` at the start limit.
    func failedStart(_ s: SupervisedService, now: Int64, why: String) {
        let limit = s.spec.startLimit
        s.failedStarts.append(now)
        s.failedStarts.removeAll { now - $0 >= limit.intervalMs }
        if s.failedStarts.count >= limit.burst {
            s.error = "start limit: \(s.failedStarts.count) failed starts within \(limit.intervalMs / 1000) s (last: \(why))"
            set(s, .failed, reason: s.error)
            return
        }
        scheduleRestart(s, now: now, why: why)
    }

    func scheduleRestart(_ s: SupervisedService, now: Int64, why: String) {
        let delay = jittered(s.spec.backoff.baseDelay(step: s.backoffStep), s.spec.backoff.jitterPercent)
        s.backoffStep += 1
        s.restarts += 1
        s.nextStartAt = now + delay
        set(s, .backoff, reason: "\(why); restarting in \(delay) ms")
    }

    private func jittered(_ base: Int64, _ percent: Int64) -> Int64 {
        let span = base * percent / 100
        guard span > 0 else { return base }
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        return base - span + Int64(random % UInt64(2 * span + 1))
    }

    private func stop(_ s: SupervisedService, now: Int64, intent: SupervisedService.StopIntent, reason: String) {
        guard s.pid > 0 else {
            set(s, intent == .shutdown ? .stopped : .waiting, reason: reason)
            return
        }
        s.stopIntent = intent
        s.stopDeadline = now + s.spec.stopTimeoutMs
        set(s, .stopping, reason: reason)
        kill(-s.pid, s.spec.stopSignal)
        kill(s.pid, s.spec.stopSignal)
    }

    /// Starts a service again whatever its state (the way out of `failed`): its start-limit
    /// history and backoff are cleared; a running service is stopped first. Returns an error
    /// text, or nil.
    @discardableResult
    func restart(service name: String, now: Int64) -> String? {
        guard let s = service(named: name) else { return "no service \(name)" }
        guard !shuttingDown else { return "the instance is stopping" }
        s.failedStarts = []
        s.backoffStep = 0
        s.error = nil
        if s.pid > 0 {
            stop(s, now: now, intent: .restart, reason: "restart requested")
        } else {
            s.nextStartAt = now
            s.state = .stopped   // forces the event below even if it was waiting
            set(s, .waiting, reason: "restart requested")
        }
        return nil
    }

    func beginShutdown(now: Int64) {
        guard !shuttingDown else { return }
        shuttingDown = true
        log("shutting down")
        for s in services where s.pid == 0 { set(s, .stopped, reason: "instance stopping (not running)") }
        _ = advance(now: now)
    }

    /// Flushes partial log lines and closes the log files (the init is about to exit).
    func closeLogs() {
        for s in services { closePipes(s); s.log.finish() }
    }
}
