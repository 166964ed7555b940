import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOPosix
import Supervisor
import Glibc

/// `GET /api/v1/instances/{id}/vnc`: a WebSocket carrying the raw RFB stream of the
/// instance's VNC server. The TCP connection to it is made by the instance's init inside its
/// network namespace and passed to us as a descriptor; no port exists on the host.
/// What the browser sends passes through `RFBInputFilter`: input reaches the instance only
/// from a session that holds control (`ControlRegistry`); everyone else watches.
struct VNCController {
    let policy: AccessPolicy
    let manager: InstanceManager
    let control: ControlRegistry

    func addRoutes(to router: Router<AppContext>) {
        // Browsers never show a script the HTTP status of a refused handshake, so every
        // request is upgraded and refusals are close codes the dashboard can explain:
        // 4401 not logged in, 4403 foreign origin, 4404 no such instance, 4409 not running,
        // 4503 the VNC server inside is not reachable; later, 4400 for a client message the
        // input filter does not know. No byte of the instance flows before
        // the checks pass.
        router.ws("/api/v1/instances/:id/vnc") { inbound, outbound, wsContext in
            let fd: Int32
            let id: Int64
            let session: String
            do {
                let context = wsContext.requestContext
                let user = try policy.signedIn(context.user)
                guard let sessionID = context.session else { throw AuthError.unauthorized }
                session = sessionID
                try OriginGuard.checkWebSocket(wsContext.request, context)
                id = try context.instanceID()
                let record = try policy.authorize(.operate, instance: id, by: user)
                guard record.state == .running else { throw InstanceError.notRunning }
                fd = try await manager.connect(id, port: ServiceCatalog.vncPort)
            } catch {
                // The statuses the API would answer, as close codes; anything else is not ours to explain.
                guard let error = APIError(mapping: error) else { throw error }
                let code = error.status.code == 500 ? 4500 : 4000 + error.status.code
                try await outbound.close(.init(codeNumber: code), reason: error.code)
                return
            }
            let backend: NIOAsyncChannel<ByteBuffer, ByteBuffer>
            do { backend = try await FDRelay.socketChannel(fd) } catch {
                try await outbound.close(.init(codeNumber: 4503), reason: "service_unavailable")
                return
            }
            // Counted from here, where the screen is really being watched, to the end.
            let registry = control
            registry.connected(id, session: session)
            defer { registry.disconnected(id, session: session) }
            try await backend.executeThenClose { fromVNC, toVNC in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        var filter = RFBInputFilter()
                        for try await frame in inbound where frame.opcode == .binary || frame.opcode == .continuation {
                            // Asked per frame: taking or losing control applies to the open connection.
                            let forward: [UInt8]
                            do {
                                forward = try filter.feed(frame.data.readableBytesView, control: registry.holds(session, id))
                            } catch {
                                // Lost track of the client's messages: end the session rather than guess.
                                try? await outbound.close(.init(codeNumber: 4400), reason: "rfb_protocol")
                                return
                            }
                            if !forward.isEmpty { try await toVNC.write(ByteBuffer(bytes: forward)) }
                        }
                    }
                    group.addTask {
                        for try await buffer in fromVNC { try await outbound.write(.binary(buffer)) }
                    }
                    // Either side ending ends the session.
                    try await group.next()
                    group.cancelAll()
                }
            }
        }
    }
}
