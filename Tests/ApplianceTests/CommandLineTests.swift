import Testing
@testable import Appliance

@Suite struct CommandLineTests {
    private func serve(_ words: String...) throws(UsageError) -> Serve {
        try Serve(arguments: words[...])
    }

    private func refusal(_ words: String...) -> String? {
        do { _ = try Serve(arguments: words[...]); return nil } catch { return error.message }
    }

    @Test func bothSpellingsOfAValue() throws {
        let a = try serve("--listen", "0.0.0.0:9000", "--data-dir=/srv/claworc")
        #expect(a.listen == "0.0.0.0:9000")
        #expect(a.dataDir == "/srv/claworc")
        #expect(a.defaultNetwork == "egress", "defaults stay when an option is absent")
        let twice = try serve("--unsafe-test-disable", "seccomp", "--unsafe-test-disable=seccomp")
        #expect(twice.unsafeTestDisable == ["seccomp", "seccomp"])
        let slot = try serve("--unsafe-test-first-slot", "65")
        #expect(slot.unsafeTestFirstSlot == 65)
    }

    @Test func mistakesAreRefusedNotIgnored() {
        #expect(refusal("--listne", "x:1") == "unknown option '--listne'")
        #expect(refusal("--listen") == "--listen needs a value")
        #expect(refusal("--listen", "a:1", "--listen", "b:2") == "--listen is given more than once")
        #expect(refusal("serve") == "unexpected argument 'serve'")
        #expect(refusal("--unsafe-test-first-slot", "ten") == "--unsafe-test-first-slot takes a whole number, not 'ten'")
        #expect(refusal("-") == "unexpected argument '-'")
    }

    @Test func configurationChecksValuesOnce() throws {
        #expect(throws: UsageError.self) { try Configuration(serve: try serve("--default-network", "wifi", "--data-dir", "/x")) }
        #expect(throws: UsageError.self) { try Configuration(serve: try serve("--listen", "nohost", "--data-dir", "/x")) }
        let c = try Configuration(serve: try serve("--listen", "[::1]:8443", "--data-dir", "/x", "--default-network", "none"))
        #expect(c.host == "::1" && c.port == 8443 && c.defaultNetwork == .none)
    }

    @Test func flagsTakeNoValue() throws {
        let o = try CommandOptions(["--egress", "--runs", "3"], valued: ["runs"], flags: ["egress"])
        let runs = try o.integer("runs")
        #expect(o.flag("egress") && runs == 3)
        #expect(throws: UsageError.self) { try CommandOptions(["--egress=yes"], valued: [], flags: ["egress"]) }
    }
}

@Suite struct HTTPSRedirectTests {
    @Test func onlyPlainHostsAreEchoed() {
        #expect(HTTPSRedirect.hostName("claworc.lan:8080") == "claworc.lan")
        #expect(HTTPSRedirect.hostName("192.0.2.10") == "192.0.2.10")
        #expect(HTTPSRedirect.hostName("[fd00::1]:80") == "[fd00::1]")
        for hostile in ["evil.example/<x>", "a b", "x\r\nSet-Cookie: y", "[::1", "[]", "", "host@other", "münchen.de"] {
            #expect(HTTPSRedirect.hostName(hostile) == nil, "\(hostile)")
        }
    }

    @Test func transportFollowsTheListenAddress() throws {
        func transport(_ words: String...) throws -> Configuration.Transport {
            try Configuration(serve: try Serve(arguments: (["--data-dir", "/x"] + words)[...])).transport
        }
        #expect(try transport("--listen", "127.0.0.1:8080") == .plain)
        #expect(try transport("--listen", "[::1]:8080") == .plain)
        #expect(try transport("--listen", "0.0.0.0:443") == .https(certificate: nil, key: nil))
        #expect(try transport("--listen", "0.0.0.0:80", "--tls", "off") == .plain)
        #expect(try transport("--listen", "127.0.0.1:8443", "--tls-cert", "c", "--tls-key", "k") == .https(certificate: "c", key: "k"))
    }
}
