import Hummingbird
import NIOCore

/// `GET /api/v1/instances/{id}/events` (`Accept: text/event-stream`): the instance's state and
/// its services' snapshots as server-sent events, each `data: {"type": "state"|"services", …}`,
/// starting with the current ones. The services come from what the init pushes on every
/// change; nothing polls the init. A comment every 15 s keeps the stream alive; it ends when
/// the client goes (checked every second: Hummingbird cancels nothing).
struct EventsController {
    static let keepAlive = 15

    let policy: AccessPolicy
    let manager: InstanceManager

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.get("/instances/:id/events") { request, context in
            let record = try policy.authorize(.view, instance: try context.instanceID(), by: context.user)
            guard (request.headers[.accept] ?? "").contains("text/event-stream") else {
                throw APIError(status: .notAcceptable, code: "event_stream_required",
                               message: "This is a server-sent event stream; send Accept: text/event-stream.")
            }
            let events = manager.events
            // Subscribed before the current state is read: a change in between is sent twice,
            // never lost.
            let (stream, keepAlive, cancel) = events.subscribe(record.id)
            let initial = await manager.currentEvents(record)
            let channel = context.channel
            let body = ResponseBody { writer in
                defer { cancel() }
                try await writer.write(ByteBuffer(string: ": events\n\n" + initial.map(InstanceEvents.serverSent).joined()))
                let ticker = Task {
                    var seconds = 0
                    while channel.isActive && !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        seconds += 1
                        if seconds % Self.keepAlive == 0 { keepAlive() }
                    }
                    cancel()
                }
                defer { ticker.cancel() }
                for await event in stream {
                    try await writer.write(ByteBuffer(string: InstanceEvents.serverSent(event)))
                }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: [
                .contentType: "text/event-stream; charset=utf-8",
                .cacheControl: "no-store",
            ], body: body)
        }
    }
}
