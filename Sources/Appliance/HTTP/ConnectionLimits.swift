import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import Synchronization

/// Bounds what one HTTP client can hold: a request head must arrive within `headTimeout`, a
/// keep-alive connection with no request in flight closes after `idleTimeout`, and one peer
/// address may hold at most `perClient` connections. Without these a client trickling header
/// lines, or a thousand idle sockets from one address, kept descriptors forever and starved
/// /healthz. A connection upgraded to a WebSocket (the VNC relay) is past its request and
/// never timed out here.
final class ConnectionLimits: Sendable {
    let headTimeout: TimeAmount
    let idleTimeout: TimeAmount
    let perClient: Int
    private let open = Mutex<[String: Int]>([:])

    init(headTimeout: TimeAmount = .seconds(10), idleTimeout: TimeAmount = .seconds(60), perClient: Int = 256) {
        self.headTimeout = headTimeout
        self.idleTimeout = idleTimeout
        self.perClient = perClient
    }

    /// Counts a new connection from `address`, or refuses it over the cap.
    func admit(_ address: String) -> Bool {
        open.withLock { open in
            let count = open[address, default: 0]
            guard count < perClient else { return false }
            open[address] = count + 1
            return true
        }
    }

    func release(_ address: String) {
        open.withLock { open in
            let count = open[address, default: 1] - 1
            open[address] = count > 0 ? count : nil
        }
    }

    /// Parses the hidden `--unsafe-test-http-timeouts HEAD_MS,IDLE_MS`.
    static func testTimeouts(_ text: String) -> (TimeAmount, TimeAmount)? {
        let parts = text.split(separator: ",")
        guard parts.count == 2, let head = Int64(parts[0]), let idle = Int64(parts[1]), head > 0, idle > 0 else { return nil }
        return (.milliseconds(head), .milliseconds(idle))
    }
}

/// Wraps the server's child channel: admits the connection against the per-client cap and
/// puts a `RequestClock` first in its pipeline, where it sees raw bytes before the HTTP decoder
/// and before the upgrade machinery replaces any handler.
struct LimitedChildChannel<Inner: ServerChildChannel>: ServerChildChannel {
    struct Value: ServerChildChannelValue {
        let inner: Inner.Value?
        let channel: any Channel
    }

    let inner: Inner
    let limits: ConnectionLimits

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        guard limits.admit(address) else {
            // Failing the initializer would surface in the server's accept loop; a handler
            // that closes on activation drops just this connection.
            return channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(CloseOnActive())
                return Value(inner: nil, channel: channel)
            }
        }
        channel.closeFuture.whenComplete { [limits] _ in limits.release(address) }
        do {
            try channel.pipeline.syncOperations.addHandler(RequestClock(limits: limits), position: .first)
        } catch {
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(error)
        }
        return inner.setup(channel: channel, logger: logger).map { Value(inner: $0, channel: channel) }
    }

    func handle(value: Value, logger: Logger) async {
        guard let value = value.inner else { return }
        await inner.handle(value: value, logger: logger)
    }
}

private final class CloseOnActive: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    // An accepted channel may already be active when its initializer runs.
    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { context.close(promise: nil) }
    }

    func channelActive(context: ChannelHandlerContext) { context.close(promise: nil) }
}

/// Times a connection's phases from the raw bytes: `head` from the first byte of a request
/// (or from accept) until the blank line that ends its head, `request` until the response
/// ends (told by `ResponseEndWatcher`), then `idle` until the next byte. Only `head` and
/// `idle` have deadlines: a handler may take long, and a WebSocket never leaves `request`.
final class RequestClock: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum Phase { case head, request, idle }
    private let limits: ConnectionLimits
    private var phase = Phase.head
    /// 1 after a line feed (carriage returns between do not reset it): a second one ends the head.
    private var afterNewline = false
    private var deadline: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    init(limits: ConnectionLimits) { self.limits = limits }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        arm(limits.headTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if phase == .idle {
            phase = .head
            afterNewline = false
            arm(limits.headTimeout)
        }
        if phase == .head {
            let bytes = unwrapInboundIn(data).readableBytesView
            for byte in bytes where endsHead(byte) {
                phase = .request
                deadline?.cancel()
                deadline = nil
                break
            }
        }
        context.fireChannelRead(data)
    }

    /// The response to the request in flight is complete.
    func responseEnded() {
        guard phase == .request else { return }
        phase = .idle
        arm(limits.idleTimeout)
    }

    private func endsHead(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "\n"):
            if afterNewline { return true }
            afterNewline = true
        case UInt8(ascii: "\r"):
            break
        default:
            afterNewline = false
        }
        return false
    }

    private func arm(_ timeout: TimeAmount) {
        deadline?.cancel()
        guard let context else { return }
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
            self?.context?.close(promise: nil)
        }
    }
}

/// Sits among the HTTP/1 handlers (after the decision not to upgrade) and tells the
/// connection's `RequestClock` when no request is left in flight: every head decoded has had
/// its response written in full. A pipelined request already decoded keeps the clock in its
/// `request` phase.
final class ResponseEndWatcher: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart
    private var clock: RequestClock?
    private var inFlight = 0

    func handlerAdded(context: ChannelHandlerContext) {
        clock = try? context.pipeline.syncOperations.handler(type: RequestClock.self)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) { inFlight += 1 }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            // The first head can be replayed past this handler before it was added; never below 0.
            inFlight = max(0, inFlight - 1)
            if inFlight == 0 { clock?.responseEnded() }
        }
        context.write(data, promise: promise)
    }
}
