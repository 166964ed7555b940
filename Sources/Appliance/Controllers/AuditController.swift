import FoundationEssentials
import Hummingbird

/// The audit log, read by admins: `GET /api/v1/audit?actor=&action=&target=&since=&until=&limit=&before=`,
/// newest first; `next` continues the listing (pass it as `before`).
struct AuditController {
    struct Entry: Encodable {
        var id: Int64
        var time: String
        var actor: String?
        var action: String
        var target: String?
        var outcome: AuditOutcome
        var client: String
        var detail: String?

        func encode(to encoder: any Encoder) throws {
            enum Key: String, CodingKey { case id, time, actor, action, target, outcome, client, detail }
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(id, forKey: .id)
            try c.encode(time, forKey: .time)
            try c.encode(actor, forKey: .actor)
            try c.encode(action, forKey: .action)
            try c.encode(target, forKey: .target)
            try c.encode(outcome, forKey: .outcome)
            try c.encode(client, forKey: .client)
            try c.encode(detail, forKey: .detail)
        }
    }
    struct Page: Encodable {
        var entries: [Entry]
        var next: Int64?
        func encode(to encoder: any Encoder) throws {
            enum Key: String, CodingKey { case entries, next }
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(entries, forKey: .entries)
            try c.encode(next, forKey: .next)
        }
    }

    let policy: AccessPolicy
    let store: any AuditRepository

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.get("/audit") { request, context in
            _ = try policy.authorize(.readAudit, by: context.user)
            let filter = try Self.filter(request.uri.queryParameters)
            let entries = try store.auditEntries(filter).map {
                Entry(id: $0.id, time: Date(timeIntervalSince1970: Double($0.at) / 1000).formatted(.iso8601), actor: $0.actor,
                      action: $0.action, target: $0.target, outcome: $0.outcome, client: $0.client, detail: $0.detail)
            }
            return JSON.response(Page(entries: entries, next: entries.count == filter.limit ? entries.last?.id : nil))
        }
    }

    static func filter(_ query: Hummingbird.Parameters) throws -> AuditFilter {
        var filter = AuditFilter()
        filter.actor = query["actor"].map(String.init)
        filter.action = query["action"].map(String.init)
        filter.target = query["target"].map(String.init)
        for (name, keyPath) in [("since", \AuditFilter.since), ("until", \AuditFilter.until)] {
            guard let text = query[name[...]] else { continue }
            guard let date = try? Date(String(text), strategy: .iso8601) else {
                throw APIError.badRequest("invalid_time", "\(name) must be an RFC 3339 time such as 2026-12-02T10:00:00Z.")
            }
            filter[keyPath: keyPath] = Int64(date.timeIntervalSince1970 * 1000)
        }
        if let text = query["before"] {
            guard let before = Int64(String(text)), before > 0 else { throw APIError.badRequest("invalid_cursor", "before must be an entry id.") }
            filter.before = before
        }
        if let text = query["limit"] {
            guard let limit = Int(String(text)), (1...1000).contains(limit) else {
                throw APIError.badRequest("invalid_limit", "limit must be between 1 and 1000.")
            }
            filter.limit = limit
        }
        return filter
    }
}
