import CSandbox
import Glibc

/// Everything needed to start one instance's init inside fresh namespaces.
public struct LaunchRequest: Sendable {
    public var hostname: String
    /// An empty host directory on which the child assembles the new root (private to its
    /// mount namespace; the host never sees anything mounted there).
    public var stageDir: String
    public var mounts: [MountOp]
    /// File descriptor of the binary to exec as the init (kept open by the caller).
    public var execFD: Int32
    public var arguments: [String]
    public var environment: [String]
    /// Becomes fd 3 of the init: its end of the control socket.
    public var controlFD: Int32
    /// Becomes fds 1 and 2 of the init.
    public var stdioFD: Int32
    /// Becomes fd 4 of the init, or -1: a listening SOCK_SEQPACKET socket bound on the host,
    /// where a restarted daemon connects to take over the control channel.
    public var listenFD: Int32 = -1
    /// nil: the host's user namespace, no filter (the first slice's behaviour, kept for tests
    /// that compare).
    public var policy: SandboxPolicy?
    /// An open cgroup directory to start the init in (CLONE_INTO_CGROUP), or -1.
    public var cgroupFD: Int32 = -1
    /// A read-only directory of the new root holding only host files, to exec the init from
    /// (MountPlan.initRoot); nil where the new root itself holds nothing the instance wrote.
    public var initRoot: String?

    public init(hostname: String, stageDir: String, mounts: [MountOp], execFD: Int32,
                arguments: [String], environment: [String], controlFD: Int32, stdioFD: Int32,
                policy: SandboxPolicy? = nil, cgroupFD: Int32 = -1) {
        self.policy = policy
        self.cgroupFD = cgroupFD
        self.hostname = hostname
        self.stageDir = stageDir
        self.mounts = mounts
        self.execFD = execFD
        self.arguments = arguments
        self.environment = environment
        self.controlFD = controlFD
        self.stdioFD = stdioFD
    }
}

public struct LaunchError: Error, CustomStringConvertible, Sendable {
    public var stage: String
    public var errno: Int32
    public var detail: String

    public var description: String {
        "sandbox launch failed at \(stage)\(detail.isEmpty ? "" : " (\(detail))"): \(FileSystem.errorText(errno))"
    }
}

/// A launched init, held through its pidfd so signals and waits can never hit a recycled pid.
public final class SandboxProcess: @unchecked Sendable {
    public let pid: pid_t
    public let pidfd: Int32

    /// False for an init a previous daemon launched: its exit status went to whoever reaped
    /// it, so `wait` reports `.exited(0)` for any end.
    public let isChild: Bool

    init(pid: pid_t, pidfd: Int32, isChild: Bool = true) {
        self.pid = pid
        self.pidfd = pidfd
        self.isChild = isChild
    }

    /// Takes hold of a running process this daemon did not launch, if `pid` is still the
    /// process `check` recognises. The check runs after the pidfd is open, so a pid recycled
    /// in between is never mistaken for it.
    public static func adopt(pid: pid_t, check: (pid_t) -> Bool) -> SandboxProcess? {
        let fd = csbx_pidfd_open(pid)
        guard fd >= 0 else { return nil }
        guard check(pid) else {
            close(fd)
            return nil
        }
        return SandboxProcess(pid: pid, pidfd: fd, isChild: false)
    }

    deinit { close(pidfd) }

    @discardableResult
    public func signal(_ sig: Int32) -> Bool { csbx_pidfd_signal(pidfd, sig) == 0 }

    public enum WaitResult: Sendable, Equatable { case exited(Int32), signaled(Int32), timedOut }

    /// Blocks up to `timeoutMs` (-1 forever) and reaps the process if it exited.
    public func wait(timeoutMs: Int32) -> WaitResult {
        var status: Int32 = 0
        let r = csbx_pidfd_wait(pidfd, timeoutMs, &status)
        if r <= 0 { return .timedOut }
        if status & 0x7f == 0 { return .exited((status >> 8) & 0xff) }
        return .signaled(status & 0x7f)
    }
}

