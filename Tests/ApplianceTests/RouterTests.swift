import FoundationEssentials
import Glibc
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing
@testable import Appliance

/// The whole router in process (buildApplication on a temp data dir, detached from the host):
/// which status and code each refusal gets is decided by the one error mapping at the edge,
/// and these pin it. Nothing here launches an instance.
@Suite struct RouterTests {
    static let password = "correct horse battery"

    static func build(_ dir: TempDir) throws -> BuiltApplication<some ApplicationProtocol> {
        chmod(dir.path, 0o711)   // the data dir's parents must be searchable (DataPaths.prepare)
        var configuration = Configuration(dataDir: dir.path + "/data")
        configuration.hostAccess = .detached
        return try buildApplication(configuration: configuration, logger: Logger(label: "router-tests"))
    }

    static func body(_ fields: [String: String]) -> ByteBuffer {
        ByteBuffer(bytes: try! JSONEncoder().encode(fields))
    }

    /// `{"error": {"code"}}` of a response, or nil when it is not an error envelope.
    static func errorCode(_ response: TestResponse) -> String? {
        struct Envelope: Decodable { struct Body: Decodable { var code: String; var message: String }; var error: Body }
        return try? JSONDecoder().decode(Envelope.self, from: Data(buffer: response.body)).error.code
    }

    /// The session cookie of a response, sent as the dashboard's own pages send it (a browser
    /// marks a same-origin request so; OriginGuard refuses cookie-authenticated changes without).
    static func session(_ response: TestResponse) -> HTTPFields {
        let cookie = response.headers[.setCookie]?.split(separator: ";").first.map(String.init) ?? ""
        return [.cookie: cookie, OriginGuard.fetchSite: "same-origin"]
    }

    static func expect(_ response: TestResponse, _ status: HTTPResponse.Status, _ code: String?,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(response.status == status, sourceLocation: sourceLocation)
        #expect(errorCode(response) == code, sourceLocation: sourceLocation)
    }

    @Test func setupLoginAndSessions() async throws {
        let dir = TempDir()
        let built = try Self.build(dir)
        let code = try #require(built.setupCode)
        try await built.application.test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/api/v1/auth/me", method: .get) { Self.expect($0, .unauthorized, "unauthorized") }
            try await client.execute(uri: "/api/v1/setup", method: .post,
                                     body: Self.body(["code": "WRONG", "username": "admin", "password": Self.password])) {
                Self.expect($0, .forbidden, "invalid_setup_code")
            }
            try await client.execute(uri: "/api/v1/setup", method: .post, body: Self.body(["code": code, "username": "admin"])) {
                Self.expect($0, .badRequest, "invalid_body")
            }
            let admin = try await client.execute(uri: "/api/v1/setup", method: .post,
                                                 body: Self.body(["code": code, "username": "admin", "password": Self.password])) {
                Self.expect($0, .ok, nil)
                return Self.session($0)
            }
            try await client.execute(uri: "/api/v1/setup", method: .post,
                                     body: Self.body(["code": code, "username": "again", "password": Self.password])) {
                Self.expect($0, .conflict, "setup_complete")
            }
            try await client.execute(uri: "/api/v1/auth/me", method: .get, headers: admin) { response in
                Self.expect(response, .ok, nil)
                #expect(String(buffer: response.body).contains(#""username":"admin""#))
            }
            try await client.execute(uri: "/api/v1/auth/login", method: .post,
                                     body: Self.body(["username": "admin", "password": "not the password"])) {
                Self.expect($0, .unauthorized, "invalid_credentials")
            }
            try await client.execute(uri: "/api/v1/auth/login", method: .post,
                                     body: Self.body(["username": "admin", "password": "nul\0byte"])) {
                Self.expect($0, .badRequest, "nul_in_credentials")
            }
            let again = try await client.execute(uri: "/api/v1/auth/login", method: .post,
                                                 body: Self.body(["username": "admin", "password": Self.password])) {
                Self.expect($0, .ok, nil)
                return Self.session($0)
            }
            try await client.execute(uri: "/api/v1/auth/logout", method: .post, headers: again) { #expect($0.status == .noContent) }
            try await client.execute(uri: "/api/v1/auth/me", method: .get, headers: again) { Self.expect($0, .unauthorized, "unauthorized") }
            try await client.execute(uri: "/api/v1/no-such-route", method: .get) { Self.expect($0, .notFound, "not_found") }
        }
    }

