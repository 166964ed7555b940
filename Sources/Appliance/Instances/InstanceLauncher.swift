import Glibc
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

/// Turns an instance's record and settings into a launch, and runs and ends the launch
/// itself. Everything prepared once per daemon (the sealed init binary, the compiled
/// seccomp filters, the library dirs a debug build needs) lives here.
struct InstanceLauncher: Sendable {
    static let stopGraceMs: Int32 = 10_000
    static let helloTimeoutMs = 10_000

    let paths: DataPaths
    let services: Configuration.InstanceServices
    /// nil: the host's system directories (read-only); else the shared base root tree of the
    /// image mode.
    let baseRoot: String?
    /// Protections switched off by --unsafe-test-disable (the negative control only).
    let disabled: Set<Configuration.Protection>
    /// The binary the launcher execs as each instance's init: a sealed memfd copy of ours.
    let initExecutable: Int32
    /// The seccomp filters every process of an instance inherits, compiled once.
    let seccomp: [[UInt8]]
    let mountExtras: [String]

    init(paths: DataPaths, services: Configuration.InstanceServices, baseRoot: String?,
         disabled: Set<Configuration.Protection>, initProgram: String?) throws {
        self.paths = paths
        self.services = services
        self.baseRoot = baseRoot
        self.disabled = disabled
        initExecutable = try initProgram.map(SealedExecutable.from) ?? SealedExecutable.fromSelf()
        seccomp = disabled.contains(.seccomp) ? [] : try SeccompProfile.instanceFilters()
        mountExtras = MountPlan.loadedLibraryDirsOutsideSystem()
    }

