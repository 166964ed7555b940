/// Users, sessions and API tokens in the SQLite file.
extension SQLiteStore {
    static let userColumns = "id, username, role, disabled, created_at"

    static func user(_ row: Row) -> User {
        User(id: row["id"]?.int ?? 0, username: row["username"]?.string ?? "",
             role: Role(rawValue: row["role"]?.string ?? "") ?? .user,
             disabled: (row["disabled"]?.int ?? 0) != 0, createdAt: row["created_at"]?.string ?? "")
    }

    // MARK: users

    func userCount() throws -> Int64 {
        try db.query("SELECT COUNT(*) AS n FROM users").first?["n"]?.int ?? 0
    }

    func createUser(username: String, passwordHash: String, role: Role) throws -> User {
        do {
            let (_, id) = try db.write("INSERT INTO users (username, password_hash, role) VALUES (?, ?, ?)",
                                       [.text(username), .text(passwordHash), .text(role.rawValue)])
            guard let user = try user(id: id) else { throw UserError.notFound }
            return user
        } catch let error as DatabaseError where error.isConstraintViolation {
            throw UserError.usernameTaken(username)
        }
    }

    /// One statement, so two racing setup requests cannot both win.
    func createFirstAdmin(username: String, passwordHash: String) throws -> User? {
        let (changes, id) = try db.write("""
            INSERT INTO users (username, password_hash, role)
            SELECT ?, ?, 'admin' WHERE NOT EXISTS (SELECT 1 FROM users)
            """, [.text(username), .text(passwordHash)])
        return changes == 1 ? try user(id: id) : nil
    }

    func credentials(username: String) throws -> (User, String)? {
        guard let row = try db.query("SELECT \(Self.userColumns), password_hash FROM users WHERE username = ?",
                                     [.text(username)]).first else { return nil }
        return (Self.user(row), row["password_hash"]?.string ?? "")
    }

    func passwordHash(userID: Int64) throws -> String? {
        try db.query("SELECT password_hash FROM users WHERE id = ?", [.integer(userID)]).first?["password_hash"]?.string
    }

    func allUsers() throws -> [User] {
        try db.query("SELECT \(Self.userColumns) FROM users ORDER BY id").map(Self.user)
    }

    func user(id: Int64) throws -> User? {
        try db.query("SELECT \(Self.userColumns) FROM users WHERE id = ?", [.integer(id)]).first.map(Self.user)
    }

    func updateUser(id: Int64, role: Role?, disabled: Bool?, passwordHash: String?) throws -> User {
        try db.transaction { tx in
            guard let row = try tx.query("SELECT \(Self.userColumns) FROM users WHERE id = ?", [.integer(id)]).first else {
                throw UserError.notFound
            }
            let current = Self.user(row)
            let staysEnabledAdmin = (role ?? current.role) == .admin && !(disabled ?? current.disabled)
            if current.role == .admin && !current.disabled && !staysEnabledAdmin { try Self.requireAnotherAdmin(tx, than: id) }
            if let role { try tx.write("UPDATE users SET role = ? WHERE id = ?", [.text(role.rawValue), .integer(id)]) }
            if let disabled { try tx.write("UPDATE users SET disabled = ? WHERE id = ?", [.integer(disabled ? 1 : 0), .integer(id)]) }
            if let passwordHash { try tx.write("UPDATE users SET password_hash = ? WHERE id = ?", [.text(passwordHash), .integer(id)]) }
            return Self.user(try tx.query("SELECT \(Self.userColumns) FROM users WHERE id = ?", [.integer(id)])[0])
        }
    }

    func deleteUser(id: Int64) throws {
        try db.transaction { tx in
            guard let row = try tx.query("SELECT \(Self.userColumns) FROM users WHERE id = ?", [.integer(id)]).first else {
                throw UserError.notFound
            }
            let user = Self.user(row)
            if user.role == .admin && !user.disabled { try Self.requireAnotherAdmin(tx, than: id) }
            try tx.write("DELETE FROM users WHERE id = ?", [.integer(id)])
        }
    }

