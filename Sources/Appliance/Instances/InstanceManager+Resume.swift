import Glibc
import Logging
import Sandbox
import Supervisor

/// Daemon start: the instances a previous daemon left running are adopted, not restarted.
extension InstanceManager {
    /// How long a re-attached init has to send its hello: it answers from its poll loop, so
    /// anything slower is an init that is stuck or not ours.
    static let reattachHelloTimeoutMs = 2000

    enum Reattach: Sendable {
        case attached(SandboxProcess, ControlChannel)
        /// The init is gone; `rebooted`: because the host restarted since it was launched.
        case gone(String, rebooted: Bool)
        /// It runs but cannot be taken over: killed, and its instance `failed`.
        case refused(SandboxProcess, String)
    }

    /// Blocking: takes hold of the recorded init (only if it is the same process) and
    /// connects to its control listener.
    static func reattach(pid: Int32, identity: String, socket: String) -> Reattach {
        guard ProcessIdentity.isFromThisBoot(identity) else {
            return .gone("the host restarted since the instance was started", rebooted: true)
        }
        guard let process = SandboxProcess.adopt(pid: pid, check: { ProcessIdentity.of($0) == identity }) else {
            return .gone("the instance's init exited while the daemon was down", rebooted: false)
        }
        do {
            let channel = try ControlChannel.connect(path: socket)
            // awaitHello refuses an init of a protocol major version this daemon does not know.
            _ = try channel.awaitHello(timeoutMs: reattachHelloTimeoutMs)
            return .attached(process, channel)
        } catch {
            return .refused(process, "the instance's init did not answer the restarted daemon: \(error)")
        }
    }

    /// Called once at startup. Instances recorded running are re-attached (all at once); one
    /// whose init died meanwhile ends `failed` with the reason. Rows left in transient states
    /// by a crash are reset, leftovers of instances that do not run are killed, and the
    /// instances that should run but do not (the host restarted) are started.
    func resume() async {
        guard let all = try? instances.allInstances() else { return }
        let began = ContinuousClock.now
        let candidates = all.filter { $0.state == .running && $0.initPID != nil && $0.initIdentity != nil && launcher != nil }
        let paths = self.paths
        let outcomes = await withTaskGroup(of: (InstanceRecord, Reattach).self) { group in
            for record in candidates {
                group.addTask {
                    let (pid, identity, socket) = (record.initPID!, record.initIdentity!, paths.controlSocket(record.id))
                    let outcome = (try? await Blocking.run { Self.reattach(pid: pid, identity: identity, socket: socket) })
                        ?? .gone("no thread to re-attach on", rebooted: false)
                    return (record, outcome)
                }
            }
            var all: [(InstanceRecord, Reattach)] = []
            for await outcome in group { all.append(outcome) }
            return all
        }
        var attached: [String] = []
        var handled: Set<Int64> = []
        var noAutostart: Set<Int64> = []
        for (record, outcome) in outcomes {
            handled.insert(record.id)
            switch outcome {
            case .attached(let process, let channel):
                adopt(record, process: process, channel: channel)
                attached.append(record.name)
                // What else runs in its id range is no part of it (check 49): a stray goes.
                _ = await clearProcesses(record, sparing: process.pid)
            case .gone(let reason, let rebooted):
                await discard(record, reason: rebooted ? nil : reason)
                if !rebooted { noAutostart.insert(record.id) }
            case .refused(let process, let reason):
                process.signal(SIGKILL)
                _ = try? await Blocking.run { process.wait(timeoutMs: 5000) }
                await discard(record, reason: reason)
                noAutostart.insert(record.id)
            }
        }
        let took = (ContinuousClock.now - began).components
        let elapsed = ((Double(took.seconds) * 1000 + Double(took.attoseconds) / 1e15) * 10).rounded() / 10
        logger.info("re-attached running instances", metadata: [
            "count": "\(attached.count)", "instances": "\(attached.sorted().joined(separator: ", "))", "ms": "\(elapsed)"])

        // A previous daemon's instances that were not re-attached may still be shutting down:
        // nothing of them may run on into this daemon's walks.
        var blocked: Set<Int64> = []
        for record in all where !handled.contains(record.id) {
            if let survivors = await clearProcesses(record) {
                blocked.insert(record.id)
                try? setState(record.id, .failed, lastError: survivors)
            } else if record.state != .stopped {
                try? setState(record.id, .stopped, lastError: record.state == .failed ? record.lastError : nil)
            }
            if record.initPID != nil { try? instances.setInit(record.id, pid: nil, identity: nil) }
        }
        for record in all where record.autostart && runtimes[record.id] == nil
            && !blocked.contains(record.id) && !noAutostart.contains(record.id) {
            do { _ = try await start(record.id) } catch {
                logger.error("autostart failed", metadata: ["instance": "\(record.name)", "error": "\(error)"])
            }
        }
    }

    /// The re-attached init's instance holds again what it held under the previous daemon: its
    /// runtime, its allow-list entries (the restarted daemon replaced the nftables table), its
    /// cgroup.
    private func adopt(_ record: InstanceRecord, process: SandboxProcess, channel: ControlChannel) {
        var egressAllow: [String]?
        if let network = host.network, EgressNetwork.hasInterface(slot: record.idSlot) {
            let allow = (settings.effective(record).egressAllow ?? []).compactMap { IPv4CIDR($0)?.description }
            do { try network.admit(slot: record.idSlot, allow: allow) } catch {
                logger.error("cannot restore the instance's allow-list", metadata: ["instance": "\(record.name)", "error": "\(error)"])
            }
            egressAllow = allow
        }
        let hasCgroup = host.cgroups?.instancePath(record.id).map(FileSystem.isDirectory) ?? false
        let runtime = InstanceRuntime(process: process, channel: channel, egressAllow: egressAllow, hasCgroup: hasCgroup)
        runtimes[record.id] = runtime
        try? setState(record.id, .running)
        watch(record.id, runtime)
    }

    /// What a failed launch leaves behind goes: the cgroup, the veth and allow-list entries,
    /// the listener's path, any process of the id range. `reason` nil: the instance is simply
    /// stopped (and autostarts), else `failed` with it.
    private func discard(_ record: InstanceRecord, reason: String?) async {
        host.cgroups?.destroy(record.id)
        let allow = (settings.effective(record).egressAllow ?? []).compactMap { IPv4CIDR($0)?.description }
        host.network?.detach(slot: record.idSlot, allow: allow)
        unlink(paths.controlSocket(record.id))
        try? instances.setInit(record.id, pid: nil, identity: nil)
        var failure = reason
        if let survivors = await clearProcesses(record) {
            failure = [reason, survivors].compactMap { $0 }.joined(separator: "; ")
        }
        if let failure {
            logger.error("instance failed", metadata: ["instance": "\(record.name)", "reason": "\(failure)"])
            try? setState(record.id, .failed, lastError: failure)
        } else {
            try? setState(record.id, .stopped)
        }
    }
}

extension InstanceManager {
    /// Where an events stream starts: the instance's state and, while it runs, the latest
    /// service snapshot its init pushed.
    func currentEvents(_ record: InstanceRecord) -> [InstanceEvents.Event] {
        var out: [InstanceEvents.Event] = [.state(record.state, lastError: record.lastError)]
        if record.state == .running, let services = runtimes[record.id]?.channel.services { out.append(.services(services)) }
        return out
    }
}
