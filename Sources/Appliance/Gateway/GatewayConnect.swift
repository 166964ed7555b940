/// The `connect` request and how its answer is read: the protocol range, the client's name,
/// the scopes, the signed device. Exactly the fields the gateway's closed schema knows
/// (`additionalProperties: false`: one unknown field and the connect is refused).
enum GatewayConnect {
    static let minProtocol: Int64 = 3
    static let maxProtocol: Int64 = 4
    /// Known to protocol 3 and 4 alike, and what the notes name for a server-side client on
    /// direct loopback: no newer id or mode an older gateway would refuse.
    static let clientID = "gateway-client"
    static let clientMode = "backend"
    static let platform = "linux"
    static let role = "operator"
    static let scopes = ["operator.read", "operator.write", "operator.admin", "operator.approvals"]

    /// The params of `connect`, signed over the challenge (`signedAt` is its `ts`).
    static func params(token: String, device: DeviceIdentity, nonce: String, ts: Int64, version: String) -> JSONValue? {
        let payload = DeviceIdentity.payloadV3(deviceID: device.deviceID, clientID: clientID, clientMode: clientMode, role: role,
                                               scopes: scopes, signedAtMs: ts, token: token, nonce: nonce,
                                               platform: platform, deviceFamily: nil)
        guard let signature = device.sign(payload) else { return nil }
        return [
            "minProtocol": .number(Double(minProtocol)), "maxProtocol": .number(Double(maxProtocol)),
            "client": ["id": .string(clientID), "version": .string(version), "platform": .string(platform), "mode": .string(clientMode)],
            "role": .string(role),
            "scopes": .array(scopes.map { .string($0) }),
            "caps": ["tool-events"],
            "auth": ["token": .string(token)],
            "device": ["id": .string(device.deviceID), "publicKey": .string(device.publicKeyBase64URL),
                       "signature": .string(signature), "signedAt": .number(Double(ts)), "nonce": .string(nonce)],
        ]
    }

    /// What hello-ok tells the link.
    struct Hello: Sendable, Equatable {
        var protocolVersion: Int64
        var tickIntervalMs: Int64
        var maxPayload: Int
        /// `snapshot.sessionDefaults`: "main" and "agent:main:main" by default.
        var mainKey: String
        var defaultAgentID: String
        var scopes: [String]

        init?(_ payload: JSONValue) {
            guard payload["type"]?.string == "hello-ok", let version = payload["protocol"]?.int else { return nil }
            protocolVersion = version
            tickIntervalMs = max(payload["policy"]?["tickIntervalMs"]?.int ?? 30_000, 50)
            maxPayload = Int(min(payload["policy"]?["maxPayload"]?.int ?? (25 << 20), 25 << 20))
            let defaults = payload["snapshot"]?["sessionDefaults"]
            mainKey = defaults?["mainKey"]?.string ?? "main"
            defaultAgentID = defaults?["defaultAgentId"]?.string ?? "main"
            scopes = payload["auth"]?["scopes"]?.array?.compactMap(\.string) ?? []
        }
    }

    /// How a refused connect is handled: retried (after `retryAfterMs` when the gateway names
    /// it), or final until the agent restarts (a wrong token or an unpaired device does not get
    /// better by asking again).
    enum Refusal: Equatable {
        case retry(afterMs: Int64?, reason: String)
        case fatal(String)
    }

    static func refusal(_ error: JSONValue?) -> Refusal {
        let code = error?["code"]?.string ?? "UNKNOWN"
        let detail = error?["details"]?["code"]?.string
        let reason = error?["details"]?["reason"]?.string
        let message = error?["message"]?.string ?? code
        if reason == "startup-sidecars" || code == "UNAVAILABLE" {
            return .retry(afterMs: error?["retryAfterMs"]?.int ?? error?["details"]?["retryAfterMs"]?.int, reason: "the agent is starting")
        }
        switch detail {
        case "AUTH_TOKEN_MISMATCH", "AUTH_TOKEN_MISSING":
            return .fatal("the agent's gateway refused the appliance's token (\(detail!)): restart the agent so it reads its configuration again")
        case "PAIRING_REQUIRED":
            return .fatal("the agent's gateway asks to pair the appliance's device: it should pair silently over loopback; check gateway.nodes.pairing")
        case "PROTOCOL_MISMATCH":
            return .fatal("the agent's gateway speaks a protocol outside 3–4: install a supported OpenClaw version")
        default:
            if let detail, detail.hasPrefix("DEVICE_AUTH") { return .fatal("the agent's gateway refused the device signature (\(detail))") }
            return .retry(afterMs: nil, reason: message)
        }
    }
}
