import Hummingbird

/// Records the security-relevant operations on instances (lifecycle, settings, control of the
/// screen, file writes and deletes, commands, terminals) in the audit log, whatever their
/// outcome: one table from route to action, so a route cannot be audited in one controller and
/// forgotten in another. Account events (sign-in, users, tokens) are recorded where they
/// happen, with reasons only those controllers know.
struct AuditMiddleware: RouterMiddleware {
    typealias Context = AppContext
    let audit: AuditLog

    /// "METHOD route" → action. Routes as the router names them (`{id}` parameters).
    static let actions: [String: String] = [
        "POST /api/v1/instances": "instance.create",
        "DELETE /api/v1/instances/{id}": "instance.delete",
        "POST /api/v1/instances/{id}/start": "instance.start",
        "POST /api/v1/instances/{id}/stop": "instance.stop",
        "POST /api/v1/instances/{id}/restart": "instance.restart",
        "POST /api/v1/instances/{id}/exec": "instance.exec",
        "PUT /api/v1/instances/{id}/settings": "instance.settings",
        "PUT /api/v1/settings/instance-defaults": "settings.defaults",
        "POST /api/v1/instances/{id}/services/{name}/restart": "service.restart",
        "POST /api/v1/instances/{id}/control": "control.take",
        "DELETE /api/v1/instances/{id}/control": "control.release",
        "PUT /api/v1/instances/{id}/files/content": "file.write",
        "POST /api/v1/instances/{id}/files/mkdir": "file.mkdir",
        "POST /api/v1/instances/{id}/files/move": "file.move",
        "DELETE /api/v1/instances/{id}/files": "file.delete",
        "GET /api/v1/instances/{id}/terminal": "terminal.open",
        "POST /api/v1/agent/bundles": "agent.install",
        "PUT /api/v1/agent/active": "agent.activate",
        "DELETE /api/v1/agent/bundles/{version}": "agent.delete",
        "PUT /api/v1/providers/{name}": "provider.save",
        "DELETE /api/v1/providers/{name}": "provider.delete",
    ]

    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        do {
            let response = try await next(request, context)
            record(request, context, status: response.status.code)
            return response
        } catch {
            record(request, context, status: APIError(mapping: error)?.status.code ?? 500)
            throw error
        }
    }

    private func record(_ request: Request, _ context: AppContext, status: Int) {
        guard let route = context.endpointPath,
              let action = Self.actions["\(request.method.rawValue) \(Self.normalise(route))"] else { return }
        let outcome: AuditOutcome = switch status {
        case 200..<400: .ok
        case 401, 403, 404: .denied
        default: .failed
        }
        let target = Self.instanceID(request.uri.path).map { "instance:\($0)" }
        // The path a file operation touched (a name in the instance's home, not a secret).
        let detail = request.uri.queryParameters["path"].map { "path:\($0.prefix(256))" }
        audit.record(action, context, target: target, outcome: outcome, detail: status >= 400 ? [detail, "status:\(status)"]
            .compactMap { $0 }.joined(separator: ", ") : detail)
    }

    /// Route patterns written `:id` or `{id}` compare the same.
    static func normalise(_ route: String) -> String {
        route.split(separator: "/", omittingEmptySubsequences: false).map { part in
            part.hasPrefix(":") ? "{\(part.dropFirst())}" : String(part)
        }.joined(separator: "/")
    }

    static func instanceID(_ path: String) -> Int64? {
        let parts = path.split(separator: "/")
        guard let index = parts.firstIndex(of: "instances"), index + 1 < parts.count else { return nil }
        return Int64(parts[index + 1])
    }
}
