/// Who may see and act on what: the one place that decides it. Routes name the action; the
/// policy answers with the user (or the instance) it allows, or throws.
///
/// - Appliance-wide actions (creating instances, editing the defaults, users, the audit log)
///   are the admin's.
/// - An instance is visible to admins and to the users assigned to it; to anyone else it does
///   not exist (404, never 403, so ids cannot be probed).
/// - Of a visible instance, viewing and operating (start, stop, restart, VNC) are open to every
///   user who sees it; administering it (delete, exec, changing its settings) is the admin's.
struct AccessPolicy: Sendable {
    enum ApplianceAction: Sendable { case createInstance, editDefaults, manageUsers, readAudit, manageAgent }
    enum InstanceAction: Sendable { case view, operate, administer }

    let instances: any InstanceRepository

    /// The signed-in user, whatever they want to do.
    func signedIn(_ user: User?) throws -> User {
        guard let user else { throw AuthError.unauthorized }
        return user
    }

    func authorize(_ action: ApplianceAction, by user: User?) throws -> User {
        try admin(user)
    }

    /// The instance, if `user` may take `action` on it. The role is checked before the
    /// instance is looked up: a user learns nothing about ids from admin-only routes.
    func authorize(_ action: InstanceAction, instance id: Int64, by user: User?) throws -> InstanceRecord {
        let user = action == .administer ? try admin(user) : try signedIn(user)
        guard let record = try instances.instance(id: id), try canSee(record.id, user) else {
            throw InstanceError.notFound
        }
        return record
    }

    func visibleInstances(to user: User?) throws -> [InstanceRecord] {
        let user = try signedIn(user)
        return user.role == .admin ? try instances.allInstances() : try instances.instances(assignedTo: user.id)
    }

    private func admin(_ user: User?) throws -> User {
        let user = try signedIn(user)
        guard user.role == .admin else { throw AuthError.forbidden }
        return user
    }

    private func canSee(_ instanceID: Int64, _ user: User) throws -> Bool {
        user.role == .admin ? true : try instances.isAssigned(instanceID: instanceID, userID: user.id)
    }
}
