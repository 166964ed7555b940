import CSandbox
import Glibc
import Sandbox

/// The host processes of one instance: every process whose real or effective uid lies in the
/// instance's id range, wherever it came from (its pid namespace, a previous daemon's launch,
/// anything the instance's users left behind). Before the daemon touches an instance's
/// storage none may be left, or one of them could change the tree under the daemon's walk.
struct InstanceProcesses {
    let ids: Range<UInt32>

    init(idBase: UInt32) { ids = idBase..<(idBase + SandboxPolicy.idRangeSize) }

    struct Found { var pid: pid_t; var nsDepth: Int; var namespaceInit: Bool }

    /// Live processes of the range (zombies hold nothing and are left to their parents).
    func find() -> [Found] {
        guard let proc = opendir("/proc") else { return [] }
        defer { closedir(proc) }
        var found: [Found] = []
        while let raw = readdir(proc) {
            let name = withUnsafeBytes(of: raw.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            guard let pid = pid_t(name), let process = inspect(pid) else { continue }
            found.append(process)
        }
        return found
    }

    private func inspect(_ pid: pid_t) -> Found? {
        guard let status = FileSystem.readText("/proc/\(pid)/status", limit: 16384) else { return nil }
        var uids: [UInt32] = [], nspids: [Substring] = [], zombie = false
        for line in status.split(separator: "\n") {
            if line.hasPrefix("Uid:") { uids = line.dropFirst(4).split(whereSeparator: { $0 == "\t" || $0 == " " }).compactMap { UInt32($0) } }
            else if line.hasPrefix("NSpid:") { nspids = line.dropFirst(6).split(whereSeparator: { $0 == "\t" || $0 == " " }) }
            else if line.hasPrefix("State:") { zombie = line.contains("Z (zombie)") || line.contains("X (dead)") }
        }
        guard !zombie, uids.count >= 2, ids.contains(uids[0]) || ids.contains(uids[1]) else { return nil }
        return Found(pid: pid, nsDepth: nspids.count, namespaceInit: nspids.last == "1")
    }

    /// Whether `pid` is `ancestor` or runs below it (its parent chain reaches it). Inside an
    /// instance every process does: orphans are reparented to its init.
    static func descends(_ pid: pid_t, from ancestor: pid_t) -> Bool {
        var current = pid
        for _ in 0..<64 {
            if current == ancestor { return true }
            guard current > 1, let stat = FileSystem.readText("/proc/\(current)/stat", limit: 4096),
                  let close = stat.lastIndex(of: ")") else { return false }
            // "pid (comm) state ppid …": the comm may hold anything, so read after its last ')'.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, let parent = pid_t(fields[1]) else { return false }
            current = parent
        }
        return false
    }

    /// SIGKILLs every process of the range, inits of pid namespaces first (the kernel then
    /// kills their namespaces), and waits until none is left or `timeoutMs` has passed.
    /// `sparing`: a running instance's init, whose own processes are left alone (a re-attached
    /// instance keeps running; anything else of its id range is a stray). Returns the pids
    /// still there: the caller must not touch the instance's storage then.
    func killAll(timeoutMs: Int = 5000, sparing initPID: pid_t? = nil) -> [pid_t] {
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        let deadline = Int(start.tv_sec) * 1000 + start.tv_nsec / 1_000_000 + timeoutMs
        while true {
            let found = find().filter { initPID == nil || !Self.descends($0.pid, from: initPID!) }
                .sorted { ($0.namespaceInit ? 0 : 1, $0.nsDepth) < ($1.namespaceInit ? 0 : 1, $1.nsDepth) }
            if found.isEmpty { return [] }
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let left = deadline - (Int(now.tv_sec) * 1000 + now.tv_nsec / 1_000_000)
            if left <= 0 { return found.map(\.pid) }
            var watched: [pollfd] = []
            for process in found {
                // Held through a pidfd, checked again after opening: a recycled pid is never hit.
                let pidfd = csbx_pidfd_open(process.pid)
                guard pidfd >= 0 else { continue }
                if inspect(process.pid) != nil && csbx_pidfd_signal(pidfd, SIGKILL) == 0 {
                    watched.append(pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0))
                } else {
                    close(pidfd)
                }
            }
            // A pidfd turns readable when its process has exited.
            var waited = 0
            while waited < watched.count {
                clock_gettime(CLOCK_MONOTONIC, &now)
                let remaining = deadline - (Int(now.tv_sec) * 1000 + now.tv_nsec / 1_000_000)
                if remaining <= 0 || poll(&watched, nfds_t(watched.count), Int32(remaining)) <= 0 { break }
                for i in watched.indices where watched[i].revents != 0 && watched[i].fd >= 0 {
                    close(watched[i].fd)
                    watched[i].fd = -1   // poll ignores negative descriptors
                    waited += 1
                }
            }
            for entry in watched where entry.fd >= 0 { close(entry.fd) }
        }
    }
}
