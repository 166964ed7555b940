import FoundationEssentials

/// Bearer tokens for scripts: shown once at creation, stored as their SHA-256, acting with
/// their owner's rights (checked on every use, so a disabled owner's token stops working).
struct APITokens: Sendable {
    static let prefix = "cwt_"
    let store: any TokenRepository

    func create(for user: User, name: String, expiresInDays: Int?) throws -> (TokenRecord, String) {
        let trimmed = String(name.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
        guard (1...100).contains(trimmed.count), !trimmed.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw InvalidInput("invalid_name", "A token's name is 1 to 100 characters, without control characters.")
        }
        if let days = expiresInDays, !(1...3650).contains(days) {
            throw InvalidInput("invalid_expiry", "expires_in_days must be between 1 and 3650.")
        }
        let token = Self.prefix + Hex.encode(Secrets.randomBytes(32))
        let now = Accounts.now()
        let record = try store.createToken(userID: user.id, name: trimmed, tokenHash: SHA256.hex(Array(token.utf8)), now: now,
                                           expiresAt: expiresInDays.map { now + Int64($0) * 86_400 })
        return (record, token)
    }

    /// The owner of a presented token, if it is valid now.
    func user(forToken token: String) -> (User, TokenRecord)? {
        guard token.hasPrefix(Self.prefix), token.utf8.count == Self.prefix.utf8.count + 64 else { return nil }
        return try? store.tokenUser(tokenHash: SHA256.hex(Array(token.utf8)), now: Accounts.now())
    }
}
