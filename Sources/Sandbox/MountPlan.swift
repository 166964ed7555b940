import CSandbox
import Glibc

/// One step of assembling an instance's root, executed in order by the C child.
public struct MountOp: Sendable, Equatable {
    public enum Kind: Int32, Sendable {
        case mkdir = 1, file, symlink, bind, bindReadOnly, tmpfs, proc, devpts, makeReadOnly
        case maskFile, maskDirectory, bindSelfReadOnly, sysfs, cgroup2, overlay, attachPassed
    }
    public var kind: Kind
    public var source: String?
    public var target: String
    public var data: String?
    public var flags: UInt = 0
    public var mode: UInt32 = 0o755
    /// A failure of an optional op is ignored (cgroup2 on a host without it).
    public var optional = false

    public init(_ kind: Kind, _ target: String, source: String? = nil, data: String? = nil,
                flags: UInt = 0, mode: UInt32 = 0o755, optional: Bool = false) {
        self.kind = kind
        self.target = target
        self.source = source
        self.data = data
        self.flags = flags
        self.mode = mode
        self.optional = optional
    }
}

/// Sizes of the memory-backed filesystems inside an instance.
public struct TmpfsSizes: Sendable {
    public var shmMiB: Int
    public var tmpMiB: Int
    public var runMiB: Int
    public init(shmMiB: Int = 512, tmpMiB: Int = 512, runMiB: Int = 64) {
        self.shmMiB = shmMiB
        self.tmpMiB = tmpMiB
        self.runMiB = runMiB
    }
}

