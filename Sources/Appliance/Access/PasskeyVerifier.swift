import COpenSSL
import FoundationEssentials

/// Why a passkey ceremony is refused (mapped to statuses in HTTP/ErrorMapping.swift).
enum PasskeyError: Error, Equatable, Sendable {
    /// The credential JSON or one of its parts cannot be read.
    case malformed(String)
    /// No such challenge pending: never issued, already used, or from before a restart.
    case challengeUnknown
    case challengeExpired
    /// The challenge was issued to another session (or pre-login cookie) or for the other ceremony.
    case challengeNotYours
    case wrongCeremony
    case originMismatch(expected: String, got: String)
    case rpIDMismatch
    case userNotPresent
    case unsupportedAlgorithm
    case unsupportedAttestation(String)
    case unknownCredential
    case badSignature
    /// A counter the authenticator keeps went backwards or stood still: a cloned key, or a replay.
    case signCountNotIncreased
    case credentialExists
    case tooManyPasskeys
    case notFound
    case invalidName
    /// The request reached the appliance by an IP address, which cannot be an RP ID.
    case needsHostName
    /// Too many ceremonies pending at once (the in-memory store is bounded).
    case busy
}

/// COSE algorithms accepted, in the order offered to browsers.
enum COSEAlgorithm: Int64, CaseIterable, Sendable {
    case es256 = -7
    case edDSA = -8
    case rs256 = -257
}

/// A credential public key, decoded from its COSE_Key (RFC 9053). The stored form is the
/// COSE bytes as the authenticator sent them.
struct COSEPublicKey: Equatable, Sendable {
    var algorithm: COSEAlgorithm
    /// ES256: x and y; EdDSA: x (and b empty); RS256: n and e.
    var a: [UInt8]
    var b: [UInt8]

    init(cbor key: CBOR) throws(PasskeyError) {
        guard let kty = key[int: 1]?.int, let alg = key[int: 3]?.int else { throw .malformed("the COSE key lacks kty or alg") }
        guard let algorithm = COSEAlgorithm(rawValue: alg) else { throw .unsupportedAlgorithm }
        self.algorithm = algorithm
        func bytes(_ label: Int64) throws(PasskeyError) -> [UInt8] {
            guard case .bytes(let value)? = key[int: label] else { throw .malformed("the COSE key lacks parameter \(label)") }
            return value
        }
        switch algorithm {
        case .es256:
            // EC2 on P-256.
            guard kty == 2, key[int: -1]?.int == 1 else { throw .unsupportedAlgorithm }
            (a, b) = (try bytes(-2), try bytes(-3))
            guard a.count == 32, b.count == 32 else { throw .malformed("the P-256 key's coordinates are not 32 bytes") }
        case .edDSA:
            // OKP on Ed25519.
            guard kty == 1, key[int: -1]?.int == 6 else { throw .unsupportedAlgorithm }
            (a, b) = (try bytes(-2), [])
            guard a.count == 32 else { throw .malformed("the Ed25519 key is not 32 bytes") }
        case .rs256:
            guard kty == 3 else { throw .unsupportedAlgorithm }
            (a, b) = (try bytes(-1), try bytes(-2))
        }
    }

    init(coseBytes: [UInt8]) throws(PasskeyError) {
        let key: CBOR
        do { key = try CBOR.decode(coseBytes) } catch { throw .malformed("the COSE key: \(error.message)") }
        try self.init(cbor: key)
    }

    /// True for a valid signature; a key OpenSSL cannot build (a point off the curve, a short
    /// RSA modulus) is refused as unsupported.
    func verify(signature: [UInt8], over message: [UInt8]) throws(PasskeyError) -> Bool {
        let result = a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                message.withUnsafeBufferPointer { m in
                    signature.withUnsafeBufferPointer { s in
                        cossl_verify_signature(Int32(algorithm.rawValue), a.baseAddress, a.count, b.baseAddress, b.count,
                                               m.baseAddress, m.count, s.baseAddress, s.count)
                    }
                }
            }
        }
        guard result != COSSL_SIG_BAD_KEY else { throw .unsupportedAlgorithm }
        return result == COSSL_SIG_VALID
    }
}

