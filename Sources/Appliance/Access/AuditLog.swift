import FoundationEssentials
import Logging

/// Security events, appended to the audit table: who (the user, or the name tried), what,
/// on what, with which outcome, from where. Never a secret: callers pass names and ids, and
/// `detail` is a reason, not input.
struct AuditLog: Sendable {
    let store: any AuditRepository
    let logger: Logger

    func record(_ action: String, by actor: User?, actorName: String? = nil, target: String? = nil,
                outcome: AuditOutcome = .ok, client: String, detail: String? = nil) {
        let entry = AuditEntry(at: Int64(Date().timeIntervalSince1970 * 1000), actorID: actor?.id,
                               actor: actor?.username ?? actorName, action: action, target: target, outcome: outcome,
                               client: client, detail: detail)
        do {
            try store.append(entry)
        } catch {
            // The action already happened; losing its record is an operator's alarm, not the caller's error.
            logger.error("audit log write failed", metadata: ["action": "\(action)", "error": "\(error)"])
        }
    }

    func record(_ action: String, _ context: AppContext, target: String? = nil, outcome: AuditOutcome = .ok, detail: String? = nil) {
        record(action, by: context.user, target: target, outcome: outcome, client: context.clientAddress, detail: detail)
    }
}
