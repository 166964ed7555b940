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

/// Everything the API reports about one instance.
struct InstanceView: Encodable, Sendable {
    var id: Int64
    var name: String
    var state: InstanceState
    var createdAt: String
    var lastError: String?
    var services: [ServiceStatus]
    var settings: InstanceSettings
    /// nil: the host cannot enforce limits (no usable cgroup v2).
    var limitsEnforced: Bool
    /// The disk whose bandwidth io_*_mib_per_s limits; nil: those two are not enforced.
    var ioDevice: String?
    var usage: CgroupUsage?
    var address: String?

    enum CodingKeys: String, CodingKey {
        case id, name, state, services, settings, limits, usage, network
        case createdAt = "created_at"
        case lastError = "last_error"
    }

    struct Limits: Encodable {
        var memoryMaxMiB: Int?, memoryHighMiB: Int?, cpus: Double?, pidsMax: Int?
        var ioDevice: String?, ioReadMiBps: Int?, ioWriteMiBps: Int?
        enum CodingKeys: String, CodingKey {
            case cpus; case memoryMaxMiB = "memory_max_mib", memoryHighMiB = "memory_high_mib", pidsMax = "pids_max"
            case ioDevice = "io_device", ioReadMiBps = "io_read_mib_per_s", ioWriteMiBps = "io_write_mib_per_s"
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(memoryMaxMiB, forKey: .memoryMaxMiB)
            try c.encode(memoryHighMiB, forKey: .memoryHighMiB)
            try c.encode(cpus, forKey: .cpus)
            try c.encode(pidsMax, forKey: .pidsMax)
            // The disk limits exist only with a disk to apply them to: null says "not enforced".
            try c.encode(ioDevice, forKey: .ioDevice)
            try c.encode(ioDevice == nil ? nil : ioReadMiBps, forKey: .ioReadMiBps)
            try c.encode(ioDevice == nil ? nil : ioWriteMiBps, forKey: .ioWriteMiBps)
        }
    }

    struct Usage: Encodable {
        var u: CgroupUsage
        enum CodingKeys: String, CodingKey {
            case memoryCurrent = "memory_current_bytes", memoryPeak = "memory_peak_bytes", memoryHigh = "memory_high_events"
            case memoryMax = "memory_max_events", oomKills = "oom_kills", cpuUsage = "cpu_usage_usec"
            case throttled = "cpu_throttled_periods", pids = "pids_current"
            case ioRead = "io_read_bytes", ioWrite = "io_write_bytes"
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(u.memoryCurrent, forKey: .memoryCurrent)
            try c.encode(u.memoryPeak, forKey: .memoryPeak)
            try c.encode(u.memoryHighEvents, forKey: .memoryHigh)
            try c.encode(u.memoryMaxEvents, forKey: .memoryMax)
            try c.encode(u.oomKills, forKey: .oomKills)
            try c.encode(u.cpuUsageMicros, forKey: .cpuUsage)
            try c.encode(u.cpuThrottledPeriods, forKey: .throttled)
            try c.encode(u.pidsCurrent, forKey: .pids)
            try c.encode(u.ioReadBytes, forKey: .ioRead)
            try c.encode(u.ioWriteBytes, forKey: .ioWrite)
        }
    }

    struct Network: Encodable {
        var mode: String
        var address: String?
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(mode, forKey: .mode)
            try c.encode(address, forKey: .address)
        }
        enum CodingKeys: String, CodingKey { case mode, address }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(name, forKey: .name)
        try c.encode(state, forKey: .state)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(lastError, forKey: .lastError)   // explicit null, never missing
        try c.encode(services, forKey: .services)
        try c.encode(settings, forKey: .settings)
        if limitsEnforced {
            try c.encode(Limits(memoryMaxMiB: settings.memoryMaxMiB, memoryHighMiB: settings.memoryHighMiB,
                                cpus: settings.cpus, pidsMax: settings.pidsMax, ioDevice: ioDevice,
                                ioReadMiBps: settings.ioReadMiBps, ioWriteMiBps: settings.ioWriteMiBps), forKey: .limits)
        } else {
            try c.encode("unavailable", forKey: .limits)
        }
        try c.encode(usage.map(Usage.init), forKey: .usage)
        try c.encode(Network(mode: settings.network ?? "none", address: address), forKey: .network)
    }
}

