import Glibc
import Testing
@testable import Supervisor

// Nested in ControlChannelTests (serialized, recursively) so these never run alongside it:
// its checks count the whole test process's descriptors and CPU time, which real services
// and their pipes here would disturb.
extension ControlChannelTests {
    /// The supervisor with real processes (check 32 stop order, 34 readiness, and the rest of its
    /// state machine): dependencies and readiness, timeouts, missing binaries, stop, reaping,
    /// logs under pressure and OOM attribution.
    @Suite(.serialized) struct ServiceSupervisorTests {
        /// A dependent never starts before its dependency is ready.
        @Test func dependentsStartOnlyOnceTheirDependenciesAreReady() throws {
            let h = SupervisorHarness([
                SupervisorHarness.shell("top", "exec sleep 30", dependsOn: ["middle"]),
                SupervisorHarness.shell("middle", "sleep 0.3; echo ready >&3; exec sleep 30", dependsOn: ["base"], readiness: .notifyFD),
                SupervisorHarness.shell("base", "sleep 0.3; echo ready >&3; exec sleep 30", readiness: .notifyFD),
            ])
            #expect(h.run(ms: 10_000) { h.supervisor.services.allSatisfy { $0.state == .ready } })
            func index(_ name: String, _ state: ServiceState) throws -> Int {
                try #require(h.events.all.firstIndex { $0.service == name && $0.state == state }, "\(name) never \(state)")
            }
            #expect(try index("middle", .starting) > index("base", .ready))
            #expect(try index("top", .starting) > index("middle", .ready))
            #expect(h.service("top").status.reason == nil)
            #expect(h.shutdown())
        }

        /// A start that is not ready in time is killed and counts as a failed start.
        @Test func readinessTimeoutIsAFailedStart() {
            let h = SupervisorHarness([SupervisorHarness.shell("slow", "exec sleep 30", readiness: .tcp(port: 1), readinessTimeoutMs: 200,
                                                               startLimit: StartLimit(burst: 2, intervalMs: 10_000))])
            #expect(h.run(ms: 5000) { h.service("slow").state == .failed })
            let s = h.service("slow")
            #expect(s.restarts == 1 && s.lastExit == "signal 9")
            #expect(s.reason?.contains("not ready after 200 ms") == true, "\(s.reason ?? "")")
            #expect(h.states("slow").filter { $0 == "starting" }.count == 2)
        }

        /// A missing binary fails at once, with the reason, and is not retried.
        @Test func missingBinaryFailsAtOnce() {
            var spec = SupervisorHarness.shell("ghost", "")
            spec.path = "/nonexistent/claworc-ghost"
            let h = SupervisorHarness([spec, SupervisorHarness.shell("after", "exec sleep 30", dependsOn: ["ghost"])])
            _ = h.supervisor.advance(now: monotonicMs())
            let s = h.service("ghost")
            #expect(s.state == .failed && s.pid == 0 && s.restarts == 0)
            #expect(s.reason == "cannot execute /nonexistent/claworc-ghost: No such file or directory", "\(s.reason ?? "")")
            h.run(ms: 300)
            #expect(h.states("ghost") == ["failed"])
            #expect(h.service("after").state == .waiting && h.service("after").reason == "waiting for ghost (failed)")
        }

