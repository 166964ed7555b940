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

    @Test func aKeyFileOthersCanReadIsRefused() throws {
        let dir = TempDir()
        _ = try SecretBox(keyFile: dir.path + "/k")
        chmod(dir.path + "/k", 0o644)
        #expect(throws: SecretBox.Failure.self) { try SecretBox(keyFile: dir.path + "/k") }
    }
}
