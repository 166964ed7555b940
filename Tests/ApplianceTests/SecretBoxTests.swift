import COpenSSL
import Glibc
import Testing
@testable import Appliance

@Suite struct SecretBoxTests {
    @Test func sealedValuesOpenOnlyForTheirPurposeAndUnchanged() throws {
        let dir = TempDir()
        let box = try SecretBox(keyFile: dir.path + "/secrets.key")
        let sealed = try box.seal("sk-live-123", for: "provider:a")
        #expect(!sealed.contains("sk-live"))
        #expect(try box.open(sealed, for: "provider:a") == "sk-live-123")
        #expect(throws: SecretBox.Failure.openFailed, "moved to another row") { try box.open(sealed, for: "provider:b") }
        var tampered = Array(sealed)
        tampered[30] = tampered[30] == "0" ? "1" : "0"
        #expect(throws: SecretBox.Failure.openFailed) { try box.open(String(tampered), for: "provider:a") }
        #expect(try box.seal("sk-live-123", for: "provider:a") != sealed, "a fresh nonce each time")
        // The same key file opens it again; another key file does not.
        #expect(try SecretBox(keyFile: dir.path + "/secrets.key").open(sealed, for: "provider:a") == "sk-live-123")
        #expect(throws: SecretBox.Failure.openFailed) { try SecretBox(keyFile: dir.path + "/other.key").open(sealed, for: "provider:a") }
    }

    @Test func derivedSecretsAreStablePerPurposeAndKey() throws {
        let dir = TempDir()
        let box = try SecretBox(keyFile: dir.path + "/secrets.key")
        let token = box.derived(for: "gateway-token:a1")
        #expect(token.count == 64)
        #expect(try SecretBox(keyFile: dir.path + "/secrets.key").derived(for: "gateway-token:a1") == token, "same key file, same value")
        #expect(box.derived(for: "gateway-token:a2") != token)
        #expect(box.derived(for: "llm-proxy:a1") != token)
        #expect(try SecretBox(keyFile: dir.path + "/other.key").derived(for: "gateway-token:a1") != token)
        // RFC 4231 test case 2 pins the construction: HMAC-SHA-256("Jefe", "what do ya want for nothing?").
        var out = [UInt8](repeating: 0, count: 32)
        let key = Array("Jefe".utf8), msg = Array("what do ya want for nothing?".utf8)
        #expect(cossl_hmac_sha256(key, key.count, msg, msg.count, &out) == 0)
        #expect(Hex.encode(out) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func aKeyFileOthersCanReadIsRefused() throws {
        let dir = TempDir()
        _ = try SecretBox(keyFile: dir.path + "/k")
        chmod(dir.path + "/k", 0o644)
        #expect(throws: SecretBox.Failure.self) { try SecretBox(keyFile: dir.path + "/k") }
    }
}
