import Glibc

/// Follows log files from where a tail ended: each poll returns the complete lines written
/// since. A file keeps being read through the descriptor it was opened with, so when the init
/// rotates it (renames `<svc>.log` to `.1` and starts a new one) the rest of the old file is
/// still read to its end before the follower moves to the new file (a different inode at the
/// same name). A file made shorter is read again from its start.
///
/// Not thread-safe; one SSE stream owns it and polls it from one task at a time (hops to the
/// blocking pool are sequential), hence `@unchecked Sendable`.
final class LogFollower: @unchecked Sendable {
    /// At most this much is read from one file per poll, so a burst cannot pin a thread long;
    /// the rest comes on the next poll.
    static let maxReadPerPoll = 1 << 20

    /// One followed file. A class so that its descriptors are closed with it, however the
    /// request that opened them ends.
    final class Source {
        let service: String
        /// The directory the file is reopened in by name (owned; nil: it does not exist yet).
        var directory: Int32?
        let name: String
        var fd: Int32 = -1
        var inode: UInt64 = 0
        var offset = 0
        /// Bytes after the last newline: a line still being written.
        var partial: [UInt8] = []
        var refused = false

        init(service: String, directory: Int32?, name: String) {
            self.service = service
            self.directory = directory
            self.name = name
        }

        func attach(_ file: InstanceLogs.OpenFile, offset: Int) {
            fd = file.fd
            inode = file.inode
            self.offset = offset
        }

        deinit {
            if fd >= 0 { close(fd) }
            if let directory { close(directory) }
        }
    }

    private let sources: [Source]

    init(_ sources: [Source]) { self.sources = sources }

    /// The new complete lines of every source, merged by time.
    func poll() -> [LogLine] {
        var lists: [[LogLine]] = []
        for source in sources { lists.append(Self.poll(source)) }
        return lists.count == 1 ? lists[0] : InstanceLogs.merge(lists)
    }

    private static func poll(_ s: Source) -> [LogLine] {
        guard let dir = s.directory, !s.refused else { return [] }
        var raw: [ArraySlice<UInt8>] = []
        if s.fd >= 0 { raw += read(s) }
        // Which file is at the name now? A different one means the old was rotated away (and
        // has just been read to its end above); a symlink or FIFO planted there is refused.
        do {
            if let file = try InstanceLogs.openFile(s.name, in: dir) {
                if s.fd >= 0 && file.inode == s.inode {
                    close(file.fd)
                } else {
                    if s.fd >= 0 {
                        raw += read(s)
                        close(s.fd)
                    }
                    s.partial = []
                    s.attach(file, offset: 0)
                    raw += read(s)
                }
            }
        } catch {
            s.refused = true
        }
        return raw.map { InstanceLogs.parse($0, service: s.service) }
    }

    /// Complete lines from the source's offset to the file's current end (bounded).
    private static func read(_ s: Source) -> [ArraySlice<UInt8>] {
        var st = stat()
        guard fstat(s.fd, &st) == 0 else { return [] }
        let size = Int(st.st_size)
        if size < s.offset {   // truncated: start over
            s.offset = 0
            s.partial = []
        }
        let n = min(size - s.offset, maxReadPerPoll)
        guard n > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: n)
        let got = bytes.withUnsafeMutableBytes { pread(s.fd, $0.baseAddress, n, off_t(s.offset)) }
        guard got > 0 else { return [] }
        s.offset += got
        var data = s.partial + bytes[..<got]
        guard let lastNL = data.lastIndex(of: 10) else {
            s.partial = data
            return []
        }
        s.partial = Array(data[(lastNL + 1)...])
        data.removeSubrange((lastNL + 1)...)
        return data[..<lastNL].split(separator: 10, omittingEmptySubsequences: false)
    }
}
