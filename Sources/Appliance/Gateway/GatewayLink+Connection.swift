import FoundationEssentials
import Logging
import NIOCore
import Supervisor

/// The link's connection side: the attempts and their backoff, one connection's handshake and
/// frames, the watchdog that notices a silent gateway.
extension GatewayLink {
    // MARK: the connection loop

    func run() async {
        var failures = 0
        while !Task.isCancelled && !state.withLock({ $0.closed }) {
            // The agent is known to be down: only its next `ready` (a kick) is worth a try.
            if state.withLock({ $0.agentDown }) {
                await pause(nil)
                continue
            }
            state.withLock { $0.kicked = false }
            let outcome = await connectOnce()
            if Task.isCancelled || state.withLock({ $0.closed }) { break }
            let delayMs: Int64?
            switch outcome {
            case .wasReady:
                failures = 0
                delayMs = 250
            case .retry(let after, let why):
                if !state.withLock({ $0.agentDown }) { setStatus(.connecting(why)) }
                failures += 1
                // 0.5 s doubling to 30 s, as the reference client backs off.
                delayMs = after ?? min(500 << Int64(min(failures - 1, 6)), 30_000)
            case .fatal(let why):
                setStatus(.failed(why))
                logger.warning("agent gateway refused the appliance", metadata: ["instance": "\(instance)", "reason": "\(why)"])
                delayMs = nil
            }
            await pause(state.withLock { $0.agentDown } ? nil : delayMs)
        }
    }

