import Hummingbird

/// First-admin setup, login, logout and who am I, under /api/v1.
struct AuthController {
    struct SetupBody: Decodable { var code: String; var username: String; var password: String }
    struct LoginBody: Decodable { var username: String; var password: String }
    struct UserEnvelope: Encodable { var user: User }

    let accounts: Accounts
    let policy: AccessPolicy
    let audit: AuditLog

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.get("/setup") { _, _ in JSON.response(["required": accounts.setupRequired]) }
        group.post("/setup", use: setup)
        group.post("/auth/login", use: login)
        group.post("/auth/logout", use: logout)
        group.get("/auth/me") { _, context in JSON.response(UserEnvelope(user: try policy.signedIn(context.user))) }
    }

    @Sendable func setup(_ request: Request, context: AppContext) async throws -> Response {
        let body = try await JSON.decode(SetupBody.self, from: request, expecting: #"with "code", "username" and "password""#)
        let user = try await accounts.completeSetup(code: body.code, username: body.username, password: body.password)
        audit.record("setup", by: user, target: "user:\(user.username)", client: context.clientAddress)
        var response = JSON.response(UserEnvelope(user: user))
        response.setCookie(try accounts.openSession(for: user, client: context.clientAddress))
        return response
    }

    @Sendable func login(_ request: Request, context: AppContext) async throws -> Response {
        let body = try await JSON.decode(LoginBody.self, from: request, expecting: #"with "username" and "password""#)
        let user: User
        do {
            user = try await accounts.login(username: body.username, password: body.password, client: context.clientAddress)
        } catch let error as AuthError {
            let reason = switch error {
            case .invalidCredentials: "wrong username or password"
            case .tooManyAttempts: "throttled"
            case .disabled: "account disabled"
            case .busy: "password checks busy"
            default: "refused"
            }
            audit.record("login", by: nil, actorName: String(body.username.prefix(64)), outcome: .denied,
                         client: context.clientAddress, detail: reason)
            throw error
        }
        audit.record("login", by: user, client: context.clientAddress, detail: "password")
        var response = JSON.response(UserEnvelope(user: user))
        response.setCookie(try accounts.openSession(for: user, client: context.clientAddress))
        return response
    }

    @Sendable func logout(_ request: Request, context: AppContext) async throws -> Response {
        if let token = request.cookies[Accounts.cookieName]?.value { accounts.closeSession(token: token) }
        if context.user != nil { audit.record("logout", context) }
        var response = Response(status: .noContent)
        response.setCookie(accounts.expiredCookie)
        return response
    }
}
