import FoundationEssentials
import Testing
@testable import Supervisor

/// The init writes and reads the control protocol's JSON by hand; the daemon uses Codable.
/// These pin the two to the same shapes, both directions, including the awkward strings.
@Suite struct InitWireTests {
    static let awkward = ["plain", "", "quote \" and backslash \\", "line\nfeed\r\ttab", "nul \u{0} bell \u{7} esc \u{1b} us \u{1f}",
                          "slash / ok", "ünïcödé ✓", "emoji 🐙 astral", "del \u{7f}"]

    @Test func responsesDecodeWithJSONDecoder() throws {
        let services = [
            ServiceStatus(name: "xvfb", state: "ready", pid: 2, restarts: 0, lastExit: nil, error: nil, reason: nil, oomKills: 0, startedAt: 1_764_680_000_000),
            ServiceStatus(name: "chromium", state: "backoff", pid: nil, restarts: 3, lastExit: "signal 9", error: "not ready \"after\" 30 s", reason: "waiting for \"xvfb\""),
        ]
        for text in Self.awkward {
            let run = RunResult(exitCode: 3, signal: nil, output: text, truncated: true, timedOut: false)
            let original = ControlResponse(id: 42, ok: false, error: text, services: services, run: run)
            let decoded = try JSONDecoder().decode(ControlResponse.self, from: Data(InitWire.encode(original)))
            #expect(decoded.id == 42 && decoded.ok == false && decoded.error == text)
            #expect(decoded.services == services)
            #expect(decoded.run == run)
        }
        let killed = RunResult(exitCode: nil, signal: 9, output: "", truncated: false, timedOut: true)
        let decoded = try JSONDecoder().decode(ControlResponse.self, from: Data(InitWire.encode(ControlResponse(id: 7, ok: true, run: killed))))
        #expect(decoded.run == killed && decoded.services == nil && decoded.error == nil)
    }

    @Test func helloIsCompactJSON() {
        let hello = String(decoding: InitWire.encode(ControlResponse(id: 0, ok: true, services: [], version: "1.2")), as: UTF8.self)
        #expect(hello == #"{"id":0,"ok":true,"version":"1.2","services":[]}"#)
    }

    @Test func helloVersionAndServicesEventDecodeWithJSONDecoder() throws {
        let services = [ServiceStatus(name: "vnc", state: "backoff", pid: nil, restarts: 2, lastExit: "exit 1", error: nil)]
        let hello = ControlResponse(id: 0, ok: true, services: services, version: ControlCodec.protocolVersion)
        #expect(String(decoding: InitWire.encode(hello), as: UTF8.self).hasPrefix(#"{"id":0,"ok":true,"version":"\#(ControlCodec.protocolVersion)","services":["#))
        let decodedHello = try JSONDecoder().decode(ControlResponse.self, from: Data(InitWire.encode(hello)))
        #expect(decodedHello.version == ControlCodec.protocolVersion && decodedHello.event == nil && decodedHello.services == services)
        let event = ControlResponse(id: 0, ok: true, services: services, event: "services")
        let decoded = try JSONDecoder().decode(ControlResponse.self, from: Data(InitWire.encode(event)))
        #expect(decoded.id == 0 && decoded.event == "services" && decoded.version == nil && decoded.services == services)
    }

    @Test func requestsFromJSONEncoderDecode() throws {
        let requests = [
            ControlRequest(id: 1, call: .status),
            ControlRequest(id: 2, call: .connect(port: 5900)),
            ControlRequest(id: UInt64(Int64.max), call: .shutdown),
            ControlRequest(id: 3, call: .restartService("chromium")),
            ControlRequest(id: 4, call: .openTerminal(user: .root, cols: 132, rows: 43, tag: "v1 3 root \u{e9}\"\\")),
            ControlRequest(id: 5, call: .listen(port: 8399)),
            ControlRequest(id: 6, call: .terminals),
            ControlRequest(id: 7, call: .adoptTerminal(12)),
            ControlRequest(id: 8, call: .closeTerminal(UInt64(Int64.max))),
        ] + Self.awkward.enumerated().map { i, text in
            ControlRequest(id: UInt64(10 + i), call: .run(argv: ["sh", "-c", text, ""], user: i % 2 == 0 ? .agent : .root, timeoutMs: 29_000))
        }
        for original in requests {
            let bytes = try Array(JSONEncoder().encode(original))
            #expect(InitWire.decodeRequest(bytes[...]) == .call(original))
        }
    }

