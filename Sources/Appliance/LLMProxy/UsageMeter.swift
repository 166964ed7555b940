import FoundationEssentials

/// Reads token usage out of a provider's response as its bytes pass through, without holding
/// a stream: a server-sent event stream is cut into events as it arrives and only events that
/// mention "usage" are decoded; a plain JSON body is kept (up to `bodyLimit`) and decoded at
/// its end.
///
/// Where each API reports usage:
/// - OpenAI chat completions: `usage.prompt_tokens` / `usage.completion_tokens`, in the body,
///   or streamed in the last chunk when the request asked `stream_options.include_usage`.
/// - OpenAI responses: `usage.input_tokens` / `usage.output_tokens`, in the body, or streamed
///   in `response.completed` under `response.usage`.
/// - Anthropic messages: `usage.input_tokens` / `usage.output_tokens` in the body; streamed,
///   `message_start` carries `message.usage` (input and a first output count) and each
///   `message_delta` the cumulative `usage.output_tokens`.
/// Later figures replace earlier ones, which suits the cumulative counts of all three.
struct UsageMeter: Sendable {
    static let bodyLimit = 4 << 20
    static let eventLimit = 1 << 20

    private(set) var inputTokens: Int?
    private(set) var outputTokens: Int?
    /// The model the response names (the request's is preferred by the caller).
    private(set) var model: String?

    private let streamed: Bool
    private var pending: [UInt8] = []
    /// The data lines of the event being read.
    private var eventData: [UInt8] = []
    private var overflow = false

    init(contentType: String?) {
        streamed = contentType?.lowercased().hasPrefix("text/event-stream") ?? false
    }

    mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        guard !overflow else { return }
        if !streamed {
            guard pending.count + bytes.count <= Self.bodyLimit else {
                overflow = true
                pending = []
                return
            }
            pending.append(contentsOf: bytes)
            return
        }
        var start = 0
        for (i, byte) in bytes.enumerated() where byte == 0x0A {
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
            line(pending)
            pending.removeAll(keepingCapacity: true)
            start = i + 1
        }
        if start < bytes.count {
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start...]))
            if pending.count > Self.eventLimit { pending = []; overflow = true }
        }
    }

    mutating func feed(_ bytes: [UInt8]) { bytes.withUnsafeBytes { feed($0) } }

    /// The end of the response.
    mutating func finish() {
        if streamed {
            if !pending.isEmpty { line(pending) }
            dispatch()
        } else if !overflow && !pending.isEmpty {
            apply(pending)
        }
        pending = []
    }

    private mutating func line(_ raw: [UInt8]) {
        var text = raw[...]
        if text.last == 0x0D { text = text.dropLast() }
        if text.isEmpty { return dispatch() }
        guard text.starts(with: Array("data:".utf8)) else { return }
        var value = text.dropFirst(5)
        if value.first == 0x20 { value = value.dropFirst() }
        if !eventData.isEmpty { eventData.append(0x0A) }
        guard eventData.count + value.count <= Self.eventLimit else { eventData = []; return }
        eventData.append(contentsOf: value)
    }

    private mutating func dispatch() {
        defer { eventData.removeAll(keepingCapacity: true) }
        guard eventData.first == UInt8(ascii: "{"), Self.contains(eventData, Self.usageWord) else { return }
        apply(eventData)
    }

    private static let usageWord = Array("\"usage\"".utf8)

    private static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        let first = needle[0]
        var i = 0
        while i <= haystack.count - needle.count {
            if haystack[i] == first && haystack[i..<i + needle.count].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }

    private struct Tokens: Decodable {
        var promptTokens: Int?
        var completionTokens: Int?
        var inputTokens: Int?
        var outputTokens: Int?
        var cacheCreationInputTokens: Int?
        var cacheReadInputTokens: Int?
        enum CodingKeys: String, CodingKey {
            case promptTokens = "prompt_tokens", completionTokens = "completion_tokens"
            case inputTokens = "input_tokens", outputTokens = "output_tokens"
            case cacheCreationInputTokens = "cache_creation_input_tokens", cacheReadInputTokens = "cache_read_input_tokens"
        }
    }

    private struct Inner: Decodable {
        var model: String?
        var usage: Tokens?
    }

    private struct Document: Decodable {
        var model: String?
        var usage: Tokens?
        /// Responses' `response.completed`.
        var response: Inner?
        /// Anthropic's `message_start`.
        var message: Inner?
    }

    private mutating func apply(_ json: [UInt8]) {
        guard let doc = try? JSONDecoder().decode(Document.self, from: Data(json)) else { return }
        if let m = doc.model ?? doc.response?.model ?? doc.message?.model { model = m }
        for usage in [doc.message?.usage, doc.response?.usage, doc.usage] {
            guard let usage else { continue }
            if let input = usage.promptTokens ?? usage.inputTokens {
                // Anthropic counts cached prompt tokens apart from input_tokens.
                inputTokens = input + (usage.cacheCreationInputTokens ?? 0) + (usage.cacheReadInputTokens ?? 0)
            }
            if let output = usage.completionTokens ?? usage.outputTokens { outputTokens = output }
        }
    }
}
