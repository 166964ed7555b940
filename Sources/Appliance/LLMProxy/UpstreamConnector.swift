import NIOCore
import NIOHTTP1
import NIOPosix

/// Connections to providers, made on the event loop of the client connection they serve: HTTP,
/// or HTTPS through the system OpenSSL (`TLSHandler`).
struct UpstreamConnector: Sendable {
    static let connectTimeout: TimeAmount = .seconds(10)

    func connect(_ url: UpstreamURL, on loop: any EventLoop, exchange: NIOLoopBound<ProxyExchange>) -> EventLoopFuture<any Channel> {
        ClientBootstrap(group: loop)
            .connectTimeout(Self.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if url.tls { try channel.pipeline.syncOperations.addHandler(try TLSHandler(clientTo: url.host)) }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler(exchange: exchange))
                }
            }
            .connect(host: url.host, port: url.port)
    }
}

/// The provider's side of an exchange: its answer, part by part, to the exchange.
final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let exchange: NIOLoopBound<ProxyExchange>
    private var ended = false

    init(exchange: NIOLoopBound<ProxyExchange>) { self.exchange = exchange }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            // 100 Continue and other interim answers are not the answer.
            if head.status.code >= 200 { exchange.value.responseHead(head) }
        case .body(let chunk):
            exchange.value.responseBody(chunk)
        case .end:
            ended = true
            exchange.value.responseEnd()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !ended { exchange.value.upstreamClosed() }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !ended {
            ended = true
            exchange.value.upstreamFailed(error)
        }
        context.close(promise: nil)
    }
}
