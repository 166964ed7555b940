/// The repositories over the appliance's SQLite file (`<data-dir>/claworc.db`).
final class SQLiteStore: UserRepository, TokenRepository, InstanceRepository, SettingsRepository, AuditRepository {
    let db: Database

    init(path: String) throws {
        db = try Database(path: path)
        try migrate()
    }

    /// Applies every migration newer than the file's schema; a no-op on an up-to-date file.
    func migrate() throws {
        try db.execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY,
                applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
            )
            """)
        for migration in Migrations.all {
            try db.transaction { tx in
                let done = try tx.query("SELECT 1 FROM schema_migrations WHERE version = ?", [.integer(migration.version)])
                guard done.isEmpty else { return }
                try tx.script(migration.sql)
                try tx.write("INSERT INTO schema_migrations (version) VALUES (?)", [.integer(migration.version)])
            }
        }
    }

    func schemaVersion() throws -> Int64 {
        try db.query("SELECT MAX(version) AS v FROM schema_migrations").first?["v"]?.int ?? 0
    }

    // MARK: instances

    static let instanceColumns = "id, id_slot, name, state, autostart, last_error, created_at, limits, init_pid, init_identity"

    private static func instance(_ row: Row) -> InstanceRecord {
        InstanceRecord(id: row["id"]?.int ?? 0, idSlot: row["id_slot"]?.int ?? 0, name: row["name"]?.string ?? "",
                       state: InstanceState(rawValue: row["state"]?.string ?? "") ?? .failed,
                       autostart: (row["autostart"]?.int ?? 0) != 0,
                       lastError: row["last_error"]?.string, createdAt: row["created_at"]?.string ?? "",
                       limits: row["limits"]?.string ?? "{}",
                       initPID: row["init_pid"]?.int.flatMap { Int32(exactly: $0) }, initIdentity: row["init_identity"]?.string)
    }

    func allInstances() throws -> [InstanceRecord] {
        try db.query("SELECT \(Self.instanceColumns) FROM instances ORDER BY id").map(Self.instance)
    }

    func instances(assignedTo userID: Int64) throws -> [InstanceRecord] {
        try db.query("""
            SELECT \(Self.instanceColumns) FROM instances
            WHERE id IN (SELECT instance_id FROM instance_users WHERE user_id = ?) ORDER BY id
            """, [.integer(userID)]).map(Self.instance)
    }

    func instance(id: Int64) throws -> InstanceRecord? {
        try db.query("SELECT \(Self.instanceColumns) FROM instances WHERE id = ?", [.integer(id)]).first.map(Self.instance)
    }

    func assignedUsers(instanceID: Int64) throws -> [User] {
        try db.query("""
            SELECT \(Self.userColumns) FROM users WHERE id IN (SELECT user_id FROM instance_users WHERE instance_id = ?) ORDER BY id
            """, [.integer(instanceID)]).map(Self.user)
    }

    func assign(instanceID: Int64, userID: Int64) throws {
        try db.write("INSERT OR IGNORE INTO instance_users (instance_id, user_id) VALUES (?, ?)", [.integer(instanceID), .integer(userID)])
    }

    func unassign(instanceID: Int64, userID: Int64) throws -> Bool {
        try db.write("DELETE FROM instance_users WHERE instance_id = ? AND user_id = ?", [.integer(instanceID), .integer(userID)]).changes == 1
    }

    func isAssigned(instanceID: Int64, userID: Int64) throws -> Bool {
        try !db.query("SELECT 1 FROM instance_users WHERE instance_id = ? AND user_id = ?",
                      [.integer(instanceID), .integer(userID)]).isEmpty
    }

    func createInstance(name: String, slots: ClosedRange<Int64>, prepare: (InstanceRecord) throws -> Void) throws -> InstanceRecord {
        try db.transaction { tx in
            // The lowest free id slot, so ranges of deleted instances are reused.
            let slot = try tx.query("""
                SELECT MIN(candidate) AS slot FROM (
                    SELECT ? AS candidate UNION SELECT id_slot + 1 FROM instances WHERE id_slot >= ?
                ) WHERE candidate NOT IN (SELECT id_slot FROM instances WHERE id_slot IS NOT NULL)
                """, [.integer(slots.lowerBound), .integer(slots.lowerBound)]).first?["slot"]?.int ?? slots.lowerBound
            guard slot <= slots.upperBound else { throw InstanceError.noIDRangeLeft(maxSlot: slots.upperBound) }
            let id: Int64
            do {
                (_, id) = try tx.write("INSERT INTO instances (name, id_slot) VALUES (?, ?)", [.text(name), .integer(slot)])
            } catch let error as DatabaseError where error.isConstraintViolation {
                throw InstanceError.nameTaken(name)   // the slot is free by construction: the name is the unique column left
            }
            try prepare(Self.instance(try tx.query("SELECT \(Self.instanceColumns) FROM instances WHERE id = ?", [.integer(id)])[0]))
            return Self.instance(try tx.query("SELECT \(Self.instanceColumns) FROM instances WHERE id = ?", [.integer(id)])[0])
        }
    }

    func setState(_ id: Int64, _ state: InstanceState, lastError: String?) throws {
        try db.write("UPDATE instances SET state = ?, last_error = ? WHERE id = ?",
                     [.text(state.rawValue), lastError.map(SQLValue.text) ?? .null, .integer(id)])
    }

    func transition(_ id: Int64, from: [InstanceState], to: InstanceState) throws -> Bool {
        let placeholders = from.map { _ in "?" }.joined(separator: ", ")
        let (changes, _) = try db.write(
            "UPDATE instances SET state = ? WHERE id = ? AND state IN (\(placeholders))",
            [.text(to.rawValue), .integer(id)] + from.map { .text($0.rawValue) })
        return changes == 1
    }

    func setAutostart(_ id: Int64, _ on: Bool) throws {
        try db.write("UPDATE instances SET autostart = ? WHERE id = ?", [.integer(on ? 1 : 0), .integer(id)])
    }

    func setInit(_ id: Int64, pid: Int32?, identity: String?) throws {
        try db.write("UPDATE instances SET init_pid = ?, init_identity = ? WHERE id = ?",
                     [pid.map { .integer(Int64($0)) } ?? .null, identity.map { .text($0) } ?? .null, .integer(id)])
    }

    func setLimits(_ id: Int64, _ json: String) throws {
        try db.write("UPDATE instances SET limits = ? WHERE id = ?", [.text(json), .integer(id)])
    }

    func deleteInstance(_ id: Int64) throws {
        try db.write("DELETE FROM instances WHERE id = ?", [.integer(id)])
    }

    // MARK: settings

    func setting(_ key: String) throws -> String? {
        try db.query("SELECT value FROM settings WHERE key = ?", [.text(key)]).first?["value"]?.string
    }

    func setSetting(_ key: String, _ value: String) throws {
        try db.write("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                     [.text(key), .text(value)])
    }
}