    @Test func everyTypedMessageRoundTripsThroughTheWire() throws {
        let services = [ServiceStatus(name: "agent", state: "failed", pid: nil, restarts: 5, lastExit: "exit 78", error: nil)]
        let run = RunResult(exitCode: 0, signal: nil, output: "ok", truncated: false, timedOut: false)
        let replies: [(ControlCall.Op, ControlReply)] = [
            (.status, .services(services)), (.restartService, .services([])), (.connect, .done), (.shutdown, .done),
            (.run, .ran(run)), (.openTerminal, .terminal(9)), (.connect, .failed("connect to port 1: refused")),
            (.adoptTerminal, .terminal(9)), (.closeTerminal, .done), (.terminals, .terminals([])),
            (.terminals, .terminals([TerminalEntry(id: 1, tag: ""), TerminalEntry(id: 7, tag: "v1 2 agent \"\n\u{1}")])),
        ]
        for (op, reply) in replies {
            let record = try JSONDecoder().decode(ControlResponse.self, from: Data(InitWire.encode(InitMessage.reply(id: 4, reply))))
            #expect(record.id == 4 && ControlReply(wire: record, for: op) == reply)
        }
        for event in [ControlEvent.services(services), .terminalExit(terminal: 3, code: 130)] {
            let record = try JSONDecoder().decode(ControlResponse.self, from: Data(InitWire.encode(InitMessage.event(event))))
            #expect(record.id == 0 && ControlEvent(wire: record) == event)
        }
        // A reply that does not fit its request is no reply of that kind.
        #expect(ControlReply(wire: ControlResponse(id: 4, ok: true), for: .status) == nil)
        #expect(ControlReply(wire: ControlResponse(id: 4, ok: true), for: .openTerminal) == nil)
        #expect(ControlReply(wire: ControlResponse(id: 4, ok: true), for: .run) == nil)
        #expect(ControlReply(wire: ControlResponse(id: 4, ok: true), for: .terminals) == nil)
        #expect(ControlReply(wire: ControlResponse(id: 4, ok: true), for: .adoptTerminal) == nil)
    }

    @Test func terminalRepliesAndEventsDecodeWithJSONDecoder() throws {
        for original in [ControlResponse(id: 5, ok: true, terminal: 3),
                         ControlResponse(id: 0, ok: true, event: "terminalExit", terminal: 3, code: 130),
                         ControlResponse(id: 0, ok: true, services: [], version: ControlCodec.protocolVersion)] {
            let decoded = try JSONDecoder().decode(ControlResponse.self, from: Data(InitWire.encode(original)))
            #expect(decoded.id == original.id && decoded.terminal == original.terminal && decoded.code == original.code)
            #expect(decoded.event == original.event && decoded.version == original.version)
        }
    }

    @Test func requestsWithEscapesNullsAndUnknownMembers() throws {
        let text = #"  { "op" : "run", "future": {"a": [1, 2.5e3, true, null, "x"]}, "id": 9, "port": null,"#
            + #" "argv": ["\u00e9\ud83d\ude00\/\b\f\n\r\t\"\\"], "user": null, "timeoutMs": 100 } "#
        #expect(InitWire.decodeRequest(Array(text.utf8)[...])
                == .call(ControlRequest(id: 9, call: .run(argv: ["é😀/\u{8}\u{c}\n\r\t\"\\"], user: .agent, timeoutMs: 100))))
    }

    @Test func wellFormedRequestsThatMakeNoCallAreRefusedByID() {
        let refused: [(String, String)] = [
            (#"{"id":1,"op":"reboot"}"#, #"unknown op "reboot""#),
            (#"{"id":2,"op":"connect"}"#, "invalid port"),
            (#"{"id":3,"op":"connect","port":65536}"#, "invalid port"),
            (#"{"id":4,"op":"run","argv":[]}"#, "run needs a command"),
            (#"{"id":5,"op":"run","argv":["ls"],"user":"nobody"}"#, "user must be agent or root"),
            (#"{"id":6,"op":"run","argv":["ls"],"timeoutMs":0}"#, "invalid timeoutMs"),
            (#"{"id":7,"op":"restartService"}"#, "restartService needs a service"),
            (#"{"id":8,"op":"openTerminal","cols":0}"#, "invalid terminal size"),
            (#"{"id":9,"op":"openTerminal","user":"guest"}"#, "user must be agent or root"),
            (#"{"id":10,"op":"openTerminal","tag":"\#(String(repeating: "x", count: 257))"}"#, "terminal tag too long"),
            (#"{"id":11,"op":"adoptTerminal"}"#, "invalid terminal"),
            (#"{"id":12,"op":"closeTerminal","terminal":0}"#, "invalid terminal"),
        ]
        for (i, (text, reason)) in refused.enumerated() {
            #expect(InitWire.decodeRequest(Array(text.utf8)[...]) == .refused(id: UInt64(i + 1), ControlRefusal(reason)), "\(text)")
        }
    }

    @Test func malformedRequestsAreRejected() {
        let bad = [
            "", "null", "[]", #"{"id":1}"#, #"{"op":"status"}"#, #"{"id":0,"op":"status"}"#,
            #"{"id":-1,"op":"status"}"#, #"{"id":1.5,"op":"status"}"#, #"{"id":1,"op":"status"} trailing"#,
            #"{"id":1,"op":"status","argv":["a",1]}"#, #"{"id":1,"op":"status""#, #"{"id":1,,"op":"status"}"#,
            "{\"id\":1,\"op\":\"status\",\"user\":\"raw\ncontrol\"}", #"{"id":1,"op":"status","user":"\ud800"}"#,
            #"{"id":1,"op":"status","user":"\x41"}"#, #"{"id":99999999999999999999999,"op":"status"}"#,
        ]
        for text in bad { #expect(InitWire.decodeRequest(Array(text.utf8)[...]) == .malformed, "accepted: \(text)") }
        // Invalid UTF-8 inside a string.
        #expect(InitWire.decodeRequest(Array(#"{"id":1,"op":"status","user":""#.utf8)[...] + [0xFF, 0x22, 0x7D]) == .malformed)
    }
}
