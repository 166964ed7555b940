import Hummingbird
import Supervisor

/// The services inside a running instance: `GET /instances/{id}/services` (state, pid inside,
/// restarts, last exit, reason, start time, OOM kills) and `POST
/// /instances/{id}/services/{name}/restart`, the explicit restart that brings a service back
/// from `failed` (its start limit) or restarts a running one.
struct ServicesController {
    struct ServicesEnvelope: Encodable { var services: [ServiceStatus] }

    let policy: AccessPolicy
    let manager: InstanceManager

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.get("/instances/:id/services") { _, context in
            let id = try context.instanceID()
            _ = try policy.authorize(.view, instance: id, by: context.user)
            return JSON.response(ServicesEnvelope(services: try await manager.services(id)))
        }
        group.post("/instances/:id/services/:name/restart") { _, context in
            let id = try context.instanceID()
            _ = try policy.authorize(.operate, instance: id, by: context.user)
            let name = context.parameters.get("name") ?? ""
            return JSON.response(ServicesEnvelope(services: try await manager.restartService(id, name: name)))
        }
    }
}
