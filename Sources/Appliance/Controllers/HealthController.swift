import Hummingbird

/// `GET /healthz`: the server answers; nothing else is checked.
struct HealthController {
    func addRoutes(to group: RouterGroup<AppContext>) {
        group.get("/healthz") { _, _ in JSON.response(["status": "ok"]) }
    }
}
