import CSandbox
import Glibc
import Sandbox

/// One service's captured stdout and stderr.
///
/// The init reads the service's pipes in its loop whenever they are readable, so a service
/// never waits on us for long; what exceeds the rate limit is still read, and dropped (and
/// counted), never left in the pipe. Each line is written as
/// `2026-12-02T13:54:35.123Z out|err|sup <text>` to `<dir>/<name>.log`, which is rotated to
/// `<name>.log.1` … `<name>.log.<files-1>` before it would outgrow `fileBytes`. A bounded
/// tail of the same lines is kept in memory. Without a directory only the tail is kept.
final class ServiceLog {
    static let maxLine = 4096
    /// The pipes are read through one buffer shared by all services (the init is single-threaded).
    nonisolated(unsafe) static var readBuffer = [UInt8](repeating: 0, count: 32 << 10)

    let name: String
    let limits: LogLimits
    let directory: String?
    private var fd: Int32 = -1
    private var size = 0
    private var diskFailed = false
    private(set) var tail: [UInt8] = []
    /// Unterminated line per stream (0 stdout, 1 stderr).
    private var partial: [[UInt8]] = [[], []]
    private var pending: [UInt8] = []
    private var windowStart: Int64 = 0
    private var windowBytes = 0
    private(set) var droppedBytes = 0
    private var droppedInWindow = 0

    init(name: String, limits: LogLimits, directory: String?) {
        self.name = name
        self.limits = limits
        self.directory = directory
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    var path: String? { directory.map { "\($0)/\(name).log" } }

    /// Reads what the pipe holds (a bounded amount per call); returns false at EOF or error.
    func drain(fd pipe: Int32, stream: Int, now: Int64) -> Bool {
        for _ in 0..<8 {
            let n = Self.readBuffer.withUnsafeMutableBytes { read(pipe, $0.baseAddress, $0.count) }
            if n < 0 { return errno == EAGAIN || errno == EINTR }
            if n == 0 { finishLine(stream: stream); flush(); return false }
            consume(Self.readBuffer[0..<n], stream: stream, now: now)
            if n < Self.readBuffer.count { break }
        }
        flush()
        return true
    }

    func consume(_ bytes: ArraySlice<UInt8>, stream: Int, now: Int64) {
        if now - windowStart >= 1000 {
            if droppedInWindow > 0 {
                note("dropped \(droppedInWindow) bytes over \(limits.rateBytesPerSecond) bytes/s", now: now)
            }
            windowStart = now
            windowBytes = 0
            droppedInWindow = 0
        }
        guard windowBytes + bytes.count <= limits.rateBytesPerSecond else {
            droppedBytes += bytes.count
            droppedInWindow += bytes.count
            return
        }
        windowBytes += bytes.count
        var start = bytes.startIndex
        while let nl = bytes[start...].firstIndex(of: 10) {
            line(stream: stream, bytes[start..<nl])
            start = nl + 1
        }
        if start < bytes.endIndex {
            partial[stream].append(contentsOf: bytes[start...])
            if partial[stream].count >= Self.maxLine { finishLine(stream: stream) }
        }
    }

    /// A line of the supervisor's own about this service (stream `sup`).
    func note(_ text: String, now: Int64) {
        append(Array(text.utf8)[...], tag: "sup")
        flush()
    }

    private func finishLine(stream: Int) {
        guard !partial[stream].isEmpty else { return }
        let rest = partial[stream]
        partial[stream] = []
        append(rest[...], tag: stream == 0 ? "out" : "err")
    }

    private func line(stream: Int, _ text: ArraySlice<UInt8>) {
        if partial[stream].isEmpty {
            append(text, tag: stream == 0 ? "out" : "err")
        } else {
            partial[stream].append(contentsOf: text)
            finishLine(stream: stream)
        }
    }

    private func append(_ text: ArraySlice<UInt8>, tag: StaticString) {
        var entry: [UInt8] = []
        entry.reserveCapacity(text.count + 30)
        Timestamp.append(to: &entry)
        entry.append(contentsOf: UnsafeBufferPointer(start: tag.utf8Start, count: tag.utf8CodeUnitCount))
        entry.append(32)
        entry.append(contentsOf: text)
        entry.append(10)
        tail.append(contentsOf: entry)
        if tail.count > limits.tailBytes + limits.tailBytes / 4 { tail.removeFirst(tail.count - limits.tailBytes) }
        guard directory != nil, !diskFailed else { return }
        if size + pending.count + entry.count > limits.fileBytes {
            flush()
            rotate()
        }
        pending.append(contentsOf: entry)
    }

    /// The in-memory tail: at most `tailBytes`, starting at a line.
    var tailText: String {
        var bytes = tail.suffix(limits.tailBytes)
        if bytes.count < tail.count, let nl = bytes.firstIndex(of: 10) { bytes = bytes[(nl + 1)...] }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func flush() {
        guard !pending.isEmpty else { return }
        defer { pending = [] }   // a burst's buffer is not kept: the init stays small
        guard open() else { return }
        let n = pending.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n > 0 { size += n }
    }

    private func open() -> Bool {
        if fd >= 0 { return true }
        guard let path, !diskFailed else { return false }
        fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            diskFailed = true
            log("\(name): cannot write \(path): \(FileSystem.errorText(errno)); keeping only the tail")
            return false
        }
        var st = stat()
        size = fstat(fd, &st) == 0 ? Int(st.st_size) : 0
        if size + pending.count > limits.fileBytes {
            close(fd)
            fd = -1
            rotate()
            return open()
        }
        return true
    }

    private func rotate() {
        guard let path else { return }
        if fd >= 0 { close(fd); fd = -1 }
        size = 0
        if limits.files == 1 { unlink(path); return }
        var i = limits.files - 1
        while i > 1 {
            rename("\(path).\(i - 1)", "\(path).\(i)")
            i -= 1
        }
        rename(path, "\(path).1")
    }

    func finish() {
        finishLine(stream: 0)
        finishLine(stream: 1)
        flush()
        if fd >= 0 { Glibc.close(fd); fd = -1 }
    }
}

/// UTC timestamps with milliseconds, `YYYY-MM-DDTHH:MM:SS.mmmZ `, the date part cached per second.
enum Timestamp {
    nonisolated(unsafe) private static var second: Int = -1
    nonisolated(unsafe) private static var prefix: [UInt8] = []

    static func wallMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    static func append(to out: inout [UInt8]) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        if ts.tv_sec != second {
            second = ts.tv_sec
            var t = time_t(ts.tv_sec)
            var tm = Glibc.tm()
            gmtime_r(&t, &tm)
            prefix = []
            digits(&prefix, Int(tm.tm_year) + 1900, 4); prefix.append(45)
            digits(&prefix, Int(tm.tm_mon) + 1, 2); prefix.append(45)
            digits(&prefix, Int(tm.tm_mday), 2); prefix.append(84)
            digits(&prefix, Int(tm.tm_hour), 2); prefix.append(58)
            digits(&prefix, Int(tm.tm_min), 2); prefix.append(58)
            digits(&prefix, Int(tm.tm_sec), 2); prefix.append(46)
        }
        out.append(contentsOf: prefix)
        digits(&out, Int(ts.tv_nsec / 1_000_000), 3)
        out.append(contentsOf: [90, 32])
    }

    private static func digits(_ out: inout [UInt8], _ value: Int, _ width: Int) {
        var div = 1
        for _ in 1..<width { div *= 10 }
        var v = value
        while div > 0 {
            out.append(UInt8(48 + (v / div) % 10))
            v %= div
            div /= 10
        }
    }
}
