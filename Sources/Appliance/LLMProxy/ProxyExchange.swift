import NIOCore
import NIOHTTP1

/// One request on its way to the provider and its answer on the way back. Both channels run
/// on the same event loop (the upstream connection is made on the client's), so this object
/// is confined to that loop and needs no lock. The answer's bytes go to the client as they
/// arrive, chunk by chunk, and through `UsageMeter` on the way.
final class ProxyExchange {
    private let proxy: LLMProxy
    private let instance: Int64
    private let context: ChannelHandlerContext
    private let request: HTTPRequestHead
    private var body: ByteBuffer?
    private let plan: ProxyPlanner.Plan
    private let provider: String
    private let model: String?
    private let started: NIODeadline
    private var upstream: (any Channel)?
    /// The connection came from the pool; one that fails before answering is retried once on
    /// a new connection (the provider may have closed it just as the request went out).
    private var reused = false
    private var upstreamKeepAlive = false
    private var meter: UsageMeter?
    private var status: UInt = 0
    private var headSent = false
    private var finished = false
    var onFinish: (() -> Void)?

    init(proxy: LLMProxy, instance: Int64, context: ChannelHandlerContext, request: HTTPRequestHead, body: ByteBuffer,
         plan: ProxyPlanner.Plan, provider: String, model: String?, started: NIODeadline) {
        self.proxy = proxy
        self.instance = instance
        self.context = context
        self.request = request
        self.body = body
        self.plan = plan
        self.provider = provider
        self.model = model
        self.started = started
    }

    private var family: ProviderAPI.Family { plan.api.family }

    func start(fresh: Bool = false) {
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let loop = context.eventLoop
        let leased = fresh ? proxy.upstreams.connect(plan.upstream, on: loop).map { (channel: $0, reused: false) }
            : proxy.upstreams.lease(plan.upstream, on: loop)
        leased.whenComplete { result in
            let exchange = bound.value
            switch result {
            case .success(let (channel, reused)):
                guard !exchange.finished,
                      let handler = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self) else {
                    return channel.close(promise: nil)
                }
                handler.exchange = exchange
                exchange.upstream = channel
                exchange.reused = reused
                exchange.send(on: channel)
            case .failure(let error):
                exchange.upstreamFailed(error)
            }
        }
    }

    /// The request as the provider gets it: the client's headers without hop-by-hop ones and
    /// without the instance's credential, the real key in the provider's header.
    private func send(on channel: any Channel) {
        var headers = HTTPHeaders()
        for (name, value) in request.headers where !Self.dropped.contains(name.lowercased()) { headers.add(name: name, value: value) }
        headers.replaceOrAdd(name: "host", value: plan.upstream.authority)
        headers.replaceOrAdd(name: "content-length", value: String(body?.readableBytes ?? 0))
        // Usage is read from the bytes that pass: they must not be compressed.
        headers.replaceOrAdd(name: "accept-encoding", value: "identity")
        if let key = plan.key {
            if plan.api == .anthropicMessages { headers.add(name: "x-api-key", value: key) } else {
                headers.add(name: "authorization", value: "Bearer " + key)
            }
        }
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: plan.path, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        // The body stays until the answer starts: a retry sends it again.
        if let body, body.readableBytes > 0 { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    static let dropped: Set<String> = ["connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer",
                                       "transfer-encoding", "upgrade", "host", "content-length", "authorization", "x-api-key",
                                       "accept-encoding", "expect"]

    // ---- the provider's answer --------------------------------------------------------------

    func responseHead(_ head: HTTPResponseHead) {
        guard !finished else { return }
        status = head.status.code
        upstreamKeepAlive = head.isKeepAlive
        body = nil
        meter = UsageMeter(contentType: head.headers.first(name: "content-type"))
        var headers = HTTPHeaders()
        for (name, value) in head.headers where !Self.droppedBack.contains(name.lowercased()) { headers.add(name: name, value: value) }
        if !request.isKeepAlive { headers.add(name: "connection", value: "close") }
        headSent = true
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: request.version, status: head.status,
                                                                                       headers: headers))), promise: nil)
    }

    static let droppedBack: Set<String> = ["connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "trailer"]

    func responseBody(_ chunk: ByteBuffer) {
        guard !finished else { return }
        chunk.withUnsafeReadableBytes { meter?.feed($0) }
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.body(.byteBuffer(chunk))), promise: nil)
    }

    /// The answer's end reaches the client once its usage is stored: the agent's next request
    /// is checked against a budget that counts this one.
    func responseEnd() {
        guard !finished else { return }
        // Back to the pool (its handler already let go of this exchange), or closed.
        if let channel = upstream {
            upstream = nil
            if upstreamKeepAlive {
                // A slow client may have paused reading; the next request must not inherit that.
                channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
                proxy.upstreams.pool.put(UpstreamPool.Key(plan.upstream, channel.eventLoop), channel)
            } else {
                channel.close(promise: nil)
            }
        }
        let stored = finish(failed: status >= 400)
        let (context, keepAlive) = (self.context, request.isKeepAlive)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        stored.whenComplete { _ in
            let context = bound.value
            let done = context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)))
            if !keepAlive { done.whenComplete { [channel = context.channel] _ in channel.close(promise: nil) } }
        }
    }

    /// The provider could not be reached, or its connection broke.
    func upstreamFailed(_ error: any Error) {
        guard !finished else { return }
        if reused && !headSent {
            reused = false
            upstream?.close(promise: nil)
            upstream = nil
            return start(fresh: true)
        }
        if headSent {
            // Mid-answer: the client must see the answer is incomplete.
            context.close(promise: nil)
        } else {
            proxy.logger.warning("key proxy: provider unreachable", metadata: ["provider": "\(provider)", "error": "\(error)"])
            let reply = ProxyErrorReply.badGateway(family, provider: provider)
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "content-length", value: String(reply.body.utf8.count))
            context.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: request.version, status: reply.status,
                                                                               headers: headers))), promise: nil)
            context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(context.channel.allocator.buffer(string: reply.body)))), promise: nil)
            context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
        }
        finish(failed: true)
    }

    /// The upstream connection closed before the answer ended.
    func upstreamClosed() {
        guard !finished else { return }
        upstreamFailed(ChannelError.eof)
    }

    func clientClosed() {
        guard !finished else { return }
        finish(failed: true)
    }

    /// Backpressure: a client that reads slowly slows the provider's stream, not the daemon's memory.
    func clientWritable(_ writable: Bool) {
        upstream?.setOption(ChannelOptions.autoRead, value: writable).whenFailure { _ in }
        if writable { upstream?.read() }
    }

    @discardableResult
    private func finish(failed: Bool) -> EventLoopFuture<Void> {
        finished = true
        upstream?.close(promise: nil)
        upstream = nil
        meter?.finish()
        let elapsed = (NIODeadline.now() - started).nanoseconds / 1_000_000
        let stored = proxy.record(UsageSample(instanceID: instance, day: UsageCalendar.day(), model: model ?? meter?.model ?? "unknown",
                                              inputTokens: meter?.inputTokens ?? 0, outputTokens: meter?.outputTokens ?? 0,
                                              failed: failed, latencyMs: elapsed), on: context.eventLoop)
        onFinish?()
        onFinish = nil
        return stored
    }
}
