/// The rows the appliance keeps, as the rest of the code sees them.

enum Role: String, Codable, Sendable { case admin, user }

struct User: Codable, Sendable, Equatable {
    var id: Int64
    var username: String
    var role: Role
    /// A disabled user cannot sign in; their sessions and tokens were ended when it happened.
    var disabled = false
    var createdAt = ""

    enum CodingKeys: String, CodingKey {
        case id, username, role, disabled
        case createdAt = "created_at"
    }
}

/// One signed-in browser, as its owner sees it. `id` is a prefix of the token's hash: enough
/// to name it, useless to sign in with.
struct SessionRecord: Sendable, Equatable {
    var id: String
    var createdAt: Int64
    var lastSeenAt: Int64
    var expiresAt: Int64
    var client: String
}

struct TokenRecord: Sendable, Equatable {
    var id: Int64
    var userID: Int64
    var name: String
    var createdAt: Int64
    var expiresAt: Int64?
    var lastUsedAt: Int64?
}

enum AuditOutcome: String, Codable, Sendable { case ok, denied, failed }

struct AuditEntry: Sendable, Equatable {
    var id: Int64 = 0
    /// Unix milliseconds.
    var at: Int64
    var actorID: Int64?
    var actor: String?
    var action: String
    var target: String?
    var outcome: AuditOutcome
    var client: String
    var detail: String?
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
    /// The init of a running instance: its host pid and `ProcessIdentity`.
    var initPID: Int32? = nil
    var initIdentity: String? = nil
}

/// The wire protocols the key proxy speaks to providers.
enum ProviderAPI: String, Codable, Sendable, CaseIterable {
    case openAICompletions = "openai-completions"
    case openAIResponses = "openai-responses"
    case anthropicMessages = "anthropic-messages"
}

struct ProviderRecord: Sendable, Equatable {
    var name: String
    var api: ProviderAPI
    var baseURL: String
    var models: [String]
    /// The key as `SecretBox` sealed it for "provider:<name>"; never the key itself.
    var sealedKey: String?
    var keyLast4: String?
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
