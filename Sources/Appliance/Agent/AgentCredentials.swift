/// The two secrets an instance's agent holds, both derived from `<data-dir>/secrets.key` and
/// stored nowhere: the gateway token (the daemon's gateway client presents it; the browser never
/// sees it) and the key proxy credential (OpenClaw presents it instead of a provider key). Each
/// is worthless outside its instance: the gateway listens only on the instance's loopback, and
/// the proxy accepts a credential only on the listener of the instance it was made for.
struct AgentCredentials: Sendable {
    let secrets: SecretBox

    func gatewayToken(instance id: String) -> String { secrets.derived(for: "gateway-token:\(id)") }
    func proxyCredential(instance id: String) -> String { "cwp_" + secrets.derived(for: "llm-proxy:\(id)") }
}
