import Hummingbird
import HTTPTypes

/// Resolves the caller into `context.user`: the session cookie, or an API token in
/// `Authorization: Bearer`. Routes decide (through AccessPolicy) whether one is required.
struct SessionMiddleware: RouterMiddleware {
    typealias Context = AppContext
    let accounts: Accounts
    let tokens: APITokens
    /// False on the WebSocket router: a refusal there must come after the upgrade, as a close
    /// code (VNCController), not as an HTTP answer the upgrade turns into a bare 400. A bad
    /// token then leaves the caller anonymous, and the route closes with 4401.
    var refusesBadTokens = true

    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        var context = context
        if let authorization = request.headers[.authorization] {
            // A token that is present but wrong is an error, not an anonymous request: a script
            // should learn its token died rather than see what anonymous callers see.
            if authorization.hasPrefix("Bearer "), let (user, token) = tokens.user(forToken: String(authorization.dropFirst(7))) {
                context.user = user
                context.session = "token-\(token.id)"
                context.credential = .token
            } else if refusesBadTokens {
                throw AuthError.unauthorized
            }
        } else if let token = request.cookies[Accounts.cookieName]?.value, !token.isEmpty,
                  let user = accounts.user(forToken: token) {
            context.user = user
            context.session = Accounts.sessionID(forToken: token)
            context.credential = .cookie
        }
        return try await next(request, context)
    }
}

/// Cross-site request forgery: a change authenticated by the cookie must come from the
/// appliance's own pages. Browsers say where a request comes from in `Origin` (and
/// `Sec-Fetch-Site`); a foreign or missing one is refused. Token requests carry no ambient
/// credential, so they are exempt. The SameSite=Strict cookie is the first lock, this the second.
struct OriginGuard: RouterMiddleware {
    typealias Context = AppContext

    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        let safe = request.method == .get || request.method == .head || request.method == .options
        if !safe, context.credential == .cookie, !Self.sameOrigin(request) { throw AuthError.crossOrigin }
        return try await next(request, context)
    }

    static let fetchSite = HTTPField.Name("Sec-Fetch-Site")!

    /// A WebSocket signed in by the cookie must be opened by the appliance's own pages:
    /// browsers send Origin on every WebSocket handshake, so a missing one is refused too.
    static func checkWebSocket(_ request: Request, _ context: AppContext) throws {
        guard context.credential == .cookie else { return }
        guard request.headers[.origin] != nil, sameOrigin(request) else {
            throw APIError(status: .forbidden, code: "bad_origin", message: "This WebSocket is only for the appliance's own pages.")
        }
    }

    static func sameOrigin(_ request: Request) -> Bool {
        if let origin = request.headers[.origin] {
            // "scheme://host[:port]" against the Host the request was sent to.
            guard let colon = origin.firstIndex(of: ":"), origin[colon...].hasPrefix("://") else { return false }
            return origin[origin.index(colon, offsetBy: 3)...] == (request.head.authority ?? "")[...]
        }
        return request.headers[Self.fetchSite] == "same-origin"
    }
}
