import CSandbox
import FoundationEssentials
import Glibc
import Sandbox

/// Installs an OpenClaw bundle (a .tar.gz of an npm install prefix: `bin/openclaw`,
/// `lib/node_modules/openclaw/…`, optionally `bin/node`) under `<data-dir>/agent/bundles/<version>`.
///
/// The archive comes from an admin but is still untrusted input to a root process, so:
/// - only regular files, directories and symlinks; devices, fifos and hard links are refused;
/// - every path is relative, without `..`, and is created below a directory descriptor with
///   `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, never through a symlink of the archive;
/// - a symlink's target must stay inside the bundle, and symlinks are made last;
/// - set-id bits are dropped; files are 0644 or 0755, owned by root;
/// - sizes are bounded (each member, the total, the member count);
/// - it is unpacked into a fresh staging directory and renamed into place only when complete
///   and recognised (its version read from `lib/node_modules/openclaw/package.json`); anything
///   else removes the staging directory: a refused bundle leaves nothing behind.
struct BundleInstaller {
    struct Limits {
        var totalBytes: Int64 = 2 << 30
        var memberBytes: Int64 = 1 << 30
        var members = 200_000
    }

    struct Installed: Equatable {
        var version: String
        var hasNode: Bool
        var bytes: Int64
    }

    let directory: String   // <data-dir>/agent/bundles
    var limits = Limits()

