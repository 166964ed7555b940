import CSandbox
import Glibc

/// What confines an instance beyond its namespaces: its id range, resource limits per
/// process, the capabilities its init keeps, and the seccomp filters every process inherits.
public struct SandboxPolicy: Sendable {
    /// First host uid/gid of the instance's 65536-id range; root inside is this id outside.
    public var idBase: UInt32
    public static let idRangeSize: UInt32 = 65536

    public var rlimits: [ResourceLimit]
    /// Capability numbers the init keeps inside its user namespace (they act only there).
    public var initCapabilities: [Int32]
    /// Compiled filters, loaded in order (SeccompProfile.instanceFilters; empty: none).
    public var seccomp: [[UInt8]]

    public init(idBase: UInt32, rlimits: [ResourceLimit] = ResourceLimit.defaults,
                initCapabilities: [Int32] = Capability.initSet, seccomp: [[UInt8]]) {
        self.idBase = idBase
        self.rlimits = rlimits
        self.initCapabilities = initCapabilities
        self.seccomp = seccomp
    }

    var idMap: String { "0 \(idBase) \(Self.idRangeSize)\n" }

    var capabilityMask: UInt64 { initCapabilities.reduce(0) { $0 | (1 << UInt64($1)) } }
}

public struct ResourceLimit: Sendable, Equatable {
    public var resource: Int32
    public var soft: UInt64
    public var hard: UInt64

    public init(_ resource: Int32, soft: UInt64, hard: UInt64) {
        self.resource = resource
        self.soft = soft
        self.hard = hard
    }

    /// Chromium wants thousands of descriptors; no core dumps leave memory on disk; NPROC is
    /// counted per user namespace, so it caps an instance's processes even without cgroups.
    public static let defaults: [ResourceLimit] = [
        ResourceLimit(Resource.nofile, soft: 8192, hard: 65536),
        ResourceLimit(Resource.core, soft: 0, hard: 0),
        ResourceLimit(Resource.nproc, soft: 4096, hard: 4096),
        ResourceLimit(Resource.msgqueue, soft: 819_200, hard: 819_200),
        ResourceLimit(Resource.memlock, soft: 8 << 20, hard: 8 << 20),
        ResourceLimit(Resource.rtprio, soft: 0, hard: 0),
    ]
}

/// Linux RLIMIT_* numbers (asm-generic), which Swift's Glibc module does not all export.
public enum Resource {
    public static let core: Int32 = 4, nproc: Int32 = 6, nofile: Int32 = 7, memlock: Int32 = 8
    public static let msgqueue: Int32 = 12, rtprio: Int32 = 14
}

public enum Capability {
    public static let chown: Int32 = 0, dacOverride: Int32 = 1, fowner: Int32 = 3, kill: Int32 = 5
    public static let setgid: Int32 = 6, setuid: Int32 = 7, setpcap: Int32 = 8, sysChroot: Int32 = 18
    /// What the init needs to start services as uid 1000 and tidy their files; all of it
    /// bounded by the instance's user namespace.
    public static let initSet: [Int32] = [chown, dacOverride, fowner, kill, setgid, setuid, setpcap]
}

public enum SeccompProfile: Int32, Sendable {
    case instance = 1
    case noNamespaces = 2
    case arguments = 3

    /// What every process of an instance inherits from the launcher: the syscall allowlist
    /// and, stacked on it, the argument checks.
    public static func instanceFilters() throws(BuildError) -> [[UInt8]] {
        [try instance.build(), try arguments.build()]
    }

    public struct BuildError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Compiles the profile to classic BPF with libseccomp.
    public func build() throws(BuildError) -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        let n = csbx_seccomp_build(rawValue, &out)
        guard n > 0, let out else {
            throw BuildError(description: "seccomp profile \(self): \(FileSystem.errorText(Int32(-n)))")
        }
        defer { free(out) }
        return Array(UnsafeBufferPointer(start: out, count: n))
    }
}

/// A sealed in-memory copy of the daemon's binary. The init is exec'd from it, so
/// /proc/<init>/exe inside an instance leads to this memfd, which nobody can write, never to the
/// binary on the host's disk.
public enum SealedExecutable {
    public static func fromSelf() throws(LaunchError) -> Int32 { try from("/proc/self/exe") }

    public static func from(_ path: String) throws(LaunchError) -> Int32 {
        let source = open(path, O_RDONLY | O_CLOEXEC)
        guard source >= 0 else { throw LaunchError(stage: "memfd", errno: errno, detail: "open \(path)") }
        defer { close(source) }
        let fd = csbx_sealed_copy(source, "claworc-init")
        guard fd >= 0 else { throw LaunchError(stage: "memfd", errno: -fd, detail: "sealed copy") }
        return fd
    }
}
