import COpenSSL
import NIOCore

/// A TLS server context: the appliance's certificate and key, loaded into the system OpenSSL.
final class TLSServer: Sendable {
    nonisolated(unsafe) let handle: OpaquePointer

    init(certificate: String, key: String) throws(TLSSetupError) {
        var why = [CChar](repeating: 0, count: 512)
        guard let handle = cossl_server_new(certificate, key, &why, why.count) else {
            throw TLSSetupError(String(decoding: why.prefix { $0 != 0 }.map(UInt8.init(bitPattern:)), as: UTF8.self))
        }
        self.handle = handle
    }

    deinit { cossl_server_free(handle) }
}

struct TLSSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A TLS client context for the key proxy's connections to providers: peers verified against
/// the system's CA store, by name.
final class TLSClient: Sendable {
    nonisolated(unsafe) let handle: OpaquePointer

    /// One for the process: loading the CA store is the expensive part.
    static let shared: Result<TLSClient, TLSSetupError> = Result { () throws(TLSSetupError) in try TLSClient() }

    private init() throws(TLSSetupError) {
        var why = [CChar](repeating: 0, count: 512)
        guard let handle = cossl_client_new(&why, why.count) else {
            throw TLSSetupError(String(decoding: why.prefix { $0 != 0 }.map(UInt8.init(bitPattern:)), as: UTF8.self))
        }
        self.handle = handle
    }

    deinit { cossl_client_free(handle) }
}

/// TLS for one connection, first in its pipeline: ciphertext from the socket in, plaintext on
/// to the HTTP handlers; their plaintext in, ciphertext out. OpenSSL works on memory buffers
/// (COpenSSL), never on the socket, so NIO keeps owning all I/O. The appliance's HTTPS server
/// and the key proxy's client connections to providers both use it.
final class TLSHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The context the connection was made from, kept alive as long as it.
    private let owner: AnyObject
    private let connection: OpaquePointer
    private let isClient: Bool
    private var established = false
    private var closing = false
    /// Writes from above before the handshake ends: a client's request, made as soon as the
    /// socket connects (a server has nothing to say before the client's first request).
    private var early: [(ByteBuffer, EventLoopPromise<Void>?)] = []

    init(server: TLSServer) throws(TLSSetupError) {
        guard let connection = cossl_conn_new(server.handle) else { throw TLSSetupError("out of memory for a TLS connection") }
        self.owner = server
        self.connection = connection
        self.isClient = false
    }

    /// A client connection to `host`, whose certificate must name it.
    init(clientTo host: String) throws(TLSSetupError) {
        let client = try TLSClient.shared.get()
        var why = [CChar](repeating: 0, count: 512)
        guard let connection = cossl_client_conn_new(client.handle, host, &why, why.count) else {
            throw TLSSetupError(String(decoding: why.prefix { $0 != 0 }.map(UInt8.init(bitPattern:)), as: UTF8.self))
        }
        self.owner = client
        self.connection = connection
        self.isClient = true
    }

    /// A client speaks first: its hello goes out as soon as the socket is connected.
    func channelActive(context: ChannelHandlerContext) {
        if isClient && !established {
            if Int(cossl_handshake(connection)) == COSSL_ERROR { return fail(context) }
            sendOutput(context, promise: nil, flush: true)
        }
        context.fireChannelActive()
    }

    /// Added to a channel that is already connected: the hello goes now.
    func handlerAdded(context: ChannelHandlerContext) {
        if isClient && context.channel.isActive && !established {
            if Int(cossl_handshake(connection)) == COSSL_ERROR { return fail(context) }
            sendOutput(context, promise: nil, flush: true)
        }
    }

    deinit { cossl_conn_free(connection) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let input = unwrapInboundIn(data)
        let fed = input.withUnsafeReadableBytes { cossl_feed(connection, $0.bindMemory(to: UInt8.self).baseAddress, $0.count) }
        guard Int(fed) == COSSL_OK else { return fail(context) }
        if !established {
            let step = Int(cossl_handshake(connection))
            sendOutput(context, promise: nil, flush: true)  // the server's flight, or an alert
            switch step {
            case COSSL_OK:
                established = true
                let queued = early
                early = []
                for (buffer, promise) in queued { write(context: context, data: wrapOutboundOut(buffer), promise: promise) }
                if !queued.isEmpty { context.flush() }
            case COSSL_WANT_INPUT: return
            default: return fail(context)
            }
        }
        readPlaintext(context)
    }

    /// Everything the input decrypts to, passed on in chunks of up to 16 KiB (one record).
    private func readPlaintext(_ context: ChannelHandlerContext) {
        while true {
            var chunk = context.channel.allocator.buffer(capacity: 16 * 1024)
            var result = 0
            chunk.writeWithUnsafeMutableBytes(minimumWritableBytes: 16 * 1024) { space in
                result = cossl_read(connection, space.bindMemory(to: UInt8.self).baseAddress, space.count)
                return max(result, 0)
            }
            if result > 0 {
                context.fireChannelRead(wrapInboundOut(chunk))
                continue
            }
            switch result {
            case COSSL_READ_WANT_INPUT:
                // Reading can produce output too (a TLS 1.3 key update's answer).
                if cossl_output_pending(connection) > 0 { sendOutput(context, promise: nil, flush: true) }
            case COSSL_READ_CLOSED:
                // The client said goodbye: answer in kind, then close.
                close(context: context, mode: .all, promise: nil)
            default:
                fail(context)
            }
            return
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let plaintext = unwrapOutboundIn(data)
        guard established else { return early.append((plaintext, promise)) }
        let written = plaintext.withUnsafeReadableBytes {
            cossl_write(connection, $0.bindMemory(to: UInt8.self).baseAddress, $0.count)
        }
        guard Int(written) == COSSL_OK else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return fail(context)
        }
        sendOutput(context, promise: promise, flush: false)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all && established && !closing {
            closing = true
            if Int(cossl_close_notify(connection)) == COSSL_OK { sendOutput(context, promise: nil, flush: true) }
        }
        context.close(mode: mode, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let queued = early
        early = []
        for (_, promise) in queued { promise?.fail(ChannelError.ioOnClosedChannel) }
        context.fireChannelInactive()
    }

    /// Hands the ciphertext OpenSSL produced to the socket; `promise` completes with its write.
    private func sendOutput(_ context: ChannelHandlerContext, promise: EventLoopPromise<Void>?, flush: Bool) {
        let pending = cossl_output_pending(connection)
        guard pending > 0 else {
            promise?.succeed()
            return
        }
        var out = context.channel.allocator.buffer(capacity: pending)
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: pending) { space in
            cossl_take_output(connection, space.bindMemory(to: UInt8.self).baseAddress, pending)
        }
        if flush { context.writeAndFlush(wrapOutboundOut(out), promise: promise) } else { context.write(wrapOutboundOut(out), promise: promise) }
    }

    /// A broken or hostile handshake, or a corrupt record: send what alert there is and drop
    /// the connection. A server keeps the reason (the client's doing, not ours to log
    /// loudly); a client reports it (a provider's certificate that does not verify).
    private func fail(_ context: ChannelHandlerContext) {
        closing = true
        sendOutput(context, promise: nil, flush: true)
        if isClient { context.fireErrorCaught(TLSSetupError(String(cString: cossl_conn_error(connection)))) }
        context.close(promise: nil)
    }
}
