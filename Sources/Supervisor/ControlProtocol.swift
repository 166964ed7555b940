import FoundationEssentials

// Messages on the control socket between the daemon and an instance's init.
//
// The socket is a SOCK_SEQPACKET pair created by the daemon; the init holds its end as fd 3.
// Every message is one JSON object in one packet, so framing is the kernel's job. In the code
// every message is typed per operation (`ControlCall`, `ControlReply`, `ControlEvent`); on the
// wire they are flat objects (`{"id", "op", ...}` one way, `ControlResponse` the other), so
// either side can skip what it does not know. docs/control-protocol.md describes every message.

/// Who a process the daemon asks for runs as: the agent (uid 1000, no capabilities) or the
/// root of the instance's user namespace.
public enum InstanceUser: String, Sendable, Equatable {
    case agent, root
}

/// One request to the init, with exactly the members its operation needs.
public enum ControlCall: Sendable, Equatable {
    /// The services' states.
    case status
    /// A TCP socket connected to 127.0.0.1:port inside the instance, handed over with the reply.
    case connect(port: UInt16)
    /// Stop every service, then exit.
    case shutdown
    /// Run a command to its end and return its output; the init kills it after `timeoutMs`.
    case run(argv: [String], user: InstanceUser, timeoutMs: Int)
    /// Restart one service (a `failed` one leaves its start limit behind).
    case restartService(String)
    /// A login shell on a new pty; the master is handed over with the reply. The init keeps a
    /// copy of the master and the daemon's `tag` with the shell, so a restarted daemon can
    /// take the terminal back (`terminals`, `adoptTerminal`).
    case openTerminal(user: InstanceUser, cols: UInt16, rows: UInt16, tag: String)
    /// The shells that run, with their tags.
    case terminals
    /// Another copy of a running terminal's master, handed over with the reply.
    case adoptTerminal(UInt64)
    /// Hang a terminal up: its process group gets SIGHUP and the init drops its master.
    case closeTerminal(UInt64)
    /// A TCP socket listening on 127.0.0.1:port inside the instance (the key proxy's, bound
    /// before the first service starts), handed over with the reply; the daemon accepts on it.
    case listen(port: UInt16)

    public enum Op: String, Sendable, CaseIterable {
        case status, connect, shutdown, run, restartService, openTerminal, listen, terminals, adoptTerminal, closeTerminal
    }

    /// A terminal's tag, at most: the daemon's own bookkeeping, not a place for data.
    public static let maxTagBytes = 256

    public var op: Op {
        switch self {
        case .status: .status
        case .connect: .connect
        case .shutdown: .shutdown
        case .run: .run
        case .restartService: .restartService
        case .openTerminal: .openTerminal
        case .listen: .listen
        case .terminals: .terminals
        case .adoptTerminal: .adoptTerminal
        case .closeTerminal: .closeTerminal
        }
    }

    /// The replies that hand over a descriptor: one mechanism for sockets and ptys alike.
    public var handsOverDescriptor: Bool { Self.handsOverDescriptor(op) }
    static func handsOverDescriptor(_ op: Op) -> Bool {
        op == .connect || op == .openTerminal || op == .listen || op == .adoptTerminal
    }

    /// The members of a request as they were on the wire, before they are checked.
    struct Members {
        var port: Int64?
        var argv: [String]?
        var user: String?
        var timeoutMs: Int64?
        var service: String?
        var cols: Int64?
        var rows: Int64?
        var terminal: Int64?
        var tag: String?
    }

    /// The call `op` names, or why the members do not make one (the init answers that text).
    static func checked(op: String, _ m: Members) -> Result<ControlCall, ControlRefusal> {
        func refuse(_ text: String) -> Result<ControlCall, ControlRefusal> { .failure(ControlRefusal(text)) }
        func user() -> InstanceUser? { m.user.map { InstanceUser(rawValue: $0) } ?? .agent }
        switch Op(rawValue: op) {
        case nil:
            return refuse("unknown op \"\(op.prefix(64))\"")
        case .status:
            return .success(.status)
        case .shutdown:
            return .success(.shutdown)
        case .connect:
            guard let port = m.port, (1...65535).contains(port) else { return refuse("invalid port") }
            return .success(.connect(port: UInt16(port)))
        case .listen:
            guard let port = m.port, (1...65535).contains(port) else { return refuse("invalid port") }
            return .success(.listen(port: UInt16(port)))
        case .run:
            guard let argv = m.argv, let first = argv.first, !first.isEmpty else { return refuse("run needs a command") }
            guard let user = user() else { return refuse("user must be agent or root") }
            let limit = m.timeoutMs ?? 30_000
            guard limit > 0, limit <= 24 * 3600 * 1000 else { return refuse("invalid timeoutMs") }
            return .success(.run(argv: argv, user: user, timeoutMs: Int(limit)))
        case .restartService:
            guard let name = m.service, !name.isEmpty else { return refuse("restartService needs a service") }
            return .success(.restartService(name))
        case .openTerminal:
            guard let user = user() else { return refuse("user must be agent or root") }
            let cols = m.cols ?? 80, rows = m.rows ?? 24
            guard (1...1000).contains(cols), (1...1000).contains(rows) else { return refuse("invalid terminal size") }
            let tag = m.tag ?? ""
            guard tag.utf8.count <= maxTagBytes else { return refuse("terminal tag too long") }
            return .success(.openTerminal(user: user, cols: UInt16(cols), rows: UInt16(rows), tag: tag))
        case .terminals:
            return .success(.terminals)
        case .adoptTerminal, .closeTerminal:
            guard let terminal = m.terminal, terminal > 0 else { return refuse("invalid terminal") }
            return .success(Op(rawValue: op) == .adoptTerminal ? .adoptTerminal(UInt64(terminal)) : .closeTerminal(UInt64(terminal)))
        }
    }
}

