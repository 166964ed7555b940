import Hummingbird
import HummingbirdWebSocket

/// The per-request context: Hummingbird's core storage plus the signed-in user, if any.
struct AppContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<AppContext>
    var user: User?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        user = nil
    }

    func requireUser() throws -> User {
        guard let user else { throw APIError.unauthorized }
        return user
    }

    func requireAdmin() throws -> User {
        let user = try requireUser()
        guard user.role == .admin else { throw APIError.forbidden }
        return user
    }
}
