import Hummingbird

/// Token usage the key proxy counted, under /api/v1: one instance's (whoever sees it) with its
/// monthly budget, and every instance's (admins).
struct UsageController {
    struct Entry: Encodable {
        var day: String
        var model: String
        var requests: Int64
        var inputTokens: Int64
        var outputTokens: Int64
        var errors: Int64
        var latencyMsAvg: Int64
        enum CodingKeys: String, CodingKey {
            case day, model, requests, errors
            case inputTokens = "input_tokens", outputTokens = "output_tokens", latencyMsAvg = "latency_ms_avg"
        }
        init(_ row: UsageRow) {
            day = row.day
            model = row.model
            requests = row.requests
            inputTokens = row.inputTokens
            outputTokens = row.outputTokens
            errors = row.errors
            latencyMsAvg = row.requests > 0 ? row.latencyMsSum / row.requests : 0
        }
    }

    struct Budget: Encodable {
        /// nil: unlimited.
        var monthlyTokens: Int?
        /// Whether the figure is the instance's own or the appliance default's.
        var inherited: Bool
        var spentThisMonth: Int64
        var month: String
        var exhausted: Bool
        enum CodingKeys: String, CodingKey {
            case month, inherited, exhausted
            case monthlyTokens = "monthly_tokens", spentThisMonth = "spent_this_month"
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(monthlyTokens, forKey: .monthlyTokens)
            try c.encode(inherited, forKey: .inherited)
            try c.encode(spentThisMonth, forKey: .spentThisMonth)
            try c.encode(month, forKey: .month)
            try c.encode(exhausted, forKey: .exhausted)
        }
    }

    struct InstanceEnvelope: Encodable { var usage: [Entry]; var budget: Budget }

    struct ApplianceEntry: Encodable {
        var instanceID: Int64
        var instanceName: String
        var entry: Entry
        enum CodingKeys: String, CodingKey { case instanceID = "instance_id", instanceName = "instance_name" }
        func encode(to encoder: any Encoder) throws {
            try entry.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(instanceID, forKey: .instanceID)
            try c.encode(instanceName, forKey: .instanceName)
        }
    }

    struct ApplianceEnvelope: Encodable { var usage: [ApplianceEntry]; var since: String }

    let policy: AccessPolicy
    let usage: any UsageRepository
    let layers: SettingsLayers
    let instances: any InstanceRepository

    /// How far back the lists go, in days (`?days=`, 1 to 366).
    static let defaultDays = 31

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.get("/instances/:id/usage") { request, context in
            let record = try policy.authorize(.view, instance: try context.instanceID(), by: context.user)
            let since = UsageCalendar.day(daysBefore: try Self.days(request) - 1)
            let rows = try usage.usage(instanceID: record.id, sinceDay: since)
            let month = UsageCalendar.monthStart()
            let spent = try usage.tokensSpent(instanceID: record.id, sinceDay: month)
            let own = layers.overrides(record).monthlyTokenBudget
            let limit = layers.effective(record).monthlyTokenBudget
            let budget = Budget(monthlyTokens: limit, inherited: own == nil, spentThisMonth: spent, month: String(month.prefix(7)),
                                exhausted: limit.map { spent >= Int64($0) } ?? false)
            return JSON.response(InstanceEnvelope(usage: rows.map(Entry.init), budget: budget))
        }
        group.get("/usage") { request, context in
            _ = try policy.authorize(.manageAgent, by: context.user)
            let since = UsageCalendar.day(daysBefore: try Self.days(request) - 1)
            let names = Dictionary(try instances.allInstances().map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
            let rows = try usage.usage(instanceID: nil, sinceDay: since)
            return JSON.response(ApplianceEnvelope(usage: rows.map {
                ApplianceEntry(instanceID: $0.instanceID, instanceName: names[$0.instanceID] ?? "", entry: Entry($0))
            }, since: since))
        }
    }

    static func days(_ request: Request) throws -> Int {
        guard let raw = request.uri.queryParameters.get("days") else { return defaultDays }
        guard let days = Int(raw), (1...366).contains(days) else {
            throw InvalidInput("invalid_days", "days is a whole number of days from 1 to 366.")
        }
        return days
    }
}
