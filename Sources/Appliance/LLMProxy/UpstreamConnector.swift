import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Connections to providers, made on the event loop of the client connection they serve: HTTP,
/// or HTTPS through the system OpenSSL (`TLSHandler`). A connection whose answer ended with
/// keep-alive waits in `UpstreamPool` for the next request to the same provider on the same
/// loop: at 50 concurrent streams, a TLS handshake per request would be most of the cost.
struct UpstreamConnector: Sendable {
    static let connectTimeout: TimeAmount = .seconds(10)
    let pool = UpstreamPool()

    /// An idle pooled connection (`reused`), or a new one.
    func lease(_ url: UpstreamURL, on loop: any EventLoop) -> EventLoopFuture<(channel: any Channel, reused: Bool)> {
        if let channel = pool.take(UpstreamPool.Key(url, loop)) { return loop.makeSucceededFuture((channel, true)) }
        return connect(url, on: loop).map { ($0, false) }
    }

    func connect(_ url: UpstreamURL, on loop: any EventLoop) -> EventLoopFuture<any Channel> {
        let pool = self.pool
        return ClientBootstrap(group: loop)
            .connectTimeout(Self.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if url.tls { try channel.pipeline.syncOperations.addHandler(try TLSHandler(clientTo: url.host)) }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: UpstreamPool.idleTimeout))
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler(pool: pool))
                }
            }
            .connect(host: url.host, port: url.port)
    }
}

/// Idle keep-alive connections to providers, by event loop and provider address.
final class UpstreamPool: Sendable {
    struct Key: Hashable, Sendable {
        var loop: ObjectIdentifier
        var tls: Bool
        var host: String
        var port: Int
        init(_ url: UpstreamURL, _ loop: any EventLoop) {
            self.loop = ObjectIdentifier(loop)
            (tls, host, port) = (url.tls, url.host, url.port)
        }
    }

    static let perKey = 64
    /// Closed after this long unused (providers close idle connections on their own too).
    static let idleTimeout: TimeAmount = .seconds(30)
    private let idle = Mutex<[Key: [any Channel]]>([:])

    func take(_ key: Key) -> (any Channel)? {
        idle.withLock { all in
            while var list = all[key], let channel = list.popLast() {
                all[key] = list.isEmpty ? nil : list
                if channel.isActive { return channel }
            }
            return nil
        }
    }

    func put(_ key: Key, _ channel: any Channel) {
        let kept = idle.withLock { all in
            guard all[key, default: []].count < Self.perKey else { return false }
            all[key, default: []].append(channel)
            return true
        }
        if !kept { channel.close(promise: nil) }
    }

    /// A pooled connection closed (the provider's doing, or idle).
    func remove(_ channel: any Channel) {
        idle.withLock { all in
            for (key, list) in all where list.contains(where: { $0 === channel }) {
                let rest = list.filter { $0 !== channel }
                all[key] = rest.isEmpty ? nil : rest
            }
        }
    }
}

/// The provider's side of an exchange: its answer, part by part, to the exchange it serves
/// now (none while the connection waits in the pool).
final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let pool: UpstreamPool
    var exchange: ProxyExchange?

    init(pool: UpstreamPool) { self.pool = pool }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let exchange else { return context.close(promise: nil) }   // an idle connection must not talk
        switch unwrapInboundIn(data) {
        case .head(let head):
            // 100 Continue and other interim answers are not the answer.
            if head.status.code >= 200 { exchange.responseHead(head) }
        case .body(let chunk):
            exchange.responseBody(chunk)
        case .end:
            self.exchange = nil
            exchange.responseEnd()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let exchange {
            self.exchange = nil
            exchange.upstreamClosed()
        } else {
            pool.remove(context.channel)
        }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Idle in the pool: closed. A stream that pauses (a model thinking) is not idle.
        if event is IdleStateHandler.IdleStateEvent && exchange == nil { context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let exchange {
            self.exchange = nil
            exchange.upstreamFailed(error)
        }
        context.close(promise: nil)
    }
}
