import Hummingbird
import HummingbirdWebSocket

/// The per-request context: Hummingbird's core storage plus the signed-in user, if any.
struct AppContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<AppContext>
    var user: User?
    /// The peer's IP address from the connection itself (X-Forwarded-For is never trusted:
    /// the appliance is not deployed behind a proxy it could vouch for).
    let clientAddress: String

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        user = nil
        clientAddress = source.channel.remoteAddress?.ipAddress ?? "unknown"
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