    /// Inside the transaction that would take admin `id` away: there must be another enabled admin.
    private static func requireAnotherAdmin(_ tx: Database.Transaction, than id: Int64) throws {
        let others = try tx.query("SELECT COUNT(*) AS n FROM users WHERE role = 'admin' AND disabled = 0 AND id != ?",
                                  [.integer(id)]).first?["n"]?.int ?? 0
        if others == 0 { throw UserError.lastAdmin }
    }

    // MARK: sessions

    func createSession(tokenHash: String, userID: Int64, now: Int64, lifetime: Int64, client: String) throws {
        try db.write("""
            INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_seen_at, client) VALUES (?, ?, ?, ?, ?, ?)
            """, [.text(tokenHash), .integer(userID), .integer(now), .integer(now + lifetime), .integer(now), .text(client)])
    }

    func sessionUser(tokenHash: String, now: Int64, idle: Int64) throws -> User? {
        guard let row = try db.query("""
            SELECT u.id, u.username, u.role, u.disabled, u.created_at, s.last_seen_at
            FROM sessions s JOIN users u ON u.id = s.user_id
            WHERE s.token_hash = ? AND s.expires_at > ? AND s.last_seen_at > ? AND u.disabled = 0
            """, [.text(tokenHash), .integer(now), .integer(now - idle)]).first else { return nil }
        // Sliding renewal of the idle deadline, written at most once a minute per session.
        if let seen = row["last_seen_at"]?.int, now - seen >= 60 {
            try db.write("UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?", [.integer(now), .text(tokenHash)])
        }
        return Self.user(row)
    }

    func deleteSession(tokenHash: String) throws {
        try db.write("DELETE FROM sessions WHERE token_hash = ?", [.text(tokenHash)])
    }

    func deleteExpiredSessions(now: Int64, idle: Int64) throws {
        try db.write("DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?", [.integer(now), .integer(now - idle)])
    }

    func sessions(userID: Int64) throws -> [SessionRecord] {
        try db.query("""
            SELECT substr(token_hash, 1, 16) AS id, created_at, last_seen_at, expires_at, client FROM sessions
            WHERE user_id = ? ORDER BY last_seen_at DESC
            """, [.integer(userID)]).map { row in
            SessionRecord(id: row["id"]?.string ?? "", createdAt: row["created_at"]?.int ?? 0, lastSeenAt: row["last_seen_at"]?.int ?? 0,
                          expiresAt: row["expires_at"]?.int ?? 0, client: row["client"]?.string ?? "")
        }
    }

    func deleteSession(userID: Int64, id: String) throws -> Bool {
        guard id.utf8.count == 16 else { return false }
        return try db.write("DELETE FROM sessions WHERE user_id = ? AND substr(token_hash, 1, 16) = ?",
                            [.integer(userID), .text(id)]).changes > 0
    }

    func deleteSessions(userID: Int64, keeping: String?) throws {
        try db.write("DELETE FROM sessions WHERE user_id = ? AND token_hash != ?", [.integer(userID), .text(keeping ?? "")])
    }

    // MARK: API tokens

    private static let tokenColumns = "id, user_id, name, created_at, expires_at, last_used_at"

    private static func token(_ row: Row, prefix: String = "") -> TokenRecord {
        TokenRecord(id: row[prefix + "id"]?.int ?? 0, userID: row["user_id"]?.int ?? 0, name: row["name"]?.string ?? "",
                    createdAt: row["created_at"]?.int ?? 0, expiresAt: row["expires_at"]?.int, lastUsedAt: row["last_used_at"]?.int)
    }