    @Test func instancesAndTheAccessPolicy() async throws {
        let dir = TempDir()
        let built = try Self.build(dir)
        let code = try #require(built.setupCode)
        let database = dir.path + "/data/claworc.db"
        try await built.application.test(.router) { client in
            let admin = try await client.execute(uri: "/api/v1/setup", method: .post,
                                                 body: Self.body(["code": code, "username": "admin", "password": Self.password])) {
                Self.session($0)
            }
            // A second, ordinary user, straight into the store (there is no user API yet).
            let store = try SQLiteStore(path: database)
            _ = try store.createUser(username: "bob", passwordHash: Accounts.passwordHash(Self.password, cost: 4), role: .user)
            let bob = try await client.execute(uri: "/api/v1/auth/login", method: .post,
                                               body: Self.body(["username": "bob", "password": Self.password])) {
                Self.expect($0, .ok, nil)
                return Self.session($0)
            }

            try await client.execute(uri: "/api/v1/instances", method: .get) { Self.expect($0, .unauthorized, "unauthorized") }
            try await client.execute(uri: "/api/v1/instances/7", method: .get, headers: admin) { Self.expect($0, .notFound, "not_found") }
            try await client.execute(uri: "/api/v1/instances/x", method: .get) { Self.expect($0, .notFound, "not_found") }
            try await client.execute(uri: "/api/v1/instances", method: .post, headers: bob, body: Self.body(["name": "alpha"])) {
                Self.expect($0, .forbidden, "forbidden")
            }
            try await client.execute(uri: "/api/v1/instances", method: .post, headers: admin, body: Self.body(["name": "Alpha!"])) {
                Self.expect($0, .badRequest, "invalid_name")
            }
            try await client.execute(uri: "/api/v1/instances", method: .post, headers: admin, body: Self.body(["name": "alpha"])) { response in
                Self.expect(response, .created, nil)
                #expect(String(buffer: response.body).contains(#""state":"stopped""#))
            }
            try await client.execute(uri: "/api/v1/instances", method: .post, headers: admin, body: Self.body(["name": "alpha"])) {
                Self.expect($0, .conflict, "name_taken")
            }
            // Not assigned to bob: it does not exist for him, and admin-only routes say so first.
            try await client.execute(uri: "/api/v1/instances/1", method: .get, headers: bob) { Self.expect($0, .notFound, "not_found") }
            try await client.execute(uri: "/api/v1/instances/1", method: .delete, headers: bob) { Self.expect($0, .forbidden, "forbidden") }
            try await client.execute(uri: "/api/v1/instances", method: .get, headers: bob) { response in
                Self.expect(response, .ok, nil)
                #expect(String(buffer: response.body) == #"{"instances":[]}"#)
            }
            try await client.execute(uri: "/api/v1/settings/instance-defaults", method: .get, headers: bob) {
                Self.expect($0, .forbidden, "forbidden")
            }
            try await client.execute(uri: "/api/v1/settings/instance-defaults", method: .put, headers: admin,
                                     body: Self.body(["colour": "blue"])) { Self.expect($0, .badRequest, "unknown_setting") }
            try await client.execute(uri: "/api/v1/instances/1/settings", method: .put, headers: admin,
                                     body: Self.body(["network": "wifi"])) { Self.expect($0, .badRequest, "invalid_setting") }
            try await client.execute(uri: "/api/v1/instances/1/exec", method: .post, headers: admin,
                                     body: ByteBuffer(string: #"{"argv": []}"#)) { Self.expect($0, .badRequest, "invalid_argv") }
            try await client.execute(uri: "/api/v1/instances/1/exec", method: .post, headers: admin,
                                     body: ByteBuffer(string: #"{"argv": ["true"]}"#)) { Self.expect($0, .conflict, "not_running") }
            // The events stream is checked like every instance route (and needs an SSE client).
            let stream: HTTPFields = [.accept: "text/event-stream"]
            var bobStream = bob
            bobStream[.accept] = "text/event-stream"
            try await client.execute(uri: "/api/v1/instances/1/events", method: .get, headers: stream) {
                Self.expect($0, .unauthorized, "unauthorized")
            }
            try await client.execute(uri: "/api/v1/instances/1/events", method: .get, headers: bobStream) {
                Self.expect($0, .notFound, "not_found")
            }
            try await client.execute(uri: "/api/v1/instances/1/events", method: .get, headers: admin) {
                Self.expect($0, .notAcceptable, "event_stream_required")
            }
            // Detached from the host, nothing can launch: the failure is the lifecycle's, mapped.
            try await client.execute(uri: "/api/v1/instances/1/start", method: .post, headers: admin) {
                Self.expect($0, .internalServerError, "start_failed")
            }
            try await client.execute(uri: "/api/v1/instances/1", method: .delete, headers: admin) { #expect($0.status == .noContent) }
            try await client.execute(uri: "/api/v1/instances/1", method: .get, headers: admin) { Self.expect($0, .notFound, "not_found") }
        }
    }
}
