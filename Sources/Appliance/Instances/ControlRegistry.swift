import FoundationEssentials
import Synchronization

/// Who controls each instance's screen: at most one session at a time. Everyone else who
/// watches gets the picture but no input (the VNC relay asks `holds` for every frame it
/// receives, so it is a lock, not an actor hop). Control lives in memory only: a restarted
/// daemon has no VNC connections, so nobody holds control.
///
/// Control belongs to a session (the hash of its cookie token), not a user: the same person
/// in two tabs of one browser shares it, two logins do not. It ends when the holder
/// releases it, an admin takes it over, or the session has had no VNC connection to the
/// instance for `releaseAfter`.
final class ControlRegistry: Sendable {
    /// Long enough for the dashboard's reconnect after a dropped WebSocket (its first retry
    /// is at 0.5 s), short enough that a closed tab frees the instance promptly.
    static let releaseAfter: Duration = .seconds(5)

    struct Holder: Sendable, Equatable {
        var session: String
        var username: String
        var since: Date
    }

    enum Failure: Error, Equatable {
        /// Another session holds control (and the caller did not, or could not, force).
        case held(by: String)
        /// Releasing control someone else holds, without being an admin.
        case notHolder
    }

    private struct Instance {
        var holder: Holder?
        /// Open VNC connections per session.
        var connections: [String: Int] = [:]
        /// Bumped when the holder changes and when the holder's own connections open or close,
        /// so a scheduled release acts only if none of that happened since it was scheduled.
        var generation: UInt64 = 0
    }

    private let state = Mutex<[Int64: Instance]>([:])
    private let releaseAfter: Duration

    init(releaseAfter: Duration = ControlRegistry.releaseAfter) {
        self.releaseAfter = releaseAfter
    }

    func holder(of instance: Int64) -> Holder? {
        state.withLock { $0[instance]?.holder }
    }

    func holds(_ session: String, _ instance: Int64) -> Bool {
        state.withLock { $0[instance]?.holder?.session == session }
    }

    /// Takes control for `session`. Idempotent for the holder; `force` (the caller checks
    /// that only admins pass it) takes it from another session.
    func take(_ instance: Int64, session: String, username: String, force: Bool, now: Date = Date()) throws(Failure) -> Holder {
        let (holder, generation, watched) = try state.withLock { (all) throws(Failure) -> (Holder, UInt64, Bool) in
            var entry = all[instance] ?? Instance()
            if let current = entry.holder, current.session == session { return (current, entry.generation, true) }
            if let current = entry.holder, !force { throw .held(by: current.username) }
            let holder = Holder(session: session, username: username, since: now)
            entry.holder = holder
            entry.generation &+= 1
            all[instance] = entry
            return (holder, entry.generation, entry.connections[session, default: 0] > 0)
        }
        // Control taken without a screen to use it on lapses like one whose screen closed.
        if !watched { scheduleRelease(instance, generation: generation) }
        return holder
    }

    /// Releases control; only the holder's session or an admin may. Releasing when nobody
    /// holds it is not an error (the outcome is what was asked for).
    func release(_ instance: Int64, session: String, isAdmin: Bool) throws(Failure) {
        try state.withLock { (all) throws(Failure) in
            guard var entry = all[instance], let current = entry.holder else { return }
            guard current.session == session || isAdmin else { throw .notHolder }
            entry.holder = nil
            entry.generation &+= 1
            all[instance] = entry
        }
    }

    /// A VNC connection of `session` to `instance` opened.
    func connected(_ instance: Int64, session: String) {
        state.withLock { all in
            var entry = all[instance] ?? Instance()
            entry.connections[session, default: 0] += 1
            if entry.holder?.session == session { entry.generation &+= 1 }
            all[instance] = entry
        }
    }

    /// A VNC connection closed; when it was the holder's last, control lapses after
    /// `releaseAfter` unless the session reconnects first.
    func disconnected(_ instance: Int64, session: String) {
        let lapse: UInt64? = state.withLock { all in
            guard var entry = all[instance] else { return nil }
            let left = entry.connections[session, default: 1] - 1
            entry.connections[session] = left > 0 ? left : nil
            if entry.holder?.session == session { entry.generation &+= 1 }
            defer { all[instance] = entry.holder == nil && entry.connections.isEmpty ? nil : entry }
            return left == 0 && entry.holder?.session == session ? entry.generation : nil
        }
        if let lapse { scheduleRelease(instance, generation: lapse) }
    }

    /// The grace period is a deadline, not a wait for some event: a timer is the signal.
    private func scheduleRelease(_ instance: Int64, generation: UInt64) {
        let releaseAfter = self.releaseAfter
        Task { [weak self] in
            try? await Task.sleep(for: releaseAfter)
            self?.lapse(instance, generation: generation)
        }
    }

    private func lapse(_ instance: Int64, generation: UInt64) {
        state.withLock { all in
            guard var entry = all[instance], entry.generation == generation,
                  let holder = entry.holder, entry.connections[holder.session, default: 0] == 0 else { return }
            entry.holder = nil
            entry.generation &+= 1
            all[instance] = entry.connections.isEmpty ? nil : entry
        }
    }
}
