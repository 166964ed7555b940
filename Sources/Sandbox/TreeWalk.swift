import Glibc

/// A walk over a directory tree that processes of an instance can change while host root walks
/// it. Only directory descriptors are used (`openat` with O_NOFOLLOW, `fstatat` with
/// AT_SYMLINK_NOFOLLOW, `fdopendir`), so swapping a directory for a symlink mid-walk cannot
/// lead the walk out of the tree; nothing on another device is entered; the stack is explicit
/// and at most `maxDepth` directories are open at once.
public struct TreeWalk {
    public static let maxDepth = 128
    static let directoryFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC

    public enum Step { case descend, skip }

    /// An entry beside `parent`: `stat` describes it as it was when the walk came by.
    public struct Entry {
        public var parent: Int32
        public var name: String
        public var stat: stat
        public var isDirectory: Bool { (stat.st_mode & S_IFMT) == S_IFDIR }
    }

    /// Entries before their contents; return `.descend` on a directory to enter it.
    var visit: (Entry) -> Step
    /// A directory whose contents are done, with its parent's descriptor. `rewind` true: walk
    /// its contents once more (for removal, when entries appeared meanwhile).
    var leave: (Entry) -> Bool = { _ in false }
    /// A directory deeper than maxDepth, not entered.
    var tooDeep: (Entry) -> Void = { _ in }

    public init(visit: @escaping (Entry) -> Step, leave: @escaping (Entry) -> Bool = { _ in false },
                tooDeep: @escaping (Entry) -> Void = { _ in }) {
        self.visit = visit
        self.leave = leave
        self.tooDeep = tooDeep
    }

    /// Opens the top of a walk, never through a symlink in its last component.
    public static func openDirectory(_ path: String) -> Int32 {
        open(path, directoryFlags)
    }

    /// Walks everything below the directory `top` (not `top` itself, which stays open).
    public func run(top: Int32) {
        var root = stat()
        guard fstat(top, &root) == 0 else { return }
        let topCopy = dup(top)
        guard topCopy >= 0, let topDir = fdopendir(topCopy) else {
            if topCopy >= 0 { close(topCopy) }
            return
        }
        // The duplicate shares the file offset of `top`, which an earlier walk left at the end.
        rewinddir(topDir)
        struct Frame { var dir: OpaquePointer; var fd: Int32; var entry: Entry? }
        var stack = [Frame(dir: topDir, fd: topCopy, entry: nil)]
        while let frame = stack.last {
            guard let raw = readdir(frame.dir) else {
                stack.removeLast()
                if let entry = frame.entry, leave(entry) {
                    rewinddir(frame.dir)
                    stack.append(frame)
                    continue
                }
                closedir(frame.dir)
                continue
            }
            let name = withUnsafeBytes(of: raw.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name == "." || name == ".." { continue }
            var st = stat()
            guard fstatat(frame.fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            let entry = Entry(parent: frame.fd, name: name, stat: st)
            // Another file system mounted (or bound) here: not ours to change.
            if st.st_dev != root.st_dev { continue }
            guard visit(entry) == .descend, entry.isDirectory else { continue }
            if stack.count > Self.maxDepth {
                tooDeep(entry)
                continue
            }
            let child = openat(frame.fd, name, Self.directoryFlags)
            guard child >= 0 else { continue }   // replaced by a symlink or a file meanwhile
            var opened = stat()
            guard fstat(child, &opened) == 0, opened.st_dev == root.st_dev, let dir = fdopendir(child) else {
                close(child)
                continue
            }
            stack.append(Frame(dir: dir, fd: child, entry: entry))
        }
    }
}

extension FileSystem {
    /// rm -rf by directory descriptors: never follows a symlink, never enters another mount.
    /// Directories nested deeper than TreeWalk.maxDepth are moved up to the top and removed
    /// from there. Returns false if anything is left.
    @discardableResult
    public static func removeTree(_ path: String) -> Bool {
        let slash = path.lastIndex(of: "/")
        let parentPath = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let parent = open(parentPath, TreeWalk.directoryFlags)
        guard parent >= 0 else { return errno == ENOENT }
        defer { close(parent) }
        return removeEntry(parent: parent, name: name)
    }

    /// removeTree for the entry `name` of the open directory `parent`.
    @discardableResult
    public static func removeEntry(parent: Int32, name: String) -> Bool {
        var st = stat()
        guard fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return errno == ENOENT }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { return unlinkat(parent, name, 0) == 0 }
        let top = openat(parent, name, TreeWalk.directoryFlags)
        guard top >= 0 else { return unlinkat(parent, name, 0) == 0 }
        defer { close(top) }
        var moved = 0
        var passes = [UInt: Int]()
        let walk = TreeWalk(
            visit: { entry in
                if entry.isDirectory { return .descend }
                unlinkat(entry.parent, entry.name, 0)
                return .skip
            },
            leave: { entry in
                if unlinkat(entry.parent, entry.name, AT_REMOVEDIR) == 0 || errno != ENOTEMPTY { return false }
                // Entries appeared while it was read: another pass, a bounded number of times.
                let key = UInt(entry.stat.st_ino)
                passes[key, default: 0] += 1
                return passes[key]! < 4
            },
            tooDeep: { entry in
                var free = stat()
                repeat { moved += 1 } while fstatat(top, ".claworc-deep-\(moved)", &free, AT_SYMLINK_NOFOLLOW) == 0
                renameat(entry.parent, entry.name, top, ".claworc-deep-\(moved)")
            })
        var rounds = 0
        repeat {
            let before = moved
            walk.run(top: top)
            rounds += 1
            if moved == before { break }
        } while rounds < 64
        return unlinkat(parent, name, AT_REMOVEDIR) == 0
    }
}
