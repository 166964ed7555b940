import Glibc
import Sandbox
import Testing
@testable import Appliance

/// The logs API's reading on real files: line parsing, tails across rotated files read from
/// the end in chunks, the merge by time, and a follower across a rotation.
@Suite(.serialized) struct InstanceLogsTests {
    static func line(_ second: Int, _ tag: String, _ text: String) -> String {
        "2026-01-01T00:00:\(second < 10 ? "0" : "")\(second).000Z \(tag) \(text)\n"
    }

    static func write(_ path: String, _ text: String, append: Bool = false) {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0o600)
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        close(fd)
    }

    static func tempDir() -> String {
        var template = Array("/tmp/claworc-logs-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        mkdir(dir + "/logs", 0o700)
        return dir
    }

    @Test func parsesStreams() {
        let out = InstanceLogs.parse(Array(Self.line(1, "out", "hello").utf8.dropLast())[...], service: "vnc")
        #expect(out.ts == "2026-01-01T00:00:01.000Z" && out.stream == "stdout" && out.text == "hello")
        #expect(InstanceLogs.parse(Array(Self.line(1, "err", "x").utf8.dropLast())[...], service: "vnc").stream == "stderr")
        #expect(InstanceLogs.parse(Array(Self.line(1, "sup", "ready").utf8.dropLast())[...], service: "vnc").stream == "init")
        let initLine = InstanceLogs.parse(Array("claworc-init: xvfb ready".utf8)[...], service: "init")
        #expect(initLine.ts == nil && initLine.stream == "init" && initLine.text == "xvfb ready")
    }

    @Test func tailsAcrossRotationFromTheEnd() throws {
        let dir = Self.tempDir()
        defer { _ = FileSystem.removeTree(dir) }
        Self.write(dir + "/logs/vnc.log.2", Self.line(1, "out", "a"))
        Self.write(dir + "/logs/vnc.log.1", Self.line(2, "out", "b"))
        // Larger than one read chunk, and a line still being written at the end.
        var big = ""
        for i in 0..<3000 { big += Self.line(3, "err", "line \(i) " + String(repeating: "x", count: 40)) }
        Self.write(dir + "/logs/vnc.log", big + "2026-01-01T00:00:04.000Z out partial")
        let logs = InstanceLogs(instanceDir: dir, rotated: 2)
        let (last, _) = try logs.tail("vnc", count: 2)
        #expect(last.map(\.text).map { $0.prefix(9) } == ["line 2998", "line 2999"])
        let (all, _) = try logs.tail("vnc", count: 5000)
        #expect(all.count == 3002 && all[0].text == "a" && all[1].text == "b")
        Self.write(dir + "/logs/xvfb.log", Self.line(2, "out", "between"))
        // Equal times keep the order services are listed in.
        let (merged, _) = try logs.merged(["vnc", "xvfb"], count: 5000)
        #expect(merged.prefix(3).map(\.text) == ["a", "b", "between"])
    }

    @Test func refusesLinksAndFollowsRotation() throws {
        let dir = Self.tempDir()
        defer { _ = FileSystem.removeTree(dir) }
        symlink("/etc/passwd", dir + "/logs/xvfb.log")
        let logs = InstanceLogs(instanceDir: dir, rotated: 2)
        #expect(throws: LogError.unsafeFile("xvfb.log")) { try logs.tail("xvfb", count: 10) }

        Self.write(dir + "/logs/vnc.log", Self.line(1, "out", "old"))
        let (lines, source) = try logs.tail("vnc", count: 10)
        #expect(lines.map(\.text) == ["old"])
        let follower = LogFollower([source])
        #expect(follower.poll().isEmpty)
        Self.write(dir + "/logs/vnc.log", Self.line(2, "out", "half") + "2026", append: true)
        #expect(follower.poll().map(\.text) == ["half"])
        Self.write(dir + "/logs/vnc.log", "-01-01T00:00:03.000Z out end of old\n", append: true)
        rename(dir + "/logs/vnc.log", dir + "/logs/vnc.log.1")
        Self.write(dir + "/logs/vnc.log", Self.line(4, "err", "new"))
        #expect(follower.poll().map(\.text) == ["end of old", "new"])
    }
}
