import FoundationEssentials
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import Supervisor

/// `GET /api/v1/instances/{id}/terminal`: a WebSocket to a shell on a pty inside the instance.
/// Binary frames carry the pty's bytes both ways; text frames carry JSON control messages:
/// the server's first is `{"type":"session","id":S,"replay":N}` (N bytes of scrollback follow),
/// the client may send `{"type":"resize","cols":C,"rows":R}`, and the server ends with
/// `{"type":"exit","code":N}`. `?user=root` (admins only) opens a root shell; `?session=S`
/// re-attaches to a running session of the same user on the same instance (one a restarted
/// daemon took back included), replaying its scrollback first.
///
/// Refusals are close codes before anything is opened, as on the VNC relay: 4000 + the status
/// the API would answer (4401, 4403 foreign origin or root for a non-admin, 4404 no such
/// instance or session, 4409 not running, 4429 too many terminals). Hummingbird answers any
/// refused upgrade with a bare 400, so an HTTP status before the upgrade cannot carry them.
struct TerminalController {
    let policy: AccessPolicy
    let manager: InstanceManager
    let sessions: TerminalSessions

    /// What the checks allow: a session to attach to, or a new one to open.
    private enum Admission {
        case attach(id: String, TerminalSession)
        case open(instance: Int64, owner: Int64, root: Bool)
    }

    private struct ControlMessage: Decodable {
        var type: String
        var cols: Int?
        var rows: Int?
    }

    func addRoutes(to router: Router<AppContext>) {
        router.ws("/api/v1/instances/:id/terminal") { inbound, outbound, wsContext in
            let session: TerminalSession, sessionID: String
            do {
                switch try admit(wsContext.request, wsContext.requestContext) {
                case .attach(let id, let existing):
                    (sessionID, session) = (id, existing)
                case .open(let instance, let owner, let root):
                    let query = wsContext.request.uri.queryParameters
                    let cols = query.get("cols").flatMap { Int($0) } ?? 80
                    let rows = query.get("rows").flatMap { Int($0) } ?? 24
                    (sessionID, session) = try await sessions.open(manager, instance: instance, owner: owner, root: root,
                                                                   cols: UInt16(min(max(cols, 1), 1000)),
                                                                   rows: UInt16(min(max(rows, 1), 1000)))
                }
            } catch {
                guard let error = APIError(mapping: error) else { throw error }
                let code = error.status.code == 500 ? 4500 : 4000 + error.status.code
                try await outbound.close(.init(codeNumber: code), reason: error.code)
                return
            }
            guard let (replay, output, client) = session.attach() else {
                try await outbound.close(.init(codeNumber: 4404), reason: "no_such_terminal")
                return
            }
            defer {
                if let generation = session.detach(client) { sessions.armIdleTimer(session, generation: generation) }
            }
            try await outbound.write(.text(#"{"type":"session","id":"\#(sessionID)","replay":\#(replay.count)}"#))
            if !replay.isEmpty { try await outbound.write(.binary(ByteBuffer(bytes: replay))) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await item in output {
                        switch item {
                        case .data(let buffer):
                            try await outbound.write(.binary(buffer))
                        case .exit(let code):
                            try await outbound.write(.text(#"{"type":"exit","code":\#(code.map(String.init) ?? "null")}"#))
                            try await outbound.close(.normalClosure, reason: nil)
                            return
                        }
                    }
                }
                group.addTask {
                    for try await message in inbound.messages(maxSize: 64 << 10) {
                        switch message {
                        case .binary(let buffer):
                            guard session.write(buffer) else {
                                try await outbound.close(.init(codeNumber: 4429), reason: "input_overflow")
                                return
                            }
                        case .text(let text):
                            // Unknown or malformed control messages are ignored: newer clients may send more.
                            guard let control = try? JSONDecoder().decode(ControlMessage.self, from: Data(text.utf8)),
                                  control.type == "resize", let cols = control.cols, let rows = control.rows else { continue }
                            session.resize(cols: cols, rows: rows)
                        }
                    }
                }
                // Either side ending ends this attachment (not the session).
                try await group.next()
                group.cancelAll()
            }
        }
    }

    /// Every check, in the order the API's other routes make them: signed in, same-site
    /// origin, the instance visible to the user, root only for admins, a session only the
    /// user's own on this instance.
    private func admit(_ request: Request, _ context: AppContext) throws -> Admission {
        let user = try policy.signedIn(context.user)
        try OriginGuard.checkWebSocket(request, context)
        let id = try context.instanceID()
        let record = try policy.authorize(.operate, instance: id, by: user)
        let query = request.uri.queryParameters
        let asked = query.get("user") ?? "agent"
        guard asked == "agent" || asked == "root" else {
            throw APIError(status: .badRequest, code: "invalid_user", message: "user must be agent or root.")
        }
        let root = asked == "root"
        if root && user.role != .admin { throw AuthError.forbidden }
        if let sid = query.get("session") {
            // A session of another user, another instance or already ended does not exist
            // for this caller (404: session ids cannot be probed).
            guard let session = sessions.session(sid), session.instance == id, session.owner == user.id,
                  !session.root || user.role == .admin, !session.isEnded else {
                throw APIError(status: .notFound, code: "no_such_terminal", message: "No such terminal session.")
            }
            return .attach(id: sid, session)
        }
        guard record.state == .running else { throw InstanceError.notRunning }
        guard sessions.count(instance: id) < TerminalSessions.maxPerInstance else {
            throw APIError(status: .tooManyRequests, code: "too_many_terminals",
                           message: "This instance has \(TerminalSessions.maxPerInstance) terminals open.")
        }
        return .open(instance: id, owner: user.id, root: root)
    }
}