/// Why the init did not do what it was asked: the text of a failed reply.
public struct ControlRefusal: Error, Sendable, Equatable {
    public var text: String
    public init(_ text: String) { self.text = text }
}

/// A request as it goes out: an id (> 0, increasing per channel) and the call.
public struct ControlRequest: Sendable, Equatable, Encodable {
    public var id: UInt64
    public var call: ControlCall

    public init(id: UInt64, call: ControlCall) {
        self.id = id
        self.call = call
    }

    enum Key: String, CodingKey { case id, op, port, argv, user, timeoutMs, service, cols, rows, terminal, tag }

    /// Flat: `{"id", "op", ...the op's members}`.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(id, forKey: .id)
        try c.encode(call.op.rawValue, forKey: .op)
        switch call {
        case .status, .shutdown, .terminals:
            break
        case .connect(let port), .listen(let port):
            try c.encode(port, forKey: .port)
        case .run(let argv, let user, let timeoutMs):
            try c.encode(argv, forKey: .argv)
            try c.encode(user.rawValue, forKey: .user)
            try c.encode(timeoutMs, forKey: .timeoutMs)
        case .restartService(let name):
            try c.encode(name, forKey: .service)
        case .openTerminal(let user, let cols, let rows, let tag):
            try c.encode(user.rawValue, forKey: .user)
            try c.encode(cols, forKey: .cols)
            try c.encode(rows, forKey: .rows)
            try c.encode(tag, forKey: .tag)
        case .adoptTerminal(let terminal), .closeTerminal(let terminal):
            try c.encode(terminal, forKey: .terminal)
        }
    }
}

/// The outcome of a `run` request.
public struct RunResult: Codable, Sendable, Equatable {
    public var exitCode: Int32?
    public var signal: Int32?
    public var output: String
    public var truncated: Bool
    public var timedOut: Bool

    public init(exitCode: Int32?, signal: Int32?, output: String, truncated: Bool, timedOut: Bool) {
        self.exitCode = exitCode
        self.signal = signal
        self.output = output
        self.truncated = truncated
        self.timedOut = timedOut
    }
}

/// A running terminal as the init lists it: its id and the tag the daemon gave it.
public struct TerminalEntry: Codable, Sendable, Equatable {
    public var id: UInt64
    public var tag: String

    public init(id: UInt64, tag: String) {
        self.id = id
        self.tag = tag
    }
}

/// A reply, typed by the request it answers.
public enum ControlReply: Sendable, Equatable {
    case failed(String)
    /// `connect` and `listen` (with their socket), `shutdown`, `closeTerminal`.
    case done
    /// `status`, `restartService`.
    case services([ServiceStatus])
    /// `run`.
    case ran(RunResult)
    /// `openTerminal`, `adoptTerminal` (with the pty master): the terminal's id.
    case terminal(UInt64)
    /// `terminals`.
    case terminals([TerminalEntry])

    /// The reply a wire record makes for `op`, or nil when it does not fit (a `status` reply
    /// without services): counted against the init.
    init?(wire r: ControlResponse, for op: ControlCall.Op) {
        guard r.ok else {
            self = .failed(r.error ?? "the instance's init refused without a reason")
            return
        }
        switch op {
        case .connect, .shutdown, .listen, .closeTerminal: self = .done
        case .status, .restartService:
            guard let services = r.services else { return nil }
            self = .services(services)
        case .run:
            guard let run = r.run else { return nil }
            self = .ran(run)
        case .openTerminal, .adoptTerminal:
            guard let terminal = r.terminal else { return nil }
            self = .terminal(terminal)
        case .terminals:
            guard let terminals = r.terminals else { return nil }
            self = .terminals(terminals)
        }
    }
}

/// What the init sends unasked (id 0), after its hello.
public enum ControlEvent: Sendable, Equatable {
    /// The whole snapshot after a change (at most every 200 ms).
    case services([ServiceStatus])
    /// A terminal's shell ended: its exit status (128 + N for signal N).
    case terminalExit(terminal: UInt64, code: Int32)