        /// Stop goes in reverse dependency order, each service's stop signal to its group, and
        /// SIGKILL after its timeout for one that ignores it.
        @Test func stopInReverseOrderAndKillAfterTheTimeout() {
            let h = SupervisorHarness([
                SupervisorHarness.shell("base", "exec sleep 30"),
                SupervisorHarness.shell("middle", "exec sleep 30", dependsOn: ["base"]),
                SupervisorHarness.shell("stubborn", "trap '' TERM; echo ready >&3; exec sleep 30", dependsOn: ["middle"],
                                        readiness: .notifyFD, stopTimeoutMs: 400),
            ])
            #expect(h.run(ms: 5000) { h.supervisor.services.allSatisfy { $0.state == .ready } })
            let start = monotonicMs()
            h.events.all = []
            #expect(h.shutdown())
            let took = monotonicMs() - start
            let order = h.events.all.map { "\($0.service) \($0.state.rawValue)" }
            #expect(order == ["stubborn stopping", "stubborn stopped", "middle stopping", "middle stopped",
                              "base stopping", "base stopped"], "\(order)")
            #expect(h.service("stubborn").lastExit == "signal 9")
            // The init's own log lines for them (checks 32 and 34 read these).
            let lines = h.events.all.map(\.logLine)
            #expect(lines.first == "stopping stubborn: instance stopping" && lines.contains("stubborn stopped (signal 9)"), "\(lines)")
            #expect(h.service("middle").lastExit == "signal 15" && h.service("base").lastExit == "signal 15")
            #expect(took >= 400 && took < 3000, "\(took) ms")
        }

        /// Orphaned grandchildren (the service's own and a double-forked one) are killed with the
        /// group and reaped: no zombie remains.
        @Test func orphanedGrandchildrenAreReaped() throws {
            let dir = SupervisorHarness.tempDir()
            defer { SupervisorHarness.removeTree(dir) }
            let pids = dir + "/pids"
            let script = "sleep 30 & echo $! > \(pids); (sleep 30 & echo $! >> \(pids)); sleep 0.2; exit 0"
            let h = SupervisorHarness([SupervisorHarness.shell("parent", script, restart: .never)])
            #expect(h.run(ms: 5000) { h.service("parent").state == .stopped })
            let grandchildren = SupervisorHarness.read(pids).split(separator: "\n").compactMap { pid_t($0) }
            #expect(grandchildren.count == 2)
            h.run(ms: 3000) { grandchildren.allSatisfy { !SupervisorHarness.alive($0) } }
            for pid in grandchildren {
                // A zombie still answers kill(pid, 0): ESRCH means killed and reaped.
                #expect(!SupervisorHarness.alive(pid) && errno == ESRCH, "grandchild \(pid) survives")
            }
        }

        /// A service writing as fast as it can keeps running while nobody reads its logs; its
        /// files rotate and stay within their bound, the excess is dropped and counted.
        @Test func floodingLogsNeverBlockTheServiceAndStayBounded() throws {
            let dir = SupervisorHarness.tempDir()
            defer { SupervisorHarness.removeTree(dir) }
            let limits = LogLimits(fileBytes: 64 << 10, files: 3, tailBytes: 8 << 10, rateBytesPerSecond: 256 << 10)
            let h = SupervisorHarness([SupervisorHarness.shell("flood", "exec yes 'a line of log text, over and over'", logs: limits),
                                       SupervisorHarness.shell("quiet", "echo hello; echo oops >&2; exec sleep 30")],
                                      logDirectory: dir)
            #expect(h.run(ms: 2000) { h.service("flood").state == .ready })
            let pid = h.service("flood").pid
            h.run(ms: 2000)
            let s = h.service("flood")
            #expect(s.state == .ready && s.pid == pid && s.restarts == 0)
            // `yes` was not held up: far more than the rate limit passed through the pipe.
            #expect(s.log.droppedBytes > 4 << 20, "dropped \(s.log.droppedBytes)")
            var total = 0
            for name in ["flood.log", "flood.log.1", "flood.log.2"] {
                let size = try #require(SupervisorHarness.fileSize(dir + "/" + name), "\(name) missing")
                #expect(size <= limits.fileBytes)
                total += size
            }
            #expect(SupervisorHarness.fileSize(dir + "/flood.log.3") == nil)
            #expect(total <= limits.maxDiskBytes)
            let tail = try #require(h.supervisor.logTail(of: "flood"))
            #expect(tail.utf8.count <= limits.tailBytes && tail.contains(" out a line of log text, over and over\n"))
            // Every line is timestamped and tagged.
            let quiet = SupervisorHarness.read(dir + "/quiet.log")
            let lines = quiet.split(separator: "\n")
            #expect(lines.contains { $0.hasSuffix(" out hello") } && lines.contains { $0.hasSuffix(" err oops") }, "\(quiet)")
            for line in lines {
                let stamp = line.prefix(24)
                #expect(stamp.count == 24 && stamp.hasSuffix("Z") && stamp.dropFirst(10).first == "T", "\(line)")
            }
            #expect(h.shutdown())
            #expect(SupervisorHarness.read(dir + "/flood.log").contains(" sup stopped"))
        }

        /// The instance's budget caps all services' files together.
        @Test func logLimitsFitTheInstanceBudget() {
            let specs = (0..<4).map { SupervisorHarness.shell("s\($0)", "exit 0", logs: LogLimits(fileBytes: 1 << 20, files: 4)) }
            let supervisor = ServiceSupervisor(specs: specs, logBudget: 8 << 20)
            let total = supervisor.services.reduce(0) { $0 + $1.log.limits.maxDiskBytes }
            #expect(total <= 8 << 20 && total > 7 << 20)
        }

        /// An `oom_kill` increase in memory.events is attributed to the service that died of SIGKILL.
        @Test func oomKillsAreAttributed() throws {
            let dir = SupervisorHarness.tempDir()
            defer { SupervisorHarness.removeTree(dir) }
            let events = dir + "/memory.events"
            SupervisorHarness.write(events, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n")
            let h = SupervisorHarness([SupervisorHarness.shell("victim", "exec sleep 30", restart: .onFailure),
                                       SupervisorHarness.shell("bystander", "exec sleep 30")], memoryEvents: events)
            #expect(h.run(ms: 2000) { h.service("victim").state == .ready && h.service("bystander").state == .ready })
            SupervisorHarness.write(events, "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n")
            kill(h.service("victim").pid, SIGKILL)
            #expect(h.run(ms: 2000) { h.service("victim").restarts == 1 })
            #expect(h.service("victim").oomKills == 1 && h.service("bystander").oomKills == 0)
            #expect(h.events.all.contains { $0.service == "victim" && $0.oomKills == 1 && $0.reason?.contains("OOM") == true })
            #expect(h.service("victim").status.oomKills == 1)
            #expect(h.shutdown())
        }
    }
}
