/// `PasskeyRepository` over the `passkeys` table.
extension SQLiteStore: PasskeyRepository {
    private static let passkeyColumns = "id, user_id, credential_id, public_key, algorithm, sign_count, name, created_at, last_used_at"

    private static func passkey(_ row: Row) -> PasskeyRecord {
        PasskeyRecord(id: row["id"]?.int ?? 0, userID: row["user_id"]?.int ?? 0, credentialID: row["credential_id"]?.string ?? "",
                      publicKey: Hex.decode(row["public_key"]?.string ?? "") ?? [], algorithm: row["algorithm"]?.int ?? 0,
                      signCount: UInt32(clamping: row["sign_count"]?.int ?? 0), name: row["name"]?.string ?? "",
                      createdAt: row["created_at"]?.string ?? "", lastUsedAt: row["last_used_at"]?.string)
    }

    func passkeys(userID: Int64) throws -> [PasskeyRecord] {
        try db.query("SELECT \(Self.passkeyColumns) FROM passkeys WHERE user_id = ? ORDER BY id", [.integer(userID)]).map(Self.passkey)
    }

    func passkeyCount(userID: Int64) throws -> Int {
        Int(try db.query("SELECT COUNT(*) AS n FROM passkeys WHERE user_id = ?", [.integer(userID)]).first?["n"]?.int ?? 0)
    }

    func addPasskey(userID: Int64, credentialID: String, publicKey: [UInt8], algorithm: Int64, signCount: UInt32,
                    name: String) throws -> PasskeyRecord {
        let id: Int64
        do {
            (_, id) = try db.write("""
                INSERT INTO passkeys (user_id, credential_id, public_key, algorithm, sign_count, name) VALUES (?, ?, ?, ?, ?, ?)
                """, [.integer(userID), .text(credentialID), .text(Hex.encode(publicKey)), .integer(algorithm),
                      .integer(Int64(signCount)), .text(name)])
        } catch let error as DatabaseError where error.isConstraintViolation {
            throw PasskeyError.credentialExists
        }
        return Self.passkey(try db.query("SELECT \(Self.passkeyColumns) FROM passkeys WHERE id = ?", [.integer(id)])[0])
    }

    // The users table has no disabled flag yet; when it does, a disabled user is left out here.
    func passkeyForSignIn(credentialID: String) throws -> (PasskeyRecord, User)? {
        guard let row = try db.query("""
            SELECT p.id, p.user_id, p.credential_id, p.public_key, p.algorithm, p.sign_count, p.name, p.created_at,
                   p.last_used_at, u.username, u.role, u.created_at AS user_created_at
            FROM passkeys p JOIN users u ON u.id = p.user_id WHERE p.credential_id = ? AND u.disabled = 0
            """, [.text(credentialID)]).first else { return nil }
        // A disabled user's passkey is as unknown as one never registered.
        let user = User(id: row["user_id"]?.int ?? 0, username: row["username"]?.string ?? "",
                        role: Role(rawValue: row["role"]?.string ?? "") ?? .user, disabled: false,
                        createdAt: row["user_created_at"]?.string ?? "")
        return (Self.passkey(row), user)
    }

    func recordUse(id: Int64, expectedCount: UInt32, newCount: UInt32) throws -> Bool {
        let (changes, _) = try db.write("""
            UPDATE passkeys SET sign_count = ?, last_used_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
            WHERE id = ? AND sign_count = ?
            """, [.integer(Int64(newCount)), .integer(id), .integer(Int64(expectedCount))])
        return changes == 1
    }

    func renamePasskey(id: Int64, userID: Int64, name: String) throws -> Bool {
        try db.write("UPDATE passkeys SET name = ? WHERE id = ? AND user_id = ?", [.text(name), .integer(id), .integer(userID)]).changes == 1
    }

    func deletePasskey(id: Int64, userID: Int64) throws -> Bool {
        try db.write("DELETE FROM passkeys WHERE id = ? AND user_id = ?", [.integer(id), .integer(userID)]).changes == 1
    }
}