enum InstanceName {
    /// 1–40 characters of [a-z0-9-], starting with a letter: it becomes the hostname.
    static func validate(_ name: String) throws {
        let bytes = Array(name.utf8)
        let ok = (1...40).contains(bytes.count) && (97...122).contains(bytes[0])
            && bytes.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 45 }
        guard ok else {
            throw APIError.badRequest("invalid_name",
                "An instance name is 1 to 40 characters of a-z, 0-9 and '-', starting with a letter.")
        }
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
    /// The instance-wide seccomp filter, compiled once.
    let seccomp: [UInt8]
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
        seccomp = disabled.contains("seccomp") ? [] : try SeccompProfile.instance.build()
        mountExtras = MountPlan.loadedLibraryDirsOutsideSystem()
    }

    /// First host id of an instance's range. Slots start far above the ids of host users and
    /// the usual subuid ranges.
    static func idBase(slot: Int64) -> UInt32 { 0x1000_0000 + UInt32(slot) * SandboxPolicy.idRangeSize }
    static func agentHostUID(slot: Int64) -> UInt32 { idBase(slot: slot) + ServiceCatalog.agentUID }

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
                let owner = Self.agentHostUID(slot: record.idSlot)
                chown(paths.home(record.id), owner, owner)
                chmod(paths.home(record.id), 0o700)
            }
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
        do {
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
        let base = Self.idBase(slot: record.idSlot)
        HomeOwnership.adopt(home, idBase: base, agentUID: Self.agentHostUID(slot: record.idSlot))
        let sizes = TmpfsSizes(shmMiB: settings.shmMiB ?? 512, tmpMiB: settings.tmpMiB ?? 512)
        var plan = MountPlan(homeSource: home, sizes: sizes, extraReadOnly: mountExtras)
        plan.stageDir = paths.stage
        if baseRoot != nil {
            let upper = paths.upper(record.id), work = paths.work(record.id)
            for dir in [paths.instanceDir(record.id) + "/root", upper, work] {
                let rc = FileSystem.makeDirectories(dir, mode: 0o755)
                guard rc == 0 else { throw StartError.storage("cannot create \(dir): \(FileSystem.errorText(rc))") }
            }
            // Root inside the instance owns its layer; the work dir must start out empty.
            FileSystem.removeTree(work)
            mkdir(work, 0o700)
            for dir in [paths.instanceDir(record.id) + "/root", upper, work] { chown(dir, base, base) }
            plan.root = .image(upper: upper, work: work)
        }
        return LaunchRequest(
            hostname: record.name, stageDir: paths.stage, mounts: plan.operations(), execFD: initExecutable,
            arguments: ["claworc-init", "__init"],
            environment: ["PATH=/usr/bin:/bin", "CLAWORC_INSTANCE=\(record.name)"]
                + (disabled.contains("seccomp") ? ["CLAWORC_UNSAFE_NO_SECCOMP=1"] : [])
                + ["CLAWORC_SERVICES=\(services)"],
            controlFD: -1, stdioFD: -1,
            policy: SandboxPolicy(idBase: base, seccomp: seccomp))
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
        if let runtime = runtimes.removeValue(forKey: id) {
            let outcome = try await Blocking.run { Self.terminate(runtime.process) }
            release(id, runtime)
            logger.info("instance stopped", metadata: ["instance": "\(id)", "outcome": "\(outcome)"])
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
        FileSystem.removeTree(paths.instanceDir(id))
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
        for record in all where record.state != .stopped {
            try? store.setState(record.id, .stopped, lastError: record.state == .failed ? record.lastError : nil)
        }
        for record in all where record.autostart {
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

/// Keeps a home's files owned by ids of its instance's range.
enum HomeOwnership {
    /// Shifts every file whose owner lies outside [idBase, idBase + 65536) into the range
    /// (id n becomes idBase + n; ids too large to map become the agent). Homes created before
    /// user namespaces, or restored from elsewhere, come out right; a correct home is left
    /// untouched after one stat.
    static func adopt(_ home: String, idBase: UInt32, agentUID: UInt32) {
        var st = stat()
        guard lstat(home, &st) == 0, st.st_uid != agentUID || st.st_gid != agentUID else { return }
        walk(home, idBase: idBase, agentUID: agentUID)
    }

    private static func shifted(_ id: UInt32, base: UInt32, agent: UInt32) -> UInt32 {
        if id >= base && id < base + SandboxPolicy.idRangeSize { return id }
        return id < SandboxPolicy.idRangeSize ? base + id : agent
    }

    private static func walk(_ path: String, idBase: UInt32, agentUID: UInt32) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        let mode = st.st_mode
        lchown(path, shifted(st.st_uid, base: idBase, agent: agentUID), shifted(st.st_gid, base: idBase, agent: agentUID))
        // chown clears set-id bits; put the permission bits back as they were.
        if (mode & S_IFMT) != S_IFLNK { chmod(path, mode & 0o7777) }
        guard (mode & S_IFMT) == S_IFDIR, let dir = opendir(path) else { return }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(dir)
        for name in names { walk(path + "/" + name, idBase: idBase, agentUID: agentUID) }
    }
}
