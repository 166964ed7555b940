import Hummingbird
import HummingbirdWebSocket
import NIOCore

/// The per-request context: Hummingbird's core storage plus the signed-in user, if any
/// (whether one is needed, and which, is AccessPolicy's decision).
struct AppContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<AppContext>
    var user: User?
    /// The signed-in session's id (its token's hash, as stored), set with `user`: what
    /// screen control belongs to.
    var session: String?
    /// How the caller proved who they are: the browser's cookie (ambient, so changes need a
    /// same-origin check) or an API token.
    enum Credential: Sendable { case cookie, token }
    var credential: Credential?
    /// The peer's IP address from the connection itself (X-Forwarded-For is never trusted:
    /// the appliance is not deployed behind a proxy it could vouch for).
    let clientAddress: String
    /// The connection: a long response (the logs' event stream) ends when it closes, which
    /// Hummingbird does not otherwise tell a handler until it writes.
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        user = nil
        session = nil
        credential = nil
        clientAddress = source.channel.remoteAddress?.ipAddress ?? "unknown"
        channel = source.channel
    }

    /// The `{id}` path parameter; anything but a positive integer is an instance that does not exist.
    func instanceID() throws -> Int64 {
        guard let raw = parameters.get("id"), let id = Int64(raw), id > 0 else { throw InstanceError.notFound }
        return id
    }
}
