import FoundationEssentials
import Hummingbird

/// What every signed-in user does to their own account, under /api/v1/auth: the password,
/// the sessions signed in, the API tokens.
struct AccountController {
    struct PasswordBody: Decodable {
        var currentPassword: String
        var newPassword: String
        enum CodingKeys: String, CodingKey { case currentPassword = "current_password", newPassword = "new_password" }
    }
    struct TokenBody: Decodable {
        var name: String
        var expiresInDays: Int?
        enum CodingKeys: String, CodingKey { case name, expiresInDays = "expires_in_days" }
    }
    struct Session: Encodable {
        var id: String
        var createdAt: String
        var lastSeenAt: String
        var expiresAt: String
        var client: String
        var current: Bool
        enum CodingKeys: String, CodingKey {
            case id, client, current
            case createdAt = "created_at", lastSeenAt = "last_seen_at", expiresAt = "expires_at"
        }
    }
    struct Token: Encodable {
        var id: Int64
        var name: String
        var createdAt: String
        var expiresAt: String?
        var lastUsedAt: String?
        /// Only in the answer to its creation.
        var token: String?
        enum CodingKeys: String, CodingKey {
            case id, name, token
            case createdAt = "created_at", expiresAt = "expires_at", lastUsedAt = "last_used_at"
        }

        /// Absent values are explicit nulls (but the secret appears only once, so it is
        /// left out rather than null everywhere else).
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id)
            try c.encode(name, forKey: .name)
            try c.encode(createdAt, forKey: .createdAt)
            try c.encode(expiresAt, forKey: .expiresAt)
            try c.encode(lastUsedAt, forKey: .lastUsedAt)
            if let token { try c.encode(token, forKey: .token) }
        }
    }

    let policy: AccessPolicy
    let administration: UserAdministration
    let tokens: APITokens
    let audit: AuditLog

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.post("/auth/password", use: changePassword)
        group.get("/auth/sessions") { _, context in
            let user = try policy.signedIn(context.user)
            let current = context.session.map { String($0.prefix(16)) }
            let sessions = try administration.users.sessions(userID: user.id).map {
                Session(id: $0.id, createdAt: Self.time($0.createdAt), lastSeenAt: Self.time($0.lastSeenAt),
                        expiresAt: Self.time($0.expiresAt), client: $0.client, current: $0.id == current)
            }
            return JSON.response(["sessions": sessions])
        }
        group.delete("/auth/sessions/:session") { _, context in
            let user = try policy.signedIn(context.user)
            guard try administration.users.deleteSession(userID: user.id, id: context.parameters.get("session") ?? "") else {
                throw APIError.notFound("The session")
            }
            audit.record("session.revoke", context, target: "user:\(user.username)")
            return Response(status: .noContent)
        }
        group.post("/auth/tokens", use: createToken)
        group.get("/auth/tokens") { _, context in
            let user = try policy.signedIn(context.user)
            return JSON.response(["tokens": try tokens.store.tokens(userID: user.id).map { Self.token($0, secret: nil) }])
        }
        group.delete("/auth/tokens/:token") { _, context in
            let user = try policy.signedIn(context.user)
            guard let raw = context.parameters.get("token"), let id = Int64(raw),
                  try tokens.store.deleteToken(userID: user.id, id: id) else { throw APIError.notFound("The token") }
            audit.record("token.revoke", context, target: "token:\(id)")
            return Response(status: .noContent)
        }
    }

    @Sendable func changePassword(_ request: Request, context: AppContext) async throws -> Response {
        let user = try policy.signedIn(context.user)
        let body = try await JSON.decode(PasswordBody.self, from: request, expecting: #"with "current_password" and "new_password""#)
        let cookie: Cookie
        do {
            cookie = try await administration.changeOwnPassword(user, current: body.currentPassword, new: body.newPassword,
                                                                client: context.clientAddress)
        } catch AuthError.invalidCredentials {
            audit.record("password.change", context, target: "user:\(user.username)", outcome: .denied, detail: "wrong current password")
            // Not 401: the caller is signed in; the password they typed is what is wrong.
            throw APIError(status: .forbidden, code: "wrong_password", message: "The current password is not correct.")
        }
        audit.record("password.change", context, target: "user:\(user.username)")
        var response = Response(status: .noContent)
        response.setCookie(cookie)
        return response
    }

    @Sendable func createToken(_ request: Request, context: AppContext) async throws -> Response {
        let user = try policy.signedIn(context.user)
        let body = try await JSON.decode(TokenBody.self, from: request, expecting: #"with "name" and optionally "expires_in_days""#)
        let (record, secret) = try tokens.create(for: user, name: body.name, expiresInDays: body.expiresInDays)
        audit.record("token.create", context, target: "token:\(record.id)", detail: "name:\(record.name)")
        return JSON.response(Self.token(record, secret: secret), status: .created)
    }

    static func token(_ record: TokenRecord, secret: String?) -> Token {
        Token(id: record.id, name: record.name, createdAt: time(record.createdAt), expiresAt: record.expiresAt.map(time),
              lastUsedAt: record.lastUsedAt.map(time), token: secret)
    }

    static func time(_ seconds: Int64) -> String {
        Date(timeIntervalSince1970: Double(seconds)).formatted(.iso8601)
    }
}
