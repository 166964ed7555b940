import Hummingbird

/// Passkeys under /api/v1/auth/passkeys: registering and managing one's own (signed in), and
/// signing in with one (anonymous). The ceremonies are `Passkeys`'; this only moves JSON.
struct PasskeysController {
    struct PasskeyView: Encodable {
        var id: Int64
        var name: String
        var algorithm: String
        var created_at: String
        var last_used_at: String?

        init(_ record: PasskeyRecord) {
            id = record.id
            name = record.name
            algorithm = switch COSEAlgorithm(rawValue: record.algorithm) {
            case .es256: "ES256"
            case .edDSA: "EdDSA"
            case .rs256: "RS256"
            case nil: String(record.algorithm)
            }
            created_at = record.createdAt
            last_used_at = record.lastUsedAt
        }

        private enum CodingKeys: String, CodingKey { case id, name, algorithm, created_at, last_used_at }

        /// `last_used_at` is null until the first sign-in, never left out.
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(name, forKey: .name)
            try container.encode(algorithm, forKey: .algorithm)
            try container.encode(created_at, forKey: .created_at)
            try container.encode(last_used_at, forKey: .last_used_at)
        }
    }
    struct RegisterBody: Decodable { var name: String?; var credential: Passkeys.Credential }
    struct LoginBody: Decodable { var credential: Passkeys.Credential }
    struct RenameBody: Decodable { var name: String }
    struct Options<T: Encodable>: Encodable { var publicKey: T }

    let passkeys: Passkeys
    let accounts: Accounts
    let policy: AccessPolicy
    let audit: AuditLog

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.post("/auth/passkeys/register/options", use: registrationOptions)
        group.post("/auth/passkeys/register", use: register)
        group.get("/auth/passkeys") { _, context in
            let user = try policy.signedIn(context.user)
            return JSON.response(["passkeys": try passkeys.list(for: user).map(PasskeyView.init)])
        }
        group.patch("/auth/passkeys/:passkey", use: rename)
        group.delete("/auth/passkeys/:passkey") { _, context in
            let user = try policy.signedIn(context.user)   // before the id: anonymous callers learn nothing
            let id = try Self.passkeyID(context)
            try passkeys.delete(id, for: user)
            audit.record("passkey.remove", context, target: "passkey:\(id)")
            return Response(status: .noContent)
        }
        group.post("/auth/passkeys/login/options", use: loginOptions)
        group.post("/auth/passkeys/login", use: login)
    }

    /// Anything but a positive integer is a passkey that does not exist.
    private static func passkeyID(_ context: AppContext) throws -> Int64 {
        guard let raw = context.parameters.get("passkey"), let id = Int64(raw), id > 0 else { throw PasskeyError.notFound }
        return id
    }

    private static func host(_ request: Request) -> String? { request.head.authority }

    @Sendable func registrationOptions(_ request: Request, context: AppContext) async throws -> Response {
        let user = try policy.signedIn(context.user)
        guard let session = context.session else { throw AuthError.unauthorized }
        return JSON.response(Options(publicKey: try passkeys.registrationOptions(for: user, session: session, host: Self.host(request))))
    }

    @Sendable func register(_ request: Request, context: AppContext) async throws -> Response {
        let user = try policy.signedIn(context.user)
        guard let session = context.session else { throw AuthError.unauthorized }
        let body = try await JSON.decode(RegisterBody.self, from: request, expecting: #"with "name" and "credential""#)
        let record = try passkeys.register(body.credential, name: body.name ?? "Passkey", for: user, session: session)
        audit.record("passkey.add", context, target: "passkey:\(record.id)", detail: "name:\(record.name.prefix(64))")
        return JSON.response(["passkey": PasskeyView(record)], status: .created)
    }

    @Sendable func rename(_ request: Request, context: AppContext) async throws -> Response {
        let user = try policy.signedIn(context.user)
        let id = try Self.passkeyID(context)
        let body = try await JSON.decode(RenameBody.self, from: request, expecting: #"with "name""#)
        try passkeys.rename(id, to: body.name, for: user)
        guard let record = try passkeys.list(for: user).first(where: { $0.id == id }) else { throw PasskeyError.notFound }
        return JSON.response(["passkey": PasskeyView(record)])
    }

    @Sendable func loginOptions(_ request: Request, context: AppContext) async throws -> Response {
        let (options, cookie) = try passkeys.loginOptions(host: Self.host(request), client: context.clientAddress)
        var response = JSON.response(Options(publicKey: options))
        response.setCookie(cookie)
        return response
    }

    @Sendable func login(_ request: Request, context: AppContext) async throws -> Response {
        let body = try await JSON.decode(LoginBody.self, from: request, expecting: #"with "credential""#)
        let user: User
        do {
            user = try passkeys.login(body.credential, loginToken: request.cookies[Passkeys.loginCookieName]?.value,
                                      client: context.clientAddress)
        } catch {
            audit.record("login", by: nil, outcome: .denied, client: context.clientAddress,
                         detail: "passkey: \(APIError(mapping: error)?.code ?? "refused")")
            throw error
        }
        audit.record("login", by: user, client: context.clientAddress, detail: "passkey")
        var response = JSON.response(AuthController.UserEnvelope(user: user))
        response.setCookie(try accounts.openSession(for: user, client: context.clientAddress))
        response.setCookie(passkeys.expiredLoginCookie)
        return response
    }
}
