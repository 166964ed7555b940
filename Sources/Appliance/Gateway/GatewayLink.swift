import FoundationEssentials
import Logging
import NIOCore
import Supervisor
import Synchronization

/// The daemon's one connection to one instance's OpenClaw gateway, shared by every browser
/// chat socket of that instance (they differ by session key). It dials through the instance's
/// init (a TCP socket made on the instance's own loopback: no port on the host, no forwarding
/// header, so the gateway pairs our device silently), handshakes with a signed device,
/// correlates requests with responses, routes run events to the sessions they belong to, and
/// keeps itself alive: ticks watched, reconnects with backoff, `startup-sidecars` retried after
/// the time the gateway names. Transcripts pass through and are never logged.
final class GatewayLink: Sendable {
    enum Failure: Error, Equatable {
        case notReady(String)
        case refused(code: String, message: String)
        case lost
        case timedOut
    }

    /// The agent as the browser sees it.
    enum Status: Equatable, Sendable {
        case connecting(String?)
        case ready
        case failed(String)
        case stopped

        var update: ChatUpdate {
            switch self {
            case .connecting(let why): return .status(agent: "connecting", reason: why)
            case .ready: return .status(agent: "ready", reason: nil)
            case .failed(let why): return .status(agent: "failed", reason: why)
            case .stopped: return .status(agent: "stopped", reason: nil)
            }
        }
    }

    struct Listener {
        var sessionKey: String
        var continuation: AsyncStream<ChatUpdate>.Continuation
    }

    struct State {
        var status: Status = .connecting(nil)
        var send: AsyncStream<[UInt8]>.Continuation?
        var channel: (any Channel)?
        var pending: [String: CheckedContinuation<JSONValue, any Error>] = [:]
        var runs = ChatRuns()
        var listeners: [UInt64: Listener] = [:]
        var nextID: UInt64 = 1
        var lastFrame = ContinuousClock.now
        var hello: GatewayConnect.Hello?
        /// A wait between attempts, cut short by `kick()`.
        var waiting: CheckedContinuation<Void, Never>?
        var kicked = false
        var closed = false
        /// The instance's agent service is known not to run: no attempt until it is ready again.
        var agentDown = false
        /// When the init last reported the agent `ready`: hello-ok is logged with the time since.
        var agentReadyAt: ContinuousClock.Instant?
        /// When the current connection attempt began (dial through the init).
        var attemptAt = ContinuousClock.now
        /// Phases of the attempt, for the connected log line: the socket from the init, the challenge.
        var dialledAt = ContinuousClock.now
        var challengedAt = ContinuousClock.now
        var connectSentAt = ContinuousClock.now
        /// Numbers the waits between attempts; a wait's timer names the one it may end.
        var pauses: UInt64 = 0
        var timerFired: UInt64 = 0
        var readyAt: ContinuousClock.Instant?
    }

    let instance: Int64
    let dial: @Sendable () async throws -> Int32
    let token: String
    let device: DeviceIdentity
    let logger: Logger
    let state = Mutex(State())
    private let loop = Mutex<Task<Void, Never>?>(nil)
    static let version = "claworc"

    init(instance: Int64, token: String, device: DeviceIdentity, logger: Logger, dial: @escaping @Sendable () async throws -> Int32) {
        self.instance = instance
        self.token = token
        self.device = device
        self.logger = logger
        self.dial = dial
    }

    func start() {
        loop.withLock { task in
            guard task == nil else { return }
            task = Task { [self] in await run() }
        }
    }

    /// The agent (re)started: connect now, whatever the backoff said; an open link is dropped
    /// first when `reconnect` (its gateway is a new process).
    func kick(reconnect: Bool = false, agentReady: Bool = false) {
        let (waiter, channel) = state.withLock { s -> (CheckedContinuation<Void, Never>?, (any Channel)?) in
            s.kicked = true
            s.agentDown = false
            if agentReady { s.agentReadyAt = .now }
            let w = s.waiting
            s.waiting = nil
            return (w, reconnect ? s.channel : nil)
        }
        waiter?.resume()
        channel?.close(promise: nil)
    }

    /// The agent is down (stopped, failed, restarting): say so, drop the connection, wait for a kick.
    func agentDown(_ reason: String?, failed: Bool = false) {
        let channel = state.withLock { s -> (any Channel)? in
            s.kicked = false
            s.agentDown = true
            return s.channel
        }
        setStatus(failed ? .failed(reason ?? "The agent failed.") : .connecting(reason))
        channel?.close(promise: nil)
    }

