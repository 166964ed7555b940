import FoundationEssentials
import Testing
@testable import Appliance

/// The key proxy's pure parts: reading token usage from every API's answers (whole and
/// streamed, cut anywhere), its routes and the providers' base URLs.
@Suite struct UsageMeterTests {
    /// Feeds `text` cut into pieces of `size` bytes, as a network would.
    static func meter(_ contentType: String, _ text: String, size: Int) -> UsageMeter {
        var m = UsageMeter(contentType: contentType)
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            m.feed(Array(bytes[i..<min(i + size, bytes.count)]))
            i += size
        }
        m.finish()
        return m
    }

    static let sizes = [1, 2, 3, 7, 64, 100_000]

    @Test func openAIChatUnstreamed() {
        let body = #"{"id":"x","object":"chat.completion","model":"gpt-x","choices":[{"message":{"content":"the word \"usage\""}}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#
        for size in Self.sizes {
            let m = Self.meter("application/json; charset=utf-8", body, size: size)
            #expect(m.inputTokens == 12 && m.outputTokens == 5 && m.model == "gpt-x")
        }
    }

    @Test func openAIChatStreamedWithIncludeUsage() {
        let stream = """
            data: {"id":"c","model":"gpt-x","choices":[{"delta":{"role":"assistant","content":""}}],"usage":null}

            data: {"id":"c","model":"gpt-x","choices":[{"delta":{"content":"Hi"}}],"usage":null}\r
            \r
            data: {"id":"c","model":"gpt-x","choices":[],"usage":{"prompt_tokens":30,"completion_tokens":9,"total_tokens":39}}

            data: [DONE]


            """
        for size in Self.sizes {
            let m = Self.meter("text/event-stream", stream, size: size)
            #expect(m.inputTokens == 30 && m.outputTokens == 9, "size \(size)")
        }
    }

    @Test func streamWithoutUsageCountsNothing() {
        let m = Self.meter("text/event-stream", "data: {\"choices\":[]}\n\ndata: [DONE]\n\n", size: 5)
        #expect(m.inputTokens == nil && m.outputTokens == nil)
    }

    @Test func responsesStreamedCompletedEvent() {
        let stream = """
            event: response.created
            data: {"type":"response.created","response":{"model":"gpt-5","usage":null}}

            event: response.output_text.delta
            data: {"type":"response.output_text.delta","delta":"usage"}

            event: response.completed
            data: {"type":"response.completed","response":{"model":"gpt-5","usage":{"input_tokens":41,"output_tokens":7,"total_tokens":48}}}

            """
        for size in Self.sizes {
            let m = Self.meter("text/event-stream; charset=utf-8", stream, size: size)
            #expect(m.inputTokens == 41 && m.outputTokens == 7 && m.model == "gpt-5", "size \(size)")
        }
    }

    @Test func responsesUnstreamed() {
        let m = Self.meter("application/json", #"{"object":"response","model":"gpt-5","usage":{"input_tokens":3,"output_tokens":4}}"#, size: 2)
        #expect(m.inputTokens == 3 && m.outputTokens == 4)
    }

    @Test func anthropicStreamedStartAndCumulativeDeltas() {
        let stream = """
            event: message_start
            data: {"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":25,"cache_read_input_tokens":5,"output_tokens":1}}}

            event: content_block_delta
            data: {"type":"content_block_delta","delta":{"type":"text_delta","text":"a"}}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":10}}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}

            event: message_stop
            data: {"type":"message_stop"}

            """
        for size in Self.sizes {
            let m = Self.meter("text/event-stream", stream, size: size)
            #expect(m.inputTokens == 30 && m.outputTokens == 15 && m.model == "claude-x", "size \(size)")
        }
    }

    @Test func anthropicUnstreamed() {
        let m = Self.meter("application/json", #"{"type":"message","model":"claude-x","usage":{"input_tokens":8,"output_tokens":2}}"#, size: 3)
        #expect(m.inputTokens == 8 && m.outputTokens == 2)
    }

    @Test func errorsAndGarbageCountNothing() {
        for body in [#"{"error":{"message":"bad key"}}"#, "not json", "", #"{"usage": "lots"}"#] {
            let m = Self.meter("application/json", body, size: 4)
            #expect(m.inputTokens == nil && m.outputTokens == nil)
        }
    }

    @Test func anOversizedBodyIsNotHeld() {
        var m = UsageMeter(contentType: "application/json")
        let chunk = [UInt8](repeating: 0x20, count: 1 << 20)
        for _ in 0..<5 { m.feed(chunk) }
        m.feed(Array(#"{"usage":{"prompt_tokens":1,"completion_tokens":1}}"#.utf8))
        m.finish()
        #expect(m.inputTokens == nil)
    }
}

@Suite struct ProxyRouteTests {
    @Test func routesAndTheirUpstreamPaths() throws {
        let chat = try #require(ProxyRoute.parse(path: "/providers/openai/chat/completions"))
        #expect(chat.provider == "openai" && chat.endpoint == .chatCompletions)
        #expect(chat.upstreamPath(basePath: "/v1") == "/v1/chat/completions")
        #expect(chat.upstreamPath(basePath: "/v1beta/openai/") == "/v1beta/openai/chat/completions")
        let responses = try #require(ProxyRoute.parse(path: "/providers/o-1/responses?x=1"))
        #expect(responses.upstreamPath(basePath: "/v1") == "/v1/responses?x=1")
        for path in ["/providers/anthropic/v1/messages", "/providers/anthropic/messages"] {
            let messages = try #require(ProxyRoute.parse(path: path))
            #expect(messages.endpoint == .messages)
            #expect(messages.upstreamPath(basePath: "") == "/v1/messages")
            #expect(messages.upstreamPath(basePath: "/v1") == "/v1/messages")
            #expect(messages.upstreamPath(basePath: "/api") == "/api/v1/messages")
            #expect(messages.fits(.anthropicMessages) && !messages.fits(.openAICompletions))
        }
        #expect(chat.fits(.openAICompletions) && chat.fits(.openAIResponses) && !chat.fits(.anthropicMessages))
    }

    @Test func everythingElseIsNoRoute() {
        for path in ["/", "/providers/", "/providers/x", "/providers/x/", "/providers/x/embeddings", "/v1/chat/completions",
                     "/providers/UPPER/responses", "/providers/../responses", "/providers/x/chat/completions/extra",
                     "/providers/x/v1/chat/completions", "/providers/" + String(repeating: "a", count: 33) + "/responses"] {
            #expect(ProxyRoute.parse(path: path) == nil, "\(path)")
        }
        #expect(ProxyRoute.family(ofPath: "/providers/a/v1/messages?beta=true") == .anthropic)
        #expect(ProxyRoute.family(ofPath: "/nothing") == .openAI)
    }

    @Test func baseURLs() throws {
        let a = try #require(UpstreamURL("https://api.anthropic.com"))
        #expect(a.tls && a.host == "api.anthropic.com" && a.port == 443 && a.path == "" && a.authority == "api.anthropic.com")
        let b = try #require(UpstreamURL("http://127.0.0.1:11434/v1"))
        #expect(!b.tls && b.host == "127.0.0.1" && b.port == 11434 && b.path == "/v1" && b.authority == "127.0.0.1:11434")
        let c = try #require(UpstreamURL("http://[::1]:8080/api?x"))
        #expect(c.host == "::1" && c.port == 8080 && c.path == "/api" && c.authority == "[::1]:8080")
        for bad in ["ftp://x", "http://", "http://user@host/", "http://h:0/", "http://h:99999/", "http://[::1/"] {
            #expect(UpstreamURL(bad) == nil, "\(bad)")
        }
    }

    @Test func errorShapes() throws {
        let openAI = ProxyErrorReply.refused(.openAI, .budgetSpent(budget: 5))
        #expect(openAI.status == .tooManyRequests)
        #expect(openAI.body.contains(#""message":"Claworc: monthly token budget of 5 tokens for this instance is spent; an admin can raise it.""#))
        let anthropic = ProxyErrorReply.unauthorized(.anthropic)
        #expect(anthropic.body.hasPrefix(#"{"error":{"message":"#) && anthropic.body.contains(#""type":"authentication_error""#))
        #expect(anthropic.body.hasSuffix(#""type":"error"}"#))
    }

    @Test func credentialComparison() {
        let expected = Array("cwp_abc".utf8)
        #expect(ProxyServerHandler.equal("cwp_abc", expected))
        #expect(!ProxyServerHandler.equal("cwp_abd", expected) && !ProxyServerHandler.equal("cwp_ab", expected))
    }

    @Test func usageDays() {
        #expect(UsageCalendar.day(0) == "1970-01-01")
        #expect(UsageCalendar.day(1_767_225_599) == "2025-12-31" && UsageCalendar.monthStart(1_767_225_599) == "2025-12-01")
        #expect(UsageCalendar.day(daysBefore: 1, 86_400) == "1970-01-01")
    }
}
