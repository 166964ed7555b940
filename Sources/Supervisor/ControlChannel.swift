import CSandbox
import Glibc

/// The daemon's end of an instance's control socket. Calls block (each bounded by its own
/// timeout) and may overlap: a long `run` does not hold up a `status`. Whichever caller is
/// reading files replies for the others by id.
public final class ControlChannel: @unchecked Sendable {
    public let fd: Int32
    private var nextID: UInt64 = 1
    private var lock = pthread_mutex_t()
    private var changed = pthread_cond_t()
    private var reading = false
    private var closed = false
    private var replies: [UInt64: (ControlResponse, Int32)] = [:]
    /// Calls that gave up waiting; their late replies are dropped (and any fd closed).
    private var abandoned: Set<UInt64> = []
    private var hello: ControlResponse?

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Creates the socket pair; the second descriptor is for the init and must be closed by
    /// the caller once the launch is done.
    public static func makePair() throws(Failure) -> (ControlChannel, Int32) {
        var sv: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &sv) == 0 else {
            throw Failure(description: "socketpair: \(String(cString: strerror(errno)))")
        }
        return (ControlChannel(fd: sv[0]), sv[1])
    }

    init(fd: Int32) {
        self.fd = fd
        pthread_mutex_init(&lock, nil)
        pthread_cond_init(&changed, nil)
    }

    deinit {
        close(fd)
        for (_, (_, received)) in replies where received >= 0 { close(received) }
        pthread_cond_destroy(&changed)
        pthread_mutex_destroy(&lock)
    }

    /// Waits for the init's hello, which it sends once its supervisor loop runs.
    public func awaitHello(timeoutMs: Int) throws(Failure) -> ControlResponse {
        try wait(timeoutMs: timeoutMs) { $0.hello }
    }

    /// Sends one request and returns the matching reply and any descriptor it carried.
    public func call(_ op: ControlRequest.Op, port: Int? = nil, argv: [String]? = nil, user: String? = nil,
                     timeoutMs: Int = 5000) throws(Failure) -> (ControlResponse, Int32) {
        pthread_mutex_lock(&lock)
        let id = nextID
        nextID += 1
        pthread_mutex_unlock(&lock)
        let runLimit = op == .run ? max(0, timeoutMs - 1000) : nil
        let bytes = ControlCodec.encode(ControlRequest(id: id, op: op, port: port, argv: argv, user: user, timeoutMs: runLimit))
        let sent = bytes.withUnsafeBytes { csbx_send_with_fd(fd, $0.baseAddress, $0.count, -1) }
        guard sent == bytes.count else { throw Failure(description: "instance init is not reachable") }
        do {
            return try wait(timeoutMs: timeoutMs) { $0.replies.removeValue(forKey: id) }
        } catch {
            pthread_mutex_lock(&lock)
            abandoned.insert(id)
            pthread_mutex_unlock(&lock)
            throw error
        }
    }

    /// Waits until `take` finds what this caller is waiting for, reading the socket itself
    /// whenever no other caller is.
    private func wait<T>(timeoutMs: Int, _ take: (ControlChannel) -> T?) throws(Failure) -> T {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let deadline = Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000 + Int64(timeoutMs)
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        while true {
            if let found = take(self) { return found }
            if closed { throw Failure(description: "instance init closed its control socket") }
            clock_gettime(CLOCK_MONOTONIC, &now)
            let left = deadline - (Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000)
            if left <= 0 { throw Failure(description: "instance init did not answer in time") }
            if reading {
                var until = timespec()
                clock_gettime(CLOCK_MONOTONIC, &until)
                let slice = min(left, 100)
                until.tv_nsec += Int(slice % 1000) * 1_000_000
                until.tv_sec += Int(slice / 1000) + until.tv_nsec / 1_000_000_000
                until.tv_nsec %= 1_000_000_000
                pthread_cond_timedwait(&changed, &lock, &until)
                continue
            }
            reading = true
            pthread_mutex_unlock(&lock)
            let message = receive(timeoutMs: Int(min(left, 100)))
            pthread_mutex_lock(&lock)
            reading = false
            switch message {
            case .reply(let response, let received):
                if response.id == 0 { hello = response; if received >= 0 { close(received) } }
                else if abandoned.remove(response.id) != nil { if received >= 0 { close(received) } }
                else { replies[response.id] = (response, received) }
            case .closed:
                closed = true
            case .nothing:
                break
            }
            pthread_cond_broadcast(&changed)
        }
    }

    private enum Message { case reply(ControlResponse, Int32), closed, nothing }

    private func receive(timeoutMs: Int) -> Message {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(timeoutMs)) > 0 else { return .nothing }
        var buffer = [UInt8](repeating: 0, count: ControlCodec.maxMessage)
        var received: Int32 = -1
        let n = buffer.withUnsafeMutableBytes { csbx_recv_with_fd(fd, $0.baseAddress, $0.count, &received) }
        guard n > 0 else { return .closed }
        guard let response = ControlCodec.decode(ControlResponse.self, buffer[0..<n]) else {
            if received >= 0 { close(received) }
            return .nothing
        }
        return .reply(response, received)
    }
}
