import Glibc

/// The block device a path's data lives on, as cgroup v2's io controller names it.
public enum BlockDevice {
    /// "MAJ:MIN" of the whole disk under `path` (io.max refuses partitions), or nil with the
    /// reason when the path is on no block device (tmpfs, overlay, a network filesystem).
    public static func wholeDisk(containing path: String) -> (device: String?, reason: String?) {
        var st = stat()
        guard stat(path, &st) == 0 else { return (nil, "cannot stat \(path): \(FileSystem.errorText(errno))") }
        // glibc's dev_t encoding (the major()/minor() macros Swift does not import).
        let dev = UInt64(st.st_dev)
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff)
        let minor = (dev & 0xff) | ((dev >> 12) & ~0xff)
        guard major != 0 else { return (nil, "\(path) is on a filesystem without a block device") }
        let sysfs = "/sys/dev/block/\(major):\(minor)"
        guard FileSystem.exists(sysfs) else { return (nil, "\(sysfs) does not exist") }
        guard FileSystem.exists(sysfs + "/partition") else { return ("\(major):\(minor)", nil) }
        // A partition's sysfs directory sits inside its disk's.
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard realpath(sysfs, &resolved) != nil else { return (nil, "cannot resolve \(sysfs)") }
        let partition = String(cString: resolved)
        guard let cut = partition.lastIndex(of: "/"),
              let dev = FileSystem.readText(String(partition[..<cut]) + "/dev")?.split(separator: "\n").first,
              dev.contains(":") else {
            return (nil, "cannot find the disk of partition \(major):\(minor)")
        }
        return (String(dev), nil)
    }
}