    /// Sleeps `ms` (forever when nil) or until kicked.
    private func pause(_ ms: Int64?) async {
        let pauseID = state.withLock { s -> UInt64 in
            s.pauses += 1
            return s.pauses
        }
        // The timer ends only this pause, and never clears `agentDown` as a kick does.
        let timer = ms.map { ms in Task { [weak self] in
            guard (try? await Task.sleep(for: .milliseconds(ms))) != nil, let self else { return }
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                guard s.pauses == pauseID else { return nil }
                s.timerFired = pauseID
                defer { s.waiting = nil }
                return s.waiting
            }
            waiter?.resume()
        } }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.kicked || s.closed || s.timerFired == pauseID { return true }
                s.waiting = c
                return false
            }
            if now { c.resume() }
        }
        timer?.cancel()
    }

    private enum Outcome {
        case wasReady
        case retry(afterMs: Int64?, String)
        case fatal(String)
    }

    private func connectOnce() async -> Outcome {
        state.withLock { $0.attemptAt = .now }
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            let fd = try await dial()
            channel = try await FDRelay.socketChannel(fd)
            state.withLock { $0.dialledAt = .now }
        } catch {
            return .retry(afterMs: nil, "The agent's gateway is not reachable yet.")
        }
        let (outgoing, send) = AsyncStream<[UInt8]>.makeStream()
        state.withLock { s in
            s.channel = channel.channel
            s.send = send
            s.lastFrame = .now
        }
        let outcome: Outcome
        do {
            outcome = try await channel.executeThenClose { inbound, outbound in
                var session = Session(link: self)
                return await withTaskGroup(of: Outcome?.self) { group in
                    group.addTask {
                        // A failed write ends the writer; the reader sees the connection end.
                        do { for await bytes in outgoing { try await outbound.write(ByteBuffer(bytes: bytes)) } } catch {}
                        return nil
                    }
                    group.addTask { [self] in await watchdog(channel.channel) }
                    send.yield(WebSocketFrames.upgradeRequest(host: "127.0.0.1:\(ServiceCatalog.gatewayPort)", path: "/",
                                                              key: session.key))
                    let result = await session.read(inbound)
                    group.cancelAll()
                    send.finish()
                    return result
                }
            }
        } catch {
            outcome = state.withLock { $0.hello != nil } ? .wasReady : .retry(afterMs: nil, "The connection to the agent's gateway failed.")
        }
        let wasReady = state.withLock { $0.hello != nil }
        let (pending, lost) = state.withLock { s -> ([CheckedContinuation<JSONValue, any Error>], [(String, ChatUpdate)]) in
            s.channel = nil
            s.send = nil
            s.hello = nil
            let pending = Array(s.pending.values)
            s.pending = [:]
            return (pending, s.runs.lost())
        }
        for continuation in pending { continuation.resume(throwing: Failure.lost) }
        publish(lost)
        // A drop the agent's own stop or failure caused keeps the status that says so.
        if wasReady && !state.withLock({ $0.agentDown }) { setStatus(.connecting("The connection to the agent was lost; reconnecting.")) }
        return outcome
    }

    /// Closes a connection that went silent: before hello-ok for 10 s, after it for two tick
    /// intervals (the gateway ticks even when nothing else happens).
    private func watchdog(_ channel: any Channel) async -> Outcome? {
        while !Task.isCancelled {
            let (last, tick) = state.withLock { ($0.lastFrame, $0.hello?.tickIntervalMs) }
            let limit: Duration = tick.map { .milliseconds(2 * $0) } ?? .seconds(10)
            let left = limit - (ContinuousClock.now - last)
            if left <= .zero {
                logger.info("agent gateway went silent; reconnecting", metadata: ["instance": "\(instance)"])
                channel.close(promise: nil)
                return nil
            }
            // Before hello-ok, look again soon: the tick interval it names replaces the 10 s.
            do { try await Task.sleep(for: tick == nil ? min(left, .milliseconds(200)) : left) } catch { return nil }
        }
        return nil
    }

    /// One connection's reading side: the upgrade, the challenge, connect, then frames.
    private struct Session {
        let link: GatewayLink
        var wasReady = false
        var reader = WebSocketFrames.Reader(maxMessage: 64 << 10)
        var head: [UInt8] = []
        var upgraded = false
        var connectID: String?
        var closeCode: UInt16?
        /// This connection's Sec-WebSocket-Key; the upgrade must accept it.
        let key = WebSocketFrames.newKey()

        init(link: GatewayLink) { self.link = link }

        mutating func read(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>) async -> Outcome {
            do {
                for try await buffer in inbound {
                    link.state.withLock { $0.lastFrame = .now }
                    if !upgraded {
                        head += buffer.readableBytesView
                        guard let end = try WebSocketFrames.upgradeResponseEnd(head, key: key) else { continue }
                        upgraded = true
                        reader.feed(head[end...])
                        head = []
                    } else {
                        reader.feed(buffer.readableBytesView)
                    }
                    while let message = try reader.next() {
                        if let outcome = try handle(message) { return outcome }
                    }
                }
            } catch {
                link.logger.info("agent gateway connection broke", metadata: ["instance": "\(link.instance)", "error": "\(error)"])
            }
            if wasReady { return .wasReady }
            // 1013: still starting; anything else before hello-ok is worth another try.
            return .retry(afterMs: nil, closeCode == 1013 ? "The agent is starting." : "The agent's gateway closed the connection.")
        }

        /// A finished connection's outcome, or nil to read on.
        private mutating func handle(_ message: WebSocketFrames.Message) throws -> Outcome? {
            switch message {
            case .ping(let payload):
                _ = link.state.withLock { $0.send?.yield(WebSocketFrames.encode(.pong, payload)) }
                return nil
            case .pong, .binary:
                return nil
            case .close(let code, _):
                closeCode = code
                _ = link.state.withLock { $0.send?.yield(WebSocketFrames.closeFrame(code: code ?? 1000)) }
                if wasReady { return .wasReady }
                return .retry(afterMs: nil, code == 1013 ? "The agent is starting." : "The agent's gateway closed the connection.")
            case .text(let text):
                guard let frame = JSONValue.parse(text) else { return nil }
                return try handle(frame)
            }
        }

        private mutating func handle(_ frame: JSONValue) throws -> Outcome? {
            switch frame["type"]?.string {
            case "event":
                let name = frame["event"]?.string ?? ""
                let payload = frame["payload"] ?? .null
                if name == "connect.challenge", connectID == nil {
                    guard let nonce = payload["nonce"]?.string, let ts = payload["ts"]?.int,
                          let params = GatewayConnect.params(token: link.token, device: link.device, nonce: nonce, ts: ts,
                                                             version: GatewayLink.version) else {
                        return .fatal("The agent's gateway sent a malformed challenge.")
                    }
                    link.state.withLock { $0.challengedAt = .now }
                    let id = "connect-" + Hex.encode(Secrets.randomBytes(4))
                    connectID = id
                    let request: JSONValue = ["type": "req", "id": .string(id), "method": "connect", "params": params]
                    _ = link.state.withLock { s in
                        s.connectSentAt = .now
                        return s.send?.yield(WebSocketFrames.encode(.text, Array(request.text.utf8)))
                    }
                } else if name == "chat" || name == "agent" {
                    let updates = link.state.withLock { $0.runs.handle(event: name, payload: payload) }
                    link.publish(updates)
                }
                // tick, shutdown (its close follows), presence, health and events newer than us: the
                // frame itself kept the link alive.
                return nil
            case "res":
                let id = frame["id"]?.string ?? ""
                if id == connectID {
                    connectID = nil
                    guard frame["ok"]?.bool == true, let hello = GatewayConnect.Hello(frame["payload"] ?? .null) else {
                        switch GatewayConnect.refusal(frame["error"]) {
                        case .retry(let after, let why): return .retry(afterMs: after, why)
                        case .fatal(let why): return .fatal(why)
                        }
                    }
                    guard hello.scopes.contains("operator.write") || hello.scopes.contains("operator.admin") else {
                        return .fatal("The agent's gateway granted no write scope to the appliance's device.")
                    }
                    reader = WebSocketFrames.Reader(maxMessage: hello.maxPayload)
                    wasReady = true
                    let timings = link.state.withLock { s in
                        s.hello = hello
                        s.runs.mainKey = hello.mainKey
                        s.runs.agentID = hello.defaultAgentID
                        s.runs.protocolVersion = hello.protocolVersion
                        s.readyAt = .now
                        defer { s.agentReadyAt = nil }
                        return ConnectTimings(s, at: .now)
                    }
                    // Logged before anyone hears `ready`, so the line is there once a client is.
                    link.logger.info("agent gateway connected", metadata: timings.metadata(instance: link.instance, protocol: hello.protocolVersion))
                    // Every listener hears `ready` (the status was `connecting` meanwhile) and
                    // re-fetches the history: events missed while away are not replayed.
                    link.setStatus(.ready)
                    return nil
                }
                let continuation = link.state.withLock { $0.pending.removeValue(forKey: id) }
                if frame["ok"]?.bool == true {
                    continuation?.resume(returning: frame["payload"] ?? .null)
                } else {
                    let error = frame["error"]
                    continuation?.resume(throwing: Failure.refused(code: error?["code"]?.string ?? "UNKNOWN",
                                                                   message: error?["message"]?.string ?? "The agent refused the request."))
                }
                return nil
            default:
                return nil
            }
        }
    }
}

/// How long one connection took to become usable, phase by phase, and since the agent's `ready`.
private struct ConnectTimings {
    var sinceAgentReady: Duration?
    var handshake, dial, challenge, connectSent: Duration

    init(_ s: GatewayLink.State, at now: ContinuousClock.Instant) {
        sinceAgentReady = s.agentReadyAt.map { now - $0 }
        handshake = now - s.attemptAt
        dial = s.dialledAt - s.attemptAt
        challenge = s.challengedAt - s.attemptAt
        connectSent = s.connectSentAt - s.attemptAt
    }

    func metadata(instance: Int64, protocol version: Int64) -> Logger.Metadata {
        func micros(_ d: Duration) -> Logger.MetadataValue {
            "\(d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000)"
        }
        var metadata: Logger.Metadata = ["instance": "\(instance)", "protocol": "\(version)", "handshake_us": micros(handshake),
                                         "dial_us": micros(dial), "challenge_us": micros(challenge), "connect_sent_us": micros(connectSent)]
        if let sinceAgentReady { metadata["since_agent_ready_us"] = micros(sinceAgentReady) }
        return metadata
    }
}