    func createToken(userID: Int64, name: String, tokenHash: String, now: Int64, expiresAt: Int64?) throws -> TokenRecord {
        let (_, id) = try db.write("""
            INSERT INTO api_tokens (user_id, name, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)
            """, [.integer(userID), .text(name), .text(tokenHash), .integer(now), expiresAt.map { .integer($0) } ?? .null])
        return TokenRecord(id: id, userID: userID, name: name, createdAt: now, expiresAt: expiresAt, lastUsedAt: nil)
    }

    func tokens(userID: Int64) throws -> [TokenRecord] {
        try db.query("SELECT \(Self.tokenColumns) FROM api_tokens WHERE user_id = ? ORDER BY id", [.integer(userID)])
            .map { Self.token($0) }
    }

    func tokenUser(tokenHash: String, now: Int64) throws -> (User, TokenRecord)? {
        guard let row = try db.query("""
            SELECT t.id AS token_id, t.user_id, t.name, t.created_at AS token_created_at, t.expires_at, t.last_used_at,
                   u.id, u.username, u.role, u.disabled, u.created_at
            FROM api_tokens t JOIN users u ON u.id = t.user_id
            WHERE t.token_hash = ? AND (t.expires_at IS NULL OR t.expires_at > ?) AND u.disabled = 0
            """, [.text(tokenHash), .integer(now)]).first else { return nil }
        var token = Self.token(row, prefix: "token_")
        token.createdAt = row["token_created_at"]?.int ?? 0
        if now - (token.lastUsedAt ?? 0) >= 60 {
            try db.write("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", [.integer(now), .integer(token.id)])
            token.lastUsedAt = now
        }
        return (Self.user(row), token)
    }

    func deleteToken(userID: Int64, id: Int64) throws -> Bool {
        try db.write("DELETE FROM api_tokens WHERE user_id = ? AND id = ?", [.integer(userID), .integer(id)]).changes == 1
    }

    func deleteTokens(userID: Int64) throws {
        try db.write("DELETE FROM api_tokens WHERE user_id = ?", [.integer(userID)])
    }

    // MARK: audit

    func append(_ entry: AuditEntry) throws {
        try db.write("""
            INSERT INTO audit_log (at, actor_id, actor, action, target, outcome, client, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """, [.integer(entry.at), entry.actorID.map { .integer($0) } ?? .null, entry.actor.map { .text($0) } ?? .null,
                  .text(entry.action), entry.target.map { .text($0) } ?? .null, .text(entry.outcome.rawValue),
                  .text(entry.client), entry.detail.map { .text($0) } ?? .null])
    }

    func auditEntries(_ filter: AuditFilter) throws -> [AuditEntry] {
        var clauses: [String] = []
        var parameters: [SQLValue] = []
        if let actor = filter.actor { clauses.append("actor = ?"); parameters.append(.text(actor)) }
        if let action = filter.action { clauses.append("action = ?"); parameters.append(.text(action)) }
        if let target = filter.target { clauses.append("target = ?"); parameters.append(.text(target)) }
        if let since = filter.since { clauses.append("at >= ?"); parameters.append(.integer(since)) }
        if let until = filter.until { clauses.append("at < ?"); parameters.append(.integer(until)) }
        if let before = filter.before { clauses.append("id < ?"); parameters.append(.integer(before)) }
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        parameters.append(.integer(Int64(filter.limit)))
        return try db.query("""
            SELECT id, at, actor_id, actor, action, target, outcome, client, detail FROM audit_log \(whereClause)
            ORDER BY id DESC LIMIT ?
            """, parameters).map { row in
            AuditEntry(id: row["id"]?.int ?? 0, at: row["at"]?.int ?? 0, actorID: row["actor_id"]?.int, actor: row["actor"]?.string,
                       action: row["action"]?.string ?? "", target: row["target"]?.string,
                       outcome: AuditOutcome(rawValue: row["outcome"]?.string ?? "") ?? .failed,
                       client: row["client"]?.string ?? "", detail: row["detail"]?.string)
        }
    }
}
