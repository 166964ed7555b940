/// Where a request the agent makes to the key proxy goes: the provider named in its path and
/// the endpoint on that provider's `base_url` (docs/architecture.md, "The LLM key proxy").
///
///   POST /providers/<name>/chat/completions   → <base>/chat/completions   (openai-* apis)
///   POST /providers/<name>/responses          → <base>/responses          (openai-* apis)
///   POST /providers/<name>/v1/messages        → <base>/v1/messages, or <base>/messages when
///   POST /providers/<name>/messages             the base already ends in /v1 (anthropic-messages)
struct ProxyRoute: Equatable, Sendable {
    enum Endpoint: String, Sendable { case chatCompletions = "chat/completions", responses, messages }

    var provider: String
    var endpoint: Endpoint
    /// The query string as given (with its "?"), passed on unchanged.
    var query: String

    /// The error shape of the family the path belongs to, known even when the route is not.
    static func family(ofPath path: String) -> ProviderAPI.Family {
        let bare = path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path
        return bare.hasSuffix("/messages") ? .anthropic : .openAI
    }

    /// nil: no such route (404).
    static func parse(path target: String) -> ProxyRoute? {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = String(parts[0])
        let query = parts.count > 1 ? "?" + parts[1] : ""
        let prefix = "/providers/"
        guard path.hasPrefix(prefix) else { return nil }
        let rest = path.dropFirst(prefix.count)
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        let name = String(rest[..<slash]), tail = String(rest[rest.index(after: slash)...])
        guard (1...32).contains(name.utf8.count),
              name.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 }) else { return nil }
        let endpoint: Endpoint
        switch tail {
        case "chat/completions": endpoint = .chatCompletions
        case "responses": endpoint = .responses
        case "messages", "v1/messages": endpoint = .messages
        default: return nil
        }
        return ProxyRoute(provider: name, endpoint: endpoint, query: query)
    }

    /// Whether a provider of `api` serves this endpoint.
    func fits(_ api: ProviderAPI) -> Bool {
        switch endpoint {
        case .chatCompletions, .responses: return api != .anthropicMessages
        case .messages: return api == .anthropicMessages
        }
    }

    /// The path (after the base's own) this route maps to on the provider.
    func upstreamPath(basePath: String) -> String {
        let base = basePath.hasSuffix("/") ? String(basePath.dropLast()) : basePath
        switch endpoint {
        case .chatCompletions: return base + "/chat/completions" + query
        case .responses: return base + "/responses" + query
        case .messages: return base + (base.hasSuffix("/v1") ? "/messages" : "/v1/messages") + query
        }
    }
}

extension ProviderAPI {
    enum Family: Sendable { case openAI, anthropic }
    var family: Family { self == .anthropicMessages ? .anthropic : .openAI }
}

/// A provider's `base_url` taken apart for a connection.
struct UpstreamURL: Equatable, Sendable {
    var tls: Bool
    var host: String
    var port: Int
    var path: String

    init?(_ text: String) {
        let rest: Substring
        if text.hasPrefix("https://") { tls = true; rest = text.dropFirst(8) } else if text.hasPrefix("http://") {
            tls = false; rest = text.dropFirst(7)
        } else { return nil }
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        path = String(rest.dropFirst(authority.count).prefix { $0 != "?" && $0 != "#" })
        guard !authority.contains("@") else { return nil }
        var hostPart = Substring(authority), portPart: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portPart = after.dropFirst() } else if !after.isEmpty { return nil }
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            portPart = authority[authority.index(after: colon)...]
        }
        guard !hostPart.isEmpty else { return nil }
        host = String(hostPart)
        if let portPart {
            guard let p = Int(portPart), (1...65535).contains(p) else { return nil }
            port = p
        } else {
            port = tls ? 443 : 80
        }
    }

    /// The Host header's value.
    var authority: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return port == (tls ? 443 : 80) ? h : "\(h):\(port)"
    }
}
