import COpenSSL
import Testing
@testable import Appliance

/// The gateway client's pure parts: WebSocket framing, the device signature, the run filter.
@Suite struct GatewayClientTests {
    init() { _ = cossl_load(nil, 0) }

    // MARK: framing

    @Test func masksClientFramesWithEachLengthForm() {
        let mask: [UInt8] = [1, 2, 3, 4]
        let small = WebSocketFrames.encode(.text, Array("hi".utf8), mask: mask)
        #expect(small == [0x81, 0x82, 1, 2, 3, 4, UInt8(ascii: "h") ^ 1, UInt8(ascii: "i") ^ 2])
        let medium = WebSocketFrames.encode(.binary, [UInt8](repeating: 0, count: 300), mask: mask)
        #expect(Array(medium[0..<4]) == [0x82, 0x80 | 126, 0x01, 0x2C] && medium.count == 4 + 4 + 300)
        let large = WebSocketFrames.encode(.binary, [UInt8](repeating: 0, count: 70_000), mask: mask)
        #expect(Array(large[0..<10]) == [0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70] && large.count == 10 + 4 + 70_000)
    }

    /// A server frame (unmasked) for the reader.
    private func serverFrame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true) -> [UInt8] {
        var out: [UInt8] = [(fin ? 0x80 : 0) | opcode]
        if payload.count < 126 { out.append(UInt8(payload.count)) }
        else if payload.count <= 0xFFFF { out += [126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)] }
        else { out.append(127); for s in stride(from: 56, through: 0, by: -8) { out.append(UInt8((payload.count >> s) & 0xFF)) } }
        return out + payload
    }

    @Test func readsFramesSplitAnywhereAndReassemblesFragments() throws {
        var bytes = serverFrame(1, Array("hel".utf8), fin: false)
        bytes += serverFrame(9, [7])                       // a ping between fragments
        bytes += serverFrame(0, Array("lo".utf8))
        bytes += serverFrame(1, [UInt8](repeating: 65, count: 200))
        bytes += serverFrame(1, [UInt8](repeating: 66, count: 70_000))
        bytes += serverFrame(8, [0x03, 0xF4] + Array("bye".utf8))
        var reader = WebSocketFrames.Reader(maxMessage: 1 << 20)
        var got: [WebSocketFrames.Message] = []
        for byte in bytes {                                 // one byte at a time: every boundary
            reader.feed([byte])
            while let message = try reader.next() { got.append(message) }
        }
        #expect(got == [.ping([7]), .text("hello"), .text(String(repeating: "A", count: 200)),
                        .text(String(repeating: "B", count: 70_000)), .close(code: 1012, reason: "bye")])
    }

    @Test func refusesMaskedOversizedAndBrokenFrames() {
        var masked = WebSocketFrames.Reader(maxMessage: 100)
        masked.feed([0x81, 0x81, 0, 0, 0, 0, 65])
        #expect(throws: WebSocketFrames.ProtocolError.self) { try masked.next() }
        var big = WebSocketFrames.Reader(maxMessage: 100)
        big.feed(serverFrame(1, [UInt8](repeating: 0, count: 101)))
        #expect(throws: WebSocketFrames.ProtocolError.self) { try big.next() }
        var orphan = WebSocketFrames.Reader(maxMessage: 100)
        orphan.feed(serverFrame(0, [1]))
        #expect(throws: WebSocketFrames.ProtocolError.self) { try orphan.next() }
        var notUTF8 = WebSocketFrames.Reader(maxMessage: 100)
        notUTF8.feed(serverFrame(1, [0xFF, 0xFE]))
        #expect(throws: WebSocketFrames.ProtocolError.self) { try notUTF8.next() }
    }

    @Test func upgradeNeedsA101ToWebSocketThatAcceptsOurKey() throws {
        // RFC 6455 §1.3's example.
        let key = "dGhlIHNhbXBsZSBub25jZQ=="
        #expect(WebSocketFrames.acceptValue(for: key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        func response(_ headers: String) -> [UInt8] {
            Array("HTTP/1.1 101 Switching Protocols\r\n\(headers)\r\n".utf8) + [0x81]
        }
        let ok = response("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")
        #expect(try WebSocketFrames.upgradeResponseEnd(ok, key: key) == ok.count - 1)
        #expect(try WebSocketFrames.upgradeResponseEnd(Array("HTTP/1.1 101 Switching".utf8), key: key) == nil)
        for bad in [Array("HTTP/1.1 404 Not Found\r\n\r\n".utf8),
                    response("Upgrade: websocket\r\nConnection: Upgrade\r\n"),
                    response("Upgrade: websocket\r\nSec-WebSocket-Accept: \(WebSocketFrames.acceptValue(for: "another key"))\r\n"),
                    response("Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")] {
            #expect(throws: WebSocketFrames.ProtocolError.self) { try WebSocketFrames.upgradeResponseEnd(bad, key: key) }
        }
        let request = String(decoding: WebSocketFrames.upgradeRequest(host: "127.0.0.1:18789", path: "/", key: "k"), as: UTF8.self)
        #expect(!request.lowercased().contains("forwarded") && !request.lowercased().contains("x-real-ip"))
    }

    // MARK: device signature

    @Test func signsAsRFC8032() throws {
        // RFC 8032 §7.1, test 1 (empty message).
        let device = try DeviceIdentity(seed: Hex.decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")!)
        #expect(Hex.encode(device.publicKey) == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        #expect(device.sign("").flatMap(Base64URL.decode).map(Hex.encode) ==
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
        #expect(device.deviceID == SHA256.hex(device.publicKey))
    }

    @Test func payloadV3IsTheFieldsInOpenClawsOrder() {
        let payload = DeviceIdentity.payloadV3(deviceID: "dev", clientID: "gateway-client", clientMode: "backend", role: "operator",
                                               scopes: ["operator.read", "operator.write"], signedAtMs: 1700000000123,
                                               token: "tok", nonce: "n1", platform: " Linux ", deviceFamily: nil)
        #expect(payload == "v3|dev|gateway-client|backend|operator|operator.read,operator.write|1700000000123|tok|n1|linux|")
    }

    @Test func connectParamsCarrySignatureOverExactlyWhatIsSent() throws {
        let device = try DeviceIdentity(seed: [UInt8](repeating: 7, count: 32))
        let params = try #require(GatewayConnect.params(token: "secret", device: device, nonce: "abc", ts: 42, version: "v"))
        let keys: Set<String> = ["minProtocol", "maxProtocol", "client", "role", "scopes", "caps", "auth", "device"]
        if case .object(let o) = params { #expect(Set(o.keys) == keys) } else { Issue.record("not an object") }
        #expect(params["minProtocol"]?.int == 3 && params["maxProtocol"]?.int == 4)
        let sent = try #require(params["device"]?["signature"]?.string.flatMap(Base64URL.decode))
        let payload = Array(DeviceIdentity.payloadV3(deviceID: device.deviceID, clientID: "gateway-client", clientMode: "backend",
                                                     role: "operator", scopes: params["scopes"]!.array!.map { $0.string! },
                                                     signedAtMs: 42, token: "secret", nonce: "abc", platform: "linux",
                                                     deviceFamily: nil).utf8)
        #expect(cossl_verify_signature(Int32(COSSL_COSE_EDDSA), device.publicKey, 32, nil, 0, payload, payload.count, sent, sent.count)
                == Int32(COSSL_SIG_VALID))
    }

    // MARK: run filter

    @Test func keepsOnlyOurRunsInTheirSessionAndDeduplicatesSnapshots() {
        var runs = ChatRuns()
        runs.start("r1", sessionKey: "agent:main:dash-u2")
        let key = "agent:main:dash-u2"
        func delta(_ run: String, _ session: String, _ text: String) -> JSONValue {
            ["runId": .string(run), "sessionKey": .string(session), "state": "delta",
             "message": ["role": "assistant", "content": [["type": "text", "text": .string(text)]]]]
        }
        #expect(runs.handle(event: "chat", payload: delta("other", key, "x")).isEmpty)
        #expect(runs.handle(event: "chat", payload: delta("r1", "agent:main:main", "x")).isEmpty)
        #expect(runs.handle(event: "chat", payload: delta("r1", key, "Hel")).map(\.1) == [.delta(runID: "r1", text: "Hel")])
        #expect(runs.handle(event: "chat", payload: delta("r1", key, "Hel")).isEmpty)
        let assistant: JSONValue = ["runId": "r1", "sessionKey": .string(key), "stream": "assistant", "data": ["text": "Hello", "delta": "lo"]]
        #expect(runs.handle(event: "agent", payload: assistant).map(\.1) == [.delta(runID: "r1", text: "Hello")])
        let unknown: JSONValue = ["runId": "r1", "sessionKey": .string(key), "stream": "plan", "data": [:]]
        #expect(runs.handle(event: "agent", payload: unknown).isEmpty)
        let final: JSONValue = ["runId": "r1", "sessionKey": .string(key), "state": "final"]
        #expect(runs.handle(event: "chat", payload: final).map(\.1) == [.final(runID: "r1", text: "Hello")])
        let end: JSONValue = ["runId": "r1", "sessionKey": .string(key), "stream": "lifecycle", "data": ["phase": "end"]]
        #expect(runs.handle(event: "agent", payload: end).isEmpty)
    }

    @Test func mainIsTheCanonicalMainSessionAndLifecycleEndsARun() {
        var runs = ChatRuns()
        runs.start("r", sessionKey: "main")
        let error: JSONValue = ["runId": "r", "sessionKey": "agent:main:main", "stream": "lifecycle", "data": ["phase": "error", "error": "boom"]]
        #expect(runs.handle(event: "agent", payload: error).map(\.0) == ["agent:main:main"])
        runs.start("v4", sessionKey: "agent:main:main")
        let piece: JSONValue = ["runId": "v4", "sessionKey": "main", "state": "delta", "deltaText": "ab"]
        let more: JSONValue = ["runId": "v4", "sessionKey": "main", "state": "delta", "deltaText": "cd"]
        #expect(runs.handle(event: "chat", payload: piece).map(\.1) == [.delta(runID: "v4", text: "ab")])
        #expect(runs.handle(event: "chat", payload: more).map(\.1) == [.delta(runID: "v4", text: "abcd")])
        #expect(runs.lost().map(\.1).count == 1)
    }
}
