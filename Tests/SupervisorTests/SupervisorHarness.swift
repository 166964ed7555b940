import CSandbox
import Glibc
import Sandbox
@testable import Supervisor

/// Runs the supervisor's state machine with real processes the way the init's loop does, for
/// a bounded time: advance, poll the supervisor's descriptors, reap, repeat.
///
/// The test process is not PID 1, so it makes itself a child subreaper (orphans of the
/// services come to it, as they come to the init inside an instance) and reaps by process
/// group (each service leads its own) rather than with waitpid(-1), which would steal the
/// children of other tests running in the same process.
final class SupervisorHarness {
    final class Events { var all: [ServiceEvent] = [] }

    let supervisor: ServiceSupervisor
    let events = Events()
    private var groups: Set<pid_t> = []

    init(_ specs: [ServiceSpec], logDirectory: String? = nil, logBudget: Int = 64 << 20, memoryEvents: String? = nil) {
        Confinement.enabled = false   // the add-on seccomp filter is tested in the conformance suite
        _ = csbx_set_child_subreaper()
        let box = events
        supervisor = ServiceSupervisor(specs: specs, logDirectory: logDirectory, logBudget: logBudget,
                                       memoryEventsPath: memoryEvents, onEvent: { box.all.append($0) })
    }

    func service(_ name: String) -> SupervisedService { supervisor.service(named: name)! }

    /// Events of one service, as "state" strings in order.
    func states(_ name: String) -> [String] {
        events.all.filter { $0.service == name }.map(\.state.rawValue)
    }

    /// Runs the loop until `done` holds or `ms` pass; returns whether `done` held.
    @discardableResult
    func run(ms: Int64, until done: () -> Bool = { false }) -> Bool {
        let end = monotonicMs() + ms
        while true {
            let now = monotonicMs()
            let due = supervisor.advance(now: now)
            for s in supervisor.services where s.pid > 0 { groups.insert(s.pid) }
            if done() { return true }
            if now >= end { return false }
            var fds = supervisor.pollFDs.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let timeout = Int32(max(0, min(due - now, 10, end - now)))
            if poll(&fds, nfds_t(fds.count), timeout) > 0 {
                let after = monotonicMs()
                for p in fds where p.revents != 0 { supervisor.readable(p.fd, now: after) }
            }
            reap()
        }
    }

    func reap() {
        let now = monotonicMs()
        for group in groups {
            var status: Int32 = 0
            while case let pid = waitpid(-group, &status, WNOHANG), pid > 0 {
                supervisor.childExited(pid: pid, status: status, now: now)
            }
        }
    }

    /// Stops everything (as the init does on SIGTERM) and waits for it.
    @discardableResult
    func shutdown(ms: Int64 = 10_000) -> Bool {
        supervisor.beginShutdown(now: monotonicMs())
        return run(ms: ms) { self.supervisor.allStopped }
    }

    static func shell(_ name: String, _ script: String, dependsOn: [String] = [], readiness: Readiness = .started,
                      readinessTimeoutMs: Int64 = 30_000, restart: RestartMode = .always,
                      backoff: Backoff = Backoff(initialMs: 20, maxMs: 160, jitterPercent: 10, stableAfterMs: 10_000),
                      startLimit: StartLimit = StartLimit(burst: 100, intervalMs: 60_000),
                      stopTimeoutMs: Int64 = 2000, logs: LogLimits = LogLimits()) -> ServiceSpec {
        ServiceSpec(name: name, path: "/bin/sh", arguments: ["sh", "-c", script], environment: ["PATH=/usr/bin:/bin"],
                    dependsOn: dependsOn, readiness: readiness, readinessTimeoutMs: readinessTimeoutMs,
                    restart: restart, backoff: backoff, startLimit: startLimit, stopTimeoutMs: stopTimeoutMs, logs: logs,
                    uid: getuid(), gid: getgid(), workingDirectory: "/")
    }

    static func tempDir() -> String {
        var template = Array("/tmp/claworc-supervisor-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    static func removeTree(_ path: String) { FileSystem.removeTree(path) }

    static func alive(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 }

    static func fileSize(_ path: String) -> Int? {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : nil
    }

    static func read(_ path: String) -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while case let n = Glibc.read(fd, &buf, buf.count), n > 0 { out += buf[0..<n] }
        return String(decoding: out, as: UTF8.self)
    }

    static func write(_ path: String, _ text: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        close(fd)
    }
}
