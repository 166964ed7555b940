import CSandbox
import Glibc
import Logging
import NIOCore
import NIOPosix
import Supervisor

/// What an attached WebSocket receives from its terminal session.
enum TerminalOutput: Sendable {
    case data(ByteBuffer)
    /// The shell ended (nil: its code is unknown, e.g. the instance stopped).
    case exit(Int32?)
}

/// A shell inside an instance, on a pty whose master the daemon holds. Output is always
/// read (so the shell never blocks, attached or not), kept in a scrollback ring and copied to
/// every attached WebSocket. Ends when the shell exits, when its instance stops (the pty hangs
/// up), or after the idle timeout with nobody attached.
final class TerminalSession: @unchecked Sendable {
    let id: String
    let instance: Int64
    let owner: Int64
    let root: Bool
    /// The init's id for the terminal (its `terminalExit` events name it).
    let terminal: UInt64
    static let scrollbackBytes = 256 * 1024
    /// Output chunks queued for one slow WebSocket; past it the client is detached (it can
    /// re-attach and gets the scrollback) rather than have the shell wait for it.
    static let clientQueue = 1024

    private var lock = pthread_mutex_t()
    private var ring = ScrollbackRing(capacity: TerminalSession.scrollbackBytes)
    private var clients: [Int: AsyncStream<TerminalOutput>.Continuation] = [:]
    private var nextClient = 0
    private var pty: (any Channel)?
    /// Keystrokes on their way to the pty, in order, whether or not its channel is up yet.
    private let input: AsyncStream<ByteBuffer>
    private let inputContinuation: AsyncStream<ByteBuffer>.Continuation
    /// Input chunks (each at most one WebSocket message) waiting for a shell that does not read.
    static let inputQueue = 64
    /// A duplicate of the master for TIOCSWINSZ, closed when the session ends.
    private var sizeFD: Int32
    private var ended: Int32??
    private var endedByUs = false
    /// Bumped on every attach: an idle timer armed at a detach only fires if none came since.
    private var generation = 0

    init(id: String, instance: Int64, owner: Int64, root: Bool, terminal: UInt64, sizeFD: Int32) {
        self.id = id
        self.instance = instance
        self.owner = owner
        self.root = root
        self.terminal = terminal
        self.sizeFD = sizeFD
        (input, inputContinuation) = AsyncStream<ByteBuffer>.makeStream(bufferingPolicy: .bufferingOldest(Self.inputQueue))
        pthread_mutex_init(&lock, nil)
    }

    deinit {
        if sizeFD >= 0 { close(sizeFD) }
        pthread_mutex_destroy(&lock)
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return body()
    }

    var isEnded: Bool { locked { ended != nil } }
    var attachedCount: Int { locked { clients.count } }

    /// Attaches a client: the scrollback so far and the stream of everything after it, with no
    /// byte lost or repeated in between. nil once the session has ended.
    func attach() -> (replay: [UInt8], output: AsyncStream<TerminalOutput>, client: Int)? {
        let (stream, continuation) = AsyncStream<TerminalOutput>.makeStream(bufferingPolicy: .bufferingOldest(Self.clientQueue))
        return locked {
            guard ended == nil else { return nil }
            let client = nextClient
            nextClient += 1
            generation += 1
            clients[client] = continuation
            return (ring.contents, stream, client)
        }
    }

    /// Detaches a client; returns the generation an idle timer must still see to fire, when
    /// nobody is attached any more.
    func detach(_ client: Int) -> Int? {
        locked {
            clients.removeValue(forKey: client)?.finish()
            return clients.isEmpty && ended == nil ? generation : nil
        }
    }

    /// True if the session is still idle since `generation` (then it is being closed).
    func closeIfIdle(since generation: Int) -> Bool {
        let close: Bool = locked {
            guard clients.isEmpty, ended == nil, self.generation == generation else { return false }
            endedByUs = true
            return true
        }
        if close { closePTY() }
        return close
    }

    /// False when the shell is so far behind that the input was not queued: the caller
    /// detaches rather than lose keystrokes silently.
    func write(_ bytes: ByteBuffer) -> Bool {
        if case .dropped = inputContinuation.yield(bytes) { return false }
        return true
    }

    func resize(cols: Int, rows: Int) {
        guard (1...1000).contains(cols), (1...1000).contains(rows) else { return }
        locked { if sizeFD >= 0 { _ = csbx_pty_resize(sizeFD, UInt16(cols), UInt16(rows)) } }
    }

    func closePTY() {
        locked { pty }?.close(promise: nil)
    }

