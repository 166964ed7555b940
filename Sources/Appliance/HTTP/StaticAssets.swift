import CAssets
import FoundationEssentials
import Hummingbird

/// The dashboard and its browser libraries, embedded in the binary by scripts/pack-web.py
/// (format: "CLWA", u32le index length, JSON index, then each file gzip'd). Served as-is
/// with Content-Encoding: gzip; nothing is read from disk at run time.
struct StaticAssets: Sendable {
    struct Asset: Sendable {
        var body: ByteBuffer
        var etag: String
        var contentType: String
    }

    private struct IndexEntry: Decodable { var path: String; var offset: Int; var length: Int; var etag: String }

    let assets: [String: Asset]

    init() throws {
        let base = cassets_ptr()!
        let total = Int(cassets_len())
        let blob = UnsafeBufferPointer(start: base, count: total)
        guard total >= 8, Array(blob[0..<4]) == Array("CLWA".utf8) else {
            throw StartupError("the embedded dashboard is missing or corrupt; run scripts/fetch-web-deps.sh and scripts/pack-web.py")
        }
        let indexLength = Int(blob[4]) | Int(blob[5]) << 8 | Int(blob[6]) << 16 | Int(blob[7]) << 24
        guard 8 + indexLength <= total else { throw StartupError("the embedded dashboard index is truncated") }
        let entries = try JSONDecoder().decode([IndexEntry].self, from: Data(blob[8..<(8 + indexLength)]))
        let dataStart = 8 + indexLength
        var assets: [String: Asset] = [:]
        for entry in entries {
            let start = dataStart + entry.offset
            guard entry.offset >= 0, entry.length >= 0, start + entry.length <= total else {
                throw StartupError("the embedded dashboard entry \(entry.path) is out of range")
            }
            let bytes = UnsafeBufferPointer(rebasing: blob[start..<(start + entry.length)])
            assets[entry.path] = Asset(body: ByteBuffer(bytes: bytes), etag: "\"\(entry.etag)\"",
                                       contentType: Self.contentType(entry.path))
        }
        self.assets = assets
    }

    static func contentType(_ path: String) -> String {
        let ext = path.split(separator: ".").last.map { $0.lowercased() } ?? ""
        switch ext {
        case "html": return "text/html; charset=utf-8"
        case "js", "mjs": return "text/javascript; charset=utf-8"
        case "css": return "text/css; charset=utf-8"
        case "svg": return "image/svg+xml"
        case "png": return "image/png"
        case "json": return "application/json"
        case "woff2": return "font/woff2"
        default: return "application/octet-stream"
        }
    }

    func response(for path: String, request: Request) -> Response? {
        guard let asset = assets[path] else { return nil }
        var headers: HTTPFields = [
            .contentType: asset.contentType, .contentEncoding: "gzip", .eTag: asset.etag,
            .cacheControl: "no-cache", .vary: "Accept-Encoding",
            .init("X-Content-Type-Options")!: "nosniff",
        ]
        if path == "index.html" {
            headers[.init("Content-Security-Policy")!] =
                "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; frame-ancestors 'none'"
            headers[.init("X-Frame-Options")!] = "DENY"
        }
        if request.headers[.ifNoneMatch] == asset.etag {
            return Response(status: .notModified, headers: headers)
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: asset.body))
    }

    func register(on router: Router<AppContext>) {
        router.get("/static/**") { request, context in
            let path = context.parameters.getCatchAll().joined(separator: "/")
            guard !path.contains(".."), let response = response(for: path, request: request) else {
                throw APIError.notFound("The file")
            }
            return response
        }
        // The dashboard is one page that routes on location.pathname.
        for page in ["/", "/login", "/setup", "/instances/:id", "/users", "/account", "/audit", "/agent", "/usage"] {
            router.get(RouterPath(page)) { request, _ in
                guard let response = response(for: "index.html", request: request) else { throw APIError.notFound("The page") }
                return response
            }
        }
    }
}
