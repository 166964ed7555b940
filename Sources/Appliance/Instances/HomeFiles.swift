import CSandbox
import Glibc
import Sandbox

/// What can go wrong with a path in an instance's home, before HTTP gives it a status.
enum FileError: Error, Equatable {
    case invalidPath(String)
    case notFound
    case outsideHome
    case notADirectory
    case isADirectory
    case exists
    case noSpace
    case failed(Int32)

    init(errno code: Int32) {
        switch code {
        case ENOENT: self = .notFound
        // openat2's RESOLVE_BENEATH answers EXDEV for a way out (an absolute symlink, a ".."
        // above the home); RESOLVE_NO_XDEV for another mount; ELOOP for a magic link.
        case EXDEV, ELOOP: self = .outsideHome
        case ENOTDIR: self = .notADirectory
        case EISDIR: self = .isADirectory
        case EEXIST, ENOTEMPTY: self = .exists
        case ENOSPC, EDQUOT: self = .noSpace
        default: self = .failed(code)
        }
    }
}

/// One entry of a folder listing.
struct FileEntry: Encodable, Sendable {
    var name: String
    var type: String   // file | dir | symlink | other
    var size: Int64
    var mtime: Int64   // seconds since the epoch
}

/// Files in an instance's persistent home, reached from the host whether the instance runs or
/// not. The instance's own processes may be changing the tree at the same moment, so every
/// path is resolved by openat2 below a descriptor of the home with RESOLVE_BENEATH (no `..`
/// or absolute symlink leads out; it fails instead), RESOLVE_NO_MAGICLINKS and RESOLVE_NO_XDEV
/// (no /proc links, no other mount), and every change is made relative to a directory
/// descriptor resolved that way: a symlink swapped in between a check and the use leads
/// nowhere. What the API creates belongs to the instance's agent user.
struct HomeFiles: Sendable {
    static let resolve = UInt64(CSBX_RESOLVE_BENEATH | CSBX_RESOLVE_NO_MAGICLINKS | CSBX_RESOLVE_NO_XDEV)

    let home: String
    let owner: uid_t

