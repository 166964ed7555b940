import CSandbox
import FoundationEssentials
import Glibc
import Testing
@testable import Supervisor

/// The daemon's end of the control socket against a hostile init: the init is this test, on
/// the other end of a real socket pair, sending whatever a compromised init could.
@Suite(.serialized) struct ControlChannelTests {
    /// The fake init's end of the pair plus helpers to talk like (or unlike) an init.
    final class FakeInit: @unchecked Sendable {
        let channel: ControlChannel
        let fd: Int32

        init() throws {
            (channel, fd) = try ControlChannel.makePair()
            // Room for a packet over the daemon's limit (the default send buffer is smaller).
            var size: Int32 = 4 << 20
            setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size))
        }

        deinit { close(fd) }

        /// Sends one packet; with `patient` false gives up after 2 s of a full socket (the
        /// daemon stopped reading). Returns whether it went out.
        @discardableResult
        func send(_ bytes: [UInt8], fd passing: Int32 = -1, patient: Bool = true) -> Bool {
            while true {
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                guard poll(&pfd, 1, patient ? -1 : 2000) > 0 else { return false }
                let n = bytes.withUnsafeBytes { csbx_send_with_fd(fd, $0.baseAddress, $0.count, passing) }
                if n == bytes.count { return true }
                if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
                return false
            }
        }

        func reply(_ response: ControlResponse, fd passing: Int32 = -1, patient: Bool = true) -> Bool {
            send(ControlCodec.encode(response), fd: passing, patient: patient)
        }

        /// The next request the daemon sent.
        func request() -> ControlRequest? {
            var buffer = [UInt8](repeating: 0, count: ControlCodec.maxMessage)
            var stray: Int32 = -1
            let n = buffer.withUnsafeMutableBytes { csbx_recv_with_fd(fd, $0.baseAddress, $0.count, &stray) }
            if stray >= 0 { close(stray) }
            guard n > 0, case .call(let request) = InitWire.decodeRequest(buffer[0..<n]) else { return nil }
            return request
        }
    }

    /// A descriptor of a file made for this test alone (and unlinked at once): Swift Testing
    /// runs other suites in parallel, so only descriptors of this file say anything about what
    /// the channel kept.
    static func marker(_ name: String = #function) -> (fd: Int32, link: String) {
        let path = "/tmp/claworc-test-\(getpid())-\(name.prefix(40).filter { $0.isLetter })"
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        unlink(path)
        return (fd, "\(path) (deleted)")
    }

    /// How many descriptors of this process refer to the marker's file (its own included).
    static func openFDs(_ marker: (fd: Int32, link: String)) -> Int {
        guard let dir = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(dir) }
        var count = 0
        var target = [CChar](repeating: 0, count: 512)
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            let n = readlink("/proc/self/fd/\(name)", &target, target.count - 1)
            guard n > 0 else { continue }
            let link = String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if link == marker.link || link == String(marker.link.dropLast(" (deleted)".count)) { count += 1 }
        }
        return count
    }

    /// CPU time of the calling thread: other tests run in this process at the same time.
    static func threadCpuMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// Runs `body` on a thread of its own (calls on the channel block).
    final class Background<T: Sendable>: @unchecked Sendable {
        private var thread = pthread_t()
        let body: () -> T
        var result: T?
        init(_ body: @escaping @Sendable () -> T) {
            self.body = body
            pthread_create(&thread, nil, backgroundEntry, Unmanaged.passRetained(Runner(run: { [self] in result = self.body() })).toOpaque())
        }
        func join() -> T {
            pthread_join(thread, nil)
            return result!
        }
    }

    static func status(_ channel: ControlChannel, timeoutMs: Int = 5000) -> Result<[ServiceStatus], ControlChannel.Failure> {
        Result { () throws(ControlChannel.Failure) in try channel.status(timeoutMs: timeoutMs) }
    }

    @Test func pushedSnapshotsReplaceTheHellosAndReachThePump() throws {
        let initSide = try FakeInit()
        let first = [ServiceStatus(name: "xvfb", state: "starting", pid: 2, restarts: 0, lastExit: nil, error: nil)]
        let second = [ServiceStatus(name: "xvfb", state: "ready", pid: 2, restarts: 0, lastExit: nil, error: nil)]
        #expect(initSide.reply(ControlResponse(id: 0, ok: true, services: first, version: ControlCodec.protocolVersion)))
        #expect(try initSide.channel.awaitHello(timeoutMs: 2000).version == ControlCodec.protocolVersion)
        #expect(initSide.channel.services == first)
        let seen = Received()
        let channel = initSide.channel
        let pump = Thread { channel.pump { seen.append($0) } }
        #expect(initSide.reply(ControlResponse(id: 0, ok: true, services: second, event: "services")))
        #expect(seen.wait(count: 1) == [second])
        #expect(initSide.channel.services == second)
        // Calls still get their replies while the pump reads.
        let caller = Thread { _ = try? channel.status() }
        let request = try #require(initSide.request())
        #expect(initSide.reply(ControlResponse(id: request.id, ok: true, services: second)))
        caller.join()
        #expect(initSide.channel.violations == 0)
        channel.stopPump()
        pump.join()
    }

    @Test func anEventFloodIsAViolation() throws {
        let initSide = try FakeInit()
        let services = [ServiceStatus(name: "vnc", state: "backoff", pid: nil, restarts: 1, lastExit: "exit 1", error: nil)]
        for _ in 0..<(ControlChannel.eventsPerSecond + 5) {
            #expect(initSide.reply(ControlResponse(id: 0, ok: true, services: services, event: "services")))
        }
        #expect(initSide.reply(ControlResponse(id: 0, ok: true, services: nil, event: "nonsense")))
        initSide.channel.drain()
        // Unless the second turned over mid-flood: then fewer count, but the unknown event always does.
        #expect(initSide.channel.violations >= 1)
        #expect(initSide.channel.violations <= 6)
    }

    final class Received: @unchecked Sendable {
        private var lock = pthread_mutex_t()
        private var items: [[ServiceStatus]] = []
        init() { pthread_mutex_init(&lock, nil) }
        func append(_ s: [ServiceStatus]) { pthread_mutex_lock(&lock); items.append(s); pthread_mutex_unlock(&lock) }
        func wait(count: Int) -> [[ServiceStatus]] {
            for _ in 0..<500 {
                pthread_mutex_lock(&lock)
                let now = items
                pthread_mutex_unlock(&lock)
                if now.count >= count { return now }
                usleep(10_000)
            }
            return []
        }
    }

    /// A plain pthread the test can join (the pump and a blocking call run on their own).
    final class Thread: @unchecked Sendable {
        private var thread = pthread_t()
        private let body: () -> Void
        init(_ body: @escaping () -> Void) {
            self.body = body
            let unmanaged = Unmanaged.passRetained(self)
            pthread_create(&thread, nil, { raw in
                let me = Unmanaged<Thread>.fromOpaque(raw!).takeRetainedValue()
                me.body()
                return nil
            }, unmanaged.toOpaque())
        }
        func join() { pthread_join(thread, nil) }
    }

    @Test func unsolicitedRepliesCarryingDescriptorsAreClosedAtOnce() throws {
        let fake = try FakeInit()
        let mark = Self.marker()
        let devNull = mark.fd
        defer { close(devNull) }
        let baseline = Self.openFDs(mark)
        let channel = fake.channel
        let call = Background { Self.status(channel, timeoutMs: 20_000) }
        let request = try #require(fake.request())
        // Unknown ids, each with a descriptor: none may stay open in the daemon. The channel
        // may stop reading once it has judged the init hostile, hence the impatient sends.
        for i in 0..<3000 {
            if !fake.reply(ControlResponse(id: 1_000_000 + UInt64(i), ok: true), fd: devNull, patient: false) { break }
        }
        _ = fake.reply(ControlResponse(id: request.id, ok: true, services: []), patient: false)
        _ = call.join()
        #expect(Self.openFDs(mark) == baseline, "descriptors from unsolicited replies stayed open")
        #expect(channel.heldReplies == 0)
    }

    @Test func junkAndOversizedPacketsAreProtocolErrorsNotEndOfStream() throws {
        let fake = try FakeInit()
        let channel = fake.channel
        let call = Background { Self.status(channel) }
        let request = try #require(fake.request())
        fake.send(Array("{not json".utf8))
        fake.send([UInt8](repeating: 0x20, count: ControlCodec.maxMessage + 4096))
        _ = fake.reply(ControlResponse(id: 999, ok: true))
        _ = fake.reply(ControlResponse(id: request.id, ok: true, services: []))
        let answer = call.join()
        guard case .success(let services) = answer else {
            Issue.record("the call failed after junk: \(answer)")
            return
        }
        #expect(services == [])
        #expect(channel.violations == 3)
        #expect(channel.violation == nil, "three violations are below the threshold")
        #expect(channel.heldReplies == 0)
        // And the next call still works.
        let again = Background { Self.status(channel) }
        let next = try #require(fake.request())
        _ = fake.reply(ControlResponse(id: next.id, ok: true, services: []))
        if case .failure(let error) = again.join() { Issue.record("second call failed: \(error)") }
    }

    @Test func repeatedViolationsMarkTheChannelAndFailCalls() throws {
        let fake = try FakeInit()
        let channel = fake.channel
        let call = Background { Self.status(channel, timeoutMs: 10_000) }
        let request = try #require(fake.request())
        for i in 0..<ControlChannel.violationLimit {
            _ = fake.reply(ControlResponse(id: 5000 + UInt64(i), ok: true), patient: false)
        }
        let answer = call.join()
        guard case .failure(let error) = answer else {
            Issue.record("a call succeeded on a channel its init broke: \(answer)")
            return
        }
        #expect(error.description.contains("broke the control protocol"), "\(error)")
        let reason = try #require(channel.violation)
        #expect(reason.contains("reply"), "\(reason)")
        // Late legitimate replies change nothing: the channel stays judged.
        _ = fake.reply(ControlResponse(id: request.id, ok: true), patient: false)
        if case .success = Self.status(channel, timeoutMs: 500) { Issue.record("a violated channel answered a call") }
    }

    @Test func descriptorsAreAcceptedOnlyOnSuccessfulConnectReplies() throws {
        let fake = try FakeInit()
        let channel = fake.channel
        let mark = Self.marker()
        let devNull = mark.fd
        defer { close(devNull) }
        let baseline = Self.openFDs(mark)
        _ = fake.reply(ControlResponse(id: 0, ok: true, services: [], version: ControlCodec.protocolVersion), fd: devNull)
        _ = try channel.awaitHello(timeoutMs: 2000)
        #expect(channel.violations == 1, "a descriptor on the hello")
        #expect(Self.openFDs(mark) == baseline)

        let status = Background { Self.status(channel) }
        let statusRequest = try #require(fake.request())
        _ = fake.reply(ControlResponse(id: statusRequest.id, ok: true, services: []), fd: devNull)
        if case .failure(let error) = status.join() { Issue.record("status failed: \(error)") }
        #expect(channel.violations == 2, "a descriptor on a status reply")
        #expect(Self.openFDs(mark) == baseline)

        let refused = Background { () -> Int32 in (try? channel.call(.connect(port: 1)))?.1 ?? -2 }
        let refusedRequest = try #require(fake.request())
        _ = fake.reply(ControlResponse(id: refusedRequest.id, ok: false, error: "refused"), fd: devNull)
        #expect(refused.join() == -1, "a failed connect hands over no descriptor")
        #expect(channel.violations == 3)

        let connect = Background { () -> Int32 in (try? channel.call(.connect(port: 1)))?.1 ?? -2 }
        let connectRequest = try #require(fake.request())
        _ = fake.reply(ControlResponse(id: connectRequest.id, ok: true), fd: devNull)
        let passed = connect.join()
        #expect(passed >= 0, "a successful connect hands over its descriptor")
        if passed >= 0 { close(passed) }
        #expect(channel.violations == 3)

        let listen = Background { () -> Int32 in (try? channel.listeningSocket(port: 8399)) ?? -2 }
        let listenRequest = try #require(fake.request())
        #expect(listenRequest.call == .listen(port: 8399))
        _ = fake.reply(ControlResponse(id: listenRequest.id, ok: true), fd: devNull)
        let listening = listen.join()
        #expect(listening >= 0, "a successful listen hands over its socket")
        if listening >= 0 { close(listening) }
        #expect(channel.violations == 3)

        _ = fake.reply(ControlResponse(id: 0, ok: true, services: []))
        let probe = Background { Self.status(channel) }
        let probeRequest = try #require(fake.request())
        _ = fake.reply(ControlResponse(id: probeRequest.id, ok: true, services: []))
        _ = probe.join()
        #expect(channel.violations == 4, "a second hello")
        #expect(Self.openFDs(mark) == baseline)
    }

    @Test func lateRepliesToAbandonedCallsAreDroppedQuietly() throws {
        let fake = try FakeInit()
        let channel = fake.channel
        let mark = Self.marker()
        let devNull = mark.fd
        defer { close(devNull) }
        let baseline = Self.openFDs(mark)
        if case .success = Self.status(channel, timeoutMs: 200) { Issue.record("nobody answered, yet the call succeeded") }
        let late = try #require(fake.request())
        _ = fake.reply(ControlResponse(id: late.id, ok: true), fd: devNull)
        let call = Background { Self.status(channel) }
        let request = try #require(fake.request())
        _ = fake.reply(ControlResponse(id: request.id, ok: true, services: []))
        if case .failure(let error) = call.join() { Issue.record("call failed: \(error)") }
        #expect(channel.violations == 1, "the late reply is fine, its descriptor is not")
        // The same late id again is a replay.
        _ = fake.reply(ControlResponse(id: late.id, ok: true))
        let again = Background { Self.status(channel) }
        let next = try #require(fake.request())
        _ = fake.reply(ControlResponse(id: next.id, ok: true, services: []))
        _ = again.join()
        #expect(channel.violations == 2)
        #expect(Self.openFDs(mark) == baseline)
    }

    @Test func terminalExitEventsReachTheirWaiterAndHandler() throws {
        let fake = try FakeInit()
        let channel = fake.channel
        let seen = Box()
        channel.onTerminalExit = { terminal, code in seen.append(terminal, code) }
        _ = fake.reply(ControlResponse(id: 0, ok: true, services: [], version: ControlCodec.protocolVersion))
        _ = try channel.awaitHello(timeoutMs: 2000)
        _ = fake.reply(ControlResponse(id: 0, ok: true, event: "terminalExit", terminal: 7, code: 3))
        #expect(try channel.awaitTerminalExit(7, timeoutMs: 2000) == 3)
        #expect(seen.items.map(\.0) == [7] && seen.items.map(\.1) == [3])
        #expect(channel.violations == 0)
        // Unknown or incomplete events are violations, never a crash or a second hello.
        _ = fake.reply(ControlResponse(id: 0, ok: true, event: "reboot"))
        _ = fake.reply(ControlResponse(id: 0, ok: true, event: "terminalExit", terminal: 8))
        let mark = Self.marker()
        defer { close(mark.fd) }
        let baseline = Self.openFDs(mark)
        _ = fake.reply(ControlResponse(id: 0, ok: true, event: "terminalExit", terminal: 9, code: 0), fd: mark.fd)
        #expect(try channel.awaitTerminalExit(9, timeoutMs: 2000) == 0)
        #expect(channel.violations == 3, "unknown, incomplete, and a descriptor on an event")
        #expect(Self.openFDs(mark) == baseline, "the descriptor on an event was closed")
        if case .success = Result(catching: { try channel.awaitTerminalExit(8, timeoutMs: 200) }) {
            Issue.record("an incomplete event was filed")
        }
    }

    @Test func repliesThatDoNotFitTheirRequestAndRefusalsAreTold() throws {
        let fake = try FakeInit()
        let channel = fake.channel
        let misfit = Background { Self.status(channel) }
        let first = try #require(fake.request())
        _ = fake.reply(ControlResponse(id: first.id, ok: true))   // a status reply without services
        guard case .failure(let error) = misfit.join() else {
            Issue.record("a status reply without services was taken")
            return
        }
        #expect(!error.refusedByInit && error.description.contains("malformed reply"), "\(error)")
        #expect(channel.violations == 1)
        let refused = Background { Result { () throws(ControlChannel.Failure) in try channel.restartService("nope") } }
        let second = try #require(fake.request())
        #expect(second.call == .restartService("nope"))
        _ = fake.reply(ControlResponse(id: second.id, ok: false, error: "no service named nope"))
        guard case .failure(let refusal) = refused.join() else {
            Issue.record("a refusal came back as success")
            return
        }
        #expect(refusal.refusedByInit && refusal.description == "no service named nope")
        #expect(channel.violations == 1, "a refusal is an answer, not a violation")
        // The init's notice that it could not read a packet is no violation either.
        _ = fake.reply(ControlResponse(id: 0, ok: false, error: "malformed request"))
        channel.drain()
        #expect(channel.violations == 1)
    }

    @Test func helloOfAnUnknownMajorVersionIsRefused() throws {
        for version in ["2.0", "0.9", "x"] as [String?] + [nil] {
            let fake = try FakeInit()
            _ = fake.reply(ControlResponse(id: 0, ok: true, services: [], version: version))
            do {
                _ = try fake.channel.awaitHello(timeoutMs: 2000)
                Issue.record("hello of version \(version ?? "none") accepted")
            } catch {
                #expect(error.description.contains("control protocol version"))
            }
        }
        let fake = try FakeInit()
        _ = fake.reply(ControlResponse(id: 0, ok: true, services: [], version: "1.9"))
        #expect(try fake.channel.awaitHello(timeoutMs: 2000).version == "1.9", "a newer minor version is compatible")
    }

    final class Box: @unchecked Sendable {
        private var lock = pthread_mutex_t()
        private var stored: [(UInt64, Int32)] = []
        init() { pthread_mutex_init(&lock, nil) }
        func append(_ t: UInt64, _ c: Int32) { pthread_mutex_lock(&lock); stored.append((t, c)); pthread_mutex_unlock(&lock) }
        var items: [(UInt64, Int32)] { pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }; return stored }
    }

    @Test func waitingCallersDoNotSpin() throws {
        let fake = try FakeInit()
        let channel = fake.channel
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        let waiting = { @Sendable () -> Int64 in
            let before = Self.threadCpuMs()
            _ = Self.status(channel, timeoutMs: 1000)
            return Self.threadCpuMs() - before
        }
        let first = Background(waiting)
        let second = Background(waiting)
        let spent = first.join() + second.join()
        var end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &end)
        #expect(end.tv_sec * 1000 + end.tv_nsec / 1_000_000 - start.tv_sec * 1000 - start.tv_nsec / 1_000_000 >= 900,
                "the calls must really have waited")
        #expect(spent < 100, "two callers waiting 1 s for a silent init used \(spent) ms of CPU")
        _ = fake
    }
}

final class Runner {
    let run: () -> Void
    init(run: @escaping () -> Void) { self.run = run }
}

private func backgroundEntry(_ raw: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    Unmanaged<Runner>.fromOpaque(raw!).takeRetainedValue().run()
    return nil
}
