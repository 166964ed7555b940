import Testing
@testable import Appliance

@Suite struct AgentConfigTests {
    static let config = AgentConfig(
        gatewayToken: "tok", proxyCredential: "cwp_x", model: "fake/m1", fallbacks: ["fake/m2"],
        providers: [.init(name: "fake", api: "openai-completions", models: ["m1", "m2"])])

    static func parse(_ text: String) throws -> ConfigJSON { try ConfigJSON.parse(Array(text.utf8)) }

    @Test func strictJSONRoundTripsWithOrderAndNumbersKept() throws {
        let text = #"{"z": 1, "a": [true, false, null, -0.5e+3], "m": {"k": "\u00e9\n\"", "b": {}}, "e": []}"#
        let v = try Self.parse(text)
        #expect(v.members.map(\.0) == ["z", "a", "m", "e"])
        #expect(try Self.parse(v.text) == v)
        #expect(v.text.contains("-0.5e+3"), "numbers keep their text")
        #expect(v["m"]?["k"] == .string("é\n\""))
        #expect(try Self.parse(#"{"s": "\ud83d\ude00"}"#)["s"] == .string("😀"))
    }

    @Test func json5AndBrokenInputAreRefused() {
        for bad in ["// c\n{}", "{a: 1}", #"{"a": 1,}"#, "[1,]", "{'a': 1}", #"{"a": 01}"#, "{} x", #"{"a": "\x"}"#, "", "NaN",
                    "{\"a\": \"tab\there\"}"] {
            #expect(throws: ConfigJSON.SyntaxError.self, "\(bad)") { try Self.parse(bad) }
        }
    }

    @Test func mergeKeepsForeignMembersInPlace() throws {
        let existing = try Self.parse(#"""
        {"meta": {"v": "1"}, "gateway": {"controlUi": {"enabled": false}, "port": 1, "auth": {"mode": "none"}},
         "agents": {"defaults": {"workspace": "~/w", "model": "old/x"}, "list": []},
         "models": {"mode": "merge", "providers": {"mine": {"baseUrl": "http://lan:1/v1"},
                    "gone": {"baseUrl": "http://127.0.0.1:8399/providers/gone"}}},
         "browser": {"headless": false}, "session": {"dmScope": "main"}}
        """#)
        let merged = Self.config.merged(into: existing)
        #expect(merged.members.map(\.0) == ["meta", "gateway", "agents", "models", "browser", "session", "tools"])
        #expect(merged["meta"] == existing["meta"] && merged["session"] == existing["session"])
        let gateway = try #require(merged["gateway"])
        #expect(gateway.members.map(\.0) == ["controlUi", "port", "auth", "mode", "bind"])
        #expect(gateway["port"] == .number("18789") && gateway["mode"] == .string("local") && gateway["bind"] == .string("loopback"))
        #expect(gateway["auth"] == .object([("mode", .string("token")), ("token", .string("tok"))]))
        let defaults = try #require(merged["agents"]?["defaults"])
        #expect(defaults["workspace"] == .string("~/w"))
        #expect(defaults["model"] == .object([("primary", .string("fake/m1")), ("fallbacks", .array([.string("fake/m2")]))]))
        let providers = try #require(merged["models"]?["providers"])
        #expect(providers.members.map(\.0) == ["mine", "fake"], "the user's provider stays, a deleted proxied one goes")
        #expect(providers["fake"]?["baseUrl"] == .string("http://127.0.0.1:8399/providers/fake"))
        #expect(providers["fake"]?["apiKey"] == .string("cwp_x"))
        #expect(merged["models"]?["mode"] == .string("merge"))
        #expect(merged["browser"]?.members.map(\.0) == ["headless", "enabled", "attachOnly", "defaultProfile", "profiles"])
        #expect(merged["browser"]?["profiles"]?["claworc"]?["cdpUrl"] == .string("http://127.0.0.1:9222"))
        #expect(merged["tools"]?["profile"] == .string("full"))
        // Idempotent: merging again changes nothing.
        #expect(Self.config.merged(into: merged) == merged)
        #expect(AgentConfig.changedSections(merged, Self.config.merged(into: merged)).isEmpty)
    }

    @Test func changedSectionsNameWhatMoved() throws {
        let a = Self.config.merged(into: nil)
        var other = Self.config
        other.model = "fake/m2"
        #expect(AgentConfig.changedSections(a, other.merged(into: a)) == ["agents"])
        other.model = nil
        let b = other.merged(into: a)
        #expect(b["agents"]?["defaults"]?["model"] == nil, "no model: Claworc's member is removed")
        #expect(AgentConfig.changedSections(nil, a) == a.members.map(\.0))
    }

    @Test func repeatedKeysCollapseIntoTheFirstPlace() throws {
        var v = try Self.parse(#"{"a": 1, "b": 2, "a": 3}"#)
        #expect(v["a"] == .number("3"))
        v.set("a", .number("4"))
        #expect(v.members.map(\.0) == ["a", "b"] && v["a"] == .number("4"))
        v.set("a", nil)
        #expect(v.members.map(\.0) == ["b"])
    }
}