public enum Launcher {
    static let stageNames: [Int32: String] = [
        1: "clone", 2: "sync", 3: "mount-private", 4: "root-tmpfs", 5: "mounts", 6: "pivot_root",
        7: "hostname", 8: "loopback", 9: "fds", 11: "exec", 12: "userns-maps",
        13: "identity", 14: "rlimits", 15: "capabilities", 16: "no_new_privs", 17: "seccomp",
        18: "session", 19: "init-root",
    ]

    public static let baseNamespaces: UInt64 =
        CSBX_CLONE_NEWNS | CSBX_CLONE_NEWPID | CSBX_CLONE_NEWUTS | CSBX_CLONE_NEWIPC | CSBX_CLONE_NEWNET

    /// Runs the C launcher. Blocks for the few milliseconds the child needs to reach exec.
    /// `beforeGo` runs while the child waits in its namespaces with its id maps written (the
    /// place to give it a network interface); if it throws, the child is killed and reaped.
    /// `passMount` (optional) makes a detached mount for the child, sent with "go" and
    /// attached by a `.attachPassed` op.
    public static func launch(_ request: LaunchRequest,
                              beforeGo: (pid_t) throws -> Void = { _ in },
                              passMount: ((pid_t) throws -> Int32)? = nil) throws -> SandboxProcess {
        var keep: [UnsafeMutablePointer<CChar>] = []
        defer { keep.forEach { free($0) } }
        var hookError: (any Error)?
        func cString(_ s: String?) -> UnsafePointer<CChar>? {
            guard let s else { return nil }
            let p = strdup(s)!
            keep.append(p)
            return UnsafePointer(p)
        }
        func cArray(_ items: [String]) -> [UnsafeMutablePointer<CChar>?] {
            var arr: [UnsafeMutablePointer<CChar>?] = items.map { s in
                let p = strdup(s)!
                keep.append(p)
                return p
            }
            arr.append(nil)
            return arr
        }
        let ops: [csbx_mount] = request.mounts.map { op in
            csbx_mount(kind: op.kind.rawValue, source: cString(op.source), target: cString(op.target),
                       data: cString(op.data), flags: op.flags, mode: op.mode, optional: op.optional ? 1 : 0)
        }
        let argv = cArray(request.arguments)
        let envp = cArray(request.environment)
        let policy = request.policy
        // Limits can only be lowered from inside a user namespace: never ask for more than
        // the daemon itself has.
        let limits: [csbx_rlimit] = (policy?.rlimits ?? []).map { limit in
            var current = rlimit()
            let hard = csbx_getrlimit_max(limit.resource, &current) == 0 ? min(limit.hard, UInt64(current.rlim_max)) : limit.hard
            return csbx_rlimit(resource: limit.resource, soft: min(limit.soft, hard), hard: hard)
        }
        let filters = policy?.seccomp ?? []
        var result = csbx_result()
        var namespaces = baseNamespaces
        if policy != nil { namespaces |= CSBX_CLONE_NEWUSER | CSBX_CLONE_NEWCGROUP }
        let rc: Int32 = ops.withUnsafeBufferPointer { opsBuf in
            argv.withUnsafeBufferPointer { argvBuf in
                envp.withUnsafeBufferPointer { envBuf in
                  limits.withUnsafeBufferPointer { limitsBuf in
                   Self.withBPF(filters) { bpf in
                    var spec = csbx_launch_spec()
                    spec.exec_fd = request.execFD
                    spec.argv = argvBuf.baseAddress
                    spec.envp = envBuf.baseAddress
                    spec.stage_dir = cString(request.stageDir)
                    spec.mounts = opsBuf.baseAddress
                    spec.n_mounts = Int32(opsBuf.count)
                    spec.hostname = cString(request.hostname)
                    spec.control_fd = request.controlFD
                    spec.listen_fd = request.listenFD
                    spec.stdio_fd = request.stdioFD
                    spec.namespaces = namespaces
                    spec.cgroup_fd = request.cgroupFD
                    spec.uid_map = cString(policy?.idMap)
                    spec.gid_map = cString(policy?.idMap)
                    spec.rlimits = limitsBuf.baseAddress
                    spec.n_rlimits = Int32(limitsBuf.count)
                    // The init needs CAP_SYS_CHROOT once, to leave its init root (it drops it then).
                    spec.keep_caps = (policy?.capabilityMask ?? 0)
                        | (request.initRoot != nil ? UInt64(1) << UInt64(Capability.sysChroot) : 0)
                    spec.no_new_privs = policy == nil ? 0 : 1
                    spec.filters = bpf.baseAddress
                    spec.n_filters = Int32(bpf.count)
                    spec.init_root = cString(request.initRoot)
                    spec.stage_clock = stageClock
                    guard csbx_launch_begin(&spec, &result) == 0 else { return -1 }
                    var passed: Int32 = -1
                    do {
                        try beforeGo(result.pid)
                        if let passMount { passed = try passMount(result.pid) }
                    } catch {
                        csbx_launch_abort(&result)
                        hookError = error
                        return -2
                    }
                    defer { if passed >= 0 { close(passed) } }
                    return csbx_launch_finish(&result, passed)
                   }
                  }
                }
            }
        }
        if let hookError { throw hookError }
        guard rc == 0 else {
            var detail = ""
            if result.stage == 5, Int(result.detail) < request.mounts.count {
                let op = request.mounts[Int(result.detail)]
                detail = "\(op.kind) \(op.target)"
            }
            throw LaunchError(stage: stageNames[result.stage] ?? "stage \(result.stage)",
                              errno: result.err, detail: detail)
        }
        lastTimings = (result.clone_ns, result.setup_ns)
        lastReturnedAt = result.exec_at
        if let stageClock {
            lastStages = (0..<Int(CSBX_CLOCK_POINTS.rawValue)).map { stageClock[$0] &- result.go_at }
            lastStages.append(result.exec_at &- result.go_at)
        }
        return SandboxProcess(pid: result.pid, pidfd: result.pidfd)
    }

