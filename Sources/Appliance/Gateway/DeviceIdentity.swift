import COpenSSL
import Glibc

/// The appliance's one Ed25519 device identity towards every OpenClaw gateway: without a
/// signed device, a gateway lets the connection in but silently clears its scopes, and chat
/// then fails later with "missing scope". The key is `<data-dir>/device.key` (the raw 32-byte
/// seed, root-owned, 0600), made on first use; the same key for every instance, so each
/// gateway pairs it once (silently: the connection is direct loopback inside the instance).
struct DeviceIdentity: Sendable {
    enum Failure: Error, Equatable { case keyFile(String), cryptoUnavailable }

    private let seed: [UInt8]
    let publicKey: [UInt8]

    /// sha256(raw public key), lowercase hex: how OpenClaw names a device.
    var deviceID: String { SHA256.hex(publicKey) }
    /// The raw key, base64url without padding, as `device.publicKey` carries it.
    var publicKeyBase64URL: String { Base64URL.encode(publicKey) }

    init(seed: [UInt8]) throws {
        var pub = [UInt8](repeating: 0, count: 32)
        guard seed.count == 32, cossl_ed25519_public(seed, &pub) == 0 else { throw Failure.cryptoUnavailable }
        self.seed = seed
        self.publicKey = pub
    }

    /// Loads the key, making it on first use (a concurrent maker's key wins: link, not rename).
    init(keyFile path: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd >= 0 {
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0, st.st_size == 32, st.st_uid == geteuid(), st.st_mode & 0o077 == 0 else {
                throw Failure.keyFile("\(path) must be a 32-byte file owned by the daemon's user, mode 0600")
            }
            var seed = [UInt8](repeating: 0, count: 32)
            guard seed.withUnsafeMutableBytes({ read(fd, $0.baseAddress, 32) }) == 32 else { throw Failure.keyFile("\(path) could not be read") }
            try self.init(seed: seed)
            return
        }
        guard errno == ENOENT else { throw Failure.keyFile("\(path) could not be opened") }
        var seed = [UInt8](repeating: 0, count: 32), pub = [UInt8](repeating: 0, count: 32)
        guard cossl_ed25519_keygen(&seed, &pub) == 0 else { throw Failure.cryptoUnavailable }
        switch KeyFile.create(path, bytes: seed) {
        case .success(.ours): try self.init(seed: seed)
        case .success(.anothers): try self.init(keyFile: path)
        case .failure(let e): throw Failure.keyFile(e.message)
        }
    }

    /// The Ed25519 signature of `payload`, base64url without padding.
    func sign(_ payload: String) -> String? {
        var sig = [UInt8](repeating: 0, count: 64)
        let message = Array(payload.utf8)
        guard cossl_ed25519_sign(seed, message, message.count, &sig) == 0 else { return nil }
        return Base64URL.encode(sig)
    }

    /// What a device signs on connect, payload v3 (openclaw `device-auth.ts`): the fields joined
    /// by `|`; scopes in the order sent; the token exactly as sent in `auth.token`; platform and
    /// device family trimmed and ASCII-lowercased, absent ones empty.
    static func payloadV3(deviceID: String, clientID: String, clientMode: String, role: String, scopes: [String],
                          signedAtMs: Int64, token: String?, nonce: String, platform: String?, deviceFamily: String?) -> String {
        func normalised(_ value: String?) -> String {
            let trimmed = (value ?? "").trimmingASCIIWhitespace
            return String(String.UnicodeScalarView(trimmed.unicodeScalars.map { scalar in
                ("A"..."Z").contains(scalar) ? Unicode.Scalar(scalar.value + 32)! : scalar
            }))
        }
        return ["v3", deviceID, clientID, clientMode, role, scopes.joined(separator: ","), String(signedAtMs),
                token ?? "", nonce, normalised(platform), normalised(deviceFamily)].joined(separator: "|")
    }
}

private extension String {
    var trimmingASCIIWhitespace: Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return self[first...last]
    }
}
