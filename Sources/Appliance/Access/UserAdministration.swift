import Hummingbird

/// What admins do to accounts, and what everyone does to their own: each change that alters
/// what a user may do ends the sessions (and, for a disabled user, the tokens) that carried
/// the old rights.
struct UserAdministration: Sendable {
    let accounts: Accounts
    let tokens: any TokenRepository

    var users: any UserRepository { accounts.users }

    func create(username: String, password: String, role: Role) async throws -> User {
        try Accounts.refuseNUL(username, password)
        try Accounts.validate(username: username, password: password)
        let hash = try await accounts.pool.run { Accounts.passwordHash(password) }
        return try users.createUser(username: username, passwordHash: hash, role: role)
    }

    func update(id: Int64, role: Role?, disabled: Bool?, password: String?) async throws -> User {
        guard let before = try users.user(id: id) else { throw UserError.notFound }
        var hash: String?
        if let password {
            try Accounts.refuseNUL(before.username, password)
            try Accounts.validate(username: before.username, password: password)
            hash = try await accounts.pool.run { Accounts.passwordHash(password) }
        }
        let after = try users.updateUser(id: id, role: role, disabled: disabled, passwordHash: hash)
        if after.role != before.role || after.disabled || hash != nil {
            try users.deleteSessions(userID: id, keeping: nil)
        }
        if after.disabled { try tokens.deleteTokens(userID: id) }
        return after
    }

    func delete(id: Int64) throws { try users.deleteUser(id: id) }

    /// The caller's own password: the current one is checked (throttled like a login), every
    /// other session ends, and the caller gets a fresh session.
    func changeOwnPassword(_ user: User, current: String, new: String, client: String) async throws -> Cookie {
        _ = try await accounts.login(username: user.username, password: current, client: client)
        try Accounts.refuseNUL(user.username, new)
        try Accounts.validate(username: user.username, password: new)
        let hash = try await accounts.pool.run { Accounts.passwordHash(new) }
        _ = try users.updateUser(id: user.id, role: nil, disabled: nil, passwordHash: hash)
        try users.deleteSessions(userID: user.id, keeping: nil)
        return try accounts.openSession(for: user, client: client)
    }
}
