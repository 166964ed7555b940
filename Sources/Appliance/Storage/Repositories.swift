/// What the rest of the appliance needs from storage, one protocol per resource. The SQLite
/// implementation is `SQLiteStore`; a test can hand the access policy or the manager another.

protocol UserRepository: Sendable {
    func userCount() throws -> Int64
    func createUser(username: String, passwordHash: String, role: Role) throws -> User
    /// The first admin, only while there is no user at all (racing setups: one wins, nil for the other).
    func createFirstAdmin(username: String, passwordHash: String) throws -> User?
    /// The user and their password hash.
    func credentials(username: String) throws -> (User, String)?

    func createSession(tokenHash: String, userID: Int64, now: Int64, lifetime: Int64) throws
    func sessionUser(tokenHash: String, now: Int64) throws -> User?
    func deleteSession(tokenHash: String) throws
    func deleteExpiredSessions(now: Int64) throws
}

protocol InstanceRepository: Sendable {
    func allInstances() throws -> [InstanceRecord]
    func instances(assignedTo userID: Int64) throws -> [InstanceRecord]
    func instance(id: Int64) throws -> InstanceRecord?
    func isAssigned(instanceID: Int64, userID: Int64) throws -> Bool
    /// Inserts the row and runs `prepare` (which creates the instance's directories) in one
    /// transaction: if `prepare` throws, the row never existed. Throws
    /// `InstanceError.noIDRangeLeft` when every slot of `slots` is taken and
    /// `InstanceError.nameTaken` for a name in use.
    func createInstance(name: String, slots: ClosedRange<Int64>, prepare: (InstanceRecord) throws -> Void) throws -> InstanceRecord
    func setState(_ id: Int64, _ state: InstanceState, lastError: String?) throws
    /// Moves to `to` only from one of `from`; false if another request got there first.
    func transition(_ id: Int64, from: [InstanceState], to: InstanceState) throws -> Bool
    func setAutostart(_ id: Int64, _ on: Bool) throws
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
