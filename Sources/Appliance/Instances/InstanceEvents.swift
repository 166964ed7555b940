import FoundationEssentials
import Synchronization
import Supervisor

/// What changed in an instance, for `GET /instances/{id}/events`: its lifecycle state (from
/// the manager) and its services' snapshot (pushed by its init). In memory only; each
/// subscriber gets the events published after it subscribed, newest last, through a bounded
/// buffer (a slow reader loses the oldest, and each event is a whole snapshot, so the newest
/// one is enough).
final class InstanceEvents: Sendable {
    enum Event: Sendable, Equatable {
        case state(InstanceState, lastError: String?)
        case services([ServiceStatus])
        /// Nothing happened for a while: the stream's writer sends a comment.
        case keepAlive
    }

    private struct Subscriber {
        var instance: Int64
        var continuation: AsyncStream<Event>.Continuation
    }

    private let subscribers = Mutex<[UInt64: Subscriber]>([:])
    /// Observers of every instance (the gateway links): each event, in order, none dropped.
    private let everyInstance = Mutex<[AsyncStream<(Int64, Event)>.Continuation]>([])
    private let nextID = Atomic<UInt64>(1)

    func publish(_ instance: Int64, _ event: Event) {
        subscribers.withLock { all in
            for subscriber in all.values where subscriber.instance == instance { subscriber.continuation.yield(event) }
        }
        everyInstance.withLock { all in for observer in all { observer.yield((instance, event)) } }
    }

    /// Every instance's events from now on, for the daemon's lifetime.
    func observeAll() -> AsyncStream<(Int64, Event)> {
        let (stream, continuation) = AsyncStream<(Int64, Event)>.makeStream()
        everyInstance.withLock { $0.append(continuation) }
        return stream
    }

    /// The stream ends (and the subscription goes) when `cancel` is called; `keepAlive` puts
    /// a `.keepAlive` into this subscriber's stream only.
    func subscribe(_ instance: Int64) -> (stream: AsyncStream<Event>, keepAlive: @Sendable () -> Void, cancel: @Sendable () -> Void) {
        let id = nextID.add(1, ordering: .relaxed).oldValue
        let (stream, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .bufferingNewest(32))
        subscribers.withLock { $0[id] = Subscriber(instance: instance, continuation: continuation) }
        return (stream, { continuation.yield(.keepAlive) }, { [weak self] in
            self?.subscribers.withLock { _ = $0.removeValue(forKey: id) }
            continuation.finish()
        })
    }

    var subscriberCount: Int { subscribers.withLock { $0.count } }

    /// One server-sent event: `data: {"type":"state",…}` or `data: {"type":"services",…}`.
    static func serverSent(_ event: Event) -> String {
        struct StateBody: Encodable {
            var type = "state"
            var state: InstanceState
            var lastError: String?
            enum CodingKeys: String, CodingKey { case type, state; case lastError = "last_error" }
            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(type, forKey: .type)
                try c.encode(state, forKey: .state)
                try c.encode(lastError, forKey: .lastError)
            }
        }
        struct ServicesBody: Encodable { var type = "services"; var services: [ServiceStatus] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data: Data?
        switch event {
        case .state(let state, let lastError): data = try? encoder.encode(StateBody(state: state, lastError: lastError))
        case .services(let services): data = try? encoder.encode(ServicesBody(services: services))
        case .keepAlive: return ": keep-alive\n\n"
        }
        // JSON escapes newlines, so the document is one `data:` field.
        return data.map { "data: " + String(decoding: $0, as: UTF8.self) + "\n\n" } ?? ""
    }
}