    /// The filters as C descriptors, valid for the duration of `body`.
    private static func withBPF<R>(_ filters: [[UInt8]], _ body: (UnsafeBufferPointer<csbx_bpf>) -> R) -> R {
        func nest(_ index: Int, _ built: [csbx_bpf]) -> R {
            guard index < filters.count else { return built.withUnsafeBufferPointer(body) }
            return filters[index].withUnsafeBytes { bytes in
                nest(index + 1, built + [csbx_bpf(code: bytes.baseAddress, len: bytes.count)])
            }
        }
        return nest(0, [])
    }

    /// Nanoseconds of the last launch on this thread's behalf: clone3 + maps, child setup.
    /// For the benchmark only.
    nonisolated(unsafe) public static var lastTimings: (clone: UInt64, setup: UInt64) = (0, 0)
    /// CLOCK_MONOTONIC nanoseconds when the last launch saw the init exec'd. Benchmark only.
    nonisolated(unsafe) public static var lastReturnedAt: UInt64 = 0

    /// Benchmark only: a MAP_SHARED page the child stamps at each csbx_clock_point; then
    /// `lastStages` holds each point's nanoseconds after "go", and last the exec's EOF.
    nonisolated(unsafe) public static var stageClock: UnsafeMutablePointer<UInt64>?
    nonisolated(unsafe) public static var lastStages: [UInt64] = []
    public static let stageClockNames = ["go", "identity", "mounts", "pivot_root", "hostname+lo", "fds+rlimits",
                                         "caps+nnp", "seccomp", "exec EOF"]
}

public enum IdMappedTree {
    /// The base root tree at `path`, id-mapped into the user namespace of `pid`.
    public static func make(_ path: String, for pid: pid_t) throws(LaunchError) -> Int32 {
        let fd = csbx_idmapped_tree(path, pid)
        guard fd >= 0 else { throw LaunchError(stage: "idmapped base", errno: -fd, detail: path) }
        return fd
    }
}
