import FoundationEssentials
import Hummingbird
import NIOCore
import NIOPosix
import Supervisor

/// `GET /api/v1/instances/{id}/logs?service=NAME&tail=N[&follow=1]`: the services' logs as the
/// init wrote them (see `InstanceLogs`), read from the host whether the instance runs or not.
/// Without `service` every service's lines are merged by time. With `follow=1` and
/// `Accept: text/event-stream` the response is a server-sent event stream: the tail, then each
/// new line as `data: {line}`, a comment every 15 s to keep proxies and clients from timing it
/// out, until the client goes. A response in flight is never idle to `ConnectionLimits`.
///
/// Access is `.view`: reading logs changes nothing in the instance, like the services'
/// status, so whoever may see the instance may read them.
struct LogsController {
    struct LinesEnvelope: Encodable { var lines: [LogLine] }

    static let defaultTail = 200
    static let maxTail = 5000
    static let pollInterval = Duration.milliseconds(250)
    static let keepAlive = Duration.seconds(15)

    let policy: AccessPolicy
    let paths: DataPaths
    /// The services an instance runs (from the configuration); `init` is added for the init's log.
    let services: [String]

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.get("/instances/:id/logs") { request, context in
            let record = try policy.authorize(.view, instance: try context.instanceID(), by: context.user)
            let query = request.uri.queryParameters
            let service = query["service"].map(String.init)
            if let service, service != InstanceLogs.initService, !services.contains(service) {
                throw InstanceError.noSuchService(service)
            }
            let tail = try Self.tail(query["tail"].map(String.init))
            let follow = query["follow"].map { $0 == "1" || $0 == "true" } ?? false
            if follow, !(request.headers[.accept] ?? "").contains("text/event-stream") {
                throw APIError(status: .notAcceptable, code: "event_stream_required",
                               message: "follow=1 streams server-sent events; send Accept: text/event-stream.")
            }
            // As many rotated files as the init keeps (it scales their size to the budget, never their count).
            let logs = InstanceLogs(instanceDir: paths.instanceDir(record.id), rotated: LogLimits().files - 1)
            let names = services
            // The follower is positioned where the tail ended (and closes its files with it
            // when the request does not follow).
            let (lines, follower) = try await NIOThreadPool.singleton.runIfActive {
                try Self.read(logs, service: service, services: names, tail: tail)
            }
            guard follow else { return JSON.response(LinesEnvelope(lines: lines)) }
            return Self.stream(initial: lines, follower: follower, channel: context.channel)
        }
    }

    private static func read(_ logs: InstanceLogs, service: String?, services: [String], tail: Int) throws -> ([LogLine], LogFollower) {
        if let service {
            let (lines, source) = try logs.tail(service, count: tail)
            return (lines, LogFollower([source]))
        }
        let (lines, sources) = try logs.merged(services, count: tail)
        return (lines, LogFollower(sources))
    }

    private static func tail(_ raw: String?) throws -> Int {
        guard let raw else { return defaultTail }
        guard let n = Int(raw), (0...maxTail).contains(n) else {
            throw APIError.badRequest("invalid_tail", "tail is a number of lines from 0 to \(maxTail).")
        }
        return n
    }

    private static func stream(initial: [LogLine], follower: LogFollower, channel: any Channel) -> Response {
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(string: ": following\n\n" + events(initial)))
            var lastWrite = ContinuousClock.now
            // The connection closing is the end: polled with the files, since Hummingbird
            // cancels nothing and a write would only fail at the next keep-alive.
            while channel.isActive {
                try await Task.sleep(for: pollInterval)
                let lines = try await NIOThreadPool.singleton.runIfActive { follower.poll() }
                if !lines.isEmpty {
                    try await writer.write(ByteBuffer(string: events(lines)))
                    lastWrite = .now
                } else if ContinuousClock.now - lastWrite >= keepAlive {
                    try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                    lastWrite = .now
                }
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [
            .contentType: "text/event-stream; charset=utf-8",
            .cacheControl: "no-store",
        ], body: body)
    }

    private static func events(_ lines: [LogLine]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var out = ""
        for line in lines {
            guard let data = try? encoder.encode(line) else { continue }
            // JSON escapes newlines, so one line of JSON is one `data:` field.
            out += "data: " + String(decoding: data, as: UTF8.self) + "\n\n"
        }
        return out
    }
}