    /// The instance stopped: the link ends and every listener is told.
    func close() {
        let (channel, waiter) = state.withLock { s -> ((any Channel)?, CheckedContinuation<Void, Never>?) in
            s.closed = true
            let w = s.waiting
            s.waiting = nil
            return (s.channel, w)
        }
        loop.withLock { $0?.cancel() }
        waiter?.resume()
        channel?.close(promise: nil)
        setStatus(.stopped)
        state.withLock { s in
            for listener in s.listeners.values { listener.continuation.finish() }
            s.listeners = [:]
        }
    }

    var status: Status { state.withLock { $0.status } }
    var readyAt: ContinuousClock.Instant? { state.withLock { $0.readyAt } }

    // MARK: listeners

    /// Updates for one session key, starting with the current status.
    func listen(sessionKey: String) -> (stream: AsyncStream<ChatUpdate>, cancel: @Sendable () -> Void) {
        let (stream, continuation) = AsyncStream<ChatUpdate>.makeStream(bufferingPolicy: .bufferingNewest(512))
        let id = state.withLock { s -> UInt64 in
            let id = s.nextID
            s.nextID += 1
            s.listeners[id] = Listener(sessionKey: s.runs.canonical(sessionKey), continuation: continuation)
            continuation.yield(s.status.update)
            return id
        }
        return (stream, { [weak self] in
            self?.state.withLock { _ = $0.listeners.removeValue(forKey: id) }
            continuation.finish()
        })
    }

    var listenerCount: Int { state.withLock { $0.listeners.count } }

    func publish(_ updates: [(String, ChatUpdate)]) {
        guard !updates.isEmpty else { return }
        state.withLock { s in
            for (key, update) in updates {
                for listener in s.listeners.values where listener.sessionKey == key { listener.continuation.yield(update) }
            }
        }
    }

    func setStatus(_ status: Status) {
        state.withLock { s in
            guard s.status != status, !(s.closed && status != .stopped) else { return }
            s.status = status
            for listener in s.listeners.values { listener.continuation.yield(status.update) }
        }
    }

    // MARK: chat

    func history(sessionKey: String) async throws -> JSONValue {
        let result = try await request("chat.history", ["sessionKey": .string(sessionKey), "limit": 200])
        return result["messages"] ?? .array([])
    }

    /// Starts a run; its events reach the session's listeners. The run id.
    func send(sessionKey: String, text: String) async throws -> String {
        let key = Hex.encode(Secrets.randomBytes(16))
        state.withLock { $0.runs.start(key, sessionKey: sessionKey) }
        do {
            let ack = try await request("chat.send", ["sessionKey": .string(sessionKey), "message": .string(text),
                                                      "idempotencyKey": .string(key), "deliver": false])
            let runID = ack["runId"]?.string ?? key
            state.withLock { $0.runs.rename(key, to: runID) }
            return runID
        } catch {
            state.withLock { $0.runs.forget(key) }
            throw error
        }
    }

    func abort(sessionKey: String, runID: String?) async throws {
        var params: JSONValue = ["sessionKey": .string(sessionKey)]
        if let runID, case .object(var o) = params { o["runId"] = .string(runID); params = .object(o) }
        _ = try await request("chat.abort", params)
    }

    func reset(sessionKey: String) async throws {
        _ = try await request("sessions.reset", ["key": .string(sessionKey)])
    }

    /// One request, answered by the `res` of the same id.
    func request(_ method: String, _ params: JSONValue, timeoutMs: Int64 = 30_000) async throws -> JSONValue {
        let id = Hex.encode(Secrets.randomBytes(8))
        let frame: JSONValue = ["type": "req", "id": .string(id), "method": .string(method), "params": params]
        let timeout = Task { [weak self] in
            try await Task.sleep(for: .milliseconds(timeoutMs))
            self?.fail(id, Failure.timedOut)
        }
        defer { timeout.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            let refused: (any Error)? = state.withLock { s in
                guard s.status == .ready, let send = s.send, let hello = s.hello else {
                    return Failure.notReady(Self.describe(s.status))
                }
                let bytes = Array(frame.text.utf8)
                guard bytes.count < hello.maxPayload else { return Failure.refused(code: "TOO_LARGE", message: "The message is too large.") }
                s.pending[id] = continuation
                send.yield(WebSocketFrames.encode(.text, bytes))
                return nil
            }
            if let refused { continuation.resume(throwing: refused) }
        }
    }

    private func fail(_ id: String, _ error: any Error) {
        state.withLock { $0.pending.removeValue(forKey: id) }?.resume(throwing: error)
    }

    private static func describe(_ status: Status) -> String {
        switch status {
        case .connecting(let why): return why ?? "The agent is not ready yet."
        case .ready: return "ready"
        case .failed(let why): return why
        case .stopped: return "The instance is stopped."
        }
    }
}
