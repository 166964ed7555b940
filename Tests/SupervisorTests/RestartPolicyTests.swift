import Glibc
import Testing
@testable import Supervisor

// Nested in ControlChannelTests (serialized, recursively) so these never run alongside it:
// its checks count the whole test process's descriptors and CPU time, which real services
// and their pipes here would disturb.
extension ControlChannelTests {
    /// Check 33 (restart policy) of the sandbox check list, on the real state machine with real
    /// processes: each restart mode; a service that keeps failing is restarted after delays that
    /// double up to the cap, each within its jitter; the delay starts over once a run has stayed
    /// ready long enough; repeated failed starts hit the start limit and leave the service
    /// `failed` until it is restarted explicitly.
    @Suite(.serialized) struct RestartPolicyTests {
        static let backoff = Backoff(initialMs: 250, maxMs: 8000, jitterPercent: 10, stableAfterMs: 10_000)

        /// A service that is ready at once and exits with status 3, started by the real spawn path.
        static func crasher() -> ServiceSupervisor {
            Confinement.enabled = false
            return ServiceSupervisor(specs: [SupervisorHarness.shell("crasher", "exit 3", backoff: backoff)])
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

        @Test func failuresBackOffDoublingUpToTheCapWithinTheJitter() throws {
            let supervisor = Self.crasher()
            var now: Int64 = 1_000_000
            var delays: [Int64] = []
            for _ in 0..<10 {
                let delay = try Self.crashOnce(supervisor, at: now)
                delays.append(delay)
                // Not restarted before its time.
                _ = supervisor.advance(now: now + delay - 1)
                #expect(supervisor.statuses[0].state == "backoff")
                now += delay
            }
            let bases: [Int64] = [250, 500, 1000, 2000, 4000, 8000, 8000, 8000, 8000, 8000]
            for (delay, base) in zip(delays, bases) {
                #expect(delay >= base * 9 / 10 && delay <= base * 11 / 10, "delay \(delay) for base \(base): \(delays)")
            }
            // Jitter spreads restarts: the capped delays are not all the same.
            #expect(Set(delays.suffix(5)).count > 1, "\(delays)")
            #expect(supervisor.statuses[0].restarts == 10)
        }

        @Test func aRunThatStayedReadyResetsTheDelay() throws {
            let supervisor = Self.crasher()
            var now: Int64 = 1_000_000
            for _ in 0..<4 { now += try Self.crashOnce(supervisor, at: now) }   // next base: 4000
            // The next run is ready and stays up for the stable period before it fails.
            _ = supervisor.advance(now: now)
            let service = supervisor.services[0]
            let pid = service.pid
            #expect(pid > 0 && service.state == .ready)
            var status: Int32 = 0
            #expect(waitpid(pid, &status, 0) == pid)
            now += Self.backoff.stableAfterMs
            supervisor.childExited(pid: pid, status: status, now: now)
            let delay = service.nextStartAt - now
            #expect(delay >= 225 && delay <= 275, "\(delay)")
        }

        @Test func neverRestarts() {
            let h = SupervisorHarness([SupervisorHarness.shell("clean", "exit 0", restart: .never),
                                       SupervisorHarness.shell("dirty", "exit 3", restart: .never)])
            #expect(h.run(ms: 5000) { h.service("clean").state == .stopped && h.service("dirty").state == .failed })
            h.run(ms: 200)
            #expect(h.service("clean").state == .stopped && h.service("clean").restarts == 0)
            #expect(h.service("dirty").state == .failed && h.service("dirty").restarts == 0)
            #expect(h.service("dirty").lastExit == "exit 3")
            #expect(h.states("clean") == ["starting", "ready", "stopped"])
        }

        @Test func onFailureRestartsOnlyFailures() {
            let h = SupervisorHarness([SupervisorHarness.shell("clean", "exit 0", restart: .onFailure),
                                       SupervisorHarness.shell("dirty", "exit 3", restart: .onFailure),
                                       SupervisorHarness.shell("killed", "kill -9 $$", restart: .onFailure)])
            #expect(h.run(ms: 5000) { h.service("dirty").restarts >= 2 && h.service("killed").restarts >= 2 })
            #expect(h.service("clean").state == .stopped && h.service("clean").restarts == 0)
            #expect(h.service("killed").lastExit == "signal 9")
            h.shutdown()
        }

        @Test func alwaysRestartsEvenCleanExits() {
            let h = SupervisorHarness([SupervisorHarness.shell("clean", "exit 0", restart: .always)])
            #expect(h.run(ms: 5000) { h.service("clean").restarts >= 3 })
            #expect(h.service("clean").lastExit == "exit 0")
            h.shutdown()
        }

        /// Exits before readiness are failed starts: at the limit the service is `failed` and
        /// stays so; an explicit restart clears the history and starts it again.
        @Test func startLimitFailsTheServiceUntilRestarted() {
            let dir = SupervisorHarness.tempDir()
            defer { SupervisorHarness.removeTree(dir) }
            let flag = dir + "/healthy"
            let script = "if [ -e \(flag) ]; then echo ready >&3; exec sleep 30; fi; exit 3"
            let h = SupervisorHarness([SupervisorHarness.shell("flaky", script, readiness: .notifyFD,
                                                               startLimit: StartLimit(burst: 3, intervalMs: 10_000))])
            #expect(h.run(ms: 5000) { h.service("flaky").state == .failed })
            let s = h.service("flaky")
            #expect(s.restarts == 2, "two restarts, then the third failed start hits the limit")
            #expect(s.reason?.contains("start limit: 3 failed starts") == true, "\(s.reason ?? "")")
            #expect(s.status.error?.contains("start limit") == true)
            // It stays failed.
            h.run(ms: 500)
            #expect(s.state == .failed && s.restarts == 2)
            SupervisorHarness.write(flag, "")
            #expect(h.supervisor.restart(service: "flaky", now: monotonicMs()) == nil)
            #expect(h.supervisor.restart(service: "nope", now: monotonicMs()) != nil)
            #expect(h.run(ms: 5000) { s.state == .ready })
            #expect(s.status.error == nil)
            // A restart of a running service stops it and starts it again.
            let before = s.pid
            h.supervisor.restart(service: "flaky", now: monotonicMs())
            #expect(h.run(ms: 5000) { s.state == .ready && s.pid != before })
            #expect(h.shutdown())
        }
    }
}