    /// `path` as the API takes it: relative to the home, "/" (or "") being the home itself.
    /// Returns its components; `..`, NUL and over-long paths are refused.
    static func components(_ path: String) throws(FileError) -> [String] {
        guard !path.utf8.contains(0), path.utf8.count <= 4096 else { throw .invalidPath("A path has no NUL bytes and at most 4096 bytes.") }
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init).filter { $0 != "." }
        guard !parts.contains("..") else { throw .invalidPath("A path may not contain '..'.") }
        guard parts.allSatisfy({ $0.utf8.count <= 255 }) else { throw .invalidPath("A file name has at most 255 bytes.") }
        return parts
    }

    private func openHome() throws(FileError) -> Int32 {
        let fd = open(home, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw FileError(errno: errno) }
        return fd
    }

    /// An fd for `parts` below the home, resolved without leaving it.
    private func resolve(_ parts: [String], flags: Int32, mode: UInt32 = 0) throws(FileError) -> Int32 {
        let top = try openHome()
        defer { close(top) }
        let fd = csbx_openat2(top, parts.isEmpty ? "." : parts.joined(separator: "/"), flags, mode, Self.resolve)
        guard fd >= 0 else { throw FileError(errno: -fd) }
        return fd
    }

    /// The parent directory of `parts` (which must name something below the home) and the
    /// last component.
    private func parent(of parts: [String]) throws(FileError) -> (Int32, String) {
        guard let name = parts.last else { throw .invalidPath("This needs a path below the home, not the home itself.") }
        return (try resolve(Array(parts.dropLast()), flags: O_RDONLY | O_DIRECTORY), name)
    }

    func list(_ path: String) throws(FileError) -> [FileEntry] {
        let fd = try resolve(Self.components(path), flags: O_RDONLY | O_DIRECTORY)
        guard let dir = fdopendir(fd) else { close(fd); throw FileError(errno: errno) }
        defer { closedir(dir) }
        var entries: [FileEntry] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name == "." || name == ".." { continue }
            var st = stat()
            guard fstatat(dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }   // gone meanwhile
            let kind: String
            switch st.st_mode & S_IFMT {
            case S_IFREG: kind = "file"
            case S_IFDIR: kind = "dir"
            case S_IFLNK: kind = "symlink"
            default: kind = "other"
            }
            entries.append(FileEntry(name: name, type: kind, size: Int64(st.st_size), mtime: Int64(st.st_mtim.tv_sec)))
        }
        // Folders first, then by name.
        return entries.sorted { $0.type == $1.type || ($0.type != "dir" && $1.type != "dir") ? $0.name < $1.name : $0.type == "dir" }
    }

    /// A regular file opened for reading, with its size.
    func openForReading(_ path: String) throws(FileError) -> (fd: Int32, size: Int64) {
        // O_NONBLOCK: a FIFO the instance put there must not hang the open.
        let fd = try resolve(Self.components(path), flags: O_RDONLY | O_NONBLOCK)
        var st = stat()
        guard fstat(fd, &st) == 0 else { let e = errno; close(fd); throw FileError(errno: e) }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw (st.st_mode & S_IFMT) == S_IFDIR ? .isADirectory : .invalidPath("Only regular files can be downloaded.")
        }
        return (fd, Int64(st.st_size))
    }

    /// An unnamed file in the target's directory (O_TMPFILE): what is written to it becomes
    /// visible under its name only in `commit`, whole, and a failed upload leaves nothing.
    func beginUpload(_ path: String, mode: mode_t = 0o644) throws(FileError) -> Upload {
        let parts = try Self.components(path)
        let (dir, name) = try parent(of: parts)
        var st = stat()
        if fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
            close(dir)
            throw .isADirectory
        }
        let fd = openat(dir, ".", CSBX_O_TMPFILE | O_WRONLY | O_CLOEXEC, mode)
        guard fd >= 0 else { let e = errno; close(dir); throw FileError(errno: e) }
        fchown(fd, owner, owner)
        fchmod(fd, mode)   // not narrowed by the daemon's umask
        return Upload(dir: dir, name: name, fd: fd)
    }

    final class Upload: @unchecked Sendable {
        let dir: Int32
        let name: String
        let fd: Int32
        private var open = true

        init(dir: Int32, name: String, fd: Int32) {
            self.dir = dir
            self.name = name
            self.fd = fd
        }

        func write(_ bytes: UnsafeRawBufferPointer) throws(FileError) {
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw FileError(errno: errno) }
                offset += n
            }
        }

        /// Links the finished file in under a temporary name, then renames it over the target:
        /// readers see the old file or the new one, never a part.
        func commit() throws(FileError) {
            guard fsync(fd) == 0 else { throw FileError(errno: errno) }
            let temporary = ".claworc-upload-\(getpid())-\(fd)-\(UInt32.random(in: 0...UInt32.max))"
            guard linkat(fd, "", dir, temporary, CSBX_AT_EMPTY_PATH) == 0 else { throw FileError(errno: errno) }
            guard renameat(dir, temporary, dir, name) == 0 else {
                let e = errno
                unlinkat(dir, temporary, 0)
                throw FileError(errno: e)
            }
        }

        /// Drops the unnamed file (if it was never linked, it is simply gone).
        func close() {
            guard open else { return }
            open = false
            Glibc.close(fd)
            Glibc.close(dir)
        }

        deinit { close() }
    }

    func makeDirectory(_ path: String, mode: mode_t = 0o755) throws(FileError) {
        let (dir, name) = try parent(of: Self.components(path))
        defer { close(dir) }
        guard mkdirat(dir, name, mode) == 0 else { throw FileError(errno: errno) }
        fchownat(dir, name, owner, owner, AT_SYMLINK_NOFOLLOW)
    }

    /// Renames within the home; an existing target is not replaced.
    func move(from: String, to: String) throws(FileError) {
        let (source, sourceName) = try parent(of: Self.components(from))
        defer { close(source) }
        let (target, targetName) = try parent(of: Self.components(to))
        defer { close(target) }
        var st = stat()
        guard fstatat(target, targetName, &st, AT_SYMLINK_NOFOLLOW) != 0 else { throw .exists }
        guard renameat(source, sourceName, target, targetName) == 0 else { throw FileError(errno: errno) }
    }

    /// Removes a file, a symlink (never what it points to) or a folder with everything in it.
    func delete(_ path: String) throws(FileError) {
        let (dir, name) = try parent(of: Self.components(path))
        defer { close(dir) }
        var st = stat()
        guard fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { throw FileError(errno: errno) }
        guard FileSystem.removeEntry(parent: dir, name: name) else { throw .failed(EBUSY) }
    }
}
