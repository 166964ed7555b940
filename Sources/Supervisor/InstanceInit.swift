import CSandbox
import Glibc
import Sandbox

/// PID 1 of an instance: the daemon's binary re-exec'd by the launcher in hidden init mode.
///
/// It is a fresh, single-threaded process and stays that way: one poll loop over a
/// signalfd (children, stop signals), the control socket (fd 3) and readiness pipes. No Swift
/// concurrency, so nothing here races with fork.
public enum InstanceInit {
    public static let controlFD: Int32 = 3
    /// A listening socket bound on the host (the daemon's, passed at launch): a daemon started
    /// after the one that launched this init connects there and the connection becomes fd 3.
    public static let listenerFD: Int32 = 4
    /// Service snapshots are pushed at most this often; changes in between are coalesced into
    /// the next push, so a crash-looping service cannot flood the daemon.
    static let eventIntervalMs: Int64 = 200

    /// Whether a service changed since the last push, and when the next push may go.
    final class EventPacer {
        var dirty = false
        var nextAt: Int64 = 0
    }

    /// What the launcher put in the init's environment.
    public struct Environment {
        public var services = "standard"
        public var screen = "1280x800"
        public var seccomp = true
        /// What the init gives back when idle (see `releaseIdleMemory`): "all" (default),
        /// "text" (only the read-only pages of its binary and libraries), "none". Set only
        /// by bench/init_memory.py, through the daemon.
        public var trim = "all"

        /// Read with getenv: the init's path to its hello stays free of generic collections.
        public static func fromProcess() -> Environment {
            var env = Environment()
            if let v = getenv("CLAWORC_SERVICES") { env.services = String(cString: v) }
            if let v = getenv("CLAWORC_SCREEN") { env.screen = String(cString: v) }
            if let v = getenv("CLAWORC_UNSAFE_NO_SECCOMP"), strcmp(v, "1") == 0 { env.seccomp = false }
            if let v = getenv("CLAWORC_INIT_TRIM") { env.trim = String(cString: v) }
            return env
        }
    }

    /// Image mode: the launcher exec'd the init with a tree of host files as its root (so the
    /// loader took nothing from the instance) and the instance's root as its working
    /// directory. Everything this process will ever map is mapped now: only now may its root
    /// become the instance's. CAP_SYS_CHROOT was kept for this one call and goes with it.
    public static func leaveInitRootIfAsked() {
        guard let v = getenv("CLAWORC_INIT_ROOT"), strcmp(v, "1") == 0 else { return }
        guard chroot(".") == 0, chdir("/") == 0, csbx_drop_capability(Capability.sysChroot) == 0 else {
            log("cannot leave the init root: \(FileSystem.errorText(errno))")
            exit(1)
        }
    }

