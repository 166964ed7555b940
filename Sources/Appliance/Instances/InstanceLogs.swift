import Glibc
import Sandbox

/// One log line as the API returns it. `ts` is the init's UTC timestamp with milliseconds
/// (`2026-12-02T13:54:35.123Z`), or null for the init's own lines, which carry none.
struct LogLine: Encodable, Sendable {
    var ts: String?
    var service: String
    var stream: String   // stdout | stderr | init
    var text: String

    private enum CodingKeys: String, CodingKey { case ts, service, stream, text }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(ts, forKey: .ts)   // null rather than absent: every line has the same keys
        try c.encode(service, forKey: .service)
        try c.encode(stream, forKey: .stream)
        try c.encode(text, forKey: .text)
    }
}

enum LogError: Error, Equatable {
    /// A log file that is a symbolic link, a FIFO or anything but a regular file: the
    /// instance's root writes that directory, so such a file is never followed or read.
    case unsafeFile(String)
    case failed(Int32)
}

/// The logs of one instance, read from the host whether it runs or not: each service's
/// `<svc>.log` (+ `.1`, `.2`) in `<instance>/logs`, which the instance's root writes, and the
/// init's own `instance.log` beside it (service `init`). Everything is opened relative to a
/// descriptor of its directory with O_NOFOLLOW and checked to be a regular file, and read
/// from the end in bounded chunks: a request never loads more than the lines it returns.
struct InstanceLogs: Sendable {
    static let initService = "init"
    static let chunk = 64 << 10
    /// instance.log has no rotation; a tail never looks further back than this.
    static let maxScan = 8 << 20

    let instanceDir: String
    let rotated: Int   // how many rotated files a service keeps (`.1` … `.rotated`)

    /// The last `count` complete lines of `service` (oldest first) and a follower positioned
    /// right after them.
    func tail(_ service: String, count: Int) throws(LogError) -> ([LogLine], LogFollower.Source) {
        let isInit = service == Self.initService
        guard let dir = try openDirectory(isInit ? instanceDir : instanceDir + "/logs") else {
            return ([], LogFollower.Source(service: service, directory: nil, name: isInit ? "instance.log" : "\(service).log"))
        }
        defer { close(dir) }
        let name = isInit ? "instance.log" : "\(service).log"
        let source = LogFollower.Source(service: service, directory: try duplicate(dir), name: name)
        var chunks: [[ArraySlice<UInt8>]] = []
        var have = 0
        if let file = try Self.openFile(name, in: dir) {
            let (lines, end) = Self.lastLines(fd: file.fd, size: file.size, count: count)
            source.attach(file, offset: end)
            chunks.append(lines)
            have = lines.count
        }
        // Older lines from the rotated files, newest first, until there are enough.
        var index = 1
        while !isInit, have < count, index <= rotated {
            guard let file = try Self.openFile("\(name).\(index)", in: dir) else { break }
            defer { close(file.fd) }
            let (lines, _) = Self.lastLines(fd: file.fd, size: file.size, count: count - have)
            chunks.insert(lines, at: 0)
            have += lines.count
            index += 1
        }
        return (chunks.flatMap { $0 }.map { Self.parse($0, service: service) }, source)
    }

    /// Every service's tail merged by time, the last `count` of them.
    func merged(_ services: [String], count: Int) throws(LogError) -> ([LogLine], [LogFollower.Source]) {
        var all: [[LogLine]] = []
        var sources: [LogFollower.Source] = []
        for service in services {
            do throws(LogError) {
                let (lines, source) = try tail(service, count: count)
                all.append(lines)
                sources.append(source)
            } catch .unsafeFile {
                continue   // refused: the other services' lines are still shown
            }
        }
        return (Array(Self.merge(all).suffix(count)), sources)
    }

