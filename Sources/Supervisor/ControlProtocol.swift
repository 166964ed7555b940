import FoundationEssentials

/// Messages on the control socket between the daemon and an instance's init.
///
/// The socket is a SOCK_SEQPACKET pair created by the daemon; the init holds its end as fd 3.
/// Every message is one JSON document in one packet, so framing is the kernel's job. A
/// `connect` reply carries the connected TCP socket as SCM_RIGHTS ancillary data: the daemon
/// reaches ports inside the instance's network namespace without any port on the host; an
/// `openTerminal` reply carries the master of a new pty the same way. docs/control-protocol.md
/// describes every message.
public struct ControlRequest: Codable, Sendable {
    public enum Op: String, Codable, Sendable { case status, connect, shutdown, run, restartService, openTerminal }
    public var id: UInt64
    public var op: Op
    public var port: Int?
    /// `run`: the command, who runs it ("agent": uid 1000 with no capabilities, like the
    /// services; "root": root of the instance's user namespace), and a time limit.
    public var argv: [String]?
    public var user: String?
    public var timeoutMs: Int?
    /// `restartService`: which service (it leaves `failed` and starts afresh).
    public var service: String?
    /// `openTerminal`: the pty's initial size (`user` says whose shell it runs).
    public var cols: Int?
    public var rows: Int?

    public init(id: UInt64, op: Op, port: Int? = nil, argv: [String]? = nil, user: String? = nil, timeoutMs: Int? = nil,
                service: String? = nil, cols: Int? = nil, rows: Int? = nil) {
        self.service = service
        self.cols = cols
        self.rows = rows
        self.id = id
        self.op = op
        self.port = port
        self.argv = argv
        self.user = user
        self.timeoutMs = timeoutMs
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

public struct ControlResponse: Codable, Sendable {
    /// 0 for what the init sends unasked: its hello (once per connection), and events
    /// ("terminalExit"; "services" with the whole snapshot after a change).
    public var id: UInt64
    public var ok: Bool
    public var error: String?
    public var services: [ServiceStatus]?
    public var run: RunResult?
    /// The hello's protocol version, "major.minor" (ControlCodec.protocolVersion).
    public var version: String?
    /// An unsolicited event's kind ("terminalExit"); nil on replies and the hello.
    public var event: String?
    /// `openTerminal` reply and `terminalExit` event: which terminal.
    public var terminal: UInt64?
    /// `terminalExit`: the shell's exit status (128 + N for signal N).
    public var code: Int32?

    public init(id: UInt64, ok: Bool, error: String? = nil, services: [ServiceStatus]? = nil, run: RunResult? = nil,
                version: String? = nil, event: String? = nil, terminal: UInt64? = nil, code: Int32? = nil) {
        self.version = version
        self.event = event
        self.terminal = terminal
        self.code = code
        self.id = id
        self.ok = ok
        self.error = error
        self.services = services
        self.run = run
        self.version = version
        self.event = event
    }
}

public enum ControlCodec {
    /// Sent in the init's hello. A daemon refuses an init of a major version it does not
    /// know; minor versions only add (ops, optional fields, events) and are compatible.
    public static let protocolVersion = "1.1"
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
