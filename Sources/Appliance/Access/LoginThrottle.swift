import Glibc
import Synchronization

/// Counts failed password checks per account name and per client address. Past the limit an
/// attempt is refused without running bcrypt until the window that began with the first
/// failure has passed. Names that exist and names that do not are counted alike, so the
/// throttle tells nobody which accounts exist.
///
/// The address limit is higher than the account limit: one person's typos behind a shared NAT
/// must not lock out the office, but one address spraying many names is still stopped.
final class LoginThrottle: Sendable {
    struct Policy: Sendable {
        var perAccount = 10
        var perAddress = 30
        var windowSeconds: Int64 = 300
        /// Bounds the memory an attacker with many names and addresses can make us hold.
        var maxEntries = 50_000
    }

    private struct Entry { var failures: Int; var since: Int64 }
    private struct Tables { var accounts: [String: Entry] = [:]; var addresses: [String: Entry] = [:] }

    let policy: Policy
    private let now: @Sendable () -> Int64
    private let tables = Mutex(Tables())

    init(policy: Policy = Policy(), now: @escaping @Sendable () -> Int64 = LoginThrottle.monotonicSeconds) {
        self.policy = policy
        self.now = now
    }

    static func monotonicSeconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec)
    }

    /// Reserves an attempt, or returns the seconds to wait. A reserved attempt counts as a
    /// failure until `succeeded` or `abandoned` says otherwise, so parallel attempts cannot all
    /// pass the check before the first of them has failed.
    func begin(account: String, address: String) -> Int64? {
        let t = now()
        let window = policy.windowSeconds
        return tables.withLock { tables -> Int64? in
            func current(_ entry: Entry?) -> Entry? {
                guard let entry, t - entry.since < window else { return nil }
                return entry
            }
            let accountKey = Self.key(account)
            let byAccount = current(tables.accounts[accountKey])
            let byAddress = current(tables.addresses[address])
            var waits: [Int64] = []
            if let e = byAccount, e.failures >= policy.perAccount { waits.append(e.since + window - t) }
            if let e = byAddress, e.failures >= policy.perAddress { waits.append(e.since + window - t) }
            if let wait = waits.max() { return max(1, wait) }
            if tables.accounts.count + tables.addresses.count >= policy.maxEntries {
                tables.accounts = tables.accounts.filter { t - $0.value.since < window }
                tables.addresses = tables.addresses.filter { t - $0.value.since < window }
                // Still full of live entries: refuse rather than forget someone's failures.
                if tables.accounts.count + tables.addresses.count >= policy.maxEntries { return window }
            }
            tables.accounts[accountKey] = Entry(failures: (byAccount?.failures ?? 0) + 1, since: byAccount?.since ?? t)
            tables.addresses[address] = Entry(failures: (byAddress?.failures ?? 0) + 1, since: byAddress?.since ?? t)
            return nil
        }
    }

    /// The right password: the account starts afresh; the address keeps its other failures.
    func succeeded(account: String, address: String) {
        tables.withLock { tables in
            tables.accounts[Self.key(account)] = nil
            Self.uncount(&tables.addresses, address)
        }
    }

    /// The attempt never reached a password check (the pool was full, the store failed).
    func abandoned(account: String, address: String) {
        tables.withLock { tables in
            Self.uncount(&tables.accounts, Self.key(account))
            Self.uncount(&tables.addresses, address)
        }
    }

    /// Long names cannot exist (64 bytes at most) and are all the same to the throttle.
    private static func key(_ account: String) -> String {
        account.utf8.count <= 128 ? account : String(decoding: account.utf8.prefix(128), as: UTF8.self)
    }

    private static func uncount(_ table: inout [String: Entry], _ key: String) {
        guard var entry = table[key] else { return }
        entry.failures -= 1
        table[key] = entry.failures > 0 ? entry : nil
    }
}