    init?(wire r: ControlResponse) {
        switch r.event {
        case "services":
            guard let services = r.services else { return nil }
            self = .services(services)
        case "terminalExit":
            guard let terminal = r.terminal, let code = r.code else { return nil }
            self = .terminalExit(terminal: terminal, code: code)
        default:
            return nil
        }
    }
}

/// Everything the init sends: its hello once per connection, replies, events.
public enum InitMessage: Sendable, Equatable {
    case hello(version: String, services: [ServiceStatus])
    case reply(id: UInt64, ControlReply)
    case event(ControlEvent)

    /// The flat record it is on the wire.
    public var wire: ControlResponse {
        switch self {
        case .hello(let version, let services):
            return ControlResponse(id: 0, ok: true, services: services, version: version)
        case .event(.services(let services)):
            return ControlResponse(id: 0, ok: true, services: services, event: "services")
        case .event(.terminalExit(let terminal, let code)):
            return ControlResponse(id: 0, ok: true, event: "terminalExit", terminal: terminal, code: code)
        case .reply(let id, .failed(let text)):
            return ControlResponse(id: id, ok: false, error: text)
        case .reply(let id, .done):
            return ControlResponse(id: id, ok: true)
        case .reply(let id, .services(let services)):
            return ControlResponse(id: id, ok: true, services: services)
        case .reply(let id, .ran(let run)):
            return ControlResponse(id: id, ok: true, run: run)
        case .reply(let id, .terminal(let terminal)):
            return ControlResponse(id: id, ok: true, terminal: terminal)
        case .reply(let id, .terminals(let terminals)):
            return ControlResponse(id: id, ok: true, terminals: terminals)
        }
    }
}

public struct ServiceStatus: Codable, Sendable, Equatable {
    public var name: String
    public var state: String
    public var pid: Int32?
    public var restarts: Int
    public var lastExit: String?
    public var error: String?
    /// Why the service is in its state ("waiting for xvfb (starting)", "start limit: …").
    public var reason: String?
    /// OOM kills attributed to the service.
    public var oomKills: Int?
    /// When its current process started (wall clock, Unix ms).
    public var startedAt: Int64?

    enum CodingKeys: String, CodingKey {
        case name, state, pid, restarts, error, reason
        case lastExit = "last_exit"
        case oomKills = "oom_kills"
        case startedAt = "started_at"
    }

    /// Absent values are written as explicit nulls: API clients see a stable shape.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(state, forKey: .state)
        try c.encode(pid, forKey: .pid)
        try c.encode(restarts, forKey: .restarts)
        try c.encode(lastExit, forKey: .lastExit)
        try c.encode(error, forKey: .error)
        try c.encode(reason, forKey: .reason)
        try c.encode(oomKills, forKey: .oomKills)
        try c.encode(startedAt, forKey: .startedAt)
    }

    public init(name: String, state: String, pid: Int32?, restarts: Int, lastExit: String?, error: String?,
                reason: String? = nil, oomKills: Int? = nil, startedAt: Int64? = nil) {
        self.reason = reason
        self.oomKills = oomKills
        self.startedAt = startedAt
        self.name = name
        self.state = state
        self.pid = pid
        self.restarts = restarts
        self.lastExit = lastExit
        self.error = error
    }
}

/// The wire record of everything the init sends: one flat object whose members depend on
/// what it is (`InitMessage.wire`). Only the codec and tests that forge what a hostile init
/// could send use it directly.
public struct ControlResponse: Codable, Sendable {
    public var id: UInt64
    public var ok: Bool
    public var error: String?
    public var services: [ServiceStatus]?
    public var run: RunResult?
    /// The hello's protocol version, "major.minor" (ControlCodec.protocolVersion).
    public var version: String?
    /// An event's kind ("services", "terminalExit"); nil on replies and the hello.
    public var event: String?
    public var terminal: UInt64?
    public var code: Int32?
    /// The `terminals` reply's list.
    public var terminals: [TerminalEntry]?

    public init(id: UInt64, ok: Bool, error: String? = nil, services: [ServiceStatus]? = nil, run: RunResult? = nil,
                version: String? = nil, event: String? = nil, terminal: UInt64? = nil, code: Int32? = nil,
                terminals: [TerminalEntry]? = nil) {
        self.id = id
        self.ok = ok
        self.error = error
        self.services = services
        self.run = run
        self.version = version
        self.event = event
        self.terminal = terminal
        self.code = code
        self.terminals = terminals
    }
}

public enum ControlCodec {
    /// Sent in the init's hello. A daemon refuses an init of a major version it does not
    /// know; minor versions only add (ops, optional fields, events) and are compatible.
    public static let protocolVersion = "1.4"
    public static let protocolMajor = 1
    public static let maxMessage = 256 * 1024
    /// Output a `run` returns, at most; JSON escaping keeps a reply under maxMessage.
    public static let maxRunOutput = 32 * 1024

    public static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        (try? Array(JSONEncoder().encode(value))) ?? []
    }

    public static func decode<T: Decodable>(_ type: T.Type, _ bytes: ArraySlice<UInt8>) -> T? {
        try? JSONDecoder().decode(type, from: Data(bytes))
    }
}
