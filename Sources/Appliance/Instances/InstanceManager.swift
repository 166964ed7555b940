import Glibc
import Logging
import Sandbox
import Supervisor

/// A running instance as the daemon holds it: the init's pidfd and its control socket.
final class InstanceRuntime: Sendable {
    let process: SandboxProcess
    let channel: ControlChannel
    /// What the host holds for it besides the process: its allow-list entries (network) and
    /// whether it has a cgroup to remove.
    let egressAllow: [String]?
    let hasCgroup: Bool

    init(process: SandboxProcess, channel: ControlChannel, egressAllow: [String]?, hasCgroup: Bool) {
        self.process = process
        self.channel = channel
        self.egressAllow = egressAllow
        self.hasCgroup = hasCgroup
    }
}

/// Owns the lifecycle of every instance: the database row is the record, the runtime map is
/// what actually runs. All transitions go through this actor.
actor InstanceManager {
    static let stopGraceMs: Int32 = 10_000
    static let helloTimeoutMs = 10_000

    let store: Store
    let paths: DataPaths
    let logger: Logger
    /// The binary the launcher execs as each instance's init: a sealed memfd copy of ours.
    let initExecutable: Int32
    let mountExtras: [String]
    /// The seccomp filters every process of an instance inherits, compiled once.
    let seccomp: [[UInt8]]
    private var runtimes: [Int64: InstanceRuntime] = [:]

    /// Protections switched off by --unsafe-test-disable (the negative control only).
    let disabled: Set<String>
    let cgroups: CgroupV2
    /// nil when the host cannot give instances outbound networking; `networkError` says why.
    let network: EgressNetwork?
    let networkError: String?
    /// The disk io.max limits apply to (the data dir's), or nil where they cannot.
    let ioDevice: String?
    /// Built-in defaults, with the daemon's --default-network applied.
    let builtInSettings: InstanceSettings

    /// "standard" or "none" (instances run only their init).
    let services: String
    /// nil: the host's system directories (read-only); else the shared base root tree of the
    /// image mode.
    let baseRoot: String?

    init(store: Store, paths: DataPaths, logger: Logger, disabled: Set<String> = [],
         defaultNetwork: String = "egress", services: String = "standard", baseRoot: String? = nil,
         initProgram: String? = nil) throws {
        self.services = services
        self.baseRoot = baseRoot
        self.store = store
        self.paths = paths
        self.logger = logger
        self.disabled = disabled
        var builtIn = InstanceSettings.builtIn
        builtIn.network = defaultNetwork
        builtInSettings = builtIn
        cgroups = CgroupV2()
        if let reason = cgroups.reason {
            logger.warning("""
                RESOURCE LIMITS UNAVAILABLE: instances will run WITHOUT memory, CPU and process limits. \
                \(reason). The API reports "limits": "unavailable" for every instance.
                """)
        } else {
            logger.info("cgroup v2 limits enforced", metadata: ["tree": "\(cgroups.base ?? "")", "controllers": "\(cgroups.controllers.joined(separator: ","))"])
        }
        if cgroups.available && cgroups.controllers.contains("io") {
            let disk = BlockDevice.wholeDisk(containing: paths.root)
            ioDevice = disk.device
            if let reason = disk.reason { logger.warning("disk bandwidth limits unavailable", metadata: ["reason": "\(reason)"]) }
        } else {
            ioDevice = nil
            if cgroups.available { logger.warning("disk bandwidth limits unavailable: the cgroup v2 tree has no io controller") }
        }
        do {
            network = try EgressNetwork()
            networkError = nil
        } catch {
            network = nil
            networkError = "\(error)"
            logger.warning("instance networking unavailable: instances set to \"egress\" will not start", metadata: ["error": "\(error)"])
        }
        initExecutable = try initProgram.map(SealedExecutable.from) ?? SealedExecutable.fromSelf()
        seccomp = disabled.contains("seccomp") ? [] : try SeccompProfile.instanceFilters()
        mountExtras = MountPlan.loadedLibraryDirsOutsideSystem()
    }

    static let firstID: UInt32 = 0x1000_0000
    /// The highest id slot: its range must end below 2^32 - 1 (uid -1 means "no change" to
    /// chown), and the slot also numbers the instance's veth and /30 (EgressNetwork.maxSlot).
    static let maxSlot: Int64 = min(EgressNetwork.maxSlot,
                                    Int64((UInt32.max - firstID) / SandboxPolicy.idRangeSize) - 1)

    /// First host id of an instance's range, or nil for a slot outside 1...maxSlot (a row from
    /// before the cap). Slots start far above the ids of host users and the usual subuid ranges.
    static func idBase(slot: Int64) -> UInt32? {
        guard (1...maxSlot).contains(slot) else { return nil }
        return firstID + UInt32(slot) * SandboxPolicy.idRangeSize
    }
    static func agentHostUID(slot: Int64) -> UInt32? { idBase(slot: slot).map { $0 + ServiceCatalog.agentUID } }

    /// Kills what is left of the instance's id range on the host; the names of the survivors
    /// if some would not go (its storage must not be touched then).
    private func clearProcesses(_ record: InstanceRecord) async -> String? {
        guard let base = Self.idBase(slot: record.idSlot) else { return nil }
        let left = (try? await Blocking.run { InstanceProcesses(idBase: base).killAll() }) ?? []
        guard !left.isEmpty else { return nil }
        let survivors = "processes of the instance would not exit: \(left.map(String.init).joined(separator: ", "))"
        logger.error("instance processes survive SIGKILL", metadata: ["instance": "\(record.name)", "pids": "\(left)"])
        return survivors
    }

    // MARK: settings

    func defaultSettings() -> InstanceSettings {
        InstanceSettings.decode((try? store.setting("instance_defaults")) ?? "{}").over(builtInSettings)
    }

    func effectiveSettings(_ record: InstanceRecord) -> InstanceSettings {
        InstanceSettings.decode(record.limits).over(defaultSettings())
    }

    func setDefaults(_ settings: InstanceSettings) throws -> InstanceSettings {
        try settings.validate()
        try settings.over(builtInSettings).validate()
        try store.setSetting("instance_defaults", settings.json)
        for (id, runtime) in runtimes where runtime.hasCgroup {
            if let record = try store.instance(id: id) { cgroups.update(id, limits: effectiveSettings(record).cgroupLimits(ioDevice: ioDevice)) }
        }
        return defaultSettings()
    }

    /// Replaces an instance's overrides. Limits apply at once to a running instance; shm,
    /// tmp and network at its next start.
    func setOverrides(_ id: Int64, _ overrides: InstanceSettings) throws -> InstanceRecord {
        try overrides.validate()
        guard let record = try store.instance(id: id) else { throw APIError.notFound("The instance") }
        var updated = record
        updated.limits = overrides.json
        try effectiveSettings(updated).validate()
        try store.setLimits(id, overrides.json)
        if runtimes[id]?.hasCgroup == true { cgroups.update(id, limits: effectiveSettings(updated).cgroupLimits(ioDevice: ioDevice)) }
        return try store.instance(id: id)!
    }

    // MARK: queries

    func view(_ record: InstanceRecord) async -> InstanceView {
        var services: [ServiceStatus] = []
        if let runtime = runtimes[record.id], record.state == .running {
            let channel = runtime.channel
            services = (try? await Blocking.run { try channel.call(.status, timeoutMs: 2000).0.services ?? [] }) ?? []
        } else {
            services = ServiceCatalog.named(self.services).map {
                ServiceStatus(name: $0.name, state: "stopped", pid: nil, restarts: 0, lastExit: nil, error: nil)
            }
        }
        let settings = effectiveSettings(record)
        let running = runtimes[record.id]
        return InstanceView(id: record.id, name: record.name, state: record.state, createdAt: record.createdAt,
                            lastError: record.lastError, services: services, settings: settings,
                            limitsEnforced: cgroups.available, ioDevice: ioDevice,
                            usage: running?.hasCgroup == true ? cgroups.usage(record.id) : nil,
                            address: running?.egressAllow != nil ? EgressNetwork.addresses(slot: record.idSlot).instance : nil)
    }

    func record(_ id: Int64, for user: User) throws -> InstanceRecord {
        guard let record = try store.instance(id: id), try store.canAccess(user: user, instanceID: id) else {
            throw APIError.notFound("The instance")
        }
        return record
    }

    // MARK: lifecycle

    func create(name: String) throws -> InstanceRecord {
        try InstanceName.validate(name)
        do {
            return try store.createInstance(name: name) { record in
                let dir = paths.instanceDir(record.id)
                if FileSystem.exists(dir) { FileSystem.removeTree(dir) }   // a leftover of a crash
                let rc = FileSystem.makeDirectories(paths.home(record.id), mode: 0o700)
                guard rc == 0 else {
                    FileSystem.removeTree(dir)
                    throw StartupError("cannot create the instance's storage: \(FileSystem.errorText(rc))")
                }
                chmod(dir, 0o711)
                let owner = Self.agentHostUID(slot: record.idSlot)!   // the store hands out slots up to maxSlot
                chown(paths.home(record.id), owner, owner)
                chmod(paths.home(record.id), 0o700)
            }
        } catch let error as NoIDRangeLeft {
            throw APIError.conflict("no_id_range_left",
                "Every host id range is in use (at most \(error.maxSlot) instances); delete an instance first.")
        } catch let error as DatabaseError where error.isConstraintViolation {
            throw APIError.conflict("name_taken", "An instance named '\(name)' already exists.")
        } catch let error as StartupError {
            logger.error("instance create failed", metadata: ["name": "\(name)", "error": "\(error)"])
            throw APIError(status: .internalServerError, code: "storage_failed",
                           message: "The instance's storage could not be created; nothing was kept.")
        }
    }

    func start(_ id: Int64) async throws -> InstanceRecord {
        guard try store.transition(id, from: [.stopped, .failed], to: .starting) else {
            guard let current = try store.instance(id: id) else { throw APIError.notFound("The instance") }
            throw APIError.conflict("invalid_state", "The instance is \(current.state.rawValue); it can only be started when stopped.")
        }
        guard let record = try store.instance(id: id) else { throw APIError.notFound("The instance") }
        let paths = self.paths
        let settings = effectiveSettings(record)
        var cgroupFD: Int32 = -1
        let survivors = await clearProcesses(record)
        do {
            if let survivors { throw StartError.storage(survivors) }
            if settings.network == "egress" && network == nil {
                throw StartError.storage("instance networking is unavailable on this host: \(networkError ?? "unknown")")
            }
            var request = try launchRequest(for: record, settings: settings)
            if cgroups.available {
                cgroupFD = try cgroups.prepare(id, limits: settings.cgroupLimits(ioDevice: ioDevice))
                request.cgroupFD = cgroupFD
            }
            let egress = settings.network == "egress" ? network : nil
            let allow = (settings.egressAllow ?? []).compactMap { IPv4CIDR($0)?.description }
            let slot = record.idSlot
            let hasCgroup = cgroupFD >= 0
            let launchRequest = request
            let baseRoot = self.baseRoot
            let runtime = try await Blocking.run {
                try Self.launch(launchRequest, logPath: paths.log(id), egressAllow: egress == nil ? nil : allow, hasCgroup: hasCgroup,
                                beforeGo: { pid in try egress?.attach(slot: slot, pid: pid, allow: allow) },
                                passMount: baseRoot.map { base in { pid in try IdMappedTree.make(base, for: pid) } })
            }
            if cgroupFD >= 0 { close(cgroupFD); cgroupFD = -1 }
            runtimes[id] = runtime
            try store.setState(id, .running)
            try store.setAutostart(id, true)
            logger.info("instance started", metadata: ["instance": "\(record.name)", "pid": "\(runtime.process.pid)"])
        } catch {
            // Nothing of the attempt survives: launch() already killed and reaped its child;
            // its cgroup and allow-list entries go here.
            if cgroupFD >= 0 { close(cgroupFD) }
            cgroups.destroy(id)
            network?.detach(slot: record.idSlot, allow: (settings.egressAllow ?? []).compactMap { IPv4CIDR($0)?.description })
            let reason = "\(error)"
            try? store.setState(id, .stopped, lastError: reason)
            logger.error("instance start failed", metadata: ["instance": "\(record.name)", "error": "\(reason)"])
            throw APIError(status: .internalServerError, code: "start_failed", message: "The instance could not start: \(reason)")
        }
        return try store.instance(id: id)!
    }

    private func launchRequest(for record: InstanceRecord, settings: InstanceSettings) throws -> LaunchRequest {
        let home = paths.home(record.id)
        guard FileSystem.isDirectory(home) else {
            throw StartError.storage("the instance's home \(home) is missing or not a directory")
        }
        guard let base = Self.idBase(slot: record.idSlot) else {
            throw StartError.storage("the instance's id slot \(record.idSlot) lies outside 1...\(Self.maxSlot)")
        }
        HomeOwnership.adopt(home, idBase: base, agentUID: base + ServiceCatalog.agentUID)
        let browserHome = try privateDirectory(paths.browserHome(record.id), owner: base + ServiceCatalog.browserUID)
        HomeOwnership.adopt(browserHome, idBase: base, agentUID: base + ServiceCatalog.browserUID)
        let sizes = TmpfsSizes(shmMiB: settings.shmMiB ?? 512, tmpMiB: settings.tmpMiB ?? 512)
        var plan = MountPlan(homeSource: home, browserHomeSource: browserHome, sizes: sizes, extraReadOnly: mountExtras)
        plan.stageDir = paths.stage
        if baseRoot != nil {
            // Root inside the instance owns its layers; `root/` keeps everyone else on the host
            // out. The upper dir is the instance's "/" (overlayfs takes the root's mode from
            // it), so it stays 0755.
            let layers = try privateDirectory(paths.instanceDir(record.id) + "/root", owner: base)
            let upper = try privateDirectory(layers + "/upper", owner: base, mode: 0o755)
            let work = paths.work(record.id)
            FileSystem.removeTree(work)   // the overlay's work dir must start out empty
            _ = try privateDirectory(work, owner: base)
            plan.root = .image(upper: upper, work: work)
        }
        var request = LaunchRequest(
            hostname: record.name, stageDir: paths.stage, mounts: plan.operations(), execFD: initExecutable,
            arguments: ["claworc-init", "__init"],
            // No crash backtracer: it would be another program loaded from the instance's root.
            environment: ["PATH=/usr/bin:/bin", "CLAWORC_INSTANCE=\(record.name)", "SWIFT_BACKTRACE=enable=no"]
                + (disabled.contains("seccomp") ? ["CLAWORC_UNSAFE_NO_SECCOMP=1"] : [])
                + (plan.initRoot != nil ? ["CLAWORC_INIT_ROOT=1"] : [])
                + ["CLAWORC_SERVICES=\(services)"],
            controlFD: -1, stdioFD: -1,
            policy: SandboxPolicy(idBase: base, seccomp: seccomp))
        request.initRoot = plan.initRoot
        return request
    }

    /// A directory of the instance's storage that only `owner` (one of the instance's host
    /// ids) may enter. The instance is not running here, so nothing of it races these calls.
    private func privateDirectory(_ path: String, owner: UInt32, mode: mode_t = 0o700) throws -> String {
        let rc = FileSystem.makeDirectories(path, mode: mode)
        guard rc == 0 else { throw StartError.storage("cannot create \(path): \(FileSystem.errorText(rc))") }
        guard lchown(path, owner, owner) == 0, chmod(path, mode) == 0 else {
            throw StartError.storage("cannot secure \(path): \(FileSystem.errorText(errno))")
        }
        return path
    }

    enum StartError: Error, CustomStringConvertible {
        case storage(String)
        var description: String { if case .storage(let s) = self { return s }; return "" }
    }

    /// Blocking: launch, then wait for the init's hello. On any failure the child is killed
    /// and reaped before the error is thrown.
    static func launch(_ base: LaunchRequest, logPath: String, egressAllow: [String]?, hasCgroup: Bool,
                       beforeGo: (pid_t) throws -> Void, passMount: ((pid_t) throws -> Int32)?) throws -> InstanceRuntime {
        let logFD = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard logFD >= 0 else { throw StartError.storage("cannot open \(logPath): \(FileSystem.errorText(errno))") }
        defer { close(logFD) }
        let (channel, initEnd) = try ControlChannel.makePair()
        var request = base
        request.controlFD = initEnd
        request.stdioFD = logFD
        let process: SandboxProcess
        do {
            process = try Launcher.launch(request, beforeGo: beforeGo, passMount: passMount)
            close(initEnd)
        } catch {
            close(initEnd)
            throw error
        }
        do {
            _ = try channel.awaitHello(timeoutMs: helloTimeoutMs)
        } catch {
            process.signal(SIGKILL)
            _ = process.wait(timeoutMs: -1)
            throw error
        }
        return InstanceRuntime(process: process, channel: channel, egressAllow: egressAllow, hasCgroup: hasCgroup)
    }

    /// What is left of an instance on the host once its init is gone.
    private func release(_ id: Int64, _ runtime: InstanceRuntime) {
        if runtime.hasCgroup { cgroups.destroy(id) }
        if let allow = runtime.egressAllow, let record = try? store.instance(id: id) {
            network?.detach(slot: record.idSlot, allow: allow)
        }
    }

    /// `failure`: the instance is stopped because of what its init did, and ends `failed`
    /// with this as its last error.
    func stop(_ id: Int64, keepAutostart: Bool = false, failure: String? = nil) async throws -> InstanceRecord {
        guard try store.transition(id, from: [.running, .failed], to: .stopping) else {
            guard let current = try store.instance(id: id) else { throw APIError.notFound("The instance") }
            if current.state == .stopped { return current }
            throw APIError.conflict("invalid_state", "The instance is \(current.state.rawValue); it cannot be stopped now.")
        }
        if !keepAutostart { try store.setAutostart(id, false) }
        var failure = failure
        if let runtime = runtimes.removeValue(forKey: id) {
            let outcome = try await Blocking.run { Self.terminate(runtime.process) }
            release(id, runtime)
            logger.info("instance stopped", metadata: ["instance": "\(id)", "outcome": "\(outcome)"])
        }
        if let record = try store.instance(id: id), let survivors = await clearProcesses(record) {
            failure = [failure, survivors].compactMap { $0 }.joined(separator: "; ")
        }
        if let failure { try store.setState(id, .failed, lastError: failure) } else { try store.setState(id, .stopped) }
        return try store.instance(id: id)!
    }

    /// SIGTERM, a bounded wait for the init's clean exit, then SIGKILL. The init's death
    /// takes every process of its pid namespace with it, and its mount namespace with them.
    static func terminate(_ process: SandboxProcess) -> String {
        process.signal(SIGTERM)
        let first = process.wait(timeoutMs: stopGraceMs)
        if first != .timedOut { return "\(first)" }
        process.signal(SIGKILL)
        return "killed after \(stopGraceMs) ms: \(process.wait(timeoutMs: -1))"
    }

    func restart(_ id: Int64) async throws -> InstanceRecord {
        _ = try await stop(id, keepAutostart: true)
        return try await start(id)
    }

    func delete(_ id: Int64) async throws {
        guard let record = try store.instance(id: id) else { throw APIError.notFound("The instance") }
        if record.state == .starting || record.state == .stopping {
            throw APIError.conflict("invalid_state", "The instance is \(record.state.rawValue); try again in a moment.")
        }
        if runtimes[id] != nil { _ = try await stop(id) }
        if let survivors = await clearProcesses(record) {
            throw APIError(status: .internalServerError, code: "processes_remain",
                           message: "The instance was not deleted: \(survivors).")
        }
        let dir = paths.instanceDir(id)
        guard try await Blocking.run({ FileSystem.removeTree(dir) }) else {
            logger.error("instance storage not fully removed", metadata: ["instance": "\(record.name)", "dir": "\(dir)"])
            throw APIError(status: .internalServerError, code: "storage_failed",
                           message: "The instance's storage could not be removed completely; try deleting it again.")
        }
        try store.deleteInstance(id)
        logger.info("instance deleted", metadata: ["instance": "\(record.name)"])
    }

    /// A connected socket to `port` on the instance's loopback, handed over by its init.
    func connect(_ id: Int64, port: Int) async throws -> Int32 {
        guard let runtime = runtimes[id] else {
            throw APIError.conflict("not_running", "The instance is not running.")
        }
        let channel = runtime.channel
        let (response, fd) = try await Blocking.run { try channel.call(.connect, port: port) }
        guard response.ok, fd >= 0 else {
            if fd >= 0 { close(fd) }
            throw APIError(status: .serviceUnavailable, code: "service_unavailable",
                           message: response.error ?? "The service inside the instance is not reachable.")
        }
        return fd
    }

    /// Runs a command inside the instance, as its agent user (uid 1000, no capabilities, the
    /// services' seccomp profile) or as the root of its user namespace.
    func exec(_ id: Int64, argv: [String], user: String, timeoutMs: Int) async throws -> RunResult {
        guard let runtime = runtimes[id] else {
            throw APIError.conflict("not_running", "The instance is not running.")
        }
        let channel = runtime.channel
        let (response, fd) = try await Blocking.run {
            try channel.call(.run, argv: argv, user: user, timeoutMs: timeoutMs + 2000)
        }
        if fd >= 0 { close(fd) }
        guard response.ok, let result = response.run else {
            throw APIError.badRequest("exec_failed", response.error ?? "The command could not be started.")
        }
        return result
    }

    // MARK: daemon lifecycle

    /// Called once at startup: rows left in transient states by a crash are reset, and the
    /// instances that were running when the daemon stopped are started again.
    func resume() async {
        guard let all = try? store.allInstances() else { return }
        // A previous daemon's instances may still be shutting down (their inits saw its end of
        // the control socket close): nothing of them may run on into this daemon's walks.
        var blocked: Set<Int64> = []
        for record in all {
            if let survivors = await clearProcesses(record) {
                blocked.insert(record.id)
                try? store.setState(record.id, .failed, lastError: survivors)
            } else if record.state != .stopped {
                try? store.setState(record.id, .stopped, lastError: record.state == .failed ? record.lastError : nil)
            }
        }
        for record in all where record.autostart && !blocked.contains(record.id) {
            do { _ = try await start(record.id) } catch {
                logger.error("autostart failed", metadata: ["instance": "\(record.name)", "error": "\(error)"])
            }
        }
    }

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
            let reason = "the instance's init exited unexpectedly (\(result))"
            try? store.setState(id, .failed, lastError: reason)
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

    /// Daemon shutdown: stop everything but remember what was running.
    func shutdownAll() async {
        for id in Array(runtimes.keys) {
            _ = try? await stop(id, keepAutostart: true)
        }
    }
}
