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
