import FoundationEssentials
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
@testable import Appliance

/// Users, roles, tokens, cross-origin refusals and the audit log through the real router.
@Suite struct AccountsRouterTests {
    typealias R = RouterTests

    struct UserBody: Decodable {
        struct U: Decodable { var id: Int; var role: String; var disabled: Bool; var created_at: String }
        var user: U
    }
    struct TokenBody: Decodable { var id: Int; var token: String }
    struct SessionsBody: Decodable { struct S: Decodable { var current: Bool }; var sessions: [S] }
    struct AuditBody: Decodable { struct E: Decodable { var action: String }; var entries: [E] }

    static func decode<T: Decodable>(_ type: T.Type, _ response: TestResponse) -> T? {
        try? JSONDecoder().decode(T.self, from: Data(buffer: response.body))
    }

    @Test func usersRolesTokensAndOrigins() async throws {
        let dir = TempDir()
        let built = try R.build(dir)
        let code = try #require(built.setupCode)
        try await built.application.test(.router) { client in
            let admin = try await client.execute(uri: "/api/v1/setup", method: .post,
                                                 body: R.body(["code": code, "username": "admin", "password": R.password])) {
                R.session($0)
            }
            let cookieOnly: HTTPFields = [.cookie: admin[.cookie]!]

            // Cross-site forgery: a cookie without a same-origin mark, or with a foreign Origin, changes nothing.
            try await client.execute(uri: "/api/v1/users", method: .post, headers: cookieOnly,
                                     body: R.body(["username": "mallory", "password": R.password, "role": "admin"])) {
                R.expect($0, .forbidden, "cross_origin")
            }
            var foreign = cookieOnly
            foreign[.origin] = "https://evil.example"
            try await client.execute(uri: "/api/v1/users", method: .post, headers: foreign,
                                     body: R.body(["username": "mallory", "password": R.password, "role": "admin"])) {
                R.expect($0, .forbidden, "cross_origin")
            }
            try await client.execute(uri: "/api/v1/users", method: .get, headers: cookieOnly) { response in
                #expect(response.status == .ok, "reading needs no origin")
                #expect(!String(buffer: response.body).contains("mallory"), "no user was made by the refused requests")
            }

            // Users: create, bad input, duplicate, roles.
            try await client.execute(uri: "/api/v1/users", method: .post, headers: admin,
                                     body: R.body(["username": "bob", "password": R.password, "role": "superuser"])) {
                R.expect($0, .badRequest, "invalid_body")
            }
            let bobID = try await client.execute(uri: "/api/v1/users", method: .post, headers: admin,
                                                 body: R.body(["username": "bob", "password": R.password, "role": "user"])) { response in
                R.expect(response, .created, nil)
                let user = Self.decode(UserBody.self, response)?.user
                #expect(user?.role == "user" && user?.disabled == false && user?.created_at.isEmpty == false)
                return user?.id ?? 0
            }
            try await client.execute(uri: "/api/v1/users", method: .post, headers: admin,
                                     body: R.body(["username": "bob", "password": R.password, "role": "user"])) {
                R.expect($0, .conflict, "username_taken")
            }
            try await client.execute(uri: "/api/v1/users/9999", method: .patch, headers: admin, body: R.body(["role": "admin"])) {
                R.expect($0, .notFound, "not_found")
            }
            let bob = try await client.execute(uri: "/api/v1/auth/login", method: .post,
                                               body: R.body(["username": "bob", "password": R.password])) { R.session($0) }
            try await client.execute(uri: "/api/v1/users", method: .get, headers: bob) { R.expect($0, .forbidden, "forbidden") }
            try await client.execute(uri: "/api/v1/audit", method: .get, headers: bob) { R.expect($0, .forbidden, "forbidden") }

            // The last enabled admin cannot be demoted, disabled or deleted.
            for (method, body) in [(HTTPRequest.Method.patch, R.body(["role": "user"])), (.delete, ByteBuffer())] {
                try await client.execute(uri: "/api/v1/users/1", method: method, headers: admin, body: body) {
                    R.expect($0, .conflict, "last_admin")
                }
            }

            // Tokens: shown once, act as their owner, work without Origin, die when revoked or the owner is disabled.
            let (tokenID, token) = try await client.execute(uri: "/api/v1/auth/tokens", method: .post, headers: bob,
                                                            body: R.body(["name": "ci"])) { response in
                R.expect(response, .created, nil)
                let body = Self.decode(TokenBody.self, response)
                return (body?.id ?? 0, body?.token ?? "")
            }
            #expect(token.hasPrefix("cwt_"))
            try await client.execute(uri: "/api/v1/auth/tokens", method: .get, headers: bob) { response in
                #expect(!String(buffer: response.body).contains(token), "the secret is shown only once")
                #expect(String(buffer: response.body).contains(#""name":"ci""#))
            }
            let bearer: HTTPFields = [.authorization: "Bearer \(token)"]
            try await client.execute(uri: "/api/v1/auth/me", method: .get, headers: bearer) { response in
                #expect(response.status == .ok && String(buffer: response.body).contains(#""username":"bob""#))
            }
            try await client.execute(uri: "/api/v1/auth/tokens", method: .post, headers: bearer, body: R.body(["name": "second"])) {
                #expect($0.status == .created, "a token request needs no Origin: it carries no ambient credential")
            }
            try await client.execute(uri: "/api/v1/auth/me", method: .get, headers: [.authorization: "Bearer cwt_nonsense"]) {
                R.expect($0, .unauthorized, "unauthorized")
            }
            try await client.execute(uri: "/api/v1/users/\(bobID)", method: .patch, headers: admin, body: R.body(["disabled": "x"])) {
                R.expect($0, .badRequest, "invalid_body")
            }
            let disable = ByteBuffer(string: #"{"disabled": true}"#)
            try await client.execute(uri: "/api/v1/users/\(bobID)", method: .patch, headers: admin, body: disable) { response in
                R.expect(response, .ok, nil)
                #expect(String(buffer: response.body).contains(#""disabled":true"#))
            }
            try await client.execute(uri: "/api/v1/auth/me", method: .get, headers: bearer) { R.expect($0, .unauthorized, "unauthorized") }
            try await client.execute(uri: "/api/v1/auth/me", method: .get, headers: bob) { R.expect($0, .unauthorized, "unauthorized") }
            try await client.execute(uri: "/api/v1/auth/login", method: .post, body: R.body(["username": "bob", "password": R.password])) {
                R.expect($0, .forbidden, "account_disabled")
            }
            try await client.execute(uri: "/api/v1/auth/tokens/\(tokenID)", method: .delete, headers: admin) {
                R.expect($0, .notFound, "not_found")   // an admin's own token list does not have bob's
            }

            // Own password: the current one is required; other sessions end; the caller gets a new one.
            let other = try await client.execute(uri: "/api/v1/auth/login", method: .post,
                                                 body: R.body(["username": "admin", "password": R.password])) { R.session($0) }
            try await client.execute(uri: "/api/v1/auth/password", method: .post, headers: admin,
                                     body: R.body(["current_password": "wrong", "new_password": "another good password"])) {
                R.expect($0, .forbidden, "wrong_password")
            }
            let renewed = try await client.execute(uri: "/api/v1/auth/password", method: .post, headers: admin,
                                                   body: R.body(["current_password": R.password, "new_password": "another good password"])) {
                R.expect($0, .noContent, nil)
                return R.session($0)
            }
            try await client.execute(uri: "/api/v1/auth/me", method: .get, headers: other) { R.expect($0, .unauthorized, "unauthorized") }
            try await client.execute(uri: "/api/v1/auth/me", method: .get, headers: admin) { R.expect($0, .unauthorized, "unauthorized") }
            try await client.execute(uri: "/api/v1/auth/sessions", method: .get, headers: renewed) { response in
                let sessions = Self.decode(SessionsBody.self, response)?.sessions ?? []
                #expect(sessions.count == 1 && sessions.first?.current == true)
            }

            // The audit log saw it, newest first, and holds no secret.
            try await client.execute(uri: "/api/v1/audit?limit=1000", method: .get, headers: renewed) { response in
                R.expect(response, .ok, nil)
                let text = String(buffer: response.body)
                let actions = (Self.decode(AuditBody.self, response)?.entries ?? []).map(\.action)
                for action in ["setup", "user.create", "user.update", "token.create", "login", "password.change"] {
                    #expect(actions.contains(action), "\(action)")
                }
                #expect(text.contains(#""outcome":"denied""#), "refusals are recorded too")
                #expect(!text.contains(token) && !text.contains(R.password) && !text.contains("another good password"))
            }
            // Instance operations are audited by route, refusals included.
            try await client.execute(uri: "/api/v1/instances", method: .post, headers: renewed, body: R.body(["name": "audited"])) {
                #expect($0.status == .created)
            }
            try await client.execute(uri: "/api/v1/instances/1/settings", method: .put, headers: renewed,
                                     body: R.body(["no_such_setting": "1"])) { #expect($0.status == .badRequest) }
            try await client.execute(uri: "/api/v1/audit?action=instance.settings", method: .get, headers: renewed) { response in
                #expect(String(buffer: response.body).contains(#""outcome":"failed""#))
                #expect(String(buffer: response.body).contains(#""target":"instance:1""#))
            }
            try await client.execute(uri: "/api/v1/audit?action=instance.create", method: .get, headers: renewed) { response in
                #expect(String(buffer: response.body).contains(#""outcome":"ok""#))
            }
            try await client.execute(uri: "/api/v1/audit?since=yesterday", method: .get, headers: renewed) {
                R.expect($0, .badRequest, "invalid_time")
            }
        }
    }
}
