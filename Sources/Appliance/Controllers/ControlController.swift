import FoundationEssentials
import Hummingbird

/// `/api/v1/instances/{id}/control`: who may send input to the instance's screen.
/// `GET` answers `{"controller": null}` or `{"controller": {"user", "since", "this_session"}}`
/// (`this_session`: whether the asking session is the holder, which a username alone cannot
/// tell when one user is logged in twice); `POST` takes control (`{"force": true}` takes it
/// over, admins only); `DELETE` releases it (the holder, or an admin).
struct ControlController {
    struct Controller: Encodable {
        var user: String
        var since: String
        var thisSession: Bool
        enum CodingKeys: String, CodingKey { case user, since, thisSession = "this_session" }
    }

    struct Envelope: Encodable {
        var controller: Controller?
        // Spelled out so "no controller" is an explicit null, not a missing key.
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(controller, forKey: .controller)
        }
        enum CodingKeys: String, CodingKey { case controller }
    }

    struct TakeRequest: Decodable { var force: Bool? }

    let policy: AccessPolicy
    let control: ControlRegistry

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.get("/instances/:id/control") { _, context in
            let id = try context.instanceID()
            _ = try policy.authorize(.view, instance: id, by: context.user)
            return JSON.response(envelope(id, for: context.session))
        }
        group.post("/instances/:id/control") { request, context in
            let id = try context.instanceID()
            let record = try policy.authorize(.operate, instance: id, by: context.user)
            let user = try policy.signedIn(context.user)
            guard let session = context.session else { throw AuthError.unauthorized }
            let force = try await Self.force(request)
            if force, user.role != .admin { throw AuthError.forbidden }
            guard record.state == .running else { throw InstanceError.notRunning }
            _ = try control.take(id, session: session, username: user.username, force: force)
            return JSON.response(envelope(id, for: session))
        }
        group.delete("/instances/:id/control") { _, context in
            let id = try context.instanceID()
            _ = try policy.authorize(.operate, instance: id, by: context.user)
            let user = try policy.signedIn(context.user)
            guard let session = context.session else { throw AuthError.unauthorized }
            try control.release(id, session: session, isAdmin: user.role == .admin)
            return Response(status: .noContent)
        }
    }

    /// An empty body is a plain take; otherwise it must be the JSON object.
    private static func force(_ request: Request) async throws -> Bool {
        let body = try await request.body.collect(upTo: 1024)
        guard body.readableBytes > 0 else { return false }
        guard let take = try? JSONDecoder().decode(TakeRequest.self, from: Data(buffer: body)) else {
            throw APIError.badRequest("invalid_body", "The request body must be empty or a JSON object like {\"force\": true}.")
        }
        return take.force ?? false
    }

    private func envelope(_ id: Int64, for session: String?) -> Envelope {
        Envelope(controller: control.holder(of: id).map {
            Controller(user: $0.username, since: $0.since.formatted(.iso8601), thisSession: $0.session == session)
        })
    }
}
