import Glibc
import Testing
@testable import Supervisor

/// Check 33 (restart policy) of the sandbox check list, on the real state machine with real
/// processes: a service that keeps failing is restarted after delays that double up to the
/// cap, and the delay starts over once a run has stayed up long enough.
@Suite(.serialized) struct RestartPolicyTests {
    /// A service that exits at once with status 3, started by the real spawn path.
    static func failing() -> ServiceSupervisor {
        ServiceSupervisor(specs: [ServiceSpec(
            name: "crasher", path: "/bin/sh", arguments: ["sh", "-c", "exit 3"], environment: [],
            dependsOn: [], readiness: .tcp(port: 1), uid: getuid(), gid: getgid(), workingDirectory: "/")])
    }

    /// Starts the service at `now`, reaps its real exit and reports it; returns the delay
    /// before the next start.
    static func crashOnce(_ supervisor: ServiceSupervisor, at now: Int64) throws -> Int64 {
        _ = supervisor.advance(now: now)
        let pid = try #require(supervisor.statuses.first?.pid, "the service was not started at \(now)")
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        supervisor.childExited(pid: pid, status: status, now: now)
        let s = try #require(supervisor.statuses.first)
        #expect(s.state == "backoff" && s.lastExit == "exit 3", "\(s)")
        return supervisor.services[0].nextStartAt - now
    }

    @Test func failuresBackOffDoublingUpToTheCap() throws {
        Confinement.enabled = false   // the add-on seccomp filter is tested in the conformance suite
        let supervisor = Self.failing()
        var now: Int64 = 1_000_000
        var delays: [Int64] = []
        for _ in 0..<8 {
            let delay = try Self.crashOnce(supervisor, at: now)
            delays.append(delay)
            // Not restarted before its time.
            _ = supervisor.advance(now: now + delay - 1)
            #expect(supervisor.statuses[0].state == "backoff")
            now += delay
        }
        #expect(delays == [250, 500, 1000, 2000, 4000, 8000, 8000, 8000])
        #expect(supervisor.statuses[0].restarts == 8)
    }

    @Test func aRunThatStayedUpResetsTheDelay() throws {
        Confinement.enabled = false
        let supervisor = Self.failing()
        var now: Int64 = 1_000_000
        for _ in 0..<4 { now += try Self.crashOnce(supervisor, at: now) }   // delay now 4000
        // The next run becomes ready and stays up for the stable period before it fails.
        _ = supervisor.advance(now: now)
        let service = supervisor.services[0]
        let pid = service.pid
        #expect(pid > 0)
        service.state = .running
        service.readyAt = now
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        now += RestartPolicy.stableAfterMs
        supervisor.childExited(pid: pid, status: status, now: now)
        #expect(service.nextStartAt - now == RestartPolicy.initialBackoffMs)
    }
}
