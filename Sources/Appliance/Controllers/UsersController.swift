import Hummingbird

/// Users and who is assigned to which instance, under /api/v1: the admins' business only.
struct UsersController {
    struct CreateBody: Decodable { var username: String; var password: String; var role: Role }
    struct UpdateBody: Decodable {
        var role: Role?
        var disabled: Bool?
        var password: String?
    }
    struct UserEnvelope: Encodable { var user: User }
    struct UsersEnvelope: Encodable { var users: [User] }

    let policy: AccessPolicy
    let administration: UserAdministration
    let instances: any InstanceRepository
    let audit: AuditLog

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.get("/users") { _, context in
            _ = try policy.authorize(.manageUsers, by: context.user)
            return JSON.response(UsersEnvelope(users: try administration.users.allUsers()))
        }
        group.post("/users", use: create)
        group.get("/users/:user") { _, context in
            _ = try policy.authorize(.manageUsers, by: context.user)
            guard let user = try administration.users.user(id: try Self.userID(context)) else { throw UserError.notFound }
            return JSON.response(UserEnvelope(user: user))
        }
        group.patch("/users/:user", use: update)
        group.delete("/users/:user", use: delete)
        group.get("/instances/:id/users") { _, context in
            let instance = try policy.authorize(.administer, instance: try context.instanceID(), by: context.user)
            return JSON.response(UsersEnvelope(users: try instances.assignedUsers(instanceID: instance.id)))
        }
        group.put("/instances/:id/users/:user") { _, context in
            let instance = try policy.authorize(.administer, instance: try context.instanceID(), by: context.user)
            guard let user = try administration.users.user(id: try Self.userID(context)) else { throw UserError.notFound }
            try instances.assign(instanceID: instance.id, userID: user.id)
            audit.record("instance.assign", context, target: "instance:\(instance.id)", detail: "user:\(user.username)")
            return Response(status: .noContent)
        }
        group.delete("/instances/:id/users/:user") { _, context in
            let instance = try policy.authorize(.administer, instance: try context.instanceID(), by: context.user)
            let userID = try Self.userID(context)
            guard try instances.unassign(instanceID: instance.id, userID: userID) else { throw UserError.notFound }
            audit.record("instance.unassign", context, target: "instance:\(instance.id)", detail: "user:\(userID)")
            return Response(status: .noContent)
        }
    }

    @Sendable func create(_ request: Request, context: AppContext) async throws -> Response {
        _ = try policy.authorize(.manageUsers, by: context.user)
        let body = try await JSON.decode(CreateBody.self, from: request,
                                         expecting: #"with "username", "password" and "role" ("admin" or "user")"#)
        let user = try await administration.create(username: body.username, password: body.password, role: body.role)
        audit.record("user.create", context, target: "user:\(user.username)", detail: "role:\(user.role.rawValue)")
        return JSON.response(UserEnvelope(user: user), status: .created)
    }

    @Sendable func update(_ request: Request, context: AppContext) async throws -> Response {
        _ = try policy.authorize(.manageUsers, by: context.user)
        let id = try Self.userID(context)
        let body = try await JSON.decode(UpdateBody.self, from: request, expecting: #"with any of "role", "disabled" and "password""#)
        do {
            let user = try await administration.update(id: id, role: body.role, disabled: body.disabled, password: body.password)
            var changed: [String] = []
            if let role = body.role { changed.append("role:\(role.rawValue)") }
            if let disabled = body.disabled { changed.append("disabled:\(disabled)") }
            if body.password != nil { changed.append("password reset") }
            audit.record("user.update", context, target: "user:\(user.username)", detail: changed.joined(separator: ", "))
            return JSON.response(UserEnvelope(user: user))
        } catch UserError.lastAdmin {
            audit.record("user.update", context, target: "user:\(id)", outcome: .denied, detail: "last admin")
            throw UserError.lastAdmin
        }
    }

    @Sendable func delete(_ request: Request, context: AppContext) async throws -> Response {
        _ = try policy.authorize(.manageUsers, by: context.user)
        let id = try Self.userID(context)
        let name = try administration.users.user(id: id)?.username
        do {
            try administration.delete(id: id)
        } catch UserError.lastAdmin {
            audit.record("user.delete", context, target: "user:\(name ?? String(id))", outcome: .denied, detail: "last admin")
            throw UserError.lastAdmin
        }
        audit.record("user.delete", context, target: "user:\(name ?? String(id))")
        return Response(status: .noContent)
    }

    /// The `{user}` path parameter; anything but a positive integer is a user that does not exist.
    static func userID(_ context: AppContext) throws -> Int64 {
        guard let raw = context.parameters.get("user"), let id = Int64(raw), id > 0 else { throw UserError.notFound }
        return id
    }
}
