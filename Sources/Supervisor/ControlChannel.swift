import CSandbox
import Glibc

/// The daemon's end of an instance's control socket. Calls block (bounded by a receive
/// timeout) and are serialised; callers run them off the event loops.
public final class ControlChannel: @unchecked Sendable {
    public let fd: Int32
    private var nextID: UInt64 = 1
    private var lock = pthread_mutex_t()

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
    }

    deinit {
        close(fd)
        pthread_mutex_destroy(&lock)
    }

    /// Waits for the init's hello, which it sends once its supervisor loop runs.
    public func awaitHello(timeoutMs: Int) throws(Failure) -> ControlResponse {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        let (response, fd) = try receive(timeoutMs: timeoutMs)
        if fd >= 0 { close(fd) }
        guard response.id == 0 else { throw Failure(description: "init spoke before its hello") }
        return response
    }

    /// Sends one request and returns the matching reply and any descriptor it carried.
    public func call(_ op: ControlRequest.Op, port: Int? = nil, timeoutMs: Int = 5000) throws(Failure) -> (ControlResponse, Int32) {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        let id = nextID
        nextID += 1
        let bytes = ControlCodec.encode(ControlRequest(id: id, op: op, port: port))
        let sent = bytes.withUnsafeBytes { csbx_send_with_fd(fd, $0.baseAddress, $0.count, -1) }
        guard sent == bytes.count else { throw Failure(description: "instance init is not reachable") }
        while true {
            let (response, received) = try receive(timeoutMs: timeoutMs)
            if response.id == id { return (response, received) }
            if received >= 0 { close(received) }   // a reply to a request that timed out earlier
        }
    }

    private func receive(timeoutMs: Int) throws(Failure) -> (ControlResponse, Int32) {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&pfd, 1, Int32(timeoutMs))
        guard ready > 0 else { throw Failure(description: "instance init did not answer in time") }
        var buffer = [UInt8](repeating: 0, count: ControlCodec.maxMessage)
        var received: Int32 = -1
        let n = buffer.withUnsafeMutableBytes { csbx_recv_with_fd(fd, $0.baseAddress, $0.count, &received) }
        guard n > 0 else { throw Failure(description: "instance init closed its control socket") }
        guard let response = ControlCodec.decode(ControlResponse.self, buffer[0..<n]) else {
            if received >= 0 { close(received) }
            throw Failure(description: "malformed message from instance init")
        }
        return (response, received)
    }
}
