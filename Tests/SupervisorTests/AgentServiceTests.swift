import Glibc
import Testing
@testable import Supervisor

/// The agent service's declaration, and the supervisor features it relies on, with real
/// processes: a preflight that fails for good, exits that are final, an HTTP readiness probe
/// that waits for 200, a stdin that stays open.
@Suite(.serialized) struct AgentServiceTests {
    @Test func agentSpecIsOpenClawSupervisedFromOutside() {
        let spec = AgentService.spec
        #expect(ServiceCatalog.standard().map(\.name) == ["xvfb", "vnc", "chromium", "agent"])
        #expect(spec.path == "/opt/openclaw/bin/openclaw" && spec.arguments == ["openclaw", "gateway", "run"])
        #expect(spec.uid == 1000 && spec.gid == 1000 && spec.workingDirectory == "/home/claworc")
        #expect(spec.dependsOn == ["chromium"] && spec.restart == .always && spec.openStdin)
        #expect(spec.readiness == .http(port: 18789, path: "/healthz"))
        for variable in ["OPENCLAW_NO_RESPAWN=1", "OPENCLAW_DISABLE_BONJOUR=1", "OPENCLAW_NO_AUTO_UPDATE=1",
                         "OPENCLAW_SUPERVISOR_MODE=external", "HOME=/home/claworc"] {
            #expect(spec.environment.contains(variable), "\(variable)")
        }
        #expect(spec.environment.contains { $0.hasPrefix("PATH=/opt/openclaw/bin:") }, "a bundled node comes first")
        #expect(spec.finalExits[78]?.contains("openclaw doctor --fix") == true)
        #expect(!spec.mayCreateNamespaces)
        // Stopped in dependency order within the daemon's 10 s for the whole instance.
        let stops = Dictionary(uniqueKeysWithValues: ServiceCatalog.standard().map { ($0.name, $0.stopTimeoutMs) })
        #expect(stops["agent"]! + max(stops["chromium"]!, stops["vnc"]!) + stops["xvfb"]! < 10_000)
    }

    @Test func launcherShebangDecidesTheNodeCheck() throws {
        let dir = "/tmp/claworc-agent-test-\(getpid())"
        mkdir(dir, 0o755)
        defer { _ = unlink(dir + "/a"); _ = unlink(dir + "/b"); _ = unlink(dir + "/c"); rmdir(dir) }
        for (name, text) in [("a", "#!/usr/bin/env node\n"), ("b", "#!/usr/bin/env python3\n"), ("c", "#!/usr/local/bin/node --x\n")] {
            let fd = open(dir + "/" + name, O_CREAT | O_WRONLY | O_TRUNC, 0o755)
            _ = text.withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }
        #expect(AgentService.wantsNode(dir + "/a") && AgentService.wantsNode(dir + "/c"))
        #expect(!AgentService.wantsNode(dir + "/b") && !AgentService.wantsNode(dir + "/missing"))
        #expect(AgentService.nodeRemedy("found v18.19.0 at /usr/bin/node").hasPrefix("OpenClaw needs Node.js ≥ 22"))
    }

    @Test func failedPreflightIsFinalWithItsReason() {
        var spec = SupervisorHarness.shell("agentish", "exec sleep 30")
        spec.preflight = { "no bundle: install one" }
        let h = SupervisorHarness([spec])
        #expect(h.run(ms: 2000) { h.service("agentish").state == .failed })
        #expect(h.service("agentish").reason == "no bundle: install one" && h.service("agentish").pid == 0)
        #expect(h.shutdown())
    }

    @Test func finalExitCodeFailsWithoutRestarting() {
        var spec = SupervisorHarness.shell("cfg", "exit 78")
        spec.finalExits = [78: "invalid configuration (exit 78)"]
        let h = SupervisorHarness([spec])
        #expect(h.run(ms: 3000) { h.service("cfg").state == .failed })
        #expect(h.service("cfg").reason == "invalid configuration (exit 78)" && h.service("cfg").restarts == 0)
        // An explicit restart is the way out, as for any failed service.
        #expect(h.supervisor.restart(service: "cfg", now: monotonicMs()) == nil)
        #expect(h.run(ms: 3000) { h.states("cfg").filter { $0 == "failed" }.count == 2 })
        #expect(h.shutdown())
    }

    @Test func stdinStaysOpenWhileTheServiceRuns() {
        // `cat` ends at EOF on stdin: with an open stdin it keeps running.
        var spec = SupervisorHarness.shell("reader", "cat; exit 3")
        spec.openStdin = true
        let h = SupervisorHarness([spec])
        #expect(h.run(ms: 1500) { h.service("reader").lastExit != nil } == false, "cat saw no EOF")
        #expect(h.service("reader").state == .ready && h.service("reader").restarts == 0)
        #expect(h.shutdown())
    }

    @Test func httpReadinessWaitsForA200() throws {
        // A server that listens at once but answers 503 until a file appears, then 200.
        let flag = "/tmp/claworc-http-ready-\(getpid())"
        unlink(flag)
        defer { unlink(flag) }
        let port = UInt16(20000 + getpid() % 20000)
        let script = """
        import http.server, os
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                code = 200 if self.path == "/healthz" and os.path.exists("\(flag)") else 503
                self.send_response(code); self.send_header("Content-Length", "0"); self.end_headers()
            def log_message(self, *a): pass
        http.server.HTTPServer(("127.0.0.1", \(port)), H).serve_forever()
        """
        let spec = ServiceSpec(name: "web", path: "/usr/bin/python3", arguments: ["python3", "-c", script],
                               environment: ["PATH=/usr/bin:/bin"], dependsOn: [],
                               readiness: .http(port: port, path: "/healthz"), readinessTimeoutMs: 20_000,
                               uid: getuid(), gid: getgid(), workingDirectory: "/")
        let h = SupervisorHarness([spec])
        #expect(h.run(ms: 1500) { h.service("web").state == .ready } == false, "503 is not ready")
        #expect(h.service("web").state == .starting)
        close(open(flag, O_CREAT | O_WRONLY, 0o644))
        #expect(h.run(ms: 5000) { h.service("web").state == .ready })
        #expect(h.service("web").probeFD < 0)
        #expect(h.shutdown())
    }
}
