import Glibc
import Logging
import Sandbox
import Supervisor

/// Owns the lifecycle of every instance: the database row is the record, the runtime map is
/// what actually runs. All transitions go through this actor; it throws `InstanceError`s and
/// leaves who may ask for them to AccessPolicy.
actor InstanceManager {
    let instances: any InstanceRepository
    let settings: SettingsLayers
    let paths: DataPaths
    let logger: Logger
    let host: InstanceHost
    /// nil: this appliance cannot launch (built detached, for in-process tests).
    let launcher: InstanceLauncher?
    let services: Configuration.InstanceServices
    /// The id slots this daemon hands out (1...maxSlot but for test daemons side by side).
    let slots: ClosedRange<Int64>
    /// State changes and service snapshots, for the events stream.
    let events: InstanceEvents
    var runtimes: [Int64: InstanceRuntime] = [:]
    /// Writes each instance's OpenClaw config and names the bundle it mounts (nil: no agent
    /// setup, as in-process tests build it).
    let agentConfig: AgentConfigWriter?
    /// Accepts on each running instance's key proxy listener (nil: no proxy, in-process tests).
    let keyProxy: LLMProxy?

    init(instances: any InstanceRepository, settings: SettingsLayers, paths: DataPaths, logger: Logger,
         host: InstanceHost, launcher: InstanceLauncher?, services: Configuration.InstanceServices,
         slots: ClosedRange<Int64> = 1...InstanceIDs.maxSlot, events: InstanceEvents = InstanceEvents(),
         agentConfig: AgentConfigWriter? = nil, keyProxy: LLMProxy? = nil) {
        self.agentConfig = agentConfig
        self.keyProxy = keyProxy
        self.slots = slots
        self.events = events
        self.instances = instances
        self.settings = settings
        self.paths = paths
        self.logger = logger
        self.host = host
        self.launcher = launcher
        self.services = services
    }

    /// Every state change goes through these two, so the events stream sees it.
    func setState(_ id: Int64, _ state: InstanceState, lastError: String? = nil) throws {
        try instances.setState(id, state, lastError: lastError)
        events.publish(id, .state(state, lastError: lastError))
    }

    private func transition(_ id: Int64, from: [InstanceState], to: InstanceState) throws -> Bool {
        guard try instances.transition(id, from: from, to: to) else { return false }
        events.publish(id, .state(to, lastError: nil))
        return true
    }

    /// Kills what is left of the instance's id range on the host; the names of the survivors
    /// if some would not go (its storage must not be touched then).
    func clearProcesses(_ record: InstanceRecord, sparing initPID: pid_t? = nil) async -> String? {
        guard host.ownsIDRanges, let base = InstanceIDs.idBase(slot: record.idSlot) else { return nil }
        let left = (try? await Blocking.run { InstanceProcesses(idBase: base).killAll(sparing: initPID) }) ?? []
        guard !left.isEmpty else { return nil }
        logger.error("instance processes survive SIGKILL", metadata: ["instance": "\(record.name)", "pids": "\(left)"])
        return "processes of the instance would not exit: \(left.map(String.init).joined(separator: ", "))"
    }

    /// New settings stored: running instances get their new cgroup limits at once (`id`: only
    /// that one).
    func applyLimits(only id: Int64? = nil) {
        guard let cgroups = host.cgroups else { return }
        for (runningID, runtime) in runtimes where runtime.hasCgroup && (id == nil || id == runningID) {
            if let record = try? instances.instance(id: runningID) {
                cgroups.update(runningID, limits: settings.effective(record).cgroupLimits(ioDevice: host.ioDevice))
            }
        }
    }

    // MARK: queries

    func view(_ record: InstanceRecord) async -> InstanceView {
        var services: [ServiceStatus] = []
        if let runtime = runtimes[record.id], record.state == .running {
            services = (try? await Self.services(of: runtime.channel)) ?? []
        } else {
            services = ServiceCatalog.named(self.services.rawValue).map {
                ServiceStatus(name: $0.name, state: "stopped", pid: nil, restarts: 0, lastExit: nil, error: nil)
            }
        }
        let running = runtimes[record.id]
        return InstanceView(id: record.id, name: record.name, state: record.state, createdAt: record.createdAt,
                            lastError: record.lastError, services: services, settings: settings.effective(record),
                            limitsEnforced: host.limitsAvailable, ioDevice: host.ioDevice,
                            usage: running?.hasCgroup == true ? host.cgroups?.usage(record.id) : nil,
                            address: running?.egressAllow != nil ? EgressNetwork.addresses(slot: record.idSlot).instance : nil)
    }

    // MARK: lifecycle

    func create(name: String) throws -> InstanceRecord {
        try InstanceName.validate(name)
        let paths = self.paths
        do {
            return try instances.createInstance(name: name, slots: slots) { record in
                let dir = paths.instanceDir(record.id)
                if FileSystem.exists(dir) { FileSystem.removeTree(dir) }   // a leftover of a crash
                let rc = FileSystem.makeDirectories(paths.home(record.id), mode: 0o700)
                guard rc == 0 else {
                    FileSystem.removeTree(dir)
                    throw StartupError("cannot create the instance's storage: \(FileSystem.errorText(rc))")
                }
                chmod(dir, 0o711)
                let owner = InstanceIDs.agentHostUID(slot: record.idSlot)!   // the store hands out slots up to maxSlot
                chown(paths.home(record.id), owner, owner)
                chmod(paths.home(record.id), 0o700)
            }
        } catch let error as StartupError {
            logger.error("instance create failed", metadata: ["name": "\(name)", "error": "\(error)"])
            throw InstanceError.storageFailed(.create)
        }
    }

    func start(_ id: Int64) async throws -> InstanceRecord {
        guard try transition(id, from: [.stopped, .failed], to: .starting) else {
            guard let current = try instances.instance(id: id) else { throw InstanceError.notFound }
            throw InstanceError.invalidState(current: current.state, action: .start)
        }
        guard let record = try instances.instance(id: id) else { throw InstanceError.notFound }
        let settings = settings.effective(record)
        let allow = InstanceLauncher.allowList(settings)
        let survivors = await clearProcesses(record)
        do {
            if let survivors { throw InstanceLauncher.StorageError(survivors) }
            guard let launcher else { throw InstanceLauncher.StorageError("this appliance was built without a launcher") }
            if settings.network == Configuration.Network.egress.rawValue && host.network == nil {
                throw InstanceLauncher.StorageError("instance networking is unavailable on this host: \(host.networkError ?? "unknown")")
            }
            let logger = self.logger
            let agentBundle = await writeAgentConfig(record)
            let request = try launcher.request(for: record, settings: settings, agentBundle: agentBundle) { link, aside in
                logger.warning("moved aside a symbolic link the instance put where the appliance mounts",
                               metadata: ["instance": "\(record.name)", "path": "\(link)", "now": "\(aside)"])
            }
            let host = self.host
            let runtime = try await Blocking.run { try launcher.start(request, record: record, settings: settings, host: host) }
            runtimes[id] = runtime
            try instances.setInit(id, pid: runtime.process.pid, identity: ProcessIdentity.of(runtime.process.pid))
            try setState(id, .running)
            try instances.setAutostart(id, true)
            watch(id, runtime)
            logger.info("instance started", metadata: ["instance": "\(record.name)", "pid": "\(runtime.process.pid)"])
        } catch {
            // Nothing of the attempt survives: start() already killed and reaped its child;
            // its cgroup and allow-list entries go here.
            InstanceLauncher.release(id: id, slot: record.idSlot, allow: allow, host: host)
            unlink(paths.controlSocket(id))
            let reason = "\(error)"
            try? setState(id, .stopped, lastError: reason)
            logger.error("instance start failed", metadata: ["instance": "\(record.name)", "error": "\(reason)"])
            throw InstanceError.startFailed(reason)
        }
        guard let started = try instances.instance(id: id) else { throw InstanceError.notFound }
        return started
    }

    /// Reads what the init pushes for as long as its channel lives, and publishes its
    /// service snapshots.
    func watch(_ id: Int64, _ runtime: InstanceRuntime) {
        let (channel, events) = (runtime.channel, self.events)
        Task.detached {
            _ = try? await Blocking.run { channel.pump { events.publish(id, .services($0)) } }
        }
        if let keyProxy { attachKeyProxy(id, channel, keyProxy) }
    }

    /// Takes the key proxy's listener from the instance's init (it bound it before its first
    /// service started) and accepts on it: at start and on re-attach after a daemon restart.
    private func attachKeyProxy(_ id: Int64, _ channel: ControlChannel, _ proxy: LLMProxy) {
        let logger = self.logger
        Task.detached {
            do {
                let fd = try await Blocking.run { try channel.listeningSocket(port: ServiceCatalog.llmProxyPort) }
                try await proxy.attach(instance: id, fd: fd)
            } catch {
                logger.error("the instance's LLM key proxy is unavailable", metadata: ["instance": "\(id)", "error": "\(error)"])
            }
        }
    }

    /// What is left of an instance on the host once its init is gone.
    func release(_ id: Int64, _ runtime: InstanceRuntime) {
        runtime.channel.stopPump()
        keyProxy?.detach(instance: id)
        unlink(paths.controlSocket(id))
        try? instances.setInit(id, pid: nil, identity: nil)
        if runtime.hasCgroup { host.cgroups?.destroy(id) }
        if let allow = runtime.egressAllow, let record = try? instances.instance(id: id) {
            host.network?.detach(slot: record.idSlot, allow: allow)
        }
    }

    /// `failure`: the instance is stopped because of what its init did, and ends `failed`
    /// with this as its last error.
    func stop(_ id: Int64, keepAutostart: Bool = false, failure: String? = nil) async throws -> InstanceRecord {
        guard try transition(id, from: [.running, .failed], to: .stopping) else {
            guard let current = try instances.instance(id: id) else { throw InstanceError.notFound }
            if current.state == .stopped { return current }
            throw InstanceError.invalidState(current: current.state, action: .stop)
        }
        if !keepAutostart { try instances.setAutostart(id, false) }
        var failure = failure
        if let runtime = runtimes.removeValue(forKey: id) {
            let outcome = try await Blocking.run { InstanceLauncher.terminate(runtime.process) }
            release(id, runtime)
            logger.info("instance stopped", metadata: ["instance": "\(id)", "outcome": "\(outcome)"])
        }
        if let record = try instances.instance(id: id), let survivors = await clearProcesses(record) {
            failure = [failure, survivors].compactMap { $0 }.joined(separator: "; ")
        }
        if let failure { try setState(id, .failed, lastError: failure) } else { try setState(id, .stopped) }
        guard let stopped = try instances.instance(id: id) else { throw InstanceError.notFound }
        return stopped
    }

    func restart(_ id: Int64) async throws -> InstanceRecord {
        _ = try await stop(id, keepAutostart: true)
        return try await start(id)
    }

    func delete(_ id: Int64) async throws {
        guard let record = try instances.instance(id: id) else { throw InstanceError.notFound }
        if record.state == .starting || record.state == .stopping {
            throw InstanceError.invalidState(current: record.state, action: .delete)
        }
        if runtimes[id] != nil { _ = try await stop(id) }
        if let survivors = await clearProcesses(record) { throw InstanceError.processesRemain(survivors) }
        let dir = paths.instanceDir(id)
        guard try await Blocking.run({ FileSystem.removeTree(dir) }) else {
            logger.error("instance storage not fully removed", metadata: ["instance": "\(record.name)", "dir": "\(dir)"])
            throw InstanceError.storageFailed(.remove)
        }
        try instances.deleteInstance(id)
        logger.info("instance deleted", metadata: ["instance": "\(record.name)"])
    }

    // MARK: inside a running instance

    /// A connected socket to `port` on the instance's loopback, handed over by its init.
    func connect(_ id: Int64, port: UInt16) async throws -> Int32 {
        guard let runtime = runtimes[id] else { throw InstanceError.notRunning }
        let channel = runtime.channel
        do {
            return try await Blocking.run { try channel.connect(port: port) }
        } catch let failure as ControlChannel.Failure where failure.refusedByInit {
            throw InstanceError.serviceUnreachable(failure.description)
        }
    }

    /// The services of a running instance as its init reports them: the snapshot it pushed
    /// last (it pushes every change), asked for only when there is none.
    func services(_ id: Int64) async throws -> [ServiceStatus] {
        guard let runtime = runtimes[id] else { throw InstanceError.notRunning }
        return try await Self.services(of: runtime.channel)
    }

    private static func services(of channel: ControlChannel) async throws -> [ServiceStatus] {
        if let snapshot = channel.services { return snapshot }
        return try await Blocking.run { try channel.status(timeoutMs: 2000) }
    }

    /// Restarts one service explicitly: a `failed` service leaves its start limit behind and
    /// starts afresh; a running one is stopped and started again.
    func restartService(_ id: Int64, name: String) async throws -> [ServiceStatus] {
        guard let runtime = runtimes[id] else { throw InstanceError.notRunning }
        if name == AgentService.name, let record = try instances.instance(id: id) { _ = await writeAgentConfig(record) }
        let channel = runtime.channel
        do {
            return try await Blocking.run { try channel.restartService(name) }
        } catch let failure as ControlChannel.Failure where failure.refusedByInit {
            throw InstanceError.noSuchService(name)
        }
    }

    /// Runs a command inside the instance, as its agent user (uid 1000, no capabilities, the
    /// services' seccomp profile) or as the root of its user namespace.
    func exec(_ id: Int64, argv: [String], user: InstanceUser, timeoutMs: Int) async throws -> RunResult {
        guard let runtime = runtimes[id] else { throw InstanceError.notRunning }
        let channel = runtime.channel
        do {
            // The init's own limit is this minus a second, so its `timedOut` reply comes back.
            return try await Blocking.run { try channel.run(argv: argv, user: user, timeoutMs: timeoutMs + 1000) }
        } catch let failure as ControlChannel.Failure where failure.refusedByInit {
            throw InstanceError.execFailed(failure.description)
        }
    }

    // MARK: daemon lifecycle

    /// Notices inits that died on their own (crash, OOM, kill from outside) and inits that
    /// broke the control protocol, which are stopped: a hostile init gets no further calls.
    func sweep() async {
        var broken: [(Int64, String)] = []
        for (id, runtime) in runtimes {
            let result = runtime.process.wait(timeoutMs: 0)
            guard result != .timedOut else {
                runtime.channel.drain()
                if let violation = runtime.channel.violation { broken.append((id, violation)) }
                continue
            }
            runtimes.removeValue(forKey: id)
            release(id, runtime)
            // An adopted init's status went to whoever reaped it.
            let how = runtime.process.isChild ? "\(result)" : "launched by an earlier daemon; exit status unknown"
            let reason = "the instance's init exited unexpectedly (\(how))"
            try? setState(id, .failed, lastError: reason)
            logger.error("instance failed", metadata: ["instance": "\(id)", "reason": "\(reason)"])
        }
        for (id, violation) in broken {
            let reason = "the instance's init broke the control protocol: \(violation)"
            logger.error("instance failed", metadata: ["instance": "\(id)", "reason": "\(reason)"])
            do { _ = try await stop(id, keepAutostart: true, failure: reason) } catch {
                logger.error("stopping a failed instance failed", metadata: ["instance": "\(id)", "error": "\(error)"])
            }
        }
    }

    /// Daemon shutdown: the instances run on (stopping one is an API action); a daemon
    /// started later re-attaches to them.
    func detachAll() {
        guard !runtimes.isEmpty else { return }
        let names = runtimes.keys.sorted().map { String($0) }.joined(separator: ", ")
        logger.info("daemon stopping; instances keep running", metadata: ["instances": "\(names)"])
        for runtime in runtimes.values { runtime.channel.stopPump() }
    }
}
