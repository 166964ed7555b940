import CSandbox
import Glibc

/// Where a control channel comes from: the socket pair of a launch, or the listener an init
/// keeps (fd 4) for a daemon that restarted.
extension ControlChannel {
    /// Creates the socket pair; the second descriptor is for the init and must be closed by
    /// the caller once the launch is done.
    public static func makePair() throws(Failure) -> (ControlChannel, Int32) {
        var sv: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &sv) == 0 else {
            throw Failure(description: "socketpair: \(String(cString: strerror(errno)))")
        }
        return (ControlChannel(fd: sv[0]), sv[1])
    }

    /// A listening socket at `path` for an init to hold as fd 4 (the caller closes its copy
    /// once the launch is done). Whatever was at `path` is replaced.
    public static func listener(path: String) throws(Failure) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        unlink(path)
        guard withAddress(path, { bind(fd, $0, $1) }) == 0, listen(fd, 4) == 0 else {
            let e = errno
            close(fd)
            throw Failure(description: "cannot listen on \(path): \(String(cString: strerror(e)))")
        }
        return fd
    }

    /// Connects to an init's control listener; its hello comes first.
    public static func connect(path: String) throws(Failure) -> ControlChannel {
        let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        guard withAddress(path, { Glibc.connect(fd, $0, $1) }) == 0 else {
            let e = errno
            close(fd)
            throw Failure(description: "cannot connect to \(path): \(String(cString: strerror(e)))")
        }
        return ControlChannel(fd: fd)
    }

    /// `path` as a sockaddr_un. One longer than sun_path allows goes through a descriptor of
    /// its directory (`/proc/self/fd/N/name`), so any data dir works.
    private static func withAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        var name = path
        var dirFD: Int32 = -1
        if path.utf8.count >= capacity, let slash = path.lastIndex(of: "/") {
            dirFD = open(String(path[..<slash]), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard dirFD >= 0 else { return -1 }
            name = "/proc/self/fd/\(dirFD)" + path[slash...]
        }
        defer { if dirFD >= 0 { close(dirFD) } }
        let bytes = Array(name.utf8)
        guard bytes.count < capacity else {
            errno = ENAMETOOLONG
            return -1
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
