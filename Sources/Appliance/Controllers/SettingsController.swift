import Hummingbird

/// The appliance-wide instance defaults and each instance's overrides, under /api/v1.
struct SettingsController {
    struct SettingsEnvelope: Encodable {
        var overrides: InstanceSettings
        var effective: InstanceSettings
        /// The instance's own provider keys (their last four characters only).
        var providerKeys: [Providers.InstanceKey]
        /// After a change: what it did to the instance's agent.
        var agent: AgentReconfiguration?
        enum CodingKeys: String, CodingKey { case overrides, effective, agent, providerKeys = "provider_keys" }
    }
    struct DefaultsEnvelope: Encodable {
        var settings: InstanceSettings
        var agents: [InstanceManager.AgentReport]
    }
    /// An instance's settings body: the settings, plus `provider_keys` ({"openai": "sk-…"} sets
    /// the instance's own key, {"openai": null} goes back to the provider's).
    struct InstanceUpdate: Decodable {
        var settings: InstanceSettings
        var providerKeys: [String: String?]?
        enum CodingKeys: String, CodingKey { case providerKeys = "provider_keys" }
        init(from decoder: any Decoder) throws {
            settings = try InstanceSettings(from: decoder, extraKeys: [CodingKeys.providerKeys.stringValue])
            providerKeys = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent([String: String?].self, forKey: .providerKeys)
        }
    }

    let policy: AccessPolicy
    let layers: SettingsLayers
    let manager: InstanceManager
    let providers: Providers

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.get("/settings/instance-defaults") { _, context in
            _ = try policy.authorize(.editDefaults, by: context.user)
            return JSON.response(["settings": layers.defaults()])
        }
        group.put("/settings/instance-defaults") { request, context in
            _ = try policy.authorize(.editDefaults, by: context.user)
            let body = try await JSON.decode(InstanceSettings.self, from: request, expecting: "of instance settings")
            let settings = try layers.setDefaults(body)
            await manager.applyLimits()
            return JSON.response(DefaultsEnvelope(settings: settings, agents: await manager.reconfigureAgents()))
        }
        group.get("/instances/:id/settings") { _, context in
            let record = try policy.authorize(.view, instance: try context.instanceID(), by: context.user)
            return JSON.response(try envelope(record))
        }
        group.put("/instances/:id/settings") { request, context in
            let id = try context.instanceID()
            _ = try policy.authorize(.administer, instance: id, by: context.user)
            let body = try await JSON.decode(InstanceUpdate.self, from: request, expecting: "of instance settings")
            try layers.checkOverrides(id, body.settings)
            if let keys = body.providerKeys { try providers.setInstanceKeys(id, keys) }
            let record = try layers.setOverrides(id, body.settings)
            await manager.applyLimits(only: id)
            var response = try envelope(record)
            response.agent = await manager.reconfigureAgent(id)
            return JSON.response(response)
        }
    }

    private func envelope(_ record: InstanceRecord) throws -> SettingsEnvelope {
        SettingsEnvelope(overrides: layers.overrides(record), effective: layers.effective(record),
                         providerKeys: try providers.instanceKeys(record.id))
    }
}
