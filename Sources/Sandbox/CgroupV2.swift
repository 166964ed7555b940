import CSandbox
import Glibc

/// Resource limits of one instance, enforced through cgroup v2.
public struct CgroupLimits: Sendable, Equatable {
    public var memoryMaxBytes: UInt64
    public var memoryHighBytes: UInt64
    /// CPU time per period, as a number of CPUs (1.5 = 150 ms every 100 ms).
    public var cpus: Double
    public var pidsMax: Int
    /// Bandwidth on the disk holding the instance's storage; nil where the io controller or
    /// the disk is unavailable.
    public var io: IOLimit?

    public init(memoryMaxBytes: UInt64, memoryHighBytes: UInt64, cpus: Double, pidsMax: Int, io: IOLimit? = nil) {
        self.memoryMaxBytes = memoryMaxBytes
        self.memoryHighBytes = memoryHighBytes
        self.cpus = cpus
        self.pidsMax = pidsMax
        self.io = io
    }

    var files: [(String, String)] {
        let period = 100_000
        let quota = max(1000, Int((cpus * Double(period)).rounded()))
        var files = [
            ("memory.max", String(memoryMaxBytes)),
            ("memory.high", String(memoryHighBytes)),
            ("cpu.max", "\(quota) \(period)"),
            ("pids.max", String(pidsMax)),
        ]
        if let io { files.append(("io.max", io.line)) }
        return files
    }
}

/// One io.max line: bytes per second read and written on one disk (nil: unlimited).
public struct IOLimit: Sendable, Equatable {
    public var device: String
    public var readBytesPerSecond: UInt64?
    public var writeBytesPerSecond: UInt64?

    public init(device: String, readBytesPerSecond: UInt64?, writeBytesPerSecond: UInt64?) {
        self.device = device
        self.readBytesPerSecond = readBytesPerSecond
        self.writeBytesPerSecond = writeBytesPerSecond
    }

    var line: String {
        "\(device) rbps=\(readBytesPerSecond.map(String.init) ?? "max") wbps=\(writeBytesPerSecond.map(String.init) ?? "max")"
    }
}

/// Live counters of an instance's cgroup.
public struct CgroupUsage: Sendable, Equatable {
    public var memoryCurrent: UInt64
    public var memoryPeak: UInt64?
    public var memoryHighEvents: UInt64
    public var memoryMaxEvents: UInt64
    public var oomKills: UInt64
    public var cpuUsageMicros: UInt64
    public var cpuThrottledPeriods: UInt64
    public var pidsCurrent: UInt64
    /// Bytes read and written on block devices (io.stat); nil without the io controller.
    public var ioReadBytes: UInt64?
    public var ioWriteBytes: UInt64?
}

/// The appliance's cgroup v2 tree:
///
///     <root>/claworc/daemon            the daemon itself (a leaf: no-internal-process rule)
///     <root>/claworc/instances/<id>    one per running instance, limits set before launch
///
/// where <root> is the cgroup the daemon was started in. Or, given a parent (`--cgroup-parent`,
/// a second delegated unit's cgroup under systemd):
///
///     <parent>/idle                    whatever the parent held (its unit's placeholder process)
///     <parent>/claworc/instances/<id>
///
/// and the daemon stays where it was started, in a cgroup with no controllers enabled below
/// it, so that systemd can put a restarted daemon back into its unit's cgroup (which the
/// no-internal-process rule forbids once a cgroup delegates controllers to children).
/// On a host whose cgroup v2 tree lacks the controllers (hybrid or v1 hosts), `reason` says
/// why, and instances run without limits.
public final class CgroupV2: @unchecked Sendable {
    public static let wantedControllers = ["cpu", "memory", "pids", "io"]

    public let base: String?
    public let reason: String?
    public let controllers: [String]

    public var available: Bool { base != nil }

