import CSandbox
import Glibc

/// The daemon's end of an instance's control socket. Calls block (each bounded by its own
/// timeout) and may overlap: a long `run` does not hold up a `status`. Whichever caller is
/// reading files replies for the others by id.
///
/// Everything the init sends is untrusted: code inside the instance may have taken it over.
/// Only a reply to a call that waits for it (or gave up waiting) and that fits its request is
/// accepted, a descriptor only on a successful `connect` or `openTerminal` reply, unasked only
/// the hello and known events (`services`, `terminalExit`), and all state is bounded. Anything else is closed at once
/// and counted; at `violationLimit` the channel is judged broken, stops reading and fails
/// every call, and the daemon stops the instance.
public final class ControlChannel: @unchecked Sendable {
    public let fd: Int32
    public static let violationLimit = 16
    /// Timed-out calls whose late replies are still expected; beyond this the oldest are
    /// forgotten, and a reply to one of them counts as unsolicited.
    static let abandonedLimit = 256

    private var nextID: UInt64 = 1
    private var lock = pthread_mutex_t()
    private var changed = pthread_cond_t()
    private var reading = false
    private var closed = false
    /// Calls waiting for their reply, by id, with the operation (which says what the reply
    /// must hold and whether it may carry a descriptor).
    private var pending: [UInt64: ControlCall.Op] = [:]
    /// Replies by id; nil for one that did not fit its request (its caller gets a failure).
    private var replies: [UInt64: (ControlReply?, Int32)] = [:]
    private var abandoned: [UInt64: ControlCall.Op] = [:]
    private var hello: Hello?
    /// Exit codes of terminals, by terminal id, until someone asks (bounded like `abandoned`).
    private var terminalExits: [UInt64: Int32] = [:]
    /// Told of every `terminalExit` as it is read, under the channel's lock: it must not call
    /// back into the channel.
    public var onTerminalExit: (@Sendable (UInt64, Int32) -> Void)? {
        get { pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }; return terminalHandler }
        set { pthread_mutex_lock(&lock); terminalHandler = newValue; pthread_mutex_unlock(&lock) }
    }
    private var terminalHandler: (@Sendable (UInt64, Int32) -> Void)?
    /// The init's latest service snapshot (its hello's, then each `services` event's).
    private var snapshot: [ServiceStatus]?
    /// Told of each snapshot as it is filed, under the channel's lock: it must not call back.
    private var onServices: (@Sendable ([ServiceStatus]) -> Void)?
    /// Events within the current second; an honest init sends at most a handful.
    private var eventWindow: (second: Int64, count: Int) = (0, 0)
    static let eventsPerSecond = 20
    private var pumpStopped = false
    private var violationCount = 0
    private var brokenReason: String?
    /// One packet; touched only by the caller that holds `reading`.
    private var buffer: [UInt8] = []

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
        /// Set when the init answered and refused (its reason is the description); nil when
        /// the call never got an answer (socket closed, timeout, protocol broken).
        public var refusedByInit: Bool = false
    }

    /// The init's hello: its protocol version and its services as it starts or is re-attached.
    public struct Hello: Sendable, Equatable {
        public var version: String
        public var services: [ServiceStatus]
    }

    init(fd: Int32) {
        self.fd = fd
        pthread_mutex_init(&lock, nil)
        // Deadlines are computed on the monotonic clock, so the condition must wait on it too
        // (on the default CLOCK_REALTIME every deadline lies decades in the past).
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(&changed, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        close(fd)
        for (_, (_, received)) in replies where received >= 0 { close(received) }
        pthread_cond_destroy(&changed)
        pthread_mutex_destroy(&lock)
    }

    /// Why the init was judged to have broken the protocol, once it has.
    public var violation: String? {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return brokenReason
    }

    var violations: Int {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return violationCount
    }

    /// Replies received and not yet taken by their caller.
    var heldReplies: Int {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return replies.count
    }

    /// The init's latest service snapshot: its hello's, then each pushed change's.
    public var services: [ServiceStatus]? {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return snapshot
    }

    /// Reads what the init sends whenever no caller is reading, until the socket closes, the
    /// channel breaks or `stopPump` is called; `onServices` is told of each new snapshot.
    /// Blocks: run it on a thread of its own.
    public func pump(onServices: @escaping @Sendable ([ServiceStatus]) -> Void) {
        pthread_mutex_lock(&lock)
        self.onServices = onServices
        while !closed && brokenReason == nil && !pumpStopped {
            if reading {
                var ts = Self.deadline(afterMs: 100)
                pthread_cond_timedwait(&changed, &lock, &ts)
                continue
            }
            reading = true
            pthread_mutex_unlock(&lock)
            let message = receive(timeoutMs: 250)
            pthread_mutex_lock(&lock)
            reading = false
            file(message)
            pthread_cond_broadcast(&changed)
        }
        self.onServices = nil
        pthread_mutex_unlock(&lock)
    }

    public func stopPump() {
        pthread_mutex_lock(&lock)
        pumpStopped = true
        pthread_mutex_unlock(&lock)
    }

    private static func deadline(afterMs ms: Int64) -> timespec {
        let until = monotonicMs() + ms
        return timespec(tv_sec: Int(until / 1000), tv_nsec: Int(until % 1000) * 1_000_000)
    }

    /// Waits for the init's hello, which it sends once its supervisor loop runs.
    /// An init of a protocol major version this daemon does not know is refused here.
    public func awaitHello(timeoutMs: Int) throws(Failure) -> Hello {
        let hello = try wait(timeoutMs: timeoutMs) { $0.hello }
        let version = hello.version
        guard let major = version.split(separator: ".").first.flatMap({ Int($0) }), major == ControlCodec.protocolMajor else {
            throw Failure(description: "the instance's init speaks control protocol version \(version); "
                          + "this daemon speaks \(ControlCodec.protocolVersion) (major \(ControlCodec.protocolMajor))")
        }
        return hello
    }

    /// The exit code the init reported for a terminal, waiting up to `timeoutMs` for it.
    public func awaitTerminalExit(_ terminal: UInt64, timeoutMs: Int) throws(Failure) -> Int32 {
        try wait(timeoutMs: timeoutMs) { $0.terminalExits.removeValue(forKey: terminal) }
    }

    /// Sends one request and returns the matching reply and the descriptor it carried (-1 for
    /// none; only a successful `connect` or `openTerminal` reply carries one).
    public func call(_ call: ControlCall, timeoutMs: Int = 5000) throws(Failure) -> (ControlReply, Int32) {
        let op = call.op
        pthread_mutex_lock(&lock)
        if let reason = brokenReason {
            pthread_mutex_unlock(&lock)
            throw Self.broken(reason)
        }
        let id = nextID
        nextID += 1
        pending[id] = op
        pthread_mutex_unlock(&lock)
        let bytes = ControlCodec.encode(ControlRequest(id: id, call: call))
        let sent = bytes.withUnsafeBytes { csbx_send_with_fd(fd, $0.baseAddress, $0.count, -1) }
        guard sent == bytes.count else {
            pthread_mutex_lock(&lock)
            pending.removeValue(forKey: id)
            pthread_mutex_unlock(&lock)
            throw Failure(description: "instance init is not reachable")
        }
        let answer: (ControlReply?, Int32)
        do {
            answer = try wait(timeoutMs: timeoutMs) { $0.replies.removeValue(forKey: id) }
        } catch {
            pthread_mutex_lock(&lock)
            if let op = pending.removeValue(forKey: id) {
                abandoned[id] = op
                // Ids only grow, so the smallest is the oldest.
                if abandoned.count > Self.abandonedLimit, let oldest = abandoned.keys.min() { abandoned.removeValue(forKey: oldest) }
            }
            // A reply that arrived just as the wait ran out.
            if let (_, received) = replies.removeValue(forKey: id), received >= 0 { close(received) }
            pthread_mutex_unlock(&lock)
            throw error
        }
        guard let reply = answer.0 else { throw Failure(description: "the instance's init answered \(op.rawValue) with a malformed reply") }
        return (reply, answer.1)
    }

    /// Reads what the init sent while nobody was calling, without blocking, so that an init
    /// that misbehaves between calls is noticed too.
    public func drain(maxPackets: Int = 64) {
        pthread_mutex_lock(&lock)
        guard !reading, !closed, brokenReason == nil else {
            pthread_mutex_unlock(&lock)
            return
        }
        reading = true
        for _ in 0..<maxPackets {
            pthread_mutex_unlock(&lock)
            let message = receive(timeoutMs: 0)
            pthread_mutex_lock(&lock)
            if case .nothing = message { break }
            file(message)
            if closed || brokenReason != nil { break }
        }
        reading = false
        pthread_cond_broadcast(&changed)
        pthread_mutex_unlock(&lock)
    }

    private static func broken(_ reason: String) -> Failure {
        Failure(description: "the instance's init broke the control protocol: \(reason)")
    }

    private static func monotonicMs() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    /// Waits until `take` finds what this caller is waiting for, reading the socket itself
    /// whenever no other caller is.
    private func wait<T>(timeoutMs: Int, _ take: (ControlChannel) -> T?) throws(Failure) -> T {
        let deadline = Self.monotonicMs() + Int64(timeoutMs)
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        while true {
            if let reason = brokenReason { throw Self.broken(reason) }
            if let found = take(self) { return found }
            if closed { throw Failure(description: "instance init closed its control socket") }
            let left = deadline - Self.monotonicMs()
            if left <= 0 { throw Failure(description: "instance init did not answer in time") }
            if reading {
                // Bounded so that a waiter takes over reading soon after the reader leaves.
                let until = deadline - left + min(left, 100)
                var ts = timespec(tv_sec: Int(until / 1000), tv_nsec: Int(until % 1000) * 1_000_000)
                pthread_cond_timedwait(&changed, &lock, &ts)
                continue
            }
            reading = true
            pthread_mutex_unlock(&lock)
            let message = receive(timeoutMs: Int(min(left, 100)))
            pthread_mutex_lock(&lock)
            reading = false
            file(message)
            pthread_cond_broadcast(&changed)
        }
    }

    private enum Message { case packet(ControlResponse, Int32), closed, nothing, malformed(String) }

    /// Files one message where its caller finds it, or counts it against the init. Runs under
    /// the lock.
    private func file(_ message: Message) {
        switch message {
        case .packet(let record, var received):
            let id = record.id
            var fault: String?
            var reply: ControlReply??
            var mayCarry = false
            if id == 0 {
                fault = filedUnasked(record)
            } else if let op = pending.removeValue(forKey: id) {
                let typed = ControlReply(wire: record, for: op)
                if typed == nil { fault = "a reply that does not fit its \(op.rawValue) request" }
                reply = .some(typed)
                mayCarry = ControlCall.handsOverDescriptor(op)
            } else if let op = abandoned.removeValue(forKey: id) {
                mayCarry = ControlCall.handsOverDescriptor(op)
            } else {
                fault = "a reply to id \(id), which no call waits for"
            }
            if received >= 0 && !(mayCarry && record.ok && fault == nil) {
                close(received)
                received = -1
                fault = fault ?? (id == 0 ? "a descriptor on its hello or an event" : "a descriptor on a reply that expects none")
            }
            if let fault { violated(fault) }
            if let reply { replies[id] = (reply, received) } else if received >= 0 { close(received) }
        case .malformed(let what):
            violated(what)
        case .closed:
            closed = true
        case .nothing:
            break
        }
    }

    /// The hello, an event, or the init's notice that it could not read something we sent;
    /// returns a fault for anything else.
    private func filedUnasked(_ record: ControlResponse) -> String? {
        let second = Self.monotonicMs() / 1000
        if hello != nil || record.event != nil || !record.ok {
            eventWindow = eventWindow.second == second ? (second, eventWindow.count + 1) : (second, 1)
            if eventWindow.count > Self.eventsPerSecond { return "more than \(Self.eventsPerSecond) events in a second" }
        }
        if record.event == nil && !record.ok {
            return nil   // "malformed request": our own packet was lost; the call it was times out
        }
        if record.event == nil {
            guard hello == nil else { return "a second hello" }
            let services = record.services ?? []
            hello = Hello(version: record.version ?? "none", services: services)
            snapshot = services
            onServices?(services)
            return nil
        }
        switch ControlEvent(wire: record) {
        case .services(let services)?:
            snapshot = services
            onServices?(services)
        case .terminalExit(let terminal, let code)?:
            terminalExits[terminal] = code
            if terminalExits.count > Self.abandonedLimit, let oldest = terminalExits.keys.min() { terminalExits.removeValue(forKey: oldest) }
            terminalHandler?(terminal, code)
        case nil:
            return "an unknown or incomplete event"
        }
        return nil
    }

    private func violated(_ what: String) {
        violationCount += 1
        if violationCount >= Self.violationLimit && brokenReason == nil {
            brokenReason = "\(violationCount) protocol violations, the last: \(what)"
        }
    }

    private func receive(timeoutMs: Int) -> Message {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(timeoutMs)) > 0 else { return .nothing }
        if buffer.isEmpty { buffer = [UInt8](repeating: 0, count: ControlCodec.maxMessage) }
        var received: Int32 = -1
        let n = buffer.withUnsafeMutableBytes { csbx_recv_with_fd(fd, $0.baseAddress, $0.count, &received) }
        if n < 0 {
            switch errno {
            case EMSGSIZE: return .malformed("a packet over \(ControlCodec.maxMessage) bytes")
            case EAGAIN, EINTR: return .nothing
            default: return .closed
            }
        }
        if n == 0 {
            if received >= 0 { close(received) }
            // A zero-length packet reads like end of stream; only a hang-up is one.
            return pfd.revents & Int16(POLLHUP) != 0 ? .closed : .malformed("an empty packet")
        }
        guard let record = ControlCodec.decode(ControlResponse.self, buffer[0..<n]) else {
            if received >= 0 { close(received) }
            return .malformed("a packet that is not a reply")
        }
        return .packet(record, received)
    }
}
