import CSandbox
import Glibc
import Sandbox

// How the supervisor reaches a service's process: the readiness probe, the add-on seccomp
// filter it stacks, and the spawn itself.

enum Probe {
    static func tcpAccepts(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return connectLoopback(fd: fd, port: port)
    }

    /// Starts an HTTP readiness probe: a connected, non-blocking socket with the request
    /// written; the loop polls it and `httpAnswer` judges what comes back. -1: not listening.
    static func httpBegin(port: UInt16, path: String) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return -1 }
        // A loopback connect completes (or is refused) at once; only the answer can take time.
        guard connectLoopback(fd: fd, port: port) else { close(fd); return -1 }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8)
        guard write(fd, request, request.count) == request.count else { close(fd); return -1 }
        return fd
    }

    /// What a probe's answer so far says: true (200), false (anything else), nil (need more).
    static func httpAnswer(_ bytes: [UInt8], ended: Bool) -> Bool? {
        guard let cr = bytes.firstIndex(of: 13) ?? (ended ? bytes.endIndex : nil) else { return bytes.count > 1024 ? false : nil }
        let status = String(decoding: bytes[..<cr], as: UTF8.self).split(separator: " ")
        return status.count >= 2 && status[0].hasPrefix("HTTP/1.") && status[1] == "200"
    }

    static func connectLoopback(fd: Int32, port: UInt16) -> Bool {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return rc == 0
    }
}

/// The add-on filter stacked on every process the init starts that may not create
/// namespaces; built once, in the single-threaded init, before anything is spawned.
enum Confinement {
    nonisolated(unsafe) static var enabled = true
    nonisolated(unsafe) private static var built: [UInt8]?

    /// Compiled on first use, so an instance acknowledges its launch before paying for it.
    static var noNamespaces: [UInt8] {
        guard enabled else { return [] }
        if let built { return built }
        do { built = try SeccompProfile.noNamespaces.build() } catch {
            // Starting a service less confined than promised is not an option.
            log("cannot build the add-on seccomp filter: \(error)")
            exit(1)
        }
        return built ?? []
    }
}

enum SpawnCall {
    static func describe(_ err: Int32) -> String {
        let step = err >> 16
        let text = FileSystem.errorText(err & 0xffff)
        return step == 0 ? text : "\(String(cString: csbx_spawn_step_name(err))): \(text)"
    }

    /// `terminal`: a pty slave that becomes stdin, stdout, stderr and the controlling terminal.
    static func spawn(spec: ServiceSpec, extraFDs: [Int32], stdin: Int32 = -1, stdout: Int32 = 1, stderr: Int32 = 2,
                      terminal: Int32 = -1, err: inout Int32) -> pid_t {
        var keep: [UnsafeMutablePointer<CChar>] = []
        defer { keep.forEach { free($0) } }
        func cArray(_ items: [String]) -> [UnsafeMutablePointer<CChar>?] {
            var arr: [UnsafeMutablePointer<CChar>?] = items.map { let p = strdup($0)!; keep.append(p); return p }
            arr.append(nil)
            return arr
        }
        let argv = cArray(spec.arguments)
        let envp = cArray(spec.environment)
        let filter = spec.mayCreateNamespaces ? [] : Confinement.noNamespaces
        return filter.withUnsafeBytes { filterBytes in spec.path.withCString { path in
            spec.workingDirectory.withCString { cwd in
                argv.withUnsafeBufferPointer { a in
                    envp.withUnsafeBufferPointer { e in
                        extraFDs.withUnsafeBufferPointer { x in
                            var s = csbx_spawn_spec()
                            s.path = path
                            s.argv = a.baseAddress
                            s.envp = e.baseAddress
                            s.cwd = cwd
                            s.uid = spec.uid
                            s.gid = spec.gid
                            s.stdin_fd = terminal >= 0 ? terminal : stdin
                            s.stdout_fd = terminal >= 0 ? terminal : stdout
                            s.stderr_fd = terminal >= 0 ? terminal : stderr
                            s.controlling_tty = terminal >= 0 ? 1 : 0
                            s.extra_fds = x.baseAddress
                            s.n_extra = Int32(x.count)
                            s.drop_all_caps = spec.uid == 0 ? 0 : 1
                            s.seccomp_filter = filterBytes.baseAddress
                            s.seccomp_len = filterBytes.count
                            return csbx_spawn(&s, &err)
                        }
                    }
                }
            }
        } }
    }
}
