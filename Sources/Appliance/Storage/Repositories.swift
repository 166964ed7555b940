/// What the rest of the appliance needs from storage, one protocol per resource. The SQLite
/// implementation is `SQLiteStore`; a test can hand the access policy or the manager another.

protocol UserRepository: Sendable {
    func userCount() throws -> Int64
    /// Throws `UserError.usernameTaken`.
    func createUser(username: String, passwordHash: String, role: Role) throws -> User
    /// The first admin, only while there is no user at all (racing setups: one wins, nil for the other).
    func createFirstAdmin(username: String, passwordHash: String) throws -> User?
    /// The user and their password hash.
    func credentials(username: String) throws -> (User, String)?
    func passwordHash(userID: Int64) throws -> String?
    func allUsers() throws -> [User]
    func user(id: Int64) throws -> User?
    /// Changes what is given, in one transaction that throws `UserError.lastAdmin` rather than
    /// leave no enabled admin, and `UserError.notFound`.
    func updateUser(id: Int64, role: Role?, disabled: Bool?, passwordHash: String?) throws -> User
    /// Throws `UserError.lastAdmin` and `UserError.notFound`; sessions, tokens and
    /// assignments go with the user.
    func deleteUser(id: Int64) throws

    func createSession(tokenHash: String, userID: Int64, now: Int64, lifetime: Int64, client: String) throws
    /// The session's user, if it is neither expired nor idle longer than `idle` seconds and the
    /// user is enabled; marks it seen.
    func sessionUser(tokenHash: String, now: Int64, idle: Int64) throws -> User?
    func deleteSession(tokenHash: String) throws
    func deleteExpiredSessions(now: Int64, idle: Int64) throws
    func sessions(userID: Int64) throws -> [SessionRecord]
    /// Ends one of the user's sessions by its listed id; false if there is none.
    func deleteSession(userID: Int64, id: String) throws -> Bool
    /// Ends every session of the user but `keeping` (a token hash).
    func deleteSessions(userID: Int64, keeping: String?) throws
}

protocol TokenRepository: Sendable {
    func createToken(userID: Int64, name: String, tokenHash: String, now: Int64, expiresAt: Int64?) throws -> TokenRecord
    func tokens(userID: Int64) throws -> [TokenRecord]
    /// The token's owner if the token exists, has not expired and the owner is enabled; marks it used.
    func tokenUser(tokenHash: String, now: Int64) throws -> (User, TokenRecord)?
    func deleteToken(userID: Int64, id: Int64) throws -> Bool
    func deleteTokens(userID: Int64) throws
}

protocol ProviderRepository: Sendable {
    func providers() throws -> [ProviderRecord]
    func provider(name: String) throws -> ProviderRecord?
    func saveProvider(_ provider: ProviderRecord) throws
    func deleteProvider(name: String) throws -> Bool

    /// An instance's own keys: (provider, last four characters), and one sealed key.
    func instanceKeys(instanceID: Int64) throws -> [(provider: String, last4: String?)]
    func instanceKey(instanceID: Int64, provider: String) throws -> String?
    /// Sets (sealed non-nil) or removes (nil) each given provider's key, in one transaction.
    func setInstanceKeys(instanceID: Int64, _ changes: [(provider: String, sealed: String?, last4: String?)]) throws
}

/// The audit log: appended to, never changed (the table's triggers refuse it).
protocol AuditRepository: Sendable {
    func append(_ entry: AuditEntry) throws
    /// Newest first; `before` is an id to continue below (pagination).
    func auditEntries(_ filter: AuditFilter) throws -> [AuditEntry]
}

struct AuditFilter: Sendable {
    var actor: String?
    var action: String?
    var target: String?
    var since: Int64?
    var until: Int64?
    var before: Int64?
    var limit = 100
}

protocol InstanceRepository: Sendable {
    func allInstances() throws -> [InstanceRecord]
    func instances(assignedTo userID: Int64) throws -> [InstanceRecord]
    func instance(id: Int64) throws -> InstanceRecord?
    func isAssigned(instanceID: Int64, userID: Int64) throws -> Bool
    func assignedUsers(instanceID: Int64) throws -> [User]
    /// Idempotent.
    func assign(instanceID: Int64, userID: Int64) throws
    func unassign(instanceID: Int64, userID: Int64) throws -> Bool
    /// Inserts the row and runs `prepare` (which creates the instance's directories) in one
    /// transaction: if `prepare` throws, the row never existed. Throws
    /// `InstanceError.noIDRangeLeft` when every slot of `slots` is taken and
    /// `InstanceError.nameTaken` for a name in use.
    func createInstance(name: String, slots: ClosedRange<Int64>, prepare: (InstanceRecord) throws -> Void) throws -> InstanceRecord
    func setState(_ id: Int64, _ state: InstanceState, lastError: String?) throws
    /// Moves to `to` only from one of `from`; false if another request got there first.
    func transition(_ id: Int64, from: [InstanceState], to: InstanceState) throws -> Bool
    func setAutostart(_ id: Int64, _ on: Bool) throws
    /// Records the init a running instance was launched with (nil, nil: none).
    func setInit(_ id: Int64, pid: Int32?, identity: String?) throws
    func setLimits(_ id: Int64, _ json: String) throws
    func deleteInstance(_ id: Int64) throws
}

extension InstanceRepository {
    func createInstance(name: String, prepare: (InstanceRecord) throws -> Void) throws -> InstanceRecord {
        try createInstance(name: name, slots: 1...InstanceIDs.maxSlot, prepare: prepare)
    }
    func setState(_ id: Int64, _ state: InstanceState) throws { try setState(id, state, lastError: nil) }
}

/// Appliance-wide settings as JSON text under a key (e.g. the instance defaults).
protocol SettingsRepository: Sendable {
    func setting(_ key: String) throws -> String?
    func setSetting(_ key: String, _ value: String) throws
}

/// The passkeys of users. Every call that names a passkey by row id also names its user: one
/// user can never read or change another's.
protocol PasskeyRepository: Sendable {
    func passkeys(userID: Int64) throws -> [PasskeyRecord]
    func passkeyCount(userID: Int64) throws -> Int
    /// Throws `PasskeyError.credentialExists` for a credential id already registered (to anyone).
    func addPasskey(userID: Int64, credentialID: String, publicKey: [UInt8], algorithm: Int64, signCount: UInt32,
                    name: String) throws -> PasskeyRecord
    /// The passkey with this credential id and the user it signs in, if that user may sign in.
    func passkeyForSignIn(credentialID: String) throws -> (PasskeyRecord, User)?
    /// Stores the new counter and the time of use, only if the stored counter is still
    /// `expectedCount` (two racing sign-ins with one assertion: one wins). False otherwise.
    func recordUse(id: Int64, expectedCount: UInt32, newCount: UInt32) throws -> Bool
    /// False when the user has no passkey with that id.
    func renamePasskey(id: Int64, userID: Int64, name: String) throws -> Bool
    func deletePasskey(id: Int64, userID: Int64) throws -> Bool
}
