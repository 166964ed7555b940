import FoundationEssentials

/// LLM providers in the SQLite file (keys only sealed; see SecretBox).
extension SQLiteStore: ProviderRepository {
    private static func provider(_ row: Row) -> ProviderRecord {
        let models = (row["models"]?.string).flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) } ?? []
        return ProviderRecord(name: row["name"]?.string ?? "", api: ProviderAPI(rawValue: row["api"]?.string ?? "") ?? .openAICompletions,
                              baseURL: row["base_url"]?.string ?? "", models: models,
                              sealedKey: row["api_key_sealed"]?.string, keyLast4: row["api_key_last4"]?.string)
    }

    private static let providerColumns = "name, api, base_url, models, api_key_sealed, api_key_last4"

    func providers() throws -> [ProviderRecord] {
        try db.query("SELECT \(Self.providerColumns) FROM providers ORDER BY name").map(Self.provider)
    }

    func provider(name: String) throws -> ProviderRecord? {
        try db.query("SELECT \(Self.providerColumns) FROM providers WHERE name = ?", [.text(name)]).first.map(Self.provider)
    }

    func saveProvider(_ p: ProviderRecord) throws {
        let models = String(decoding: try JSONEncoder().encode(p.models), as: UTF8.self)
        try db.write("""
            INSERT INTO providers (name, api, base_url, models, api_key_sealed, api_key_last4) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT(name) DO UPDATE SET api = excluded.api, base_url = excluded.base_url, models = excluded.models,
                api_key_sealed = excluded.api_key_sealed, api_key_last4 = excluded.api_key_last4,
                updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
            """, [.text(p.name), .text(p.api.rawValue), .text(p.baseURL), .text(models),
                  p.sealedKey.map { .text($0) } ?? .null, p.keyLast4.map { .text($0) } ?? .null])
    }

    func deleteProvider(name: String) throws -> Bool {
        try db.write("DELETE FROM providers WHERE name = ?", [.text(name)]).changes == 1
    }

    func instanceKeys(instanceID: Int64) throws -> [(provider: String, last4: String?)] {
        try db.query("SELECT provider, api_key_last4 FROM instance_provider_keys WHERE instance_id = ? ORDER BY provider",
                     [.integer(instanceID)]).map { ($0["provider"]?.string ?? "", $0["api_key_last4"]?.string) }
    }

    func instanceKey(instanceID: Int64, provider: String) throws -> String? {
        try db.query("SELECT api_key_sealed FROM instance_provider_keys WHERE instance_id = ? AND provider = ?",
                     [.integer(instanceID), .text(provider)]).first?["api_key_sealed"]?.string
    }

    func setInstanceKeys(instanceID: Int64, _ changes: [(provider: String, sealed: String?, last4: String?)]) throws {
        try db.transaction { tx in
            for change in changes {
                if let sealed = change.sealed {
                    try tx.write("""
                        INSERT INTO instance_provider_keys (instance_id, provider, api_key_sealed, api_key_last4) VALUES (?, ?, ?, ?)
                        ON CONFLICT(instance_id, provider) DO UPDATE SET api_key_sealed = excluded.api_key_sealed,
                            api_key_last4 = excluded.api_key_last4
                        """, [.integer(instanceID), .text(change.provider), .text(sealed), change.last4.map { .text($0) } ?? .null])
                } else {
                    try tx.write("DELETE FROM instance_provider_keys WHERE instance_id = ? AND provider = ?",
                                 [.integer(instanceID), .text(change.provider)])
                }
            }
        }
    }
}
