import Glibc
import Testing
@testable import Sandbox

/// The mount plan decides what an instance can see; these pin the parts a security review
/// asked for that no running instance shows directly.
@Suite struct MountPlanTests {
    static func plan(_ root: MountPlan.Root = .host) -> [MountOp] {
        var plan = MountPlan(homeSource: "/data/home", browserHomeSource: "/data/browser",
                             extraReadOnly: ["/opt/swift/usr/lib/swift/linux"])
        plan.stageDir = "/data/run/stage"
        plan.root = root
        return plan.operations()
    }

    /// A mask of a file or directory this host has may not be skipped when it fails: the
    /// launch fails instead. Only what the kernel lacks is optional.
    @Test func masksOfWhatExistsAreMandatory() {
        let masks = Self.plan().filter { $0.kind == .maskFile || $0.kind == .maskDirectory }
        #expect(masks.contains { $0.target == "/sys/firmware" })
        #expect(masks.contains { $0.target == "/proc/asound" })
        #expect(masks.contains { $0.target == "/sys/devices/virtual/powercap" })
        for mask in masks {
            var st = stat()
            let exists = lstat(mask.target, &st) == 0
            #expect(mask.optional == !exists, "\(mask.target): optional \(mask.optional), exists on this host \(exists)")
        }
    }

    /// Chromium's home is its own mount, never executable.
    @Test func browserHomeIsNoexec() throws {
        let bind = try #require(Self.plan().first { $0.target == MountPlan.browserHomePath && $0.kind == .bind })
        #expect(bind.source == "/data/browser")
        #expect(bind.flags & UInt(MS_NOEXEC) != 0 && bind.flags & UInt(MS_NOSUID) != 0 && bind.flags & UInt(MS_NODEV) != 0)
    }

    /// The services' logs: a host directory bound at a fixed path, never executable; no bind
    /// without a source.
    @Test func logsAreBoundWhenGiven() throws {
        #expect(!Self.plan().contains { $0.target == MountPlan.logsPath })
        var plan = MountPlan(homeSource: "/h")
        plan.logsSource = "/data/instances/1/logs"
        let bind = try #require(plan.operations().first { $0.target == MountPlan.logsPath && $0.kind == .bind })
        #expect(bind.source == "/data/instances/1/logs")
        #expect(bind.flags & UInt(MS_NOEXEC) != 0 && bind.flags & UInt(MS_NOSUID) != 0 && bind.flags & UInt(MS_NODEV) != 0)
    }

    /// Image mode: the init's loader sees only host system directories (no /etc, so no
    /// ld.so.preload and no ld.so.cache), made read-only after they are in place. Host mode
    /// needs no separate tree.
    @Test func initRootHoldsOnlyHostFiles() throws {
        var plan = MountPlan(homeSource: "/h")
        #expect(plan.initRoot == nil)
        plan.root = .image(upper: "/u", work: "/w")
        let root = try #require(plan.initRoot)
        let ops = Self.plan(.image(upper: "/u", work: "/w")).filter { $0.target.hasPrefix(root) }
        #expect(!ops.isEmpty)
        #expect(!ops.contains { $0.target.hasPrefix(root + "/etc") })
        for op in ops where op.kind == .bind || op.kind == .bindReadOnly {
            #expect(op.kind == .bindReadOnly, "\(op.target) is writable")
        }
        #expect(ops.last?.kind == .makeReadOnly && ops.last?.target == root)
        #expect(ops.contains { $0.target == root + "/opt/swift/usr/lib/swift/linux" && $0.kind == .bindReadOnly })
    }
}
