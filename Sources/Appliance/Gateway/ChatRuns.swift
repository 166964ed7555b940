/// What the browser is told about a chat: the messages of `docs/chat.md`, produced from the
/// gateway's events.
enum ChatUpdate: Sendable, Equatable {
    case status(agent: String, reason: String?)
    case delta(runID: String, text: String)
    case tool(runID: String, phase: String, name: String, toolCallID: String?, args: JSONValue?, isError: Bool?)
    case final(runID: String, text: String?)
    case error(runID: String?, message: String)
    /// Stopped; `text` is what was said before (the transcript may save it a moment later).
    case aborted(runID: String, text: String?)
    /// The link (re)connected: what was said meanwhile is only in the history.
    case resync

    var json: JSONValue {
        func opt(_ s: String?) -> JSONValue { s.map { .string($0) } ?? .null }
        switch self {
        case .status(let agent, let reason): return ["type": "status", "agent": .string(agent), "reason": opt(reason)]
        case .delta(let run, let text): return ["type": "delta", "runId": .string(run), "text": .string(text)]
        case .tool(let run, let phase, let name, let call, let args, let isError):
            return ["type": "tool", "runId": .string(run), "phase": .string(phase), "name": .string(name),
                    "toolCallId": opt(call), "args": args ?? .null, "isError": isError.map { .bool($0) } ?? .null]
        case .final(let run, let text): return ["type": "final", "runId": .string(run), "text": opt(text)]
        case .error(let run, let message): return ["type": "error", "runId": opt(run), "message": .string(message)]
        case .aborted(let run, let text): return ["type": "aborted", "runId": .string(run), "text": opt(text)]
        case .resync: return ["type": "resync"]
        }
    }
}

/// The runs this appliance started on one gateway, and the filter every event passes: a
/// gateway broadcasts every run of every session to every operator socket, so an event counts
/// only when its `runId` is one of ours and its `sessionKey` (raw or canonical) is the run's.
/// Text is cumulative on both streams and snapshots repeat: a delta goes out only when it
/// changes the text. A run ends once, on whichever terminal event comes first.
struct ChatRuns {
    struct Run {
        var sessionKey: String
        var text = ""
        var done = false
    }

    private(set) var runs: [String: Run] = [:]
    private var finished: [String] = []
    var mainKey = "main"
    var agentID = "main"
    var protocolVersion: Int64 = 3

    /// "main" ≡ "agent:main:main"; a bare key is the default agent's.
    func canonical(_ key: String) -> String {
        if key.hasPrefix("agent:") { return key }
        return "agent:\(agentID):\(key)"
    }

    mutating func start(_ runID: String, sessionKey: String) {
        runs[runID] = Run(sessionKey: canonical(sessionKey))
    }

    /// The gateway named the run differently from our idempotency key.
    mutating func rename(_ from: String, to: String) {
        guard from != to, let run = runs.removeValue(forKey: from) else { return }
        runs[to] = run
    }

    /// A send that failed: the run never existed.
    mutating func forget(_ runID: String) { runs.removeValue(forKey: runID) }

    func isActive(_ runID: String) -> Bool { runs[runID].map { !$0.done } ?? false }

    /// The updates an event means, each with the canonical session key it is for.
    mutating func handle(event: String, payload: JSONValue) -> [(String, ChatUpdate)] {
        guard let runID = payload["runId"]?.string, var run = runs[runID], !run.done else { return [] }
        if let key = payload["sessionKey"]?.string, canonical(key) != run.sessionKey { return [] }
        var out: [ChatUpdate] = []
        switch event {
        case "chat":
            switch payload["state"]?.string {
            case "delta":
                var text = Self.text(of: payload["message"])
                if text == nil, let piece = payload["deltaText"]?.string {
                    text = payload["replace"]?.bool == true ? piece : run.text + piece
                }
                if let text, Self.advance(&run, to: text) { out.append(.delta(runID: runID, text: text)) }
            case "final":
                let text = Self.text(of: payload["message"])
                if let text, !text.isEmpty { _ = Self.advance(&run, to: text) }
                run.done = true
                out.append(.final(runID: runID, text: text ?? (run.text.isEmpty ? nil : run.text)))
            case "error":
                run.done = true
                out.append(.error(runID: runID, message: payload["errorMessage"]?.string ?? "The agent reported an error."))
            case "aborted":
                run.done = true
                out.append(.aborted(runID: runID, text: run.text.isEmpty ? nil : run.text))
            default: break   // newer status-like states
            }
        case "agent":
            let data = payload["data"]
            switch payload["stream"]?.string {
            case "assistant":
                if let text = data?["text"]?.string, Self.advance(&run, to: text) { out.append(.delta(runID: runID, text: text)) }
            case "tool":
                if let phase = data?["phase"]?.string, let name = data?["name"]?.string {
                    out.append(.tool(runID: runID, phase: phase, name: name, toolCallID: data?["toolCallId"]?.string,
                                     args: data?["args"], isError: data?["isError"]?.bool))
                }
            case "lifecycle":
                switch data?["phase"]?.string {
                case "end":
                    run.done = true
                    out.append(.final(runID: runID, text: run.text.isEmpty ? nil : run.text))
                case "error":
                    run.done = true
                    out.append(.error(runID: runID, message: data?["error"]?.string ?? "The agent's run failed."))
                default: break
                }
            default: break   // thinking, item, plan and streams newer than us
            }
        default: break
        }
        runs[runID] = run
        if run.done { retire(runID) }
        return out.map { (run.sessionKey, $0) }
    }

    /// The link dropped: runs in flight end (their events will not be replayed).
    mutating func lost() -> [(String, ChatUpdate)] {
        var out: [(String, ChatUpdate)] = []
        for (id, run) in runs where !run.done {
            out.append((run.sessionKey, .error(runID: id, message: "The connection to the agent was lost; the history shows what it saved.")))
            runs[id]?.done = true
            retire(id)
        }
        return out
    }

    /// Finished runs are remembered a while, so their late events (the other terminal event,
    /// a trailing snapshot) are recognised and dropped.
    private mutating func retire(_ runID: String) {
        finished.append(runID)
        if finished.count > 256 { runs.removeValue(forKey: finished.removeFirst()) }
    }

    private static func advance(_ run: inout Run, to text: String) -> Bool {
        guard text != run.text else { return false }
        // A shorter snapshot that the text already starts with is an old one arriving late.
        if text.count < run.text.count && run.text.hasPrefix(text) { return false }
        run.text = text
        return true
    }

    /// The text blocks of a pi-shaped message, joined.
    static func text(of message: JSONValue?) -> String? {
        guard let message, !message.isNull else { return nil }
        if let s = message["content"]?.string { return s }
        guard let blocks = message["content"]?.array else { return nil }
        return blocks.filter { $0["type"]?.string == "text" }.compactMap { $0["text"]?.string }.joined()
    }
}
