import FoundationEssentials
import NIOHTTP1

/// What the proxy answers itself, in the error shape of the API the agent called, so that
/// OpenClaw shows the message as it would a provider's.
struct ProxyErrorReply: Equatable {
    var status: HTTPResponseStatus
    var body: String

    private struct OpenAIShape: Encodable {
        struct Inner: Encodable { var message: String; var type: String; var code: String }
        var error: Inner
    }

    private struct AnthropicShape: Encodable {
        struct Inner: Encodable { var type: String; var message: String }
        var type = "error"
        var error: Inner
    }

    init(_ family: ProviderAPI.Family, status: HTTPResponseStatus, code: String, message: String) {
        self.status = status
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data: Data?
        switch family {
        case .openAI:
            let type = status == .unauthorized ? "invalid_request_error" : status == .tooManyRequests ? "insufficient_quota"
                : status.code >= 500 ? "server_error" : "invalid_request_error"
            data = try? encoder.encode(OpenAIShape(error: .init(message: message, type: type, code: code)))
        case .anthropic:
            let type = status == .unauthorized ? "authentication_error" : status == .tooManyRequests ? "rate_limit_error"
                : status == .notFound ? "not_found_error" : status.code >= 500 ? "api_error" : "invalid_request_error"
            data = try? encoder.encode(AnthropicShape(error: .init(type: type, message: message)))
        }
        body = data.map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    static func notFound(_ family: ProviderAPI.Family, path: String) -> ProxyErrorReply {
        ProxyErrorReply(family, status: .notFound, code: "not_found",
                        message: "Claworc key proxy: no route for this path; use /providers/<name>/chat/completions, /responses or /v1/messages.")
    }

    static func unauthorized(_ family: ProviderAPI.Family) -> ProxyErrorReply {
        ProxyErrorReply(family, status: .unauthorized, code: "invalid_api_key",
                        message: "Claworc key proxy: missing or wrong instance credential.")
    }

    static func tooLarge(_ family: ProviderAPI.Family) -> ProxyErrorReply {
        ProxyErrorReply(family, status: .payloadTooLarge, code: "request_too_large",
                        message: "Claworc key proxy: the request body is over \(LLMProxy.requestLimit >> 20) MiB.")
    }

    static func badGateway(_ family: ProviderAPI.Family, provider: String) -> ProxyErrorReply {
        ProxyErrorReply(family, status: .badGateway, code: "upstream_unreachable",
                        message: "Claworc key proxy: the provider \"\(provider)\" could not be reached.")
    }

    static func refused(_ family: ProviderAPI.Family, _ refusal: ProxyPlanner.Refusal) -> ProxyErrorReply {
        switch refusal {
        case .unknownProvider(let name):
            return ProxyErrorReply(family, status: .notFound, code: "unknown_provider",
                                   message: "Claworc key proxy: there is no provider named \"\(name)\"; an admin configures providers.")
        case .wrongAPI(let provider, let api):
            return ProxyErrorReply(family, status: .notFound, code: "wrong_api",
                                   message: "Claworc key proxy: the provider \"\(provider)\" speaks \(api.rawValue), not this endpoint.")
        case .badBaseURL(let provider):
            return ProxyErrorReply(family, status: .badGateway, code: "bad_base_url",
                                   message: "Claworc key proxy: the provider \"\(provider)\" has an unusable base_url.")
        case .budgetSpent(let budget):
            return ProxyErrorReply(family, status: .tooManyRequests, code: "monthly_token_budget_spent",
                                   message: "Claworc: monthly token budget of \(budget) tokens for this instance is spent; an admin can raise it.")
        case .instanceGone:
            return ProxyErrorReply(family, status: .notFound, code: "instance_gone", message: "Claworc key proxy: the instance no longer exists.")
        }
    }

    static func internalError(_ family: ProviderAPI.Family) -> ProxyErrorReply {
        ProxyErrorReply(family, status: .internalServerError, code: "internal", message: "Claworc key proxy: internal error; see the appliance's log.")
    }
}
