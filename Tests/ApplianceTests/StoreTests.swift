import Glibc
import Testing
@testable import Appliance

/// A fresh directory per test, removed afterwards.
final class TempDir {
    let path: String
    init() {
        var template = Array("/tmp/claworc-store-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }
    deinit { _ = system("rm -rf '\(path)'") }
}

@Suite struct StoreTests {
    @Test func migrationsApplyToAnEmptyFile() throws {
        let dir = TempDir()
        let store = try SQLiteStore(path: dir.path + "/claworc.db")
        #expect(try store.schemaVersion() == Migrations.all.last!.version)
        #expect(try store.userCount() == 0)
        let mode = try store.db.query("PRAGMA journal_mode").first?["journal_mode"]?.string
        #expect(mode == "wal")
        let fk = try store.db.query("PRAGMA foreign_keys").first?["foreign_keys"]?.int
        #expect(fk == 1)
    }

    @Test func migrationsOnAnExistingFileKeepItsData() throws {
        let dir = TempDir()
        let path = dir.path + "/claworc.db"
        do {
            let store = try SQLiteStore(path: path)
            _ = try store.createUser(username: "keep", passwordHash: "x", role: .admin)
            _ = try store.createInstance(name: "kept") { _ in }
        }
        // Reopening runs migrate() again: nothing is re-applied, nothing is lost.
        let reopened = try SQLiteStore(path: path)
        #expect(try reopened.schemaVersion() == Migrations.all.last!.version)
        let applied = try reopened.db.query("SELECT COUNT(*) AS n FROM schema_migrations").first?["n"]?.int
        #expect(applied == Int64(Migrations.all.count))
        #expect(try reopened.userCount() == 1)
        #expect(try reopened.allInstances().map(\.name) == ["kept"])
    }

    @Test func aFileFromBeforeTheMigrationsTableIsUpgraded() throws {
        let dir = TempDir()
        let path = dir.path + "/claworc.db"
        do {
            // A database that predates schema tracking: some unrelated table, no schema_migrations.
            let raw = try Database(path: path)
            try raw.execute("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hello')")
        }
        let store = try SQLiteStore(path: path)
        #expect(try store.schemaVersion() == Migrations.all.last!.version)
        #expect(try store.db.query("SELECT body FROM notes").first?["body"]?.string == "hello")
    }

    @Test func sessionsSurviveARestart() throws {
        let dir = TempDir()
        let path = dir.path + "/claworc.db"
        let token = Hex.encode(Secrets.randomBytes(32))
        let hash = SHA256.hex(Array(token.utf8))
        do {
            let store = try SQLiteStore(path: path)
            let user = try store.createUser(username: "admin", passwordHash: "x", role: .admin)
            try store.createSession(tokenHash: hash, userID: user.id, now: 1_000, lifetime: 3600, client: "192.0.2.1")
        }
        let store = try SQLiteStore(path: path)
        #expect(try store.sessionUser(tokenHash: hash, now: 2_000, idle: 3600)?.username == "admin")
        #expect(try store.sessionUser(tokenHash: hash, now: 5_000, idle: 3600) == nil, "expired sessions do not authenticate")
    }

    @Test func idleSessionsEndAndUseSlidesTheDeadline() throws {
        let dir = TempDir()
        let store = try SQLiteStore(path: dir.path + "/claworc.db")
        let user = try store.createUser(username: "u", passwordHash: "x", role: .user)
        try store.createSession(tokenHash: "h", userID: user.id, now: 0, lifetime: 10_000, client: "c")
        #expect(try store.sessionUser(tokenHash: "h", now: 90, idle: 100) != nil, "used at 90: the idle deadline moves to 190")
        #expect(try store.sessionUser(tokenHash: "h", now: 180, idle: 100) != nil)
        #expect(try store.sessionUser(tokenHash: "h", now: 400, idle: 100) == nil, "idle for longer than 100 s")
        try store.createSession(tokenHash: "d", userID: user.id, now: 0, lifetime: 10_000, client: "c")
        _ = try store.updateUser(id: user.id, role: nil, disabled: true, passwordHash: nil)
        #expect(try store.sessionUser(tokenHash: "d", now: 1, idle: 100) == nil, "a disabled user's session does not authenticate")
    }

    @Test func theLastEnabledAdminStays() throws {
        let dir = TempDir()
        let store = try SQLiteStore(path: dir.path + "/claworc.db")
        let first = try store.createUser(username: "first", passwordHash: "x", role: .admin)
        #expect(throws: UserError.lastAdmin) { try store.updateUser(id: first.id, role: .user, disabled: nil, passwordHash: nil) }
        #expect(throws: UserError.lastAdmin) { try store.updateUser(id: first.id, role: nil, disabled: true, passwordHash: nil) }
        #expect(throws: UserError.lastAdmin) { try store.deleteUser(id: first.id) }
        let second = try store.createUser(username: "second", passwordHash: "x", role: .admin)
        _ = try store.updateUser(id: second.id, role: nil, disabled: true, passwordHash: nil)
        #expect(throws: UserError.lastAdmin, "a disabled admin does not count") { try store.deleteUser(id: first.id) }
        _ = try store.updateUser(id: second.id, role: nil, disabled: false, passwordHash: nil)
        try store.deleteUser(id: first.id)
        #expect(try store.allUsers().map(\.username) == ["second"])
        #expect(throws: UserError.usernameTaken("second")) { try store.createUser(username: "second", passwordHash: "y", role: .user) }
    }

    @Test func tokensAuthenticateTheirEnabledOwnerUntilExpiry() throws {
        let dir = TempDir()
        let store = try SQLiteStore(path: dir.path + "/claworc.db")
        let owner = try store.createUser(username: "owner", passwordHash: "x", role: .user)
        let record = try store.createToken(userID: owner.id, name: "ci", tokenHash: "t", now: 0, expiresAt: 1_000)
        #expect(try store.tokenUser(tokenHash: "t", now: 500)?.0.username == "owner")
        #expect(try store.tokenUser(tokenHash: "t", now: 1_000) == nil, "expired")
        #expect(try store.tokenUser(tokenHash: "nope", now: 1) == nil)
        #expect(try store.deleteToken(userID: owner.id + 1, id: record.id) == false, "someone else's token is not theirs to revoke")
        #expect(try store.deleteToken(userID: owner.id, id: record.id))
        #expect(try store.tokenUser(tokenHash: "t", now: 500) == nil, "revoked")
    }

    @Test func theAuditLogIsAppendOnly() throws {
        let dir = TempDir()
        let store = try SQLiteStore(path: dir.path + "/claworc.db")
        for i in 0..<5 {
            try store.append(AuditEntry(at: Int64(i), actorID: nil, actor: "a\(i % 2)", action: "login", target: nil,
                                        outcome: .ok, client: "c", detail: nil))
        }
        #expect(throws: DatabaseError.self) { try store.db.write("UPDATE audit_log SET outcome = 'denied'") }
        #expect(throws: DatabaseError.self) { try store.db.write("DELETE FROM audit_log") }
        var filter = AuditFilter()
        filter.limit = 2
        let page = try store.auditEntries(filter)
        #expect(page.map(\.at) == [4, 3], "newest first")
        filter.before = page.last!.id
        #expect(try store.auditEntries(filter).map(\.at) == [2, 1])
        filter = AuditFilter()
        filter.actor = "a1"
        #expect(try store.auditEntries(filter).map(\.at) == [3, 1])
    }

    @Test func deletingAUserDeletesTheirSessions() throws {
        let dir = TempDir()
        let store = try SQLiteStore(path: dir.path + "/claworc.db")
        let user = try store.createUser(username: "gone", passwordHash: "x", role: .user)
        try store.createSession(tokenHash: "h", userID: user.id, now: 0, lifetime: 100, client: "c")
        try store.db.write("DELETE FROM users WHERE id = ?", [.integer(user.id)])
        #expect(try store.db.query("SELECT * FROM sessions").isEmpty)
    }

    @Test func failedInstanceCreationLeavesNoRow() throws {
        let dir = TempDir()
        let store = try SQLiteStore(path: dir.path + "/claworc.db")
        struct Boom: Error {}
        #expect(throws: Boom.self) { try store.createInstance(name: "doomed") { _ in throw Boom() } }
        #expect(try store.allInstances().isEmpty)
        #expect(try store.createInstance(name: "doomed") { _ in }.name == "doomed")
    }

    @Test func stateTransitionsAreConditional() throws {
        let dir = TempDir()
        let store = try SQLiteStore(path: dir.path + "/claworc.db")
        let id = try store.createInstance(name: "one") { _ in }.id
        #expect(try store.transition(id, from: [.stopped], to: .starting))
        #expect(try !store.transition(id, from: [.stopped], to: .starting), "a second start loses the race")
    }

    @Test func firstAdminCanOnlyBeCreatedOnce() throws {
        let dir = TempDir()
        let store = try SQLiteStore(path: dir.path + "/claworc.db")
        #expect(try store.createFirstAdmin(username: "a", passwordHash: "x") != nil)
        #expect(try store.createFirstAdmin(username: "b", passwordHash: "x") == nil)
        #expect(try store.userCount() == 1)
    }
}

@Suite struct PrimitiveTests {
    @Test func sha256KnownAnswers() {
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256.hex(long) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func instanceNames() {
        for good in ["a", "abc-123", String(repeating: "z", count: 40)] {
            #expect(throws: Never.self) { try InstanceName.validate(good) }
        }
        for bad in ["", "1a", "-a", "A", "a_b", "a.b", String(repeating: "z", count: 41), "é"] {
            #expect(throws: InvalidInput.self) { try InstanceName.validate(bad) }
        }
    }

    @Test func listenAddresses() throws {
        #expect(try Configuration.parse(listen: "127.0.0.1:8080") == ("127.0.0.1", 8080))
        #expect(try Configuration.parse(listen: "[::1]:9000") == ("::1", 9000))
        #expect(try Configuration.parse(listen: ":80") == ("0.0.0.0", 80))
        #expect(throws: (any Error).self) { try Configuration.parse(listen: "nonsense") }
    }
}