    /// Merges lists that are each in order into one, by timestamp; equal times keep the
    /// lists' order (a stable merge), lines without one stay where they are in their list.
    static func merge(_ lists: [[LogLine]]) -> [LogLine] {
        var keyed: [(ts: String, list: Int, index: Int, line: LogLine)] = []
        for (l, list) in lists.enumerated() {
            var last = ""
            for (i, line) in list.enumerated() {
                if let ts = line.ts { last = ts }
                keyed.append((last, l, i, line))
            }
        }
        keyed.sort { ($0.ts, $0.list, $0.index) < ($1.ts, $1.list, $1.index) }
        return keyed.map(\.line)
    }

    /// `2026-12-02T13:54:35.123Z out|err|sup <text>`; anything else (a line of the init's
    /// own log, a line cut short) keeps its text with no time.
    static func parse(_ raw: ArraySlice<UInt8>, service: String) -> LogLine {
        let b = Array(raw)
        if b.count >= 29, b[4] == 45, b[10] == 84, b[23] == 90, b[24] == 32, b[28] == 32 {
            let stream: String? = switch (b[25], b[26], b[27]) {
            case (111, 117, 116): "stdout"   // out
            case (101, 114, 114): "stderr"   // err
            case (115, 117, 112): "init"     // sup: the supervisor's own line about the service
            default: nil
            }
            if let stream {
                return LogLine(ts: String(decoding: b[0..<24], as: UTF8.self), service: service, stream: stream,
                               text: String(decoding: b[29...], as: UTF8.self))
            }
        }
        var text = String(decoding: b, as: UTF8.self)
        if text.hasPrefix("claworc-init: ") { text.removeFirst(14) }
        return LogLine(ts: nil, service: service, stream: service == initService ? "init" : "stdout", text: text)
    }

    // MARK: files

    struct OpenFile { var fd: Int32; var size: Int; var inode: UInt64 }

    /// nil when the directory does not exist yet (an instance never started).
    private func openDirectory(_ path: String) throws(LogError) -> Int32? {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd >= 0 { return fd }
        if errno == ENOENT { return nil }
        throw errno == ELOOP || errno == ENOTDIR ? .unsafeFile(path) : .failed(errno)
    }

    private func duplicate(_ fd: Int32) throws(LogError) -> Int32 {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw .failed(errno) }
        return copy
    }

    /// A regular file `name` directly in `dir`, never through a symbolic link, or nil when
    /// there is none. O_NONBLOCK: opening a FIFO planted there must not wait for a writer.
    static func openFile(_ name: String, in dir: Int32) throws(LogError) -> OpenFile? {
        let fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw errno == ELOOP ? .unsafeFile(name) : .failed(errno)
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else { let e = errno; close(fd); throw .failed(e) }
        guard st.st_mode & S_IFMT == S_IFREG else { close(fd); throw .unsafeFile(name) }
        return OpenFile(fd: fd, size: Int(st.st_size), inode: UInt64(st.st_ino))
    }

    /// The last `count` complete lines before `size` (a line still being written is left for
    /// the follower), read backwards in chunks; and the offset just after the last of them.
    static func lastLines(fd: Int32, size: Int, count: Int) -> ([ArraySlice<UInt8>], Int) {
        var buffer: [UInt8] = []
        var start = size
        var newlines = 0
        // count + 1 newlines: the one before the oldest line we return bounds it.
        while start > 0, newlines <= count, size - start < maxScan {
            let n = min(chunk, start)
            var part = [UInt8](repeating: 0, count: n)
            let got = part.withUnsafeMutableBytes { pread(fd, $0.baseAddress, n, off_t(start - n)) }
            guard got == n else { break }
            newlines += part.reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
            buffer = part + buffer
            start -= n
        }
        guard let lastNL = buffer.lastIndex(of: 10) else { return ([], start) }
        let end = start + lastNL + 1
        var lines = buffer[..<lastNL].split(separator: 10, omittingEmptySubsequences: false)
        // The first piece may be cut in the middle unless we read from the file's start.
        if start > 0, !lines.isEmpty { lines.removeFirst() }
        return (Array(lines.suffix(count)), end)
    }
}