    /// Reads the pty until it hangs up, then learns the shell's exit code and tells everyone.
    /// Owns `master` from the start.
    func run(master: Int32, channel control: ControlChannel, onEnd: @escaping @Sendable () -> Void) async {
        do {
            let pty = try await FDRelay.pipeChannel(master)
            let live = adopt(pty.channel)
            let input = self.input
            try await pty.executeThenClose { inbound, outbound in
                guard live else { return }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await chunk in input { try await outbound.write(chunk) }
                    }
                    for try await buffer in inbound { output(buffer) }
                    group.cancelAll()
                }
            }
        } catch {
            // A pty that hangs up reads as EIO: the normal end of a shell.
        }
        let byUs = locked { endedByUs }
        var code: Int32?
        if !byUs {
            let terminal = self.terminal
            code = try? await Blocking.run { try control.awaitTerminalExit(terminal, timeoutMs: 3000) }
        }
        let finished: [AsyncStream<TerminalOutput>.Continuation] = locked {
            ended = .some(code)
            inputContinuation.finish()
            pty = nil
            if sizeFD >= 0 { close(sizeFD); sizeFD = -1 }
            let all = Array(clients.values)
            clients.removeAll()
            return all
        }
        for client in finished {
            client.yield(.exit(code))
            client.finish()
        }
        onEnd()
    }

    fileprivate func adopt(_ channel: any Channel) -> Bool {
        locked {
            pty = channel
            return !endedByUs
        }
    }

    private func output(_ buffer: ByteBuffer) {
        locked {
            ring.append(buffer.readableBytesView)
            for (client, continuation) in clients {
                if case .dropped = continuation.yield(.data(buffer)) {
                    clients.removeValue(forKey: client)
                    continuation.finish()
                }
            }
        }
    }

    /// The init reported the shell's end: whatever still holds the pty's other side (a job
    /// left in the background), the session is over.
    func shellExited() {
        closePTY()
    }
}

/// Every terminal session of the appliance, by id. A session id alone never grants access:
/// it must belong to the same instance and the same user (TerminalController).
final class TerminalSessions: @unchecked Sendable {
    let idleTimeoutMs: Int
    let logger: Logger
    private var lock = pthread_mutex_t()
    private var sessions: [String: TerminalSession] = [:]
    static let maxPerInstance = 16

    init(idleTimeoutMs: Int, logger: Logger) {
        self.idleTimeoutMs = idleTimeoutMs
        self.logger = logger
        pthread_mutex_init(&lock, nil)
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return body()
    }

    func session(_ id: String) -> TerminalSession? { locked { sessions[id] } }

    private func remove(_ id: String) { locked { _ = sessions.removeValue(forKey: id) } }

    func count(instance: Int64) -> Int { locked { sessions.values.filter { $0.instance == instance }.count } }

    /// Registers a session for a pty the init handed over and starts reading it.
    func start(instance: Int64, owner: Int64, root: Bool, opened: InstanceManager.OpenedTerminal) throws -> TerminalSession {
        let sizeFD = fcntl(opened.master, F_DUPFD_CLOEXEC, 0)
        guard sizeFD >= 0 else {
            close(opened.master)
            throw InstanceError.serviceUnreachable("cannot keep the terminal: \(String(cString: strerror(errno)))")
        }
        let session = TerminalSession(id: Self.newID(), instance: instance, owner: owner, root: root,
                                      terminal: opened.terminal, sizeFD: sizeFD)
        locked { sessions[session.id] = session }
        // Events are read by whoever reads the channel (a call, the manager's sweep).
        opened.channel.onTerminalExit = { [weak self] terminal, _ in
            guard let self else { return }
            let ended = self.locked { self.sessions.values.filter { $0.instance == instance && $0.terminal == terminal } }
            ended.forEach { $0.shellExited() }
        }
        let control = opened.channel, master = opened.master
        Task.detached { [self] in
            await session.run(master: master, channel: control) { self.remove(session.id) }
        }
        return session
    }

    /// After a detach that left nobody attached: the session ends unless someone attaches
    /// within the idle timeout.
    func armIdleTimer(_ session: TerminalSession, generation: Int) {
        let delay = idleTimeoutMs
        let logger = logger
        Task.detached {
            try? await Task.sleep(for: .milliseconds(delay))
            if session.closeIfIdle(since: generation) {
                logger.info("terminal session idle, closed", metadata: ["instance": "\(session.instance)"])
            }
        }
    }

    /// 128 random bits, hex.
    static func newID() -> String { Hex.encode(Secrets.randomBytes(16)) }
}
