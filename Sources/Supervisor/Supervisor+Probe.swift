import Glibc

/// The HTTP readiness probe (`Readiness.http`): one request in flight at a time, its answer read
/// by the init's poll loop (the socket is among `pollFDs`), never waited for in place.
extension ServiceSupervisor {
    func probeHTTP(_ s: SupervisedService, port: UInt16, path: String, now: Int64) {
        if s.probeFD >= 0 && now >= s.probeDeadline {
            endProbe(s, now: now)   // accepted but never answered: ask again
        } else if s.probeFD < 0 && now >= s.nextProbeAt {
            s.probeFD = Probe.httpBegin(port: port, path: path)
            s.probeDeadline = now + SupervisorTiming.httpProbeTimeoutMs
            if s.probeFD < 0 { s.nextProbeAt = now + SupervisorTiming.probeIntervalMs }
        }
    }

    func probeReadable(_ s: SupervisedService, now: Int64) {
        var buf = [UInt8](repeating: 0, count: 512)
        let n = read(s.probeFD, &buf, buf.count)
        if n < 0 && (errno == EINTR || errno == EAGAIN) { return }
        if n > 0 { s.probeBytes += buf[0..<n] }
        guard let ok = Probe.httpAnswer(s.probeBytes, ended: n <= 0) else { return }
        endProbe(s, now: now)
        if ok && s.state == .starting { markReady(s, now: now) }
    }

    func endProbe(_ s: SupervisedService, now: Int64) {
        if s.probeFD >= 0 { close(s.probeFD); s.probeFD = -1 }
        s.probeBytes = []
        s.nextProbeAt = now + SupervisorTiming.probeIntervalMs
    }
}