/// authenticatorData (WebAuthn §6.1): rpIdHash, flags, counter, and on registration the
/// attested credential (AAGUID, id, COSE key).
struct AuthenticatorData: Sendable {
    static let userPresent: UInt8 = 0x01
    static let userVerified: UInt8 = 0x04
    static let attestedCredential: UInt8 = 0x40
    static let extensions: UInt8 = 0x80

    var rpIDHash: [UInt8]
    var flags: UInt8
    var signCount: UInt32
    var credentialID: [UInt8]?
    var publicKey: [UInt8]?

    init(_ bytes: [UInt8]) throws(PasskeyError) {
        guard bytes.count >= 37 else { throw .malformed("the authenticator data is shorter than 37 bytes") }
        rpIDHash = Array(bytes[0..<32])
        flags = bytes[32]
        signCount = bytes[33..<37].reduce(0) { $0 << 8 | UInt32($1) }
        var rest = bytes[37...]
        if flags & Self.attestedCredential != 0 {
            guard rest.count >= 18 else { throw .malformed("the attested credential data is truncated") }
            let start = rest.startIndex
            let idLength = Int(rest[start + 16]) << 8 | Int(rest[start + 17])
            guard idLength <= 1023, rest.count >= 18 + idLength else { throw .malformed("the credential id is truncated or too long") }
            credentialID = Array(rest[(start + 18)..<(start + 18 + idLength)])
            rest = rest[(start + 18 + idLength)...]
            do {
                let (_, used) = try CBOR.decodePrefix(rest)
                publicKey = Array(rest.prefix(used))
                rest = rest.dropFirst(used)
            } catch {
                throw .malformed("the credential public key: \(error.message)")
            }
        }
        if flags & Self.extensions != 0 {
            do { rest = rest.dropFirst(try CBOR.decodePrefix(rest).1) } catch {
                throw .malformed("the extensions: \(error.message)")
            }
        }
        guard rest.isEmpty else { throw .malformed("trailing bytes after the authenticator data") }
    }
}

/// The parts of clientDataJSON that are checked.
struct ClientData: Decodable, Sendable {
    var type: String
    var challenge: String
    var origin: String
    var crossOrigin: Bool?

    static func parse(_ json: [UInt8]) throws(PasskeyError) -> ClientData {
        do { return try JSONDecoder().decode(ClientData.self, from: Data(json)) } catch {
            throw .malformed("clientDataJSON is not the JSON a browser sends")
        }
    }
}

/// What a ceremony must have been for: the RP ID its options named and the origin it was
/// asked from.
struct PasskeyExpectation: Sendable, Equatable {
    var rpID: String
    var origin: String
}

/// The checks of WebAuthn §7.1 and §7.2 that do not need storage: pure, so they are unit-tested
/// on their own (Tests/ApplianceTests/PasskeyVerifierTests.swift).
enum PasskeyVerifier {
    struct Registered: Equatable, Sendable {
        var credentialID: [UInt8]
        var publicKey: [UInt8]
        var algorithm: COSEAlgorithm
        var signCount: UInt32
    }

    static func checkClientData(_ data: ClientData, type: String, _ expected: PasskeyExpectation) throws(PasskeyError) {
        guard data.type == type else { throw .wrongCeremony }
        guard data.origin == expected.origin else { throw .originMismatch(expected: expected.origin, got: data.origin) }
        guard data.crossOrigin != true else { throw .originMismatch(expected: expected.origin, got: data.origin + " (cross-origin)") }
    }

    static func checkAuthenticatorData(_ auth: AuthenticatorData, _ expected: PasskeyExpectation) throws(PasskeyError) {
        guard Secrets.constantTimeEqual(auth.rpIDHash, SHA256.hash(Array(expected.rpID.utf8))) else { throw .rpIDMismatch }
        guard auth.flags & AuthenticatorData.userPresent != 0 else { throw .userNotPresent }
    }

