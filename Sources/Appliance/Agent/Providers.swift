/// LLM providers as admins configure them: validated once here, keys sealed before they reach
/// the store and never returned (only their last four characters, for recognising them).
struct Providers: Sendable {
    struct Preset: Encodable {
        var name: String
        var api: ProviderAPI
        var baseURL: String
        var models: [String]
        enum CodingKeys: String, CodingKey { case name, api, models, baseURL = "base_url" }
    }

    /// What `GET /api/v1/providers` offers to start from.
    static let presets: [Preset] = [
        Preset(name: "openai", api: .openAIResponses, baseURL: "https://api.openai.com/v1", models: ["gpt-5", "gpt-5-mini"]),
        Preset(name: "anthropic", api: .anthropicMessages, baseURL: "https://api.anthropic.com", models: ["claude-sonnet-4-5", "claude-haiku-4-5"]),
        Preset(name: "google", api: .openAICompletions, baseURL: "https://generativelanguage.googleapis.com/v1beta/openai",
               models: ["gemini-2.5-pro", "gemini-2.5-flash"]),
        Preset(name: "deepseek", api: .openAICompletions, baseURL: "https://api.deepseek.com/v1", models: ["deepseek-chat"]),
        Preset(name: "openrouter", api: .openAICompletions, baseURL: "https://openrouter.ai/api/v1", models: ["openrouter/auto"]),
        Preset(name: "ollama", api: .openAICompletions, baseURL: "http://127.0.0.1:11434/v1", models: ["llama3.1"]),
    ]

    /// A provider as the API shows it.
    struct View: Encodable, Equatable {
        var name: String
        var api: ProviderAPI
        var baseURL: String
        var models: [String]
        var hasKey: Bool
        var apiKeyLast4: String?
        enum CodingKeys: String, CodingKey {
            case name, api, models
            case baseURL = "base_url", hasKey = "has_key", apiKeyLast4 = "api_key_last4"
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(api, forKey: .api)
            try c.encode(baseURL, forKey: .baseURL)
            try c.encode(models, forKey: .models)
            try c.encode(hasKey, forKey: .hasKey)
            try c.encode(apiKeyLast4, forKey: .apiKeyLast4)
        }
    }

    let store: any ProviderRepository
    let secrets: SecretBox

    func list() throws -> [View] { try store.providers().map(Self.view) }

    /// Creates or replaces `name`; without `apiKey`, an existing key is kept.
    func save(name: String, api: ProviderAPI, baseURL: String, apiKey: String?, models: [String]) throws -> View {
        try Self.validate(name: name, baseURL: baseURL, apiKey: apiKey, models: models)
        var record = try store.provider(name: name) ?? ProviderRecord(name: name, api: api, baseURL: baseURL, models: models)
        record.api = api
        record.baseURL = baseURL
        record.models = models
        if let apiKey {
            record.sealedKey = try secrets.seal(apiKey, for: Self.purpose(name))
            record.keyLast4 = apiKey.count >= 12 ? String(apiKey.suffix(4)) : nil
        }
        try store.saveProvider(record)
        return Self.view(record)
    }

    /// An instance's own keys, as the settings API shows them.
    struct InstanceKey: Encodable, Equatable {
        var provider: String
        var apiKeyLast4: String?
        enum CodingKeys: String, CodingKey { case provider, apiKeyLast4 = "api_key_last4" }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(provider, forKey: .provider)
            try c.encode(apiKeyLast4, forKey: .apiKeyLast4)
        }
    }

    func instanceKeys(_ id: Int64) throws -> [InstanceKey] {
        try store.instanceKeys(instanceID: id).map { InstanceKey(provider: $0.provider, apiKeyLast4: $0.last4) }
    }

    /// Checks every change first (known provider, well-formed key), then applies them together.
    func setInstanceKeys(_ id: Int64, _ changes: [String: String?]) throws {
        let known = Set(try store.providers().map(\.name))
        var sealed: [(provider: String, sealed: String?, last4: String?)] = []
        for (provider, key) in changes.sorted(by: { $0.key < $1.key }) {
            guard known.contains(provider) else {
                throw InvalidInput("unknown_provider", "provider_keys: there is no provider named \"\(provider)\".")
            }
            if let key {
                try Self.validate(name: provider, baseURL: "https://x", apiKey: key, models: ["x"])
                sealed.append((provider, try secrets.seal(key, for: Self.purpose(provider, instance: id)),
                               key.count >= 12 ? String(key.suffix(4)) : nil))
            } else {
                sealed.append((provider, nil, nil))
            }
        }
        try store.setInstanceKeys(instanceID: id, sealed)
    }

    /// The key an instance's requests to `provider` carry: its own, else the provider's.
    func key(of provider: String, forInstance id: Int64) throws -> String? {
        if let sealed = try store.instanceKey(instanceID: id, provider: provider) {
            return try secrets.open(sealed, for: Self.purpose(provider, instance: id))
        }
        return try key(of: provider)
    }

    static func purpose(_ provider: String, instance: Int64) -> String { "instance:\(instance):provider:" + provider }

    func delete(name: String) throws {
        guard try store.deleteProvider(name: name) else { throw APIError.notFound("The provider") }
    }

    /// The real key, for the key proxy only.
    func key(of name: String) throws -> String? {
        guard let sealed = try store.provider(name: name)?.sealedKey else { return nil }
        return try secrets.open(sealed, for: Self.purpose(name))
    }

    static func purpose(_ name: String) -> String { "provider:" + name }

    static func view(_ r: ProviderRecord) -> View {
        View(name: r.name, api: r.api, baseURL: r.baseURL, models: r.models, hasKey: r.sealedKey != nil, apiKeyLast4: r.keyLast4)
    }

    static func validate(name: String, baseURL: String, apiKey: String?, models: [String]) throws {
        guard (1...32).contains(name.utf8.count),
              name.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 }) else {
            throw InvalidInput("invalid_name", "A provider's name is 1 to 32 lowercase letters, digits or '-'.")
        }
        let scheme = baseURL.hasPrefix("https://") ? 8 : baseURL.hasPrefix("http://") ? 7 : 0
        guard scheme > 0, baseURL.utf8.count <= 512, baseURL.utf8.count > scheme,
              !baseURL.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7f }) else {
            throw InvalidInput("invalid_base_url", "base_url must be an http:// or https:// URL without spaces.")
        }
        if let apiKey {
            guard (1...1024).contains(apiKey.utf8.count), apiKey.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
                throw InvalidInput("invalid_api_key", "api_key must be 1 to 1024 printable ASCII characters without spaces.")
            }
        }
        guard !models.isEmpty, models.count <= 100, models.allSatisfy({ model in
            (1...128).contains(model.utf8.count)
                && model.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 122) || "._:/-@".utf8.contains($0) }
        }) else {
            throw InvalidInput("invalid_models", "models is a list of 1 to 100 model ids (letters, digits and . _ : / - @).")
        }
    }
}
