import Logging
import Supervisor
import Synchronization

/// One gateway link per running instance, opened the moment its `agent` service reports
/// `ready` (the init pushes every service change; nothing polls), reconnected at once when the
/// agent restarts, told when it goes down, and closed when the instance stops. A chat socket
/// that finds no link (an instance without the agent service, or before its first snapshot)
/// opens one on demand, which then retries with backoff.
final class GatewayLinks: Sendable {
    private struct Entry {
        var link: GatewayLink
        /// The agent process the link was made for (a new pid is a restarted gateway).
        var agentPID: Int32?
        var agentReady = false
    }

    private let manager: InstanceManager
    private let credentials: AgentCredentials
    private let device: DeviceIdentity
    private let logger: Logger
    private let links = Mutex<[Int64: Entry]>([:])

    init(manager: InstanceManager, credentials: AgentCredentials, device: DeviceIdentity, logger: Logger) {
        self.manager = manager
        self.credentials = credentials
        self.device = device
        self.logger = logger
    }

    /// Follows every instance's events for the daemon's lifetime.
    func follow(_ events: InstanceEvents) {
        let stream = events.observeAll()
        Task { [self] in
            for await (instance, event) in stream { observe(instance, event) }
        }
    }

    /// The instance's link, made if there is none: connecting at once when its agent is ready
    /// (or the instance has no agent service), else waiting for the agent's `ready`.
    func link(_ instance: Int64) async -> GatewayLink {
        if let link = existing(instance) { return link }
        let agent = (try? await manager.services(instance))?.first { $0.name == "agent" }
        let (link, made) = links.withLock { all -> (GatewayLink, Bool) in
            if let entry = all[instance] { return (entry.link, false) }
            let link = makeLink(instance)
            all[instance] = Entry(link: link, agentPID: agent?.pid, agentReady: agent?.state == "ready")
            return (link, true)
        }
        if made {
            if let agent, agent.state != "ready" {
                link.agentDown(Self.describe(agent), failed: agent.state == "failed")
            }
            link.start()
        }
        return link
    }

    private static func describe(_ agent: ServiceStatus) -> String {
        let why = [agent.reason, agent.error].compactMap { $0 }.first
        return "The agent is \(agent.state)" + (why.map { ": \($0)" } ?? ".")
    }

    func existing(_ instance: Int64) -> GatewayLink? { links.withLock { $0[instance]?.link } }

    private func makeLink(_ instance: Int64) -> GatewayLink {
        let manager = self.manager
        return GatewayLink(instance: instance, token: credentials.gatewayToken(instance: String(instance)), device: device,
                           logger: logger) {
            try await manager.connect(instance, port: ServiceCatalog.gatewayPort)
        }
    }

    private func observe(_ instance: Int64, _ event: InstanceEvents.Event) {
        switch event {
        case .state(let state, _):
            guard state != .running else { return }
            links.withLock { $0.removeValue(forKey: instance) }?.link.close()
        case .services(let services):
            guard let agent = services.first(where: { $0.name == "agent" }) else { return }
            agentChanged(instance, agent)
        case .keepAlive:
            break
        }
    }

    private func agentChanged(_ instance: Int64, _ agent: ServiceStatus) {
        enum Action { case none, start(GatewayLink), kick(GatewayLink, reconnect: Bool), down(GatewayLink) }
        let ready = agent.state == "ready"
        let action = links.withLock { all -> Action in
            guard var entry = all[instance] else {
                guard ready else { return .none }
                let link = makeLink(instance)
                all[instance] = Entry(link: link, agentPID: agent.pid, agentReady: true)
                return .start(link)
            }
            defer { all[instance] = entry }
            let restarted = entry.agentPID != nil && entry.agentPID != agent.pid
            let was = entry.agentReady
            entry.agentPID = agent.pid
            entry.agentReady = ready
            if ready && (!was || restarted) { return .kick(entry.link, reconnect: restarted) }
            if !ready && was { return .down(entry.link) }
            return .none
        }
        switch action {
        case .none: break
        case .start(let link):
            link.kick(agentReady: true)
            link.start()
        case .kick(let link, let reconnect): link.kick(reconnect: reconnect, agentReady: true)
        case .down(let link):
            link.agentDown(Self.describe(agent), failed: agent.state == "failed")
        }
    }
}