    public static func run(environment: Environment) -> Never {
        // /proc/1 of the instance must not be a way back to the daemon's binary.
        csbx_set_dumpable(0)
        var mask = sigset_t()
        sigemptyset(&mask)
        for sig in [SIGCHLD, SIGTERM, SIGINT, SIGHUP] { sigaddset(&mask, sig) }
        sigprocmask(SIG_BLOCK, &mask, nil)
        signal(SIGPIPE, SIG_IGN)
        let sigFD = csbx_signalfd(&mask)
        guard sigFD >= 0 else {
            log("signalfd: \(FileSystem.errorText(errno))")
            exit(1)
        }
        prepareFilesystem()
        Confinement.enabled = environment.seccomp

        let logDirectory = FileSystem.isDirectory(ServiceCatalog.logDirectory) ? ServiceCatalog.logDirectory : nil
        let memoryEvents = "/sys/fs/cgroup/memory.events"
        // Each event goes to the init's own log (instance.log on the host) and marks the
        // snapshot for the next push to the daemon.
        let pacer = EventPacer()
        let supervisor = ServiceSupervisor(
            specs: ServiceCatalog.named(environment.services, screen: environment.screen), logDirectory: logDirectory,
            memoryEventsPath: FileSystem.exists(memoryEvents) ? memoryEvents : nil,
            onEvent: { log($0.logLine); pacer.dirty = true })
        let runner = CommandRunner()
        let terminals = InitTerminals()
        // Before the first service starts (the supervisor starts them from its first advance).
        let listeners = InitListeners()
        listeners.prebind([ServiceCatalog.llmProxyPort])
        var controlOpen = true
        let listening = isListener(listenerFD)
        sendHello(supervisor)
        var nextTrim = monotonicMs() + firstTrimMs

        while true {
            let now = monotonicMs()
            if now >= nextTrim {
                releaseIdleMemory(environment.trim)
                nextTrim = now + trimIntervalMs
            }
            var due = supervisor.advance(now: now)
            let (finished, runnerDue) = runner.advance(now: now)
            for reply in finished { send(reply, fd: -1) }
            due = min(due, runnerDue)
            if controlOpen && pacer.dirty {
                if now >= pacer.nextAt {
                    pacer.dirty = false
                    pacer.nextAt = now + eventIntervalMs
                    send(.event(.services(supervisor.statuses)), fd: -1)
                } else {
                    due = min(due, pacer.nextAt)
                }
            }
            if supervisor.shuttingDown && supervisor.allStopped {
                runner.killAll()
                terminals.killAll()
                supervisor.closeLogs()
                log("all services stopped; exiting")
                exit(0)
            }
            var fds = [pollfd(fd: sigFD, events: Int16(POLLIN), revents: 0)]
            if controlOpen { fds.append(pollfd(fd: controlFD, events: Int16(POLLIN), revents: 0)) }
            if listening { fds.append(pollfd(fd: listenerFD, events: Int16(POLLIN), revents: 0)) }
            for fd in supervisor.pollFDs + runner.outputFDs { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            let runnerFDs = Set(runner.outputFDs)
            let timeout = Int32(max(0, min(due - monotonicMs(), 1000)))
            let ready = poll(&fds, nfds_t(fds.count), timeout)
            if ready < 0 && errno != EINTR { log("poll: \(FileSystem.errorText(errno))"); exit(1) }
            guard ready > 0 else { continue }
            let after = monotonicMs()
            var connecting = false
            for p in fds where p.revents != 0 {
                if p.fd == sigFD {
                    handleSignals(sigFD, supervisor, runner, terminals, now: after)
                } else if runnerFDs.contains(p.fd) {
                    runner.readable(p.fd)
                } else if p.fd == controlFD {
                    if !handleControl(supervisor, runner, terminals, listeners, now: after) {
                        controlOpen = false
                        runner.orphanRequests()
                        if listening {
                            // The daemon stopped or died: the services run on until a daemon
                            // connects again (or stops them).
                            log("the daemon closed the control socket; services keep running, waiting for a daemon")
                        } else {
                            // Launched without a listener: no daemon could ever reach it again.
                            supervisor.beginShutdown(now: after)
                        }
                    }
                } else if p.fd == listenerFD {
                    connecting = true   // after fd 3's own events: they belong to the old connection
                } else {
                    supervisor.readable(p.fd, now: after)
                }
            }
            if connecting && takeConnection() {
                // A newer connection supersedes an older one, whose daemon sees it close.
                controlOpen = true
                runner.orphanRequests()
                sendHello(supervisor)
                pacer.dirty = false
                pacer.nextAt = after + eventIntervalMs
            }
        }
    }

    static let firstTrimMs: Int64 = 2_000
    static let trimIntervalMs: Int64 = 10_000

    /// Most of an init's resident memory is pages of the 20 MB binary it runs from (the
    /// sealed memfd, shared by every init) that only its start-up touched: the Swift
    /// runtime's and the services' set-up code. Dropping its mappings of read-only segments
    /// lets only what the poll loop uses fault back in (minor faults from the page cache, no
    /// I/O); malloc_trim returns the heap's free pages. Repeated, since a control request or a
    /// service restart touches more code. Written and anonymous memory is never dropped.
    static func releaseIdleMemory(_ mode: String) {
        guard mode != "none" else { return }
        _ = csbx_drop_readonly_pages()
        if mode == "all" { _ = csbx_malloc_trim() }
    }

    /// The hello opens every connection: the protocol version and the whole service snapshot,
    /// so a daemon that connects later knows at once what it missed.
    static func sendHello(_ supervisor: ServiceSupervisor) {
        send(.hello(version: ControlCodec.protocolVersion, services: supervisor.statuses), fd: -1)
    }

    static func isListener(_ fd: Int32) -> Bool {
        var accepting: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) == 0 && accepting == 1
    }

    /// Accepts a daemon's connection as the new fd 3.
    static func takeConnection() -> Bool {
        // Single-threaded: nothing can fork between the accept and the close-on-exec flag.
        let fd = accept(listenerFD, nil, nil)
        guard fd >= 0 else { return false }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        defer { close(fd) }
        guard dup2(fd, controlFD) == controlFD else {
            log("cannot take a daemon's connection: \(FileSystem.errorText(errno))")
            return false
        }
        log("a daemon connected to the control listener")
        return true
    }

    /// Directories the X server and Chromium expect, owned as they need.
    static func prepareFilesystem() {
        for dir in ["/tmp/.X11-unix", "/tmp/.ICE-unix"] {
            mkdir(dir, 0o1777)
            chmod(dir, 0o1777)
        }
        mkdir("/run/user", 0o755)   // /run is a fresh tmpfs
        for (uid, gid) in [(ServiceCatalog.agentUID, ServiceCatalog.agentGID), (ServiceCatalog.browserUID, ServiceCatalog.browserGID)] {
            let dir = ServiceCatalog.runtimeDir(uid)
            mkdir(dir, 0o700)
            chown(dir, uid, gid)
        }
        chown(ServiceCatalog.home, ServiceCatalog.agentUID, ServiceCatalog.agentGID)
        chown(ServiceCatalog.browserHome, ServiceCatalog.browserUID, ServiceCatalog.browserGID)
    }

