import COpenSSL
import Glibc

/// Secrets at rest (provider API keys): AES-256-GCM through the system OpenSSL, with a key
/// that lives in its own file (`<data-dir>/secrets.key`, 0600), never in the database: a copy
/// of the database alone reveals no key. Each sealed value is bound to what it is for (the
/// associated data, e.g. "provider:openai"), so a ciphertext moved to another row does not open.
struct SecretBox: Sendable {
    enum Failure: Error, Equatable { case keyFile(String), sealFailed, openFailed }

    private let key: [UInt8]

    /// Loads the key, making it on first use.
    init(keyFile path: String) throws {
        var key = [UInt8](repeating: 0, count: 32)
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd >= 0 {
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0, st.st_size == 32, st.st_uid == 0, st.st_mode & 0o077 == 0 else {
                throw Failure.keyFile("\(path) must be a 32-byte file owned by root, mode 0600")
            }
            guard key.withUnsafeMutableBytes({ read(fd, $0.baseAddress, 32) }) == 32 else { throw Failure.keyFile("\(path) could not be read") }
        } else {
            guard errno == ENOENT, cossl_random(&key, 32) == 0 else { throw Failure.keyFile("\(path) could not be opened") }
            let created: KeyFile.Created
            switch KeyFile.create(path, bytes: key) {
            case .success(let c): created = c
            case .failure(let e): throw Failure.keyFile(e.message)
            }
            if created == .anothers {
                self = try SecretBox(keyFile: path)
                return
            }
        }
        self.key = key
    }

    /// A secret derived from the key for one purpose, HMAC-SHA-256(key, purpose) in hex: the
    /// same on every start and stored nowhere. Per-instance credentials come from here
    /// ("gateway-token:<instance id>", "llm-proxy:<instance id>"); each is worthless outside
    /// its instance and tells nothing about the key or another instance's credential.
    func derived(for purpose: String) -> String {
        var out = [UInt8](repeating: 0, count: 32)
        let message = Array(purpose.utf8)
        precondition(cossl_hmac_sha256(key, key.count, message, message.count, &out) == 0, "HMAC-SHA-256 failed")
        return Hex.encode(out)
    }

    /// nonce ‖ ciphertext ‖ tag, hex.
    func seal(_ plaintext: String, for purpose: String) throws -> String {
        var nonce = [UInt8](repeating: 0, count: 12)
        guard cossl_random(&nonce, 12) == 0 else { throw Failure.sealFailed }
        let input = Array(plaintext.utf8), aad = Array(purpose.utf8)
        var output = [UInt8](repeating: 0, count: input.count)
        var tag = [UInt8](repeating: 0, count: 16)
        guard cossl_aes256gcm_seal(key, nonce, aad, aad.count, input, input.count, &output, &tag) == 0 else { throw Failure.sealFailed }
        return Hex.encode(nonce + output + tag)
    }

    func open(_ sealed: String, for purpose: String) throws -> String {
        guard let bytes = Hex.decode(sealed), bytes.count >= 28 else { throw Failure.openFailed }
        let nonce = Array(bytes[0..<12]), tag = Array(bytes[(bytes.count - 16)...]), body = Array(bytes[12..<(bytes.count - 16)])
        let aad = Array(purpose.utf8)
        var output = [UInt8](repeating: 0, count: body.count)
        guard cossl_aes256gcm_open(key, nonce, aad, aad.count, body, body.count, tag, &output) == 0 else { throw Failure.openFailed }
        return String(decoding: output, as: UTF8.self)
    }
}
