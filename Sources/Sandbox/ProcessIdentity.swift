import Glibc

/// What tells one process apart from any later one that reuses its pid: the boot it runs in
/// and its start time (clock ticks after boot, `/proc/<pid>/stat` field 22). Stored with a
/// running instance so that a restarted daemon adopts the init it launched and nothing else.
public enum ProcessIdentity {
    /// "<boot id>/<start time>", or nil when the process does not exist (or is a zombie).
    public static func of(_ pid: pid_t) -> String? {
        guard let boot = bootID, let stat = FileSystem.readText("/proc/\(pid)/stat", limit: 4096),
              let start = startTime(stat: stat) else { return nil }
        return "\(boot)/\(start)"
    }

    public static var bootID: String? {
        FileSystem.readText("/proc/sys/kernel/random/boot_id", limit: 64)?.split(separator: "\n").first.map(String.init)
    }

    /// Whether `identity` was taken during this boot of the host.
    public static func isFromThisBoot(_ identity: String) -> Bool {
        guard let boot = bootID else { return false }
        return identity.hasPrefix(boot + "/")
    }

    /// Field 22 of a stat line. The command name (field 2) may hold spaces and parentheses, so
    /// fields are counted from the last ")". Nil for a zombie: it no longer runs anything.
    static func startTime(stat: String) -> UInt64? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3), so field 22 is fields[19].
        guard fields.count > 19, fields[0] != "Z", fields[0] != "X" else { return nil }
        return UInt64(fields[19])
    }
}
