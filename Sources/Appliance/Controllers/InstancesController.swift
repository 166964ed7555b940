import Hummingbird
import Supervisor

/// Instances and their lifecycle under /api/v1: list, create, read, delete, start, stop,
/// restart, and the admin's exec.
struct InstancesController {
    struct CreateBody: Decodable { var name: String }
    struct InstancesEnvelope: Encodable { var instances: [InstanceView] }
    struct ExecBody: Decodable {
        var argv: [String]
        var user: String?
        var timeoutMs: Int?
        enum CodingKeys: String, CodingKey { case argv, user; case timeoutMs = "timeout_ms" }
    }
    struct ExecResult: Encodable {
        var result: RunResult
        enum CodingKeys: String, CodingKey { case exitCode = "exit_code", signal, output, truncated, timedOut = "timed_out" }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(result.exitCode, forKey: .exitCode)
            try c.encode(result.signal, forKey: .signal)
            try c.encode(result.output, forKey: .output)
            try c.encode(result.truncated, forKey: .truncated)
            try c.encode(result.timedOut, forKey: .timedOut)
        }
    }

    let policy: AccessPolicy
    let manager: InstanceManager

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.get("/instances") { _, context in
            var views: [InstanceView] = []
            for record in try policy.visibleInstances(to: context.user) { views.append(await manager.view(record)) }
            return JSON.response(InstancesEnvelope(instances: views))
        }
        group.post("/instances") { request, context in
            _ = try policy.authorize(.createInstance, by: context.user)
            let body = try await JSON.decode(CreateBody.self, from: request, expecting: #"with a "name""#)
            let record = try await manager.create(name: body.name)
            return JSON.response(await manager.view(record), status: .created)
        }
        group.get("/instances/:id") { _, context in
            let record = try policy.authorize(.view, instance: try context.instanceID(), by: context.user)
            return JSON.response(await manager.view(record))
        }
        group.delete("/instances/:id") { _, context in
            let id = try authorized(.administer, context)
            try await manager.delete(id)
            return Response(status: .noContent)
        }
        group.post("/instances/:id/start") { _, context in
            JSON.response(await manager.view(try await manager.start(try authorized(.operate, context))))
        }
        group.post("/instances/:id/stop") { _, context in
            JSON.response(await manager.view(try await manager.stop(try authorized(.operate, context))))
        }
        group.post("/instances/:id/restart") { _, context in
            JSON.response(await manager.view(try await manager.restart(try authorized(.operate, context))))
        }
        // Admin diagnostics: run one command inside an instance and get its output.
        group.post("/instances/:id/exec", use: exec)
    }

    /// The `{id}` of the request, once the policy allows `action` on it.
    private func authorized(_ action: AccessPolicy.InstanceAction, _ context: AppContext) throws -> Int64 {
        let id = try context.instanceID()
        _ = try policy.authorize(action, instance: id, by: context.user)
        return id
    }

    @Sendable func exec(_ request: Request, context: AppContext) async throws -> Response {
        let id = try authorized(.administer, context)
        let body = try await JSON.decode(ExecBody.self, from: request,
                                         expecting: #"with "argv" (a list of strings), optional "user" and "timeout_ms""#)
        guard !body.argv.isEmpty, body.argv.allSatisfy({ !$0.contains("\0") }) else {
            throw InvalidInput("invalid_argv", "argv must be a non-empty list of strings without NUL bytes.")
        }
        guard let user = InstanceUser(rawValue: body.user ?? "agent") else {
            throw InvalidInput("invalid_user", "user must be \"agent\" or \"root\".")
        }
        let timeout = body.timeoutMs ?? 30_000
        guard (100...600_000).contains(timeout) else {
            throw InvalidInput("invalid_timeout", "timeout_ms must be between 100 and 600000.")
        }
        return JSON.response(ExecResult(result: try await manager.exec(id, argv: body.argv, user: user, timeoutMs: timeout)))
    }
}
