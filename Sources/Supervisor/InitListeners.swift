import Glibc
import Sandbox

/// TCP listeners the init holds on the instance's loopback for the daemon, which accepts on
/// them (`listen` op): the socket lives in the instance's network namespace, so code inside
/// reaches the daemon at 127.0.0.1:<port> without any route to the host.
///
/// The key proxy's port is bound before the first service starts, so the agent never finds it
/// closed; connections made while no daemon accepts wait in the backlog. A daemon that
/// re-attaches asks again and gets the same socket.
final class InitListeners {
    /// At most this many ports; the daemon asks for one.
    static let limit = 8
    private var sockets: [Int: Int32] = [:]

    /// Binds the ports asked for at start-up; a failure is logged and retried on request.
    func prebind(_ ports: [UInt16]) {
        for port in ports {
            if case .failure(let reason) = socket(for: Int(port)) { log("cannot listen on 127.0.0.1:\(port): \(reason)") }
        }
    }

    enum Outcome { case success(Int32), failure(String) }

    /// The listening socket for `port` (the init keeps it; the reply carries a duplicate).
    func socket(for port: Int) -> Outcome {
        if let fd = sockets[port] { return .success(fd) }
        guard sockets.count < Self.limit else { return .failure("too many listeners") }
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(FileSystem.errorText(errno)) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 512) == 0 else {
            let reason = FileSystem.errorText(errno)
            close(fd)
            return .failure(reason)
        }
        sockets[port] = fd
        return .success(fd)
    }
}
