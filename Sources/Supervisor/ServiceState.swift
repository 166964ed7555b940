import CSandbox
import Glibc
import Sandbox

/// Timings of the supervisor itself (each service's own are in its ServiceSpec).
enum SupervisorTiming {
    /// Between readiness probes (a loopback connect: a refused one costs the service nothing,
    /// and whoever waits for readiness waits up to this much longer than needed).
    static let probeIntervalMs: Int64 = 20
    /// After SIGKILL, how often it is repeated until the process is reaped.
    static let killRepeatMs: Int64 = 1000
    /// An HTTP probe with no complete status line after this long is dropped and retried.
    static let httpProbeTimeoutMs: Int64 = 2000
}

/// A service's state. `waiting`: for its dependencies or its first start; `starting`: runs,
/// not yet ready; `ready`; `stopping`: signalled, waiting for the exit; `backoff`: exited,
/// restarts at a set time; `failed`: gave up (missing binary, start limit, or an exit with
/// restart `never`) until restarted explicitly; `stopped`: exited cleanly and not to be
/// restarted, or the instance is stopping.
public enum ServiceState: String, Sendable {
    case waiting, starting, ready, stopping, backoff, failed, stopped
}

/// One state change of one service, emitted by the supervisor through its `onEvent` sink.
/// Small and flat so it can go to the daemon as is.
public struct ServiceEvent: Sendable, Equatable {
    public var service: String
    public var state: ServiceState
    /// The service's process (inside the instance) while it has one.
    public var pid: Int32?
    /// Automatic restarts so far.
    public var restarts: Int
    /// How the last process ended: "exit N" or "signal N".
    public var lastExit: String?
    /// OOM kills attributed to the service (see ServiceSupervisor.memoryEventsPath).
    public var oomKills: Int
    /// Why it is in this state, in words ("waiting for xvfb", "start limit: …").
    public var reason: String?
    /// Wall clock, Unix milliseconds.
    public var atMs: Int64

    /// The line the init writes for it to its own log (`instance.log` on the host); the
    /// conformance checks read these.
    public var logLine: String {
        let p = pid.map { " (pid \($0))" } ?? ""
        switch state {
        case .starting: return "\(service) started\(p)"
        case .ready: return "\(service) ready\(p)"
        case .stopping: return "stopping \(service): \(reason ?? "")"
        case .stopped where reason == ServiceSupervisor.instanceStopping:
            return "\(service) stopped" + (lastExit.map { " (\($0))" } ?? "")
        default: return "\(service) \(state.rawValue)\(p)" + (reason.map { ": \($0)" } ?? "")
        }
    }
}

final class SupervisedService {
    enum StopIntent { case none, dependency, restart, shutdown }

    let spec: ServiceSpec
    let log: ServiceLog
    var state: ServiceState = .waiting
    var pid: pid_t = 0
    var restarts = 0
    var lastExit: String?
    var error: String?
    var reason: String?
    var oomKills = 0
    var notifyFD: Int32 = -1
    var outFD: Int32 = -1
    var errFD: Int32 = -1
    /// The write end of an `openStdin` service's stdin, held while it runs.
    var stdinFD: Int32 = -1
    /// An HTTP readiness probe in flight, what it has read and when it is given up.
    var probeFD: Int32 = -1
    var probeBytes: [UInt8] = []
    var probeDeadline: Int64 = 0
    var backoffStep = 0
    var nextStartAt: Int64 = 0
    var startedAt: Int64 = 0
    var startedWallMs: Int64?
    var readyAt: Int64 = 0
    var nextProbeAt: Int64 = 0
    var stopDeadline: Int64 = 0
    var stopIntent = StopIntent.none
    /// Why the supervisor killed a start that was not ready in time (for its exit's reason).
    var timeoutWhy: String?
    /// Monotonic times of failed starts within the start limit's interval.
    var failedStarts: [Int64] = []

    init(spec: ServiceSpec, log: ServiceLog) {
        self.spec = spec
        self.log = log
    }

    deinit {
        for fd in [notifyFD, outFD, errFD, stdinFD, probeFD] where fd >= 0 { close(fd) }
    }

    var status: ServiceStatus {
        ServiceStatus(name: spec.name, state: state.rawValue, pid: pid > 0 ? pid : nil,
                      restarts: restarts, lastExit: lastExit, error: error,
                      reason: reason, oomKills: oomKills, startedAt: pid > 0 ? startedWallMs : nil)
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
