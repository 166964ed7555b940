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

/// A shell inside an instance, on a pty whose master the daemon holds (the init keeps a copy
/// so the shell outlives a daemon restart). Output is always read (so the shell never blocks,
/// attached or not), kept in a scrollback ring and copied to every attached WebSocket. Ends
/// when the shell exits, when its instance stops (the pty hangs up), or after the idle
/// timeout with nobody attached (the init hangs it up).
final class TerminalSession: @unchecked Sendable {
    /// SHA-256 of the session id, hex: the daemon keeps no session id, and neither does the init.
    let key: String
    let instance: Int64
    let owner: Int64
    let root: Bool
    /// The init's id for the terminal (its `terminalExit` events name it).
    let terminal: UInt64
    /// The instance's control channel, which reports the shell's exit and hangs it up.
    let control: ControlChannel
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

    init(tag: TerminalTag, instance: Int64, opened: InstanceManager.OpenedTerminal, sizeFD: Int32) {
        self.key = tag.key
        self.instance = instance
        self.owner = tag.owner
        self.root = tag.root
        self.terminal = opened.terminal
        self.control = opened.channel
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

    /// True if the session is still idle since `generation`: then its shell is hung up (by
    /// the init, which also holds the pty) and the session ends.
    func closeIfIdle(since generation: Int) async -> Bool {
        let close: Bool = locked {
            guard clients.isEmpty, ended == nil, self.generation == generation else { return false }
            endedByUs = true
            return true
        }
        guard close else { return false }
        let control = self.control, terminal = self.terminal
        // An init of protocol 1.3 keeps no copy and knows no such op: closing ours hangs up.
        _ = try? await Blocking.run { try control.closeTerminal(terminal) }
        closePTY()
        return true
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
    func run(master: Int32, onEnd: @escaping @Sendable () -> Void) async {
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
            let terminal = self.terminal, control = self.control
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

/// Every terminal session of the appliance, by the hash of its id. A session id alone never
/// grants access: it must belong to the same instance and the same user (TerminalController).
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

    func session(_ id: String) -> TerminalSession? {
        let key = Self.key(id)
        return locked { sessions[key] }
    }

    private func remove(_ key: String) { locked { _ = sessions.removeValue(forKey: key) } }

    func count(instance: Int64) -> Int { locked { sessions.values.filter { $0.instance == instance }.count } }

    /// Opens a shell in the instance and registers its session: the new session id (the
    /// client's to keep; only its hash stays here) and the session.
    func open(_ manager: InstanceManager, instance: Int64, owner: Int64, root: Bool,
              cols: UInt16, rows: UInt16) async throws -> (id: String, session: TerminalSession) {
        let id = Hex.encode(Secrets.randomBytes(16))
        let tag = TerminalTag(owner: owner, root: root, key: Self.key(id))
        let opened = try await manager.openTerminal(instance, user: root ? .root : .agent, cols: cols, rows: rows, tag: tag.text)
        do {
            return (id, try start(instance: instance, tag: tag, opened: opened))
        } catch {
            _ = try? await Blocking.run { try opened.channel.closeTerminal(opened.terminal) }
            throw error
        }
    }

    /// Takes back the terminals that outlived the previous daemon, in every running
    /// instance: each is a session again (its scrollback starts now), idle until its user
    /// re-attaches with the session id they kept. A terminal whose tag is not one of ours
    /// cannot be reached by anyone and is hung up.
    func adoptRunning(_ manager: InstanceManager) async {
        let began = ContinuousClock.now
        var adopted = 0
        for instance in await manager.runningIDs {
            for (text, opened) in await manager.runningTerminals(instance) {
                let session: TerminalSession?
                if let tag = TerminalTag(text) {
                    session = try? start(instance: instance, tag: tag, opened: opened)   // closes the master if it throws
                } else {
                    close(opened.master)
                    session = nil
                }
                guard let session else {
                    _ = try? await Blocking.run { try opened.channel.closeTerminal(opened.terminal) }
                    continue
                }
                armIdleTimer(session, generation: 0)
                adopted += 1
            }
        }
        if adopted > 0 {
            let took = (ContinuousClock.now - began).components
            logger.info("took back running terminals", metadata: [
                "count": "\(adopted)", "us": "\(took.seconds * 1_000_000 + took.attoseconds / 1_000_000_000_000)"])
        }
    }

    /// Registers a session for a pty the init handed over and starts reading it.
    private func start(instance: Int64, tag: TerminalTag, opened: InstanceManager.OpenedTerminal) throws -> TerminalSession {
        let sizeFD = fcntl(opened.master, F_DUPFD_CLOEXEC, 0)
        guard sizeFD >= 0 else {
            close(opened.master)
            throw InstanceError.serviceUnreachable("cannot keep the terminal: \(String(cString: strerror(errno)))")
        }
        let session = TerminalSession(tag: tag, instance: instance, opened: opened, sizeFD: sizeFD)
        locked { sessions[session.key] = session }
        // Events are read by whoever reads the channel (a call, the manager's sweep).
        opened.channel.onTerminalExit = { [weak self] terminal, _ in
            guard let self else { return }
            let ended = self.locked { self.sessions.values.filter { $0.instance == instance && $0.terminal == terminal } }
            ended.forEach { $0.shellExited() }
        }
        let master = opened.master
        Task.detached { [self] in
            await session.run(master: master) { self.remove(session.key) }
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
            if await session.closeIfIdle(since: generation) {
                logger.info("terminal session idle, closed", metadata: ["instance": "\(session.instance)"])
            }
        }
    }

    static func key(_ id: String) -> String { SHA256.hex(Array(id.utf8)) }
}

/// What the init keeps with each shell for the daemon (opaque to the init): enough to make
/// the session again after a daemon restart. The session id is not in it, only its hash.
struct TerminalTag: Equatable {
    var owner: Int64
    var root: Bool
    var key: String

    var text: String { "v1 \(owner) \(root ? "root" : "agent") \(key)" }

    init(owner: Int64, root: Bool, key: String) {
        self.owner = owner
        self.root = root
        self.key = key
    }

    init?(_ text: String) {
        let parts = text.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "v1", let owner = Int64(parts[1]), parts[2] == "root" || parts[2] == "agent",
              parts[3].utf8.count == 64, parts[3].utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else { return nil }
        self.init(owner: owner, root: parts[2] == "root", key: String(parts[3]))
    }
}
