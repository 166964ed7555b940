import Hummingbird

/// LLM providers, under /api/v1/providers (admins only). Keys go in, never come out.
struct ProvidersController {
    struct Body: Decodable {
        var api: ProviderAPI
        var baseURL: String
        var apiKey: String?
        var models: [String]
        enum CodingKeys: String, CodingKey { case api, models, baseURL = "base_url", apiKey = "api_key" }
    }
    struct ListEnvelope: Encodable { var providers: [Providers.View]; var presets: [Providers.Preset] }
    struct Envelope: Encodable { var provider: Providers.View; var agents: [InstanceManager.AgentReport] }

    let policy: AccessPolicy
    let providers: Providers
    let layers: SettingsLayers
    let manager: InstanceManager

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.get("/providers") { _, context in
            _ = try policy.authorize(.manageAgent, by: context.user)
            return JSON.response(ListEnvelope(providers: try providers.list(), presets: Providers.presets))
        }
        group.put("/providers/:name") { request, context in
            _ = try policy.authorize(.manageAgent, by: context.user)
            let body = try await JSON.decode(Body.self, from: request, expecting: #"with "api" (openai-completions, openai-responses or anthropic-messages), "base_url", "models" and optionally "api_key""#)
            let view = try providers.save(name: context.parameters.get("name") ?? "", api: body.api, baseURL: body.baseURL,
                                          apiKey: body.apiKey, models: body.models)
            return JSON.response(Envelope(provider: view, agents: await manager.reconfigureAgents()))
        }
        group.delete("/providers/:name") { request, context in
            _ = try policy.authorize(.manageAgent, by: context.user)
            let name = context.parameters.get("name") ?? ""
            // Deleting a provider that a model setting names would leave those agents without
            // their model: refused unless asked for knowingly.
            guard try providers.store.provider(name: name) != nil else { throw APIError.notFound("The provider") }
            let users = try uses(of: name)
            if !users.isEmpty && request.uri.queryParameters.get("force") != "true" {
                throw APIError.conflict("provider_in_use", "The provider \"\(name)\" is named by \(users.joined(separator: ", ")). "
                                        + "Change those settings first, or delete with force=true.")
            }
            try providers.delete(name: name)
            // 204 has no body to report in: the running agents are rewritten all the same.
            _ = await manager.reconfigureAgents()
            return Response(status: .noContent)
        }
    }

    /// The model settings that name the provider: the defaults', then each instance's own.
    private func uses(of provider: String) throws -> [String] {
        func names(_ s: InstanceSettings) -> Bool {
            ([s.model].compactMap { $0 } + (s.fallbacks ?? [])).contains { $0.hasPrefix(provider + "/") }
        }
        let defaults = names(layers.defaults()) ? ["the default model"] : []
        return defaults + (try layers.instances.allInstances()).filter { names(layers.overrides($0)) }
            .map { "instance \"\($0.name)\"" }
    }
}
