import Glibc

/// One proxied request's outcome, as the proxy hands it to storage.
struct UsageSample: Sendable, Equatable {
    var instanceID: Int64
    /// UTC, "YYYY-MM-DD".
    var day: String
    var model: String
    var inputTokens: Int
    var outputTokens: Int
    /// The provider answered an error status, or could not be reached.
    var failed: Bool
    var latencyMs: Int64
}

/// One instance's usage of one model on one day.
struct UsageRow: Sendable, Equatable {
    var instanceID: Int64
    var day: String
    var model: String
    var requests: Int64
    var inputTokens: Int64
    var outputTokens: Int64
    var errors: Int64
    var latencyMsSum: Int64
}

protocol UsageRepository: Sendable {
    func record(_ usage: UsageSample) throws
    /// Rows from `sinceDay` on, of one instance or (nil) all, ordered by day.
    func usage(instanceID: Int64?, sinceDay: String) throws -> [UsageRow]
    /// Input plus output tokens from `sinceDay` on.
    func tokensSpent(instanceID: Int64, sinceDay: String) throws -> Int64
}

/// UTC calendar days as the usage table keys them.
enum UsageCalendar {
    static func day(_ seconds: Int = time(nil)) -> String {
        let (y, m, d) = civil(seconds)
        return "\(y)-\(pad(m))-\(pad(d))"
    }

    /// The first day of the month `seconds` falls in.
    static func monthStart(_ seconds: Int = time(nil)) -> String {
        let (y, m, _) = civil(seconds)
        return "\(y)-\(pad(m))-01"
    }

    /// The day `days` before `seconds`'s.
    static func day(daysBefore days: Int, _ seconds: Int = time(nil)) -> String { day(seconds - days * 86_400) }

    private static func pad(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }

    private static func civil(_ seconds: Int) -> (Int, Int, Int) {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        return (Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday))
    }
}
