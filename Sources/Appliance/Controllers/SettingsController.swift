import Hummingbird

/// The appliance-wide instance defaults and each instance's overrides, under /api/v1.
struct SettingsController {
    struct SettingsEnvelope: Encodable { var overrides: InstanceSettings; var effective: InstanceSettings }

    let policy: AccessPolicy
    let layers: SettingsLayers
    let manager: InstanceManager

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
            return JSON.response(["settings": settings])
        }
        group.get("/instances/:id/settings") { _, context in
            let record = try policy.authorize(.view, instance: try context.instanceID(), by: context.user)
            return JSON.response(SettingsEnvelope(overrides: layers.overrides(record), effective: layers.effective(record)))
        }
        group.put("/instances/:id/settings") { request, context in
            let id = try context.instanceID()
            _ = try policy.authorize(.administer, instance: id, by: context.user)
            let body = try await JSON.decode(InstanceSettings.self, from: request, expecting: "of instance settings")
            let record = try layers.setOverrides(id, body)
            await manager.applyLimits(only: id)
            return JSON.response(SettingsEnvelope(overrides: layers.overrides(record), effective: layers.effective(record)))
        }
    }
}