    static func handleSignals(_ sigFD: Int32, _ supervisor: ServiceSupervisor, _ runner: CommandRunner,
                              _ terminals: InitTerminals, now: Int64) {
        while case let signo = csbx_signalfd_next(sigFD), signo > 0 {
            switch signo {
            case SIGCHLD:
                reapChildren(supervisor, runner, terminals, now: now)
            default:
                supervisor.beginShutdown(now: now)
            }
        }
        // Coalesced SIGCHLDs: always sweep.
        reapChildren(supervisor, runner, terminals, now: now)
    }

    static func reapChildren(_ supervisor: ServiceSupervisor, _ runner: CommandRunner, _ terminals: InitTerminals,
                             now: Int64) {
        var status: Int32 = 0
        while true {
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { break }
            if let event = terminals.childExited(pid: pid, status: status) {
                send(event, fd: -1)
            } else if !runner.childExited(pid: pid, status: status) {
                supervisor.childExited(pid: pid, status: status, now: now)
            }
        }
    }

    /// Answers one request; returns false when the daemon's end is closed.
    static func handleControl(_ supervisor: ServiceSupervisor, _ runner: CommandRunner, _ terminals: InitTerminals,
                              _ listeners: InitListeners, now: Int64) -> Bool {
        var buffer = [UInt8](repeating: 0, count: ControlCodec.maxMessage)
        var stray: Int32 = -1
        let n = buffer.withUnsafeMutableBytes { csbx_recv_with_fd(controlFD, $0.baseAddress, $0.count, &stray) }
        if stray >= 0 { close(stray) }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return true }
        guard n > 0 else { return false }
        let request: ControlRequest
        switch InitWire.decodeRequest(buffer[0..<n]) {
        case .call(let decoded):
            request = decoded
        case .refused(let id, let refusal):
            send(.reply(id: id, .failed(refusal.text)), fd: -1)
            return true
        case .malformed:
            // Nothing to answer by id: an id-0 failure tells the daemon something it sent was lost.
            send(ControlResponse(id: 0, ok: false, error: "malformed request"), fd: -1)
            return true
        }
        let id = request.id
        switch request.call {
        case .status:
            send(.reply(id: id, .services(supervisor.statuses)), fd: -1)
        case .connect(let port):
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd >= 0 && Probe.connectLoopback(fd: fd, port: port) {
                send(.reply(id: id, .done), fd: fd)
            } else {
                send(.reply(id: id, .failed("connect to port \(port): \(FileSystem.errorText(errno))")), fd: -1)
            }
            if fd >= 0 { close(fd) }
        case .restartService(let name):
            if let failure = supervisor.restart(service: name, now: now) {
                send(.reply(id: id, .failed(failure)), fd: -1)
            } else {
                send(.reply(id: id, .services(supervisor.statuses)), fd: -1)
            }
        case .shutdown:
            send(.reply(id: id, .done), fd: -1)
            supervisor.beginShutdown(now: now)
        case .run(let argv, let user, let timeoutMs):
            if let failure = runner.start(id: id, argv: argv, user: user, timeoutMs: timeoutMs, now: now) {
                send(.reply(id: id, .failed(failure.text)), fd: -1)
            }
        case .listen(let port):
            switch listeners.socket(for: Int(port)) {
            case .success(let fd):
                // The init keeps its own: a daemon that re-attaches gets the same socket.
                send(.reply(id: id, .done), fd: fd)
            case .failure(let reason):
                send(.reply(id: id, .failed("listen on port \(port): \(reason)")), fd: -1)
            }
        case .openTerminal(let user, let cols, let rows, let tag):
            switch terminals.open(user: user, cols: cols, rows: rows, tag: tag) {
            case .success(let (terminal, master)):
                send(.reply(id: id, .terminal(terminal)), fd: master)
                close(master)
            case .failure(let refusal):
                send(.reply(id: id, .failed(refusal.text)), fd: -1)
            }
        case .terminals:
            send(.reply(id: id, .terminals(terminals.list)), fd: -1)
        case .adoptTerminal(let terminal):
            switch terminals.adopt(terminal) {
            case .success(let master):
                send(.reply(id: id, .terminal(terminal)), fd: master)
                close(master)
            case .failure(let refusal):
                send(.reply(id: id, .failed(refusal.text)), fd: -1)
            }
        case .closeTerminal(let terminal):
            send(.reply(id: id, terminals.hangUp(terminal) ? .done : .failed("no terminal \(terminal)")), fd: -1)
        }
        return true
    }

    static func send(_ message: InitMessage, fd: Int32) { send(message.wire, fd: fd) }

    static func send(_ response: ControlResponse, fd: Int32) {
        let bytes = InitWire.encode(response)
        _ = bytes.withUnsafeBytes { csbx_send_with_fd(controlFD, $0.baseAddress, $0.count, fd) }
    }
}
