import Hummingbird

/// The optional plain-HTTP listener's only answer: 308 to the same path on HTTPS. It serves
/// nothing else, so a session cookie never has a reason to travel in clear.
struct HTTPSRedirect: HTTPResponder {
    typealias Context = BasicRequestContext
    /// The HTTPS listener's port and, for clients that send no usable Host, its address.
    let httpsPort: Int
    let fallbackHost: String

    func respond(to request: Request, context: Context) async throws -> Response {
        let host = Self.hostName(request.head.authority) ?? (fallbackHost.contains(":") ? "[\(fallbackHost)]" : fallbackHost)
        let port = httpsPort == 443 ? "" : ":\(httpsPort)"
        let path = request.uri.path.hasPrefix("/") ? request.uri.description : "/"
        return Response(status: .permanentRedirect,
                        headers: [.location: "https://\(host)\(port)\(path)", .contentLength: "0", .cacheControl: "no-store"])
    }

    /// The host part of a Host header, if it is a plain DNS name, IPv4 or bracketed IPv6
    /// address: anything else would be echoed into a Location header.
    static func hostName(_ authority: String?) -> String? {
        guard let authority, !authority.isEmpty else { return nil }
        var host = Substring(authority)
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            host = host[...close]
            let inside = host.dropFirst().dropLast()
            return !inside.isEmpty && inside.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) ? String(host) : nil
        }
        if let colon = host.firstIndex(of: ":") { host = host[..<colon] }
        let allowed = !host.isEmpty && host.count <= 253
            && host.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "." }
        return allowed ? String(host) : nil
    }
}