    /// Detects the host's layout and, where possible, sets up the tree (moving the daemon into
    /// its leaf when there is no `parent`).
    public init(mountPoint: String = "/sys/fs/cgroup", selfCgroupFile: String = "/proc/self/cgroup", parent: String? = nil) {
        guard csbx_fs_magic(mountPoint) == 0x6367_7270 else {
            (base, reason, controllers) = (nil, "\(mountPoint) is not a cgroup v2 hierarchy (a hybrid or v1 host)", [])
            return
        }
        let root: String
        if let parent {
            root = mountPoint + parent
            guard FileSystem.isDirectory(root) else {
                (base, reason, controllers) = (nil, "the cgroup --cgroup-parent names, \(root), does not exist", [])
                return
            }
        } else {
            guard let text = FileSystem.readText(selfCgroupFile),
                  let line = text.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) else {
                (base, reason, controllers) = (nil, "the daemon's own cgroup v2 path is unknown", [])
                return
            }
            var own = String(line.dropFirst(3))
            if own == "/" { own = "" }
            // A restarted daemon already sits in <root>/claworc/daemon.
            root = mountPoint + (own.hasSuffix("/claworc/daemon") ? String(own.dropLast("/claworc/daemon".count)) : own)
        }
        let available = (FileSystem.readText(root + "/cgroup.controllers") ?? "")
            .split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        let usable = Self.wantedControllers.filter { available.contains($0) }
        guard ["cpu", "memory", "pids"].allSatisfy(usable.contains) else {
            (base, reason, controllers) = (nil, "the cgroup v2 tree at \(root) lacks the memory, cpu or pids controller (has: \(available.joined(separator: " ")))", [])
            return
        }
        let base = root + "/claworc"
        let enable = usable.map { "+" + $0 }.joined(separator: " ")
        // Explicit modes: the daemon's umask is 0o077, and an instance reads its own cgroup's
        // files (through its cgroup namespace) as an unprivileged id.
        for dir in [base, base + "/instances"] where mkdir(dir, 0o755) == 0 { chmod(dir, 0o755) }
        // <root> must hold no process before it may enable controllers for its children.
        if let failure = parent == nil ? Self.moveSelf(into: base + "/daemon") : Self.moveAll(from: root, into: root + "/idle") {
            (self.base, reason, controllers) = (nil, failure, [])
            return
        }
        for dir in [root, base, base + "/instances"] where !Self.write(dir + "/cgroup.subtree_control", enable) {
            let why = errno == EBUSY ? "other processes share the cgroup \(root); give the daemon a delegated cgroup of its own (systemd: Delegate=yes)"
                                     : FileSystem.errorText(errno)
            (self.base, reason, controllers) = (nil, "cannot enable \(enable) in \(dir): \(why)", [])
            return
        }
        (self.base, reason, controllers) = (base, nil, usable)
    }

    /// The daemon leaves <root> for its leaf; nil, or why it could not.
    private static func moveSelf(into leaf: String) -> String? {
        if mkdir(leaf, 0o755) == 0 { chmod(leaf, 0o755) }
        return write(leaf + "/cgroup.procs", "0") ? nil : "cannot move the daemon into \(leaf): \(FileSystem.errorText(errno))"
    }

    /// Moves every process of `group` (a unit's placeholder) into the leaf `into`.
    private static func moveAll(from group: String, into leaf: String) -> String? {
        if mkdir(leaf, 0o755) == 0 { chmod(leaf, 0o755) }
        let pids = (FileSystem.readText(group + "/cgroup.procs") ?? "").split(separator: "\n")
        for pid in pids where !write(leaf + "/cgroup.procs", String(pid)) && errno != ESRCH {
            return "cannot move process \(pid) out of \(group) into \(leaf): \(FileSystem.errorText(errno))"
        }
        return nil
    }

    public func instancePath(_ id: Int64) -> String? { base.map { "\($0)/instances/\(id)" } }

    /// Creates the instance's cgroup with its limits and returns an open directory fd for
    /// CLONE_INTO_CGROUP (the init is born inside it; no window in the daemon's group).
    public func prepare(_ id: Int64, limits: CgroupLimits) throws(LaunchError) -> Int32 {
        guard let path = instancePath(id) else { return -1 }
        if FileSystem.isDirectory(path) { destroy(id) }   // left over by a crash
        guard mkdir(path, 0o755) == 0 else { throw LaunchError(stage: "cgroup", errno: errno, detail: path) }
        chmod(path, 0o755)
        for (file, value) in limits.files where !Self.write(path + "/" + file, value) {
            let e = errno
            rmdir(path)
            throw LaunchError(stage: "cgroup", errno: e, detail: "\(file) = \(value)")
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            rmdir(path)
            throw LaunchError(stage: "cgroup", errno: e, detail: path)
        }
        return fd
    }

    /// Applies new limits to a running instance.
    @discardableResult
    public func update(_ id: Int64, limits: CgroupLimits) -> Bool {
        guard let path = instancePath(id), FileSystem.isDirectory(path) else { return false }
        return limits.files.allSatisfy { Self.write(path + "/" + $0.0, $0.1) }
    }

    public func usage(_ id: Int64) -> CgroupUsage? {
        guard let path = instancePath(id), FileSystem.isDirectory(path) else { return nil }
        let events = Self.keyed(path + "/memory.events")
        let io = controllers.contains("io") ? Self.ioTotals(path + "/io.stat") : nil
        let cpu = Self.keyed(path + "/cpu.stat")
        return CgroupUsage(
            memoryCurrent: Self.number(path + "/memory.current") ?? 0,
            memoryPeak: Self.number(path + "/memory.peak"),
            memoryHighEvents: events["high"] ?? 0, memoryMaxEvents: events["max"] ?? 0,
            oomKills: events["oom_kill"] ?? 0,
            cpuUsageMicros: cpu["usage_usec"] ?? 0, cpuThrottledPeriods: cpu["nr_throttled"] ?? 0,
            pidsCurrent: Self.number(path + "/pids.current") ?? 0,
            ioReadBytes: io?.read, ioWriteBytes: io?.written)
    }

    /// Sums io.stat over every device: "MAJ:MIN rbytes=N wbytes=N rios=N ...".
    static func ioTotals(_ path: String) -> (read: UInt64, written: UInt64)? {
        guard let text = FileSystem.readText(path) else { return nil }
        var read: UInt64 = 0, written: UInt64 = 0
        for field in text.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            if field.hasPrefix("rbytes="), let v = UInt64(field.dropFirst(7)) { read += v }
            if field.hasPrefix("wbytes="), let v = UInt64(field.dropFirst(7)) { written += v }
        }
        return (read, written)
    }

    /// Kills whatever is left in the instance's cgroup and removes it.
    public func destroy(_ id: Int64) {
        guard let path = instancePath(id), FileSystem.isDirectory(path) else { return }
        if !Self.write(path + "/cgroup.kill", "1") {
            // Kernels before 5.14: signal each process.
            for pid in (FileSystem.readText(path + "/cgroup.procs") ?? "").split(separator: "\n") {
                if let p = Int32(pid) { kill(p, SIGKILL) }
            }
        }
        // rmdir succeeds once the last process is gone; the kill is asynchronous.
        var fd = open(path + "/cgroup.events", O_RDONLY | O_CLOEXEC)
        for _ in 0..<200 {
            if rmdir(path) == 0 || errno == ENOENT { break }
            guard errno == EBUSY, fd >= 0 else { break }
            var pfd = pollfd(fd: fd, events: Int16(POLLPRI), revents: 0)
            _ = poll(&pfd, 1, 10)   // cgroup.events signals "populated 0"
            close(fd)
            fd = open(path + "/cgroup.events", O_RDONLY | O_CLOEXEC)
        }
        if fd >= 0 { close(fd) }
    }

    static func write(_ path: String, _ value: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return value.withCString { Glibc.write(fd, $0, strlen($0)) } == value.utf8.count
    }

    static func number(_ path: String) -> UInt64? {
        guard let text = FileSystem.readText(path) else { return nil }
        return UInt64(text.split(separator: "\n").first ?? "")
    }

    static func keyed(_ path: String) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for line in (FileSystem.readText(path) ?? "").split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let v = UInt64(parts[1]) { out[String(parts[0])] = v }
        }
        return out
    }
}
