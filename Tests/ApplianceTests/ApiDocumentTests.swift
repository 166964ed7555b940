import FoundationEssentials
import Glibc
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Appliance

/// The OpenAPI document the daemon serves, held against the routers it is built with: a route
/// the document does not describe, or an operation it describes that no router has, fails
/// here with the list of differences. The document is read through the served route, so what
/// is checked is the copy embedded in the binary.
@Suite struct ApiDocumentTests {
    /// Pages of the dashboard and its files: not API, deliberately undocumented.
    static let notAPI: Set<String> = ["GET /", "GET /login", "GET /setup", "GET /instances/{id}", "GET /users", "GET /account", "GET /audit",
                                        "GET /agent", "GET /usage", "GET /static/**"]
    static let accessClasses: Set<String> = ["public", "signed-in", "admin", "instance-view", "instance-operate", "instance-admin"]
    static let methods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]

    struct Operation: Decodable {
        var access: String?
        var responses: [String: AnyResponse]?
        enum CodingKeys: String, CodingKey { case access = "x-access", responses }
        struct AnyResponse: Decodable {}
    }
    struct Document: Decodable {
        var openapi: String
        var paths: [String: [String: Operation]]
    }

    /// gzip -d, since the embedded files are stored and served gzip'd and FoundationEssentials has no inflate.
    static func gunzip(_ bytes: ByteBuffer, in dir: TempDir) throws -> Data {
        let packed = dir.path + "/doc.json.gz"
        try Data(buffer: bytes).write(to: URL(fileURLWithPath: packed))
        guard system("gzip -dc '\(packed)' > '\(dir.path)/doc.json'") == 0 else { throw TestFailure("gzip -d failed") }
        return try Data(contentsOf: URL(fileURLWithPath: dir.path + "/doc.json"))
    }

    struct TestFailure: Error, CustomStringConvertible { var description: String; init(_ d: String) { description = d } }

    @Test func theDocumentDescribesEveryRouteAndNoOther() async throws {
        let dir = TempDir()
        let built = try RouterTests.build(dir)
        let (served, staticCopy) = try await built.application.test(.router) { client in
            let served = try await client.execute(uri: "/api/v1/openapi.json", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/json")
                #expect(response.headers[.contentEncoding] == "gzip")
                return response.body
            }
            let staticCopy = try await client.execute(uri: "/static/openapi.json", method: .get) { $0.body }
            return (served, staticCopy)
        }
        #expect(served == staticCopy, "the API route and /static/openapi.json serve the same bytes")
        let document = try JSONDecoder().decode(Document.self, from: try Self.gunzip(served, in: dir))
        #expect(document.openapi.hasPrefix("3.1"))

        var documented: Set<String> = []
        for (path, item) in document.paths {
            for (method, operation) in item where Self.methods.contains(method) {
                let route = "\(method.uppercased()) \(path)"
                documented.insert(route)
                #expect(operation.access.map(Self.accessClasses.contains) == true, "\(route): x-access \(operation.access ?? "missing")")
                #expect(!(operation.responses ?? [:]).isEmpty, "\(route) documents no response")
            }
        }
        let routed = Set(built.routes)
        #expect(routed.count == built.routes.count, "a route is registered twice: \(built.routes.sorted())")
        #expect(Self.notAPI.isSubset(of: routed), "the excluded pages moved: \(Self.notAPI.subtracting(routed).sorted())")
        let undocumented = routed.subtracting(Self.notAPI).subtracting(documented).sorted()
        let unrouted = documented.subtracting(routed).sorted()
        #expect(undocumented.isEmpty, "routes missing from Dashboard/openapi.json: \(undocumented)")
        #expect(unrouted.isEmpty, "documented but no router has them: \(unrouted)")
        #expect(routed.count > 40, "the route table looks empty: \(routed.count)")
    }
}
