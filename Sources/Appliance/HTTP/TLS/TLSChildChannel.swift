import HummingbirdCore
import Logging
import NIOCore

/// A server child channel with TLS underneath: the TLS handler goes first in the pipeline, so
/// every handler the wrapped channel adds (the request clock, HTTP/1, the WebSocket upgrade)
/// sees plaintext.
struct TLSChildChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let server: TLSServer

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(TLSHandler(server: server), position: .first)
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}
