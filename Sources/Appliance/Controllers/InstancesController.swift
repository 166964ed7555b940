import FoundationEssentials
import Hummingbird
import Logging
import Supervisor

struct SetupBody: Decodable { var code: String; var username: String; var password: String }
struct LoginBody: Decodable { var username: String; var password: String }
struct CreateInstanceBody: Decodable { var name: String }
struct UserEnvelope: Encodable { var user: User }
struct InstancesEnvelope: Encodable { var instances: [InstanceView] }
struct SettingsEnvelope: Encodable { var overrides: InstanceSettings; var effective: InstanceSettings }
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

/// The JSON API under /api/v1 and the health check.
struct APIRoutes {
    let accounts: Accounts
    let manager: InstanceManager

    func register(on router: Router<AppContext>) {
        router.get("/healthz") { _, _ in JSON.response(["status": "ok"]) }

        let api = router.group("/api/v1")
        api.get("/setup") { _, _ in JSON.response(["required": accounts.setupRequired]) }
        api.post("/setup") { request, _ in
            let body = try await JSON.decode(SetupBody.self, from: request, expecting: #"with "code", "username" and "password""#)
            let user = try await accounts.completeSetup(code: body.code, username: body.username, password: body.password)
            var response = JSON.response(UserEnvelope(user: user))
            response.setCookie(try accounts.openSession(for: user))
            return response
        }

        api.post("/auth/login") { request, context in
            let body = try await JSON.decode(LoginBody.self, from: request, expecting: #"with "username" and "password""#)
            let user = try await accounts.login(username: body.username, password: body.password, client: context.clientAddress)
            var response = JSON.response(UserEnvelope(user: user))
            response.setCookie(try accounts.openSession(for: user))
            return response
        }
        api.post("/auth/logout") { request, _ in
            if let token = request.cookies[Accounts.cookieName]?.value { accounts.closeSession(token: token) }
            var response = Response(status: .noContent)
            response.setCookie(Accounts.expiredCookie)
            return response
        }
        api.get("/auth/me") { _, context in JSON.response(UserEnvelope(user: try context.requireUser())) }

        api.get("/instances") { _, context in
            let user = try context.requireUser()
            var views: [InstanceView] = []
            for record in try accounts.store.instances(visibleTo: user) { views.append(await manager.view(record)) }
            return JSON.response(InstancesEnvelope(instances: views))
        }
        api.post("/instances") { request, context in
            _ = try context.requireAdmin()
            let body = try await JSON.decode(CreateInstanceBody.self, from: request, expecting: #"with a "name""#)
            let record = try await manager.create(name: body.name)
            return JSON.response(await manager.view(record), status: .created)
        }
        api.get("/instances/:id") { _, context in
            let record = try await manager.record(try instanceID(context), for: try context.requireUser())
            return JSON.response(await manager.view(record))
        }
        api.delete("/instances/:id") { _, context in
            let id = try instanceID(context)
            _ = try await manager.record(id, for: try context.requireAdmin())
            try await manager.delete(id)
            return Response(status: .noContent)
        }
        api.post("/instances/:id/start") { _, context in
            let id = try instanceID(context)
            _ = try await manager.record(id, for: try context.requireUser())
            return JSON.response(await manager.view(try await manager.start(id)))
        }
        api.post("/instances/:id/stop") { _, context in
            let id = try instanceID(context)
            _ = try await manager.record(id, for: try context.requireUser())
            return JSON.response(await manager.view(try await manager.stop(id)))
        }
        // Admin diagnostics: run one command inside an instance and get its output.
        api.post("/instances/:id/exec") { request, context in
            let id = try instanceID(context)
            _ = try await manager.record(id, for: try context.requireAdmin())
            let body = try await JSON.decode(ExecBody.self, from: request,
                                             expecting: #"with "argv" (a list of strings), optional "user" and "timeout_ms""#)
            guard !body.argv.isEmpty, body.argv.allSatisfy({ !$0.contains("\0") }) else {
                throw APIError.badRequest("invalid_argv", "argv must be a non-empty list of strings without NUL bytes.")
            }
            let user = body.user ?? "agent"
            guard user == "agent" || user == "root" else {
                throw APIError.badRequest("invalid_user", "user must be \"agent\" or \"root\".")
            }
            let timeout = body.timeoutMs ?? 30_000
            guard (100...600_000).contains(timeout) else {
                throw APIError.badRequest("invalid_timeout", "timeout_ms must be between 100 and 600000.")
            }
            let result = try await manager.exec(id, argv: body.argv, user: user, timeoutMs: timeout)
            return JSON.response(ExecResult(result: result))
        }
        api.get("/settings/instance-defaults") { _, context in
            _ = try context.requireAdmin()
            return JSON.response(["settings": await manager.defaultSettings()])
        }
        api.put("/settings/instance-defaults") { request, context in
            _ = try context.requireAdmin()
            let body = try await JSON.decode(InstanceSettings.self, from: request, expecting: "of instance settings")
            return JSON.response(["settings": try await manager.setDefaults(body)])
        }
        api.get("/instances/:id/settings") { _, context in
            let record = try await manager.record(try instanceID(context), for: try context.requireUser())
            return JSON.response(SettingsEnvelope(overrides: InstanceSettings.decode(record.limits),
                                                  effective: await manager.effectiveSettings(record)))
        }
        api.put("/instances/:id/settings") { request, context in
            let id = try instanceID(context)
            _ = try await manager.record(id, for: try context.requireAdmin())
            let body = try await JSON.decode(InstanceSettings.self, from: request, expecting: "of instance settings")
            let record = try await manager.setOverrides(id, body)
            return JSON.response(SettingsEnvelope(overrides: InstanceSettings.decode(record.limits),
                                                  effective: await manager.effectiveSettings(record)))
        }
        api.post("/instances/:id/restart") { _, context in
            let id = try instanceID(context)
            _ = try await manager.record(id, for: try context.requireUser())
            return JSON.response(await manager.view(try await manager.restart(id)))
        }
    }
}

/// The `{id}` path parameter; anything but a positive integer is an instance that does not exist.
func instanceID(_ context: AppContext) throws -> Int64 {
    guard let raw = context.parameters.get("id"), let id = Int64(raw), id > 0 else {
        throw APIError.notFound("The instance")
    }
    return id
}
