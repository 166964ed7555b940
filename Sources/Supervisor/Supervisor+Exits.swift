import Glibc

/// What happens when a service's process ends: its exit recorded (code or signal, an OOM kill
/// read from the instance's `memory.events`), then the next state by the stop's intent, the
/// service's final exits and its restart policy.
extension ServiceSupervisor {
    /// Records the exit of a reaped child (anything that is not a service's is ignored).
    func childExited(pid: pid_t, status: Int32, now: Int64) {
        guard let s = services.first(where: { $0.pid == pid }) else { return }
        let signaled = status & 0x7f != 0
        let code = (status >> 8) & 0xff
        let description = signaled ? "signal \(status & 0x7f)" : "exit \(code)"
        s.lastExit = description
        s.pid = 0
        if s.notifyFD >= 0 { close(s.notifyFD); s.notifyFD = -1 }
        if s.stdinFD >= 0 { close(s.stdinFD); s.stdinFD = -1 }
        if s.probeFD >= 0 { close(s.probeFD); s.probeFD = -1; s.probeBytes = [] }
        // The process group may still hold helpers (Chromium's zygote); take them down too.
        kill(-pid, SIGKILL)
        var oom = ""
        if signaled && status & 0x7f == SIGKILL, let seen = readOOMKills(), seen > oomKillsSeen {
            s.oomKills += seen - oomKillsSeen
            oomKillsSeen = seen
            oom = ", killed by the OOM killer"
        }
        let wasReady = s.readyAt > 0
        let intent = s.stopIntent
        s.stopIntent = .none
        let timeoutWhy = s.timeoutWhy
        s.timeoutWhy = nil
        if shuttingDown || intent == .shutdown {
            set(s, .stopped, reason: Self.instanceStopping)
            return
        }
        switch intent {
        case .dependency:
            s.nextStartAt = now
            set(s, .waiting, reason: "stopped (\(description)) as a dependency went down")
            return
        case .restart:
            s.nextStartAt = now
            set(s, .waiting, reason: "restart requested")
            return
        case .none, .shutdown:
            break
        }
        if !signaled, let final = s.spec.finalExits[code] {
            s.error = final
            set(s, .failed, reason: final)
            return
        }
        let failure = signaled || code != 0 || !wasReady
        if wasReady && now - s.readyAt >= s.spec.backoff.stableAfterMs { s.backoffStep = 0 }
        let why = (wasReady ? "exited (\(description)\(oom))" : "exited before ready (\(description)\(oom))")
            + (timeoutWhy.map { ": \($0)" } ?? "")
        switch s.spec.restart {
        case .never:
            if failure { s.error = why }
            set(s, failure ? .failed : .stopped, reason: why)
        case .onFailure where !failure:
            set(s, .stopped, reason: why)
        case .onFailure, .always:
            if wasReady { s.error = nil; scheduleRestart(s, now: now, why: why) } else { failedStart(s, now: now, why: why) }
        }
    }

    func readOOMKills() -> Int? {
        guard let path = memoryEventsPath else { return nil }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 512)
        let n = read(fd, &buf, buf.count)
        guard n > 0 else { return nil }
        let key = Array("oom_kill ".utf8)
        var i = 0
        while i < n {
            let lineStart = i
            while i < n && buf[i] != 10 { i += 1 }
            if i - lineStart > key.count && Array(buf[lineStart..<lineStart + key.count]) == key {
                var v = 0
                for b in buf[(lineStart + key.count)..<i] where b >= 48 && b <= 57 { v = v * 10 + Int(b - 48) }
                return v
            }
            i += 1
        }
        return nil
    }
}
