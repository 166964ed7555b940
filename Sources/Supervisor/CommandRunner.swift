import CSandbox
import Glibc
import Sandbox

/// One-shot commands the daemon asks the init to run inside the instance (`run` requests):
/// started like a service (same user, same confinement), their output collected through a
/// pipe without ever blocking the init's loop, and answered when both the process has been
/// reaped and its output has reached EOF.
final class CommandRunner {
    private final class Job {
        let requestID: UInt64
        let pid: pid_t
        var outputFD: Int32
        var output: [UInt8] = []
        var truncated = false
        var status: Int32?
        var timedOut = false
        /// Asked for on a control connection that has since closed: nobody waits for its reply.
        var orphaned = false
        let deadline: Int64

        init(requestID: UInt64, pid: pid_t, outputFD: Int32, deadline: Int64) {
            self.requestID = requestID
            self.pid = pid
            self.outputFD = outputFD
            self.deadline = deadline
        }
    }

    private var jobs: [Job] = []

    var outputFDs: [Int32] { jobs.compactMap { $0.outputFD >= 0 ? $0.outputFD : nil } }

    /// Starts the command (`argv` is not empty: ControlCall checked it); returns why it could
    /// not, or nil once it runs and its reply will come from `advance`.
    func start(id: UInt64, argv: [String], user: InstanceUser, timeoutMs: Int, now: Int64) -> ControlRefusal? {
        let command = argv[0]
        guard let path = Self.resolve(command) else { return ControlRefusal("\(command): command not found") }
        let spec = Self.spec(name: "run", path: path, argv: argv, user: user)
        var pipeFDs: [Int32] = [-1, -1]
        guard csbx_notify_pipe(&pipeFDs) == 0 else { return ControlRefusal("pipe: \(FileSystem.errorText(errno))") }
        var err: Int32 = 0
        let pid = SpawnCall.spawn(spec: spec, extraFDs: [], stdout: pipeFDs[1], stderr: pipeFDs[1], err: &err)
        close(pipeFDs[1])
        guard pid > 0 else {
            close(pipeFDs[0])
            return ControlRefusal("cannot run \(command): \(SpawnCall.describe(err))")
        }
        jobs.append(Job(requestID: id, pid: pid, outputFD: pipeFDs[0], deadline: now + Int64(max(100, timeoutMs))))
        return nil
    }

    /// How a process the daemon asked for runs (`run` commands, terminals' shells): as the agent
    /// (uid 1000, no capabilities, the services' seccomp profile, in its home) or as the root
    /// of the instance's user namespace.
    static func spec(name: String, path: String, argv: [String], user: InstanceUser, extraEnvironment: [String] = []) -> ServiceSpec {
        let asRoot = user == .root
        var env = ServiceCatalog.agentEnvironment
        if asRoot {
            env = env.map { $0.hasPrefix("HOME=") ? "HOME=/root" : $0.hasPrefix("USER=") ? "USER=root" : $0.hasPrefix("LOGNAME=") ? "LOGNAME=root" : $0 }
        }
        let replaced = Set(extraEnvironment.map { $0.prefix { $0 != "=" } })
        env = env.filter { !replaced.contains($0.prefix { $0 != "=" }) } + extraEnvironment
        return ServiceSpec(
            name: name, path: path, arguments: argv, environment: env, dependsOn: [], readiness: .notifyFD,
            uid: asRoot ? 0 : ServiceCatalog.agentUID, gid: asRoot ? 0 : ServiceCatalog.agentGID,
            workingDirectory: asRoot ? "/" : ServiceCatalog.home)
    }

    static func resolve(_ command: String) -> String? {
        if command.contains("/") { return access(command, X_OK) == 0 ? command : nil }
        for dir in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
            let candidate = dir + "/" + command
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    func readable(_ fd: Int32) {
        guard let job = jobs.first(where: { $0.outputFD == fd }) else { return }
        var buffer = [UInt8](repeating: 0, count: 16384)
        let n = read(fd, &buffer, buffer.count)
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
        if n <= 0 {
            close(fd)
            job.outputFD = -1
            return
        }
        let room = ControlCodec.maxRunOutput - job.output.count
        if room > 0 { job.output.append(contentsOf: buffer[0..<min(n, room)]) }
        if n > room { job.truncated = true }
    }

    /// Returns true if the pid was one of ours.
    func childExited(pid: pid_t, status: Int32) -> Bool {
        guard let job = jobs.first(where: { $0.pid == pid }) else { return false }
        job.status = status
        kill(-pid, SIGKILL)   // whatever it left in its session goes with it
        return true
    }

    /// Kills overdue commands and returns the replies of finished ones.
    func advance(now: Int64) -> (replies: [InitMessage], next: Int64) {
        var replies: [InitMessage] = []
        var next = now + 1000
        jobs.removeAll { job in
            if job.status == nil && now >= job.deadline && !job.timedOut {
                job.timedOut = true
                kill(-job.pid, SIGKILL)
                kill(job.pid, SIGKILL)
            }
            if job.status == nil { next = min(next, job.deadline) }
            guard let status = job.status, job.outputFD < 0 else { return false }
            let exited = status & 0x7f == 0
            let result = RunResult(exitCode: exited ? (status >> 8) & 0xff : nil, signal: exited ? nil : status & 0x7f,
                                   output: String(decoding: job.output, as: UTF8.self), truncated: job.truncated,
                                   timedOut: job.timedOut)
            if !job.orphaned { replies.append(.reply(id: job.requestID, .ran(result))) }
            return true
        }
        return (replies, next)
    }

    /// A new control connection: replies to the old one's requests would reach a daemon that
    /// never sent them (and counts them against the init).
    func orphanRequests() {
        for job in jobs { job.orphaned = true }
    }

    func killAll() {
        for job in jobs where job.status == nil { kill(-job.pid, SIGKILL) }
    }
}