    /// The clientData was already parsed (its challenge found the pending ceremony).
    static func verifyRegistration(clientData: ClientData, clientDataJSON: [UInt8], attestationObject: [UInt8],
                                   credentialID claimedID: [UInt8], expected: PasskeyExpectation) throws(PasskeyError) -> Registered {
        try checkClientData(clientData, type: "webauthn.create", expected)
        let object: CBOR
        do { object = try CBOR.decode(attestationObject) } catch {
            throw .malformed("the attestation object: \(error.message)")
        }
        guard case .text(let format)? = object[text: "fmt"], case .bytes(let authBytes)? = object[text: "authData"],
              case .map(let statement)? = object[text: "attStmt"] else {
            throw .malformed("the attestation object lacks fmt, attStmt or authData")
        }
        let auth = try AuthenticatorData(authBytes)
        try checkAuthenticatorData(auth, expected)
        guard let credentialID = auth.credentialID, let keyBytes = auth.publicKey else {
            throw .malformed("the authenticator data carries no credential")
        }
        guard credentialID == claimedID else { throw .malformed("the credential id does not match the authenticator data") }
        let key = try COSEPublicKey(coseBytes: keyBytes)
        switch format {
        case "none":
            guard statement.isEmpty else { throw .malformed("attestation \"none\" with a statement") }
        case "packed":
            // Only as a signature by the credential itself: a certificate chain would be a
            // vendor's claim we asked not to get (attestation "none") and do not evaluate.
            let attStmt = CBOR.map(statement)
            guard attStmt[text: "x5c"] == nil else { throw .unsupportedAttestation("packed with a certificate") }
            guard attStmt[text: "alg"]?.int == key.algorithm.rawValue, case .bytes(let signature)? = attStmt[text: "sig"] else {
                throw .malformed("the packed attestation statement lacks alg or sig")
            }
            guard try key.verify(signature: signature, over: authBytes + SHA256.hash(clientDataJSON)) else { throw .badSignature }
        default:
            throw .unsupportedAttestation(format)
        }
        return Registered(credentialID: credentialID, publicKey: keyBytes, algorithm: key.algorithm, signCount: auth.signCount)
    }

    /// Returns the counter to store. `storedCount` 0 with a new count 0 is an authenticator
    /// without a counter (synced passkeys): accepted.
    static func verifyAssertion(clientData: ClientData, clientDataJSON: [UInt8], authenticatorData: [UInt8], signature: [UInt8],
                                publicKey: [UInt8], storedCount: UInt32, expected: PasskeyExpectation) throws(PasskeyError) -> UInt32 {
        try checkClientData(clientData, type: "webauthn.get", expected)
        let auth = try AuthenticatorData(authenticatorData)
        try checkAuthenticatorData(auth, expected)
        let key = try COSEPublicKey(coseBytes: publicKey)
        guard try key.verify(signature: signature, over: authenticatorData + SHA256.hash(clientDataJSON)) else { throw .badSignature }
        if auth.signCount != 0 || storedCount != 0 {
            guard auth.signCount > storedCount else { throw .signCountNotIncreased }
        }
        return auth.signCount
    }
}

/// base64url without padding, as WebAuthn's JSON uses it.
enum Base64URL {
    static func encode(_ bytes: [UInt8]) -> String {
        var text = Data(bytes).base64EncodedString()
        while text.hasSuffix("=") { text.removeLast() }
        return String(text.map { $0 == "+" ? "-" : $0 == "/" ? "_" : $0 })
    }

    static func decode(_ text: String) -> [UInt8]? {
        guard text.utf8.allSatisfy({ c in
            (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 45 || c == 95
        }) else { return nil }
        var standard = String(text.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
        guard standard.utf8.count % 4 != 1 else { return nil }
        while standard.utf8.count % 4 != 0 { standard.append("=") }
        return Data(base64Encoded: standard).map { Array($0) }
    }
}
