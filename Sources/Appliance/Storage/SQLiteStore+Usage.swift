/// The key proxy's token counts in the SQLite file, one row per instance, UTC day and model.
extension SQLiteStore: UsageRepository {
    func record(_ usage: UsageSample) throws {
        try db.write("""
            INSERT INTO llm_usage (instance_id, day, model, requests, input_tokens, output_tokens, errors, latency_ms_sum)
            VALUES (?, ?, ?, 1, ?, ?, ?, ?)
            ON CONFLICT(instance_id, day, model) DO UPDATE SET requests = requests + 1,
                input_tokens = input_tokens + excluded.input_tokens, output_tokens = output_tokens + excluded.output_tokens,
                errors = errors + excluded.errors, latency_ms_sum = latency_ms_sum + excluded.latency_ms_sum
            """, [.integer(usage.instanceID), .text(usage.day), .text(usage.model), .integer(Int64(usage.inputTokens)),
                  .integer(Int64(usage.outputTokens)), .integer(usage.failed ? 1 : 0), .integer(usage.latencyMs)])
    }

    func usage(instanceID: Int64?, sinceDay: String) throws -> [UsageRow] {
        let filter = instanceID == nil ? "" : " AND instance_id = ?"
        let parameters: [SQLValue] = [.text(sinceDay)] + (instanceID.map { [.integer($0)] } ?? [])
        return try db.query("""
            SELECT instance_id, day, model, requests, input_tokens, output_tokens, errors, latency_ms_sum FROM llm_usage
            WHERE day >= ?\(filter) ORDER BY day, instance_id, model
            """, parameters).map { row in
            UsageRow(instanceID: row["instance_id"]?.int ?? 0, day: row["day"]?.string ?? "", model: row["model"]?.string ?? "",
                     requests: row["requests"]?.int ?? 0, inputTokens: row["input_tokens"]?.int ?? 0,
                     outputTokens: row["output_tokens"]?.int ?? 0, errors: row["errors"]?.int ?? 0,
                     latencyMsSum: row["latency_ms_sum"]?.int ?? 0)
        }
    }

    func tokensSpent(instanceID: Int64, sinceDay: String) throws -> Int64 {
        try db.query("SELECT COALESCE(SUM(input_tokens + output_tokens), 0) AS spent FROM llm_usage WHERE instance_id = ? AND day >= ?",
                     [.integer(instanceID), .text(sinceDay)]).first?["spent"]?.int ?? 0
    }
}
