import Glibc
import Sandbox

/// Keeps a home's files owned by ids of its instance's range.
enum HomeOwnership {
    /// Shifts every file whose owner lies outside [idBase, idBase + 65536) into the range
    /// (id n becomes idBase + n; ids too large to map become the agent). Homes created before
    /// user namespaces, or restored from elsewhere, come out right; a correct home is left
    /// untouched after one stat.
    ///
    /// The instance's own processes may be changing the tree meanwhile, so the walk goes by
    /// directory descriptors (TreeWalk) and changes owners with fchownat(AT_SYMLINK_NOFOLLOW):
    /// a directory swapped for a symlink is never followed. Set-id bits that chown clears are
    /// not restored: the home is mounted nosuid inside the instance.
    static func adopt(_ home: String, idBase: UInt32, agentUID: UInt32) {
        let top = TreeWalk.openDirectory(home)
        guard top >= 0 else { return }
        defer { close(top) }
        var st = stat()
        guard fstat(top, &st) == 0, st.st_uid != agentUID || st.st_gid != agentUID else { return }
        fchown(top, shifted(st.st_uid, idBase, agentUID), shifted(st.st_gid, idBase, agentUID))
        TreeWalk(visit: { entry in
            let uid = shifted(entry.stat.st_uid, idBase, agentUID), gid = shifted(entry.stat.st_gid, idBase, agentUID)
            // A second name of a file from outside the range may be a hard link to a host file;
            // it keeps its owner.
            let shared = !entry.isDirectory && entry.stat.st_nlink > 1
            if (uid != entry.stat.st_uid || gid != entry.stat.st_gid) && !shared {
                fchownat(entry.parent, entry.name, uid, gid, AT_SYMLINK_NOFOLLOW)
            }
            return .descend
        }).run(top: top)
    }

    static func shifted(_ id: UInt32, _ base: UInt32, _ agent: UInt32) -> UInt32 {
        if id >= base && id < base + SandboxPolicy.idRangeSize { return id }
        return id < SandboxPolicy.idRangeSize ? base + id : agent
    }
}
