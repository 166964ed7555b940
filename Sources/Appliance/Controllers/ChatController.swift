import FoundationEssentials
import Hummingbird
import HummingbirdWebSocket
import NIOCore

/// `GET /api/v1/instances/{id}/chat`: the browser's chat with the instance's agent, as JSON text
/// messages of our own (docs/chat.md). The daemon speaks OpenClaw's protocol on the browser's
/// behalf over the instance's one gateway link (`GatewayLinks`): the browser never sees the
/// gateway token, and every socket of every user shares that link, each on its session key.
/// Refusals are close codes before anything is opened, as on the terminal: 4401, 4403 foreign
/// origin, 4404 an instance the user may not see, 4409 not running.
struct ChatController {
    let policy: AccessPolicy
    let layers: SettingsLayers
    let links: GatewayLinks

    private struct ClientMessage: Decodable {
        var type: String
        var text: String?
    }

    /// The most a browser may send as one message (the gateway's own limit is far higher).
    static let maxMessageBytes = 256 << 10

    func addRoutes(to router: Router<AppContext>) {
        router.ws("/api/v1/instances/:id/chat") { inbound, outbound, wsContext in
            let instance: Int64
            let sessionKey: String
            do {
                let context = wsContext.requestContext
                let user = try policy.signedIn(context.user)
                try OriginGuard.checkWebSocket(wsContext.request, context)
                instance = try context.instanceID()
                let record = try policy.authorize(.operate, instance: instance, by: user)
                guard record.state == .running else { throw InstanceError.notRunning }
                sessionKey = Self.sessionKey(user: user.id, shared: layers.effective(record).chatShared ?? false)
            } catch {
                guard let error = APIError(mapping: error) else { throw error }
                let code = error.status.code == 500 ? 4500 : 4000 + error.status.code
                try await outbound.close(.init(codeNumber: code), reason: error.code)
                return
            }
            let link = await links.link(instance)
            let (updates, stopListening) = link.listen(sessionKey: sessionKey)
            defer { stopListening() }
            // One writer: updates, answers and history all leave through this queue.
            let (queue, enqueue) = AsyncStream<JSONValue>.makeStream()
            let chat = ChatSocket(link: link, sessionKey: sessionKey, send: { enqueue.yield($0) })
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await message in queue { try await outbound.write(.text(message.text)) }
                }
                group.addTask {
                    for await update in updates { await chat.forward(update) }
                    enqueue.finish()
                }
                group.addTask {
                    for try await message in inbound.messages(maxSize: Self.maxMessageBytes) {
                        guard case .text(let text) = message else { continue }
                        // Unknown or malformed messages are ignored: newer dashboards may send more.
                        guard let parsed = try? JSONDecoder().decode(ClientMessage.self, from: Data(text.utf8)) else { continue }
                        await chat.handle(parsed.type, text: parsed.text)
                    }
                }
                try await group.next()
                group.cancelAll()
            }
        }
    }

    /// Each user's own conversation by default; with `chat_shared` the agent's main session.
    static func sessionKey(user: Int64, shared: Bool) -> String {
        shared ? "agent:main:main" : "agent:main:dash-u\(user)"
    }
}

/// One browser socket's side of the chat: what it asks for, turned into gateway requests, and
/// the link's updates for its session, with the history fetched when it may have changed
/// unseen (on open, after a reconnect, after a run ends: a final may carry no text).
private struct ChatSocket: Sendable {
    let link: GatewayLink
    let sessionKey: String
    let send: @Sendable (JSONValue) -> Void

    func forward(_ update: ChatUpdate) async {
        switch update {
        case .resync:
            await sendHistory()
        case .status(let agent, _):
            send(update.json)
            if agent == "ready" { await sendHistory() }
        case .final, .error:
            send(update.json)
            await sendHistory()
        case .aborted:
            // No history now: the gateway saves an aborted run's partial text after telling us.
            send(update.json)
        default:
            send(update.json)
        }
    }

    func handle(_ type: String, text: String?) async {
        do {
            switch type {
            case "send":
                guard let text, !text.isEmpty else {
                    send(["type": "error", "runId": .null, "message": "Nothing to send."])
                    return
                }
                let runID = try await link.send(sessionKey: sessionKey, text: text)
                send(["type": "started", "runId": .string(runID)])
            case "abort":
                try await link.abort(sessionKey: sessionKey, runID: nil)
            case "reset":
                try await link.reset(sessionKey: sessionKey)
                await sendHistory()
            case "history":
                await sendHistory()
            default:
                break
            }
        } catch {
            send(["type": "error", "runId": .null, "message": .string(Self.explain(error))])
        }
    }

    private func sendHistory() async {
        do {
            let messages = try await link.history(sessionKey: sessionKey)
            send(["type": "history", "messages": messages])
        } catch GatewayLink.Failure.notReady {
            // The status message already says why; the history follows once the link is up.
        } catch {
            send(["type": "error", "runId": .null, "message": .string(Self.explain(error))])
        }
    }

    static func explain(_ error: any Error) -> String {
        switch error {
        case GatewayLink.Failure.notReady(let why): return "The agent is not ready: \(why)"
        case GatewayLink.Failure.refused(_, let message): return "The agent refused: \(message)"
        case GatewayLink.Failure.lost: return "The connection to the agent was lost."
        case GatewayLink.Failure.timedOut: return "The agent did not answer in time."
        default: return "The request to the agent failed."
        }
    }
}
