import FoundationEssentials
import NIOCore
import NIOHTTP1

/// One connection from inside an instance to the key proxy: reads a request, checks it, has it
/// planned, and hands it to a `ProxyExchange`, which streams the provider's answer back. The
/// HTTP server pipeline holds pipelined requests back until the response before them ends.
final class ProxyServerHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let proxy: LLMProxy
    private let instance: Int64
    private let credential: [UInt8]
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?
    private var tooLarge = false
    private var exchange: ProxyExchange?

    init(proxy: LLMProxy, instance: Int64, credential: [UInt8]) {
        self.proxy = proxy
        self.instance = instance
        self.credential = credential
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = context.channel.allocator.buffer(capacity: 0)
            tooLarge = false
        case .body(var chunk):
            guard !tooLarge, var buffer = body else { return }
            if buffer.readableBytes + chunk.readableBytes > LLMProxy.requestLimit {
                tooLarge = true
                body = nil
            } else {
                body = nil  // keeps the buffer uniquely referenced while it grows
                buffer.writeBuffer(&chunk)
                body = buffer
            }
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            let buffer = body ?? context.channel.allocator.buffer(capacity: 0)
            body = nil
            handle(context, head, buffer)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        exchange?.clientClosed()
        exchange = nil
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        exchange?.clientWritable(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    private func handle(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ body: ByteBuffer) {
        let family = ProxyRoute.family(ofPath: head.uri)
        guard head.method == .POST, let route = ProxyRoute.parse(path: head.uri) else {
            return reply(context, head, .notFound(family, path: head.uri))
        }
        guard Self.presented(head.headers).map({ Self.equal($0, credential) }) ?? false else {
            return reply(context, head, .unauthorized(family))
        }
        guard !tooLarge else { return reply(context, head, .tooLarge(family)) }
        let started = NIODeadline.now()
        let (proxy, instance) = (self.proxy, self.instance)
        // The body's model is read there too: decoding megabytes of JSON must not hold the loop.
        let planned = context.eventLoop.makeFutureWithTask {
            try await Blocking.run { (Self.model(of: body), Result { try proxy.planner.plan(instance: instance, route: route) }) }
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        planned.whenComplete { outcome in
            let (handler, context) = bound.value
            guard context.channel.isActive, case .success(let (model, result)) = outcome else { return }
            switch result {
            case .success(let plan):
                let exchange = ProxyExchange(proxy: proxy, instance: instance, context: context, request: head, body: body,
                                             plan: plan, provider: route.provider, model: model, started: started)
                handler.exchange = exchange
                exchange.onFinish = { [weak handler] in handler?.exchange = nil }
                exchange.start()
            case .failure(let refusal as ProxyPlanner.Refusal):
                guard case .budgetSpent = refusal else { return handler.reply(context, head, .refused(family, refusal)) }
                // A request the budget stopped is still a request, and an error, in the usage:
                // stored before the answer, so whoever got the 429 finds it counted.
                let elapsed = (NIODeadline.now() - started).nanoseconds / 1_000_000
                proxy.record(UsageSample(instanceID: instance, day: UsageCalendar.day(), model: model ?? "unknown",
                                         inputTokens: 0, outputTokens: 0, failed: true, latencyMs: elapsed), on: context.eventLoop)
                    .whenComplete { _ in
                        let (handler, context) = bound.value
                        if context.channel.isActive { handler.reply(context, head, .refused(family, refusal)) }
                    }
            case .failure(let error):
                proxy.logger.error("key proxy cannot plan a request", metadata: ["instance": "\(instance)", "error": "\(error)"])
                handler.reply(context, head, ProxyErrorReply.internalError(family))
            }
        }
    }

    private func reply(_ context: ChannelHandlerContext, _ request: HTTPRequestHead, _ error: ProxyErrorReply) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(error.body.utf8.count))
        if !request.isKeepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: error.status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: error.body)))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !request.isKeepAlive { done.whenComplete { [channel = context.channel] _ in channel.close(promise: nil) } }
    }

    /// The credential as OpenAI clients (`Authorization: Bearer`) or Anthropic's
    /// (`x-api-key`) send it.
    static func presented(_ headers: HTTPHeaders) -> String? {
        if let key = headers.first(name: "x-api-key"), !key.isEmpty { return key }
        if let auth = headers.first(name: "authorization") {
            let parts = auth.split(separator: " ", maxSplits: 1)
            if parts.count == 2 && parts[0].lowercased() == "bearer" { return String(parts[1]) }
        }
        return nil
    }

    /// In constant time for equal lengths: the credential must not leak through timing.
    static func equal(_ given: String, _ expected: [UInt8]) -> Bool {
        let bytes = Array(given.utf8)
        guard bytes.count == expected.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<bytes.count { diff |= bytes[i] ^ expected[i] }
        return diff == 0
    }

    private struct ModelField: Decodable { var model: String? }

    /// The model the request asks for, which usage is counted under.
    static func model(of body: ByteBuffer) -> String? {
        guard body.readableBytes > 0 else { return nil }
        return body.withUnsafeReadableBytes { raw in
            (try? JSONDecoder().decode(ModelField.self, from: Data(raw)))?.model
        }.flatMap { $0.isEmpty || $0.utf8.count > 200 ? nil : $0 }
    }
}
