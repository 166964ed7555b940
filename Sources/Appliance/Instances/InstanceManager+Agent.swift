import Glibc
import Logging
import Supervisor

/// What a settings or provider change did to an instance's agent, as the API reports it.
enum AgentReconfiguration: String, Encodable, Sendable {
    /// The config changed and the agent service was restarted to read it.
    case restarted
    /// The config changed and the agent applies it live. Not produced yet: see `reconfigureAgent`.
    case reloaded
    /// The config came out the same.
    case unchanged
    /// The config was written (or not) but no agent runs: the next start reads it.
    case notRunning = "not running"
}

extension InstanceManager {
    /// One instance's outcome in a change that touches every agent.
    struct AgentReport: Encodable, Sendable {
        var id: Int64
        var name: String
        var agent: AgentReconfiguration
    }

    /// Writes the instance's OpenClaw config (failures are logged: the instance starts all the
    /// same, and its agent reports what is wrong) and returns the bundle to mount.
    func writeAgentConfig(_ record: InstanceRecord) async -> String? {
        guard let writer = agentConfig else { return nil }
        do {
            _ = try await Blocking.run { try writer.write(record) }
        } catch {
            logger.warning("cannot write the agent's config", metadata: ["instance": "\(record.name)", "error": "\(error)"])
        }
        return writer.activeBundle()
    }

    /// After a change of the settings or providers behind an instance's config: rewrites it and,
    /// if a section changed while the agent runs, restarts the agent service.
    ///
    /// Always a restart, never a hot reload: OpenClaw reloads `agents`, `models` and `tools`
    /// from the watched file, but whether a given bundle does is not something the daemon can
    /// see (the test stand-in does not), and a restart is certain to apply the change. The
    /// chat client reconnects on the gateway's `shutdown` event either way.
    func reconfigureAgent(_ id: Int64) async -> AgentReconfiguration {
        guard let writer = agentConfig, let record = try? instances.instance(id: id) else { return .notRunning }
        let outcome: AgentConfigWriter.Outcome
        do {
            outcome = try await Blocking.run { try writer.write(record) }
        } catch {
            logger.warning("cannot write the agent's config", metadata: ["instance": "\(record.name)", "error": "\(error)"])
            return .unchanged
        }
        guard let runtime = runtimes[id], record.state == .running else { return .notRunning }
        let agent = (try? await services(id))?.first { $0.name == AgentService.name }
        guard let agent, ["starting", "ready", "backoff"].contains(agent.state) else { return .notRunning }
        guard case .changed(let sections) = outcome, !sections.isEmpty else { return .unchanged }
        let channel = runtime.channel
        let restarted = (try? await Blocking.run { try channel.restartService(AgentService.name) }) != nil
        logger.info("agent config changed", metadata: ["instance": "\(record.name)", "sections": "\(sections)",
                                                     "restarted": "\(restarted)"])
        return restarted ? .restarted : .notRunning
    }

    /// Every instance's agent after an appliance-wide change (defaults, providers). Stopped
    /// instances are written at their next start.
    func reconfigureAgents() async -> [AgentReport] {
        var reports: [AgentReport] = []
        for id in runtimes.keys.sorted() {
            guard let record = try? instances.instance(id: id) else { continue }
            reports.append(AgentReport(id: id, name: record.name, agent: await reconfigureAgent(id)))
        }
        return reports
    }
}