    struct StorageError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// The launch of `record`: prepares its storage (homes adopted into its id range, the
    /// overlay layers in image mode) and its mount plan. The instance is not running here.
    /// `movedAside(link, newName)` is told of each symbolic link image mode moved out of the way.
    func request(for record: InstanceRecord, settings: InstanceSettings, agentBundle: String? = nil,
                 movedAside: (String, String) -> Void = { _, _ in }) throws -> LaunchRequest {
        let home = paths.home(record.id)
        guard FileSystem.isDirectory(home) else {
            throw StorageError("the instance's home \(home) is missing or not a directory")
        }
        guard let base = InstanceIDs.idBase(slot: record.idSlot) else {
            throw StorageError("the instance's id slot \(record.idSlot) lies outside 1...\(InstanceIDs.maxSlot)")
        }
        HomeOwnership.adopt(home, idBase: base, agentUID: base + ServiceCatalog.agentUID)
        let browserHome = try privateDirectory(paths.browserHome(record.id), owner: base + ServiceCatalog.browserUID)
        HomeOwnership.adopt(browserHome, idBase: base, agentUID: base + ServiceCatalog.browserUID)
        let sizes = TmpfsSizes(shmMiB: settings.shmMiB ?? 512, tmpMiB: settings.tmpMiB ?? 512)
        var plan = MountPlan(homeSource: home, browserHomeSource: browserHome, sizes: sizes, extraReadOnly: mountExtras)
        plan.stageDir = paths.stage
        plan.agentBundleSource = agentBundle
        plan.logsSource = try privateDirectory(paths.instanceDir(record.id) + "/logs", owner: base)   // services' logs
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
            // Never follow them: moved aside (kept for the instance's owner to look at), and
            // the launch makes a real directory in their place.
            for link in plan.linksInUpperLayer() {
                let aside = "\(link).claworc-moved-\(Int64(time(nil)))"
                guard rename(upper + link, upper + aside) == 0 else {
                    throw StorageError("the instance's root has a symbolic link at \(link), where the appliance mounts; it could not be moved aside: \(FileSystem.errorText(errno))")
                }
                movedAside(link, aside)
            }
        }
        var request = LaunchRequest(
            hostname: record.name, stageDir: paths.stage, mounts: plan.operations(), execFD: initExecutable,
            arguments: ["claworc-init", "__init"],
            // No crash backtracer: it would be another program loaded from the instance's root.
            environment: ["PATH=/usr/bin:/bin", "CLAWORC_INSTANCE=\(record.name)", "SWIFT_BACKTRACE=enable=no"]
                + (disabled.contains(.seccomp) ? ["CLAWORC_UNSAFE_NO_SECCOMP=1"] : [])
                + (plan.initRoot != nil ? ["CLAWORC_INIT_ROOT=1"] : [])
                + Self.benchInitTrim
                + ["CLAWORC_SERVICES=\(services.rawValue)"],
            controlFD: -1, stdioFD: -1,
            policy: SandboxPolicy(idBase: base, seccomp: seccomp))
        request.initRoot = plan.initRoot
        return request
    }

    /// bench/init_memory.py compares the init's memory with and without its idle trim: the
    /// daemon's CLAWORC_BENCH_INIT_TRIM (none, text, all) is passed on to every init.
    static let benchInitTrim: [String] = getenv("CLAWORC_BENCH_INIT_TRIM").map { ["CLAWORC_INIT_TRIM=" + String(cString: $0)] } ?? []

    /// A directory of the instance's storage that only `owner` (one of the instance's host
    /// ids) may enter. The instance is not running here, so nothing of it races these calls.
    private func privateDirectory(_ path: String, owner: UInt32, mode: mode_t = 0o700) throws -> String {
        let rc = FileSystem.makeDirectories(path, mode: mode)
        guard rc == 0 else { throw StorageError("cannot create \(path): \(FileSystem.errorText(rc))") }
        guard lchown(path, owner, owner) == 0, chmod(path, mode) == 0 else {
            throw StorageError("cannot secure \(path): \(FileSystem.errorText(errno))")
        }
        return path
    }

    /// Blocking: the launch of a prepared request as the daemon runs every start (and the
    /// launch benchmark with it): the instance's cgroup (CLONE_INTO_CGROUP), its veth and
    /// allow-list entries while the child waits for "go" (egress), the id-mapped base tree
    /// (image mode), then the init's hello. On failure the child is killed and reaped; what
    /// the host holds for the instance (cgroup, allow-list entries) is `release`d by the caller.
    func start(_ request: LaunchRequest, record: InstanceRecord, settings: InstanceSettings,
               host: InstanceHost) throws -> InstanceRuntime {
        var request = request
        var cgroupFD: Int32 = -1
        defer { if cgroupFD >= 0 { close(cgroupFD) } }
        if let cgroups = host.cgroups, cgroups.available {
            cgroupFD = try cgroups.prepare(record.id, limits: settings.cgroupLimits(ioDevice: host.ioDevice))
            request.cgroupFD = cgroupFD
        }
        let egress = settings.network == Configuration.Network.egress.rawValue ? host.network : nil
        let allow = Self.allowList(settings)
        let slot = record.idSlot
        return try Self.launch(request, logPath: paths.log(record.id), socketPath: paths.controlSocket(record.id),
                               egressAllow: egress == nil ? nil : allow,
                               hasCgroup: cgroupFD >= 0,
                               beforeGo: { pid in try egress?.attach(slot: slot, pid: pid, allow: allow) },
                               passMount: baseRoot.map { base in { pid in try IdMappedTree.make(base, for: pid) } })
    }

    /// The allow-list entries an egress instance gets: the valid ones of its settings.
    static func allowList(_ settings: InstanceSettings) -> [String] {
        (settings.egressAllow ?? []).compactMap { IPv4CIDR($0)?.description }
    }

    /// What is left on the host of an instance whose init is gone or never ran: its cgroup
    /// and its allow-list entries. Idempotent.
    static func release(id: Int64, slot: Int64, allow: [String], host: InstanceHost) {
        host.cgroups?.destroy(id)
        host.network?.detach(slot: slot, allow: allow)
    }

    /// Blocking: launch, then wait for the init's hello. On any failure the child is killed
    /// and reaped before the error is thrown. The init also gets a listener at `socketPath`
    /// (fd 4), where a daemon started later connects to take over its control.
    static func launch(_ base: LaunchRequest, logPath: String, socketPath: String, egressAllow: [String]?, hasCgroup: Bool,
                       beforeGo: (pid_t) throws -> Void, passMount: ((pid_t) throws -> Int32)?) throws -> InstanceRuntime {
        let logFD = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard logFD >= 0 else { throw StorageError("cannot open \(logPath): \(FileSystem.errorText(errno))") }
        defer { close(logFD) }
        let (channel, initEnd) = try ControlChannel.makePair()
        let listener: Int32
        do { listener = try ControlChannel.listener(path: socketPath) } catch {
            close(initEnd)
            throw error
        }
        var request = base
        request.controlFD = initEnd
        request.listenFD = listener
        request.stdioFD = logFD
        let process: SandboxProcess
        do {
            process = try Launcher.launch(request, beforeGo: beforeGo, passMount: passMount)
            close(initEnd)
            close(listener)
        } catch {
            close(initEnd)
            close(listener)
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

    /// Blocking: SIGTERM, a bounded wait for the init's clean exit, then SIGKILL. The init's
    /// death takes every process of its pid namespace with it, and its mount namespace with them.
    static func terminate(_ process: SandboxProcess) -> String {
        process.signal(SIGTERM)
        let first = process.wait(timeoutMs: stopGraceMs)
        if first != .timedOut { return "\(first)" }
        process.signal(SIGKILL)
        return "killed after \(stopGraceMs) ms: \(process.wait(timeoutMs: -1))"
    }
}
