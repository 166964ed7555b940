import Glibc
import Sandbox
import Testing
@testable import Appliance

/// The daemon's walks over instance trees (removal, home ownership) on real files, as root.
@Suite(.serialized) struct HostWalkTests {
    static func file(_ path: String, owner: UInt32 = 0, mode: mode_t = 0o640) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        _ = "data\n".withCString { Glibc.write(fd, $0, 5) }
        fchown(fd, owner, owner)
        fchmod(fd, mode)
        close(fd)
    }

    static func owner(_ path: String) -> UInt32? {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_uid : nil
    }

    /// Outside files a walk must never reach, behind a symlink in the tree.
    static func outside(_ dir: TempDir) -> String {
        let path = dir.path + "/outside"
        mkdir(path, 0o700)
        for name in ["a", "b"] { file(path + "/" + name) }
        return path
    }

    @Test func removalDoesNotFollowSymlinks() {
        let dir = TempDir()
        let target = Self.outside(dir)
        let tree = dir.path + "/tree"
        FileSystem.makeDirectories(tree + "/sub/deeper")
        Self.file(tree + "/sub/file")
        symlink(target, tree + "/sub/link")
        symlink(target + "/a", tree + "/sub/deeper/filelink")
        #expect(FileSystem.removeTree(tree))
        #expect(!FileSystem.exists(tree))
        #expect(FileSystem.exists(target + "/a") && FileSystem.exists(target + "/b"))
    }

    @Test func removalDoesNotEnterAnotherMount() throws {
        let dir = TempDir()
        let tree = dir.path + "/tree"
        FileSystem.makeDirectories(tree + "/mnt")
        try #require(mount("tmpfs", tree + "/mnt", "tmpfs", 0, "size=1m") == 0)
        defer { umount2(tree + "/mnt", Int32(MNT_DETACH)) }
        Self.file(tree + "/mnt/kept")
        Self.file(tree + "/gone")
        #expect(!FileSystem.removeTree(tree), "a mount point left in the tree is reported")
        #expect(FileSystem.exists(tree + "/mnt/kept"))
        #expect(!FileSystem.exists(tree + "/gone"))
    }

    @Test func removalOfATreeDeeperThanTheWalkKeepsOpenCompletes() {
        let dir = TempDir()
        let tree = dir.path + "/tree"
        var path = tree
        for _ in 0..<(TreeWalk.maxDepth * 2 + 7) {
            path += "/d"
            mkdir(path, 0o755)
        }
        // Twice as deep as the walk keeps directories open: the rest is moved up and removed from there.
        Self.file(path + "/leaf")
        #expect(FileSystem.removeTree(tree))
        #expect(!FileSystem.exists(tree))
    }

    @Test func ownershipShiftsIdsWithoutFollowingSymlinksOrCrossingMounts() throws {
        let dir = TempDir()
        let target = Self.outside(dir)
        let home = dir.path + "/home"
        let base: UInt32 = 0x1001_0000, agent = base + 1000
        FileSystem.makeDirectories(home + "/sub/mnt")
        chown(home, 12345, 12345)
        chown(home + "/sub", 5, 5)
        Self.file(home + "/sub/mine", owner: 1000)
        Self.file(home + "/sub/big", owner: 200_000)
        Self.file(home + "/kept", owner: base + 3)
        symlink(target, home + "/sub/link")
        symlink(target + "/a", home + "/filelink")
        link(target + "/b", home + "/hardlink")   // a second name of a host file
        try #require(mount("tmpfs", home + "/sub/mnt", "tmpfs", 0, "size=1m") == 0)
        defer { umount2(home + "/sub/mnt", Int32(MNT_DETACH)) }
        Self.file(home + "/sub/mnt/other", owner: 7)

        HomeOwnership.adopt(home, idBase: base, agentUID: agent)

        #expect(Self.owner(home) == base + 12345)
        #expect(Self.owner(home + "/sub") == base + 5)
        #expect(Self.owner(home + "/sub/mine") == base + 1000)
        #expect(Self.owner(home + "/sub/big") == agent, "ids beyond the range become the agent")
        #expect(Self.owner(home + "/kept") == base + 3)
        #expect(Self.owner(home + "/sub/link") == base, "the symlink itself is shifted")
        #expect(Self.owner(target + "/a") == 0 && Self.owner(target + "/b") == 0 && Self.owner(target) == 0,
                "files behind a symlink or a hard link stay the host's")
        #expect(Self.owner(home + "/sub/mnt/other") == 7, "another mount is not entered")
    }

    @Test func idRangesEndBelowTheTopOfUIDSpace() throws {
        #expect(InstanceIDs.maxSlot == EgressNetwork.maxSlot)
        let last = try #require(InstanceIDs.idBase(slot: InstanceIDs.maxSlot))
        #expect(UInt64(last) + UInt64(SandboxPolicy.idRangeSize) < UInt64(UInt32.max))
        for slot: Int64 in [0, -1, InstanceIDs.maxSlot + 1, 70_000, Int64.max] {
            #expect(InstanceIDs.idBase(slot: slot) == nil, "slot \(slot)")
        }
    }

    @Test func theStoreRefusesASlotBeyondTheCap() throws {
        let dir = TempDir()
        let store = try SQLiteStore(path: dir.path + "/claworc.db")
        _ = try store.createInstance(name: "one", slots: 1...2) { _ in }
        _ = try store.createInstance(name: "two", slots: 1...2) { _ in }
        #expect(throws: InstanceError.noIDRangeLeft(maxSlot: 2)) { try store.createInstance(name: "three", slots: 1...2) { _ in } }
        #expect(try store.allInstances().map(\.name) == ["one", "two"])
    }

    /// A test daemon's slots start where it was told; the lowest free one above is reused.
    @Test func slotsStartAtTheFirstOfTheRange() throws {
        let dir = TempDir()
        let store = try SQLiteStore(path: dir.path + "/claworc.db")
        let a = try store.createInstance(name: "a", slots: 300...400) { _ in }
        let b = try store.createInstance(name: "b", slots: 300...400) { _ in }
        #expect(a.idSlot == 300 && b.idSlot == 301)
        try store.deleteInstance(a.id)
        #expect(try store.createInstance(name: "c", slots: 300...400) { _ in }.idSlot == 300)
    }
}