    /// Unpacks the .tar.gz read from `fd` and returns what was installed.
    func install(from fd: Int32) throws -> Installed {
        guard FileSystem.makeDirectories(directory, mode: 0o755) == 0 else {
            throw BundleError("storage_failed", "The bundle directory could not be created.")
        }
        let staging = directory + "/.incoming-" + Hex.encode(Secrets.randomBytes(8))
        guard mkdir(staging, 0o755) == 0 else { throw BundleError("storage_failed", "The staging directory could not be created.") }
        do {
            let root = open(staging, O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard root >= 0 else { throw BundleError("storage_failed", "The staging directory could not be opened.") }
            defer { close(root) }
            fchmod(root, 0o755)   // the daemon's umask (077) must not hide the bundle from instances
            let bytes = try unpack(TarReader(GzipFile(fd: fd)), into: root)
            let version = try Self.version(root)
            var st = stat()
            guard fstatat(root, "bin/openclaw", &st, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw BundleError.invalid("The bundle has no bin/openclaw: make it from an npm install prefix.")
            }
            let hasNode = fstatat(root, "bin/node", &st, AT_SYMLINK_NOFOLLOW) == 0
            fsync(root)
            let target = directory + "/" + version
            guard access(target, F_OK) != 0 else {
                throw BundleError("version_installed", "OpenClaw \(version) is already installed; delete it first to replace it.")
            }
            guard rename(staging, target) == 0 else { throw BundleError("storage_failed", "The bundle could not be moved into place.") }
            return Installed(version: version, hasNode: hasNode, bytes: bytes)
        } catch {
            _ = FileSystem.removeTree(staging)
            throw error
        }
    }

    private func unpack(_ reader: TarReader, into root: Int32) throws -> Int64 {
        var total: Int64 = 0
        var count = 0
        var symlinks: [(path: [String], target: String)] = []
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        while let entry = try reader.next() {
            count += 1
            guard count <= limits.members else { throw BundleError.invalid("The bundle has more than \(limits.members) members.") }
            let parts = try Self.components(entry.path)
            if parts.isEmpty, entry.kind == .directory { continue }   // "./" itself
            guard !parts.isEmpty else { throw BundleError.invalid("A member has an empty path.") }
            switch entry.kind {
            case .directory:
                try Self.makeDirectories(root, parts)
            case .file:
                guard entry.size <= limits.memberBytes else { throw BundleError.invalid("\(entry.path) is larger than \(limits.memberBytes >> 20) MiB.") }
                total += entry.size
                guard total <= limits.totalBytes else { throw BundleError.invalid("The bundle unpacks to more than \(limits.totalBytes >> 20) MiB.") }
                let dir = try Self.makeDirectories(root, Array(parts.dropLast()), keepOpen: true)
                defer { close(dir) }
                let mode: mode_t = entry.mode & 0o111 != 0 ? 0o755 : 0o644
                let out = openat(dir, parts.last!, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
                guard out >= 0 else {
                    throw errno == EEXIST ? BundleError.invalid("\(entry.path) appears twice.") : BundleError("storage_failed", "Writing \(entry.path) failed.")
                }
                defer { close(out) }
                fchmod(out, mode)   // the umask must not make an executable unreadable by the agent user
                while true {
                    let n = try buffer.withUnsafeMutableBytes { b in try reader.readContent(into: b) }
                    if n == 0 { break }
                    let written = buffer.withUnsafeBytes { Glibc.write(out, $0.baseAddress, n) }
                    guard written == n else { throw BundleError("storage_failed", "Writing \(entry.path) failed (disk full?).") }
                }
            case .symlink(let target):
                try Self.checkLink(target, from: parts)
                symlinks.append((parts, target))
            case .other(let type):
                let what = switch type {
                case UInt8(ascii: "1"): "a hard link"
                case UInt8(ascii: "3"), UInt8(ascii: "4"): "a device file"
                case UInt8(ascii: "6"): "a fifo"
                default: "an unsupported member"
                }
                throw BundleError.invalid("\(entry.path) is \(what); a bundle holds only files, folders and symlinks.")
            }
        }
        for link in symlinks {
            let dir = try Self.makeDirectories(root, Array(link.path.dropLast()), keepOpen: true)
            defer { close(dir) }
            guard symlinkat(link.target, dir, link.path.last!) == 0 else {
                throw errno == EEXIST ? BundleError.invalid("\(link.path.joined(separator: "/")) appears twice.")
                                      : BundleError("storage_failed", "A symlink could not be made.")
            }
        }
        return total
    }

    /// A member's path as components: relative, no `..`, no empty or `.` parts, no NUL.
    static func components(_ path: String) throws -> [String] {
        guard !path.hasPrefix("/") else { throw BundleError.invalid("\(path) is an absolute path.") }
        guard !path.utf8.contains(0), path.utf8.count <= 4096 else { throw BundleError.invalid("A member's path is malformed.") }
        var parts: [String] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) where part != "." {
            guard part != ".." else { throw BundleError.invalid("\(path) leads out of the bundle.") }
            guard part.utf8.count <= 255 else { throw BundleError.invalid("A member's name is longer than 255 bytes.") }
            parts.append(String(part))
        }
        return parts
    }

    /// A symlink at `parts` pointing at `target` must resolve inside the bundle (lexically:
    /// its targets are made by this installer, which follows no link while unpacking).
    static func checkLink(_ target: String, from parts: [String]) throws {
        guard !target.isEmpty, !target.hasPrefix("/"), !target.utf8.contains(0) else {
            throw BundleError.invalid("The symlink \(parts.joined(separator: "/")) points outside the bundle.")
        }
        var depth = parts.count - 1
        for part in target.split(separator: "/", omittingEmptySubsequences: true) where part != "." {
            depth += part == ".." ? -1 : 1
            guard depth >= 0 else { throw BundleError.invalid("The symlink \(parts.joined(separator: "/")) points outside the bundle.") }
        }
    }

    /// Makes each missing directory of `parts` below `root`, following no symlink; returns a
    /// descriptor of the last one when asked.
    @discardableResult
    static func makeDirectories(_ root: Int32, _ parts: [String], keepOpen: Bool = false) throws -> Int32 {
        var dir = dup(root)
        for part in parts {
            if mkdirat(dir, part, 0o755) != 0 && errno != EEXIST {
                close(dir)
                throw BundleError("storage_failed", "A folder of the bundle could not be made.")
            }
            let next = csbx_openat2(dir, part, O_DIRECTORY | O_RDONLY, 0, UInt64(CSBX_RESOLVE_BENEATH | CSBX_RESOLVE_NO_SYMLINKS))
            close(dir)
            guard next >= 0 else { throw BundleError.invalid("\(parts.joined(separator: "/")) goes through something that is not a folder.") }
            fchmod(next, 0o755)   // as the root: readable by the instances' agent user despite the umask
            dir = next
        }
        if keepOpen { return dir }
        close(dir)
        return -1
    }

    /// The version npm wrote into the package's manifest: a short, plain string (it names a
    /// directory).
    static func version(_ root: Int32) throws -> String {
        struct Manifest: Decodable { var name: String?; var version: String }
        let fd = csbx_openat2(root, "lib/node_modules/openclaw/package.json", O_RDONLY, 0,
                              UInt64(CSBX_RESOLVE_BENEATH | CSBX_RESOLVE_NO_SYMLINKS))
        guard fd >= 0 else { throw BundleError.invalid("The bundle has no lib/node_modules/openclaw/package.json: it is not an OpenClaw install prefix.") }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 256 * 1024)
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0, let manifest = try? JSONDecoder().decode(Manifest.self, from: Data(bytes[0..<n])) else {
            throw BundleError.invalid("OpenClaw's package.json could not be read.")
        }
        let version = manifest.version
        guard (1...64).contains(version.utf8.count), version.first != ".",
              version.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 122) || $0 == 46 || $0 == 45 || $0 == 43 })
        else { throw BundleError.invalid("OpenClaw's package.json has an unusable version.") }
        return version
    }
}
