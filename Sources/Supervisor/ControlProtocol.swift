import FoundationEssentials

/// Messages on the control socket between the daemon and an instance's init.
///
/// The socket is a SOCK_SEQPACKET pair created by the daemon; the init holds its end as fd 3.
/// Every message is one JSON document in one packet, so framing is the kernel's job. A
/// `connect` reply carries the connected TCP socket as SCM_RIGHTS ancillary data: the daemon
/// reaches ports inside the instance's network namespace without any port on the host.
public struct ControlRequest: Codable, Sendable {
    public enum Op: String, Codable, Sendable { case status, connect, shutdown, run, restartService }
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

    public init(id: UInt64, op: Op, port: Int? = nil, argv: [String]? = nil, user: String? = nil, timeoutMs: Int? = nil,
                service: String? = nil) {
        self.service = service
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
    /// What a daemon and an init must agree on; the init sends it in its hello.
    public static let protocolVersion = 1

    /// 0 for what the init sends unasked: its hello (once per connection) and events.
    public var id: UInt64
    public var ok: Bool
    public var error: String?
    public var services: [ServiceStatus]?
    public var run: RunResult?
    /// The hello's protocol version (the hello also carries every service's state).
    public var version: Int?
    /// An unsolicited event (`id` 0): "services" carries the whole snapshot after a change.
    public var event: String?

    public init(id: UInt64, ok: Bool, error: String? = nil, services: [ServiceStatus]? = nil, run: RunResult? = nil,
                version: Int? = nil, event: String? = nil) {
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
