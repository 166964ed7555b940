/// The rows the appliance keeps, as the rest of the code sees them.

enum Role: String, Codable, Sendable { case admin, user }

struct User: Codable, Sendable, Equatable {
    var id: Int64
    var username: String
    var role: Role
}

enum InstanceState: String, Codable, Sendable { case stopped, starting, running, stopping, failed }

struct InstanceRecord: Sendable, Equatable {
    var id: Int64
    var idSlot: Int64
    var name: String
    var state: InstanceState
    var autostart: Bool
    var lastError: String?
    var createdAt: String
    /// JSON of the per-instance setting overrides.
    var limits: String
}

/// A passkey as stored: `credentialID` is base64url, `publicKey` the COSE key's bytes.
struct PasskeyRecord: Sendable, Equatable {
    var id: Int64
    var userID: Int64
    var credentialID: String
    var publicKey: [UInt8]
    var algorithm: Int64
    var signCount: UInt32
    var name: String
    var createdAt: String
    var lastUsedAt: String?
}
