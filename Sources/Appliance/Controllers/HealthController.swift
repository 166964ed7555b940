import Hummingbird

/// `GET /healthz`: the server answers; nothing else is checked. `GET /api/v1/openapi.json`:
/// the API's OpenAPI document, the embedded copy of Dashboard/openapi.json (also at
/// /static/openapi.json), gzip-encoded as every embedded file.
struct HealthController {
    let assets: StaticAssets

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.get("/healthz") { _, _ in JSON.response(["status": "ok"]) }
        group.get("/api/v1/openapi.json") { request, _ in
            guard let response = assets.response(for: "openapi.json", request: request) else { throw APIError.notFound("The API document") }
            return response
        }
    }
}
