import Hummingbird

/// Resolves the session cookie into `context.user`; routes decide whether one is required.
struct SessionMiddleware: RouterMiddleware {
    typealias Context = AppContext
    let accounts: Accounts

    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        var context = context
        if let token = request.cookies[Accounts.cookieName]?.value, !token.isEmpty {
            context.user = accounts.user(forToken: token)
            if context.user != nil { context.session = Accounts.sessionID(forToken: token) }
        }
        return try await next(request, context)
    }
}