/// Builds the mount table of the `host` root mode: the host's system directories bound
/// read-only, a private /proc, a minimal /dev, memory-backed /tmp and /run, and the
/// instance's persistent home as the only writable disk.
public struct MountPlan: Sendable {
    /// Where the persistent home appears inside every instance.
    public static let homePath = "/home/claworc"
    /// Chromium's own persistent home (its profile and NSS database): a uid of its own owns it,
    /// so the agent can neither write it nor plant code Chromium would load from it.
    public static let browserHomePath = "/home/browser"
    /// Image mode: the read-only tree of host files the init is exec'd from (see initRoot).
    public static let initRootPath = "/run/claworc/init-root"
    /// Where the init writes its services' log files: a host directory only the instance's
    /// root may write (see logsSource).
    public static let logsPath = "/run/claworc/logs"
    static let hostSystemDirs = ["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]
    static let devices = ["null", "zero", "full", "random", "urandom", "tty"]
    static let maskedProcFiles = ["kcore", "keys", "key-users", "timer_list", "sched_debug", "kallsyms",
                                  "sysrq-trigger", "latency_stats", "kpagecount", "kpageflags", "kpagecgroup"]
    static let maskedProcDirs = ["acpi", "scsi", "firmware", "asound"]
    /// Firmware tables (ACPI, EFI variables, memory map) and power-capping counters (a side
    /// channel on what other tenants compute).
    static let maskedSysDirs = ["firmware", "devices/virtual/powercap"]
    static let readOnlyProcDirs = ["sys", "bus", "fs", "irq"]

    /// `host`: the host's system directories, read-only. `image`: an overlay of a shared base
    /// root tree (id-mapped, read-only) and the instance's own upper layer, so what is
    /// installed inside persists while the base stays untouched.
    public enum Root: Sendable, Equatable {
        case host
        case image(upper: String, work: String)
    }

    public var homeSource: String
    public var browserHomeSource: String?
    /// The host directory bound at logsPath (0700, owned by the instance's root), if any.
    public var logsSource: String?
    /// The active OpenClaw bundle (a host directory), bound read-only at agentBundlePath; nil
    /// when none is installed (the agent service then fails with the remedy).
    public var agentBundleSource: String?
    public static let agentBundlePath = "/opt/openclaw"
    public var root: Root = .host
    /// Where the launcher assembles the root (needed to name the overlay's lower layer).
    public var stageDir: String = ""
    public var sizes: TmpfsSizes
    /// Host directories outside the system dirs that the init binary needs (for example the
    /// Swift runtime of a development build), bound read-only at the same path.
    public var extraReadOnly: [String]

    public init(homeSource: String, browserHomeSource: String? = nil, sizes: TmpfsSizes = TmpfsSizes(),
                extraReadOnly: [String] = []) {
        self.homeSource = homeSource
        self.browserHomeSource = browserHomeSource
        self.sizes = sizes
        self.extraReadOnly = extraReadOnly
    }

    static let lowerMountPoint = "/.claworc-base"

    /// Where the loader of the init finds its interpreter, libraries and ld.so.preload: in
    /// host mode the new root itself (nothing in it is the instance's); in image mode a
    /// read-only tree of the host's system directories, since the overlay root is the
    /// instance's to write.
    public var initRoot: String? {
        if case .image = root { return Self.initRootPath }
        return nil
    }

    /// The host's system directories below `prefix`, read-only (symlinks as they are).
    private func hostSystemTree(under prefix: String, including: [String]) -> [MountOp] {
        var ops: [MountOp] = []
        for dir in including {
            if let link = FileSystem.symlinkTarget(dir) {
                ops.append(MountOp(.symlink, prefix + dir, source: link))
            } else if FileSystem.isDirectory(dir) {
                ops.append(MountOp(.mkdir, prefix + dir))
                ops.append(MountOp(.bindReadOnly, prefix + dir, source: dir, flags: UInt(MS_NODEV)))
            }
        }
        return ops
    }

    public func operations() -> [MountOp] {
        let nosuidNodev = UInt(MS_NOSUID) | UInt(MS_NODEV)
        var ops: [MountOp] = []
        switch root {
        case .host:
            ops += hostSystemTree(under: "", including: Self.hostSystemDirs)
        case .image(let upper, let work):
            // The passed, id-mapped base lands in the staging tmpfs; the overlay then covers
            // the staging root and keeps its own reference to the base.
            ops.append(MountOp(.attachPassed, Self.lowerMountPoint))
            ops.append(MountOp(.makeReadOnly, Self.lowerMountPoint))
            ops.append(MountOp(.overlay, "/", data: "lowerdir=\(stageDir)\(Self.lowerMountPoint),upperdir=\(upper),workdir=\(work),userxattr",
                               flags: UInt(MS_NODEV)))
        }
        for dir in extraReadOnly where FileSystem.isDirectory(dir) {
            ops.append(MountOp(.mkdir, dir))
            ops.append(MountOp(.bindReadOnly, dir, source: dir, flags: nosuidNodev))
        }
        ops.append(MountOp(.mkdir, "/proc"))
        ops.append(MountOp(.proc, "/proc"))
        // As the container runtimes do: kernel memory, keys and timers stay hidden, the
        // kernel's knobs stay read-only.
        // A mask of something the host has must apply, or the launch fails: only what this
        // kernel lacks may be skipped.
        for file in Self.maskedProcFiles {
            ops.append(MountOp(.maskFile, "/proc/\(file)", source: "/dev/null", optional: !FileSystem.exists("/proc/\(file)")))
        }
        for dir in Self.maskedProcDirs {
            ops.append(MountOp(.maskDirectory, "/proc/\(dir)", optional: !FileSystem.exists("/proc/\(dir)")))
        }
        for dir in Self.readOnlyProcDirs {
            ops.append(MountOp(.bindSelfReadOnly, "/proc/\(dir)", optional: dir != "sys"))
        }
        ops.append(MountOp(.mkdir, "/sys"))
        ops.append(MountOp(.sysfs, "/sys"))
        for dir in Self.maskedSysDirs {
            ops.append(MountOp(.maskDirectory, "/sys/\(dir)", optional: !FileSystem.exists("/sys/\(dir)")))
        }
        // Only the instance's own cgroup subtree is visible (its cgroup namespace), read-only.
        ops.append(MountOp(.cgroup2, "/sys/fs/cgroup", optional: true))

        ops.append(MountOp(.mkdir, "/dev"))
        ops.append(MountOp(.tmpfs, "/dev", data: "mode=0755,size=64k", flags: UInt(MS_NOSUID) | UInt(MS_NOEXEC)))
        for dev in Self.devices {
            ops.append(MountOp(.file, "/dev/\(dev)", mode: 0o666))
            ops.append(MountOp(.bind, "/dev/\(dev)", source: "/dev/\(dev)"))
        }
        ops.append(MountOp(.mkdir, "/dev/pts"))
        ops.append(MountOp(.devpts, "/dev/pts", data: "newinstance,ptmxmode=0666,mode=0620"))
        ops.append(MountOp(.symlink, "/dev/ptmx", source: "pts/ptmx"))
        ops.append(MountOp(.mkdir, "/dev/shm"))
        ops.append(MountOp(.tmpfs, "/dev/shm", data: "mode=1777,size=\(sizes.shmMiB)m",
                           flags: nosuidNodev))
        ops.append(MountOp(.symlink, "/dev/fd", source: "/proc/self/fd"))
        ops.append(MountOp(.symlink, "/dev/stdin", source: "/proc/self/fd/0"))
        ops.append(MountOp(.symlink, "/dev/stdout", source: "/proc/self/fd/1"))
        ops.append(MountOp(.symlink, "/dev/stderr", source: "/proc/self/fd/2"))
        ops.append(MountOp(.makeReadOnly, "/dev"))

        ops.append(MountOp(.mkdir, "/tmp"))
        ops.append(MountOp(.tmpfs, "/tmp", data: "mode=1777,size=\(sizes.tmpMiB)m", flags: nosuidNodev))
        ops.append(MountOp(.mkdir, "/run"))
        ops.append(MountOp(.tmpfs, "/run", data: "mode=0755,size=\(sizes.runMiB)m", flags: nosuidNodev))
        if let initRoot {
            // No /etc: the loader then reads no ld.so.preload and no ld.so.cache and searches
            // only the system library directories, all of them the host's.
            ops.append(MountOp(.mkdir, initRoot))
            ops.append(MountOp(.tmpfs, initRoot, data: "mode=0755,size=64k", flags: nosuidNodev))
            ops += hostSystemTree(under: initRoot, including: Self.hostSystemDirs.filter { $0 != "/etc" } + extraReadOnly)
            // The instance's own /proc (masks included): the Swift runtime reads the command
            // line from /proc/self/cmdline as it starts.
            ops.append(MountOp(.mkdir, initRoot + "/proc"))
            ops.append(MountOp(.bindReadOnly, initRoot + "/proc", source: stageDir + "/proc"))
            ops.append(MountOp(.makeReadOnly, initRoot))
        }
        if root == .host {
            ops.append(MountOp(.mkdir, "/var"))
            ops.append(MountOp(.symlink, "/var/tmp", source: "/tmp"))
        }

        ops.append(MountOp(.mkdir, Self.homePath))
        ops.append(MountOp(.bind, Self.homePath, source: homeSource, flags: nosuidNodev))
        if let browserHomeSource {
            // noexec: nothing in the browser's home is ever loaded as code.
            ops.append(MountOp(.mkdir, Self.browserHomePath))
            ops.append(MountOp(.bind, Self.browserHomePath, source: browserHomeSource, flags: nosuidNodev | UInt(MS_NOEXEC)))
        }
        if let agentBundleSource {
            // Read-only and without set-id or device files: the same bytes serve every instance.
            ops.append(MountOp(.mkdir, "/opt"))
            ops.append(MountOp(.mkdir, Self.agentBundlePath))
            ops.append(MountOp(.bindReadOnly, Self.agentBundlePath, source: agentBundleSource, flags: nosuidNodev))
        }
        if let logsSource {
            ops.append(MountOp(.mkdir, "/run/claworc"))
            ops.append(MountOp(.mkdir, Self.logsPath, mode: 0o700))
            ops.append(MountOp(.bind, Self.logsPath, source: logsSource, flags: nosuidNodev | UInt(MS_NOEXEC)))
        }
        // Last, in host mode: the root itself (a tmpfs of mount points) becomes read-only. In
        // image mode it is the instance's writable overlay.
        if root == .host { ops.append(MountOp(.makeReadOnly, "/")) }
        return ops
    }

    /// Image mode: places where the instance's own layer put a symbolic link on the way to a
    /// directory this plan mounts on. The launcher assembles the root before pivot_root, with
    /// the host's root still its own, so such a link (made by root inside) would lead its
    /// mkdir and mounts onto the host. Checked with the instance stopped, so nothing inside
    /// can change the layer meanwhile.
    public func linksInUpperLayer() -> [String] {
        guard case .image(let upper, _) = root else { return [] }
        let mountKinds: Set<MountOp.Kind> = [.bind, .bindReadOnly, .tmpfs, .proc, .devpts, .sysfs, .cgroup2,
                                             .maskDirectory, .maskFile, .bindSelfReadOnly]
        var overlaid = false
        var mounted: Set<String> = []
        var found: [String] = []
        for op in operations() {
            if op.kind == .overlay { overlaid = true; continue }
            guard overlaid else { continue }   // still in the staging tmpfs, not the layer
            var prefix = ""
            for part in op.target.split(separator: "/") {
                prefix += "/" + part
                if mounted.contains(prefix) { break }   // below a fresh mount: not the layer
                if FileSystem.symlinkTarget(upper + prefix) != nil {
                    if !found.contains(prefix) { found.append(prefix) }
                    break
                }
            }
            if mountKinds.contains(op.kind) { mounted.insert(op.target) }
        }
        return found
    }

    /// Directories of shared objects the running binary has loaded from outside the host
    /// system dirs. A release build (static Swift runtime) returns none.
    public static func loadedLibraryDirsOutsideSystem() -> [String] {
        guard let maps = FileSystem.readText("/proc/self/maps") else { return [] }
        var dirs: [String] = []
        for line in maps.split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let path = String(line[slash...])
            guard path.contains(".so") else { continue }
            if hostSystemDirs.contains(where: { path.hasPrefix($0 + "/") }) { continue }
            guard let cut = path.lastIndex(of: "/") else { continue }
            let dir = String(path[..<cut])
            if !dirs.contains(dir) { dirs.append(dir) }
        }
        return dirs
    }
}
