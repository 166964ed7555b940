import FoundationEssentials
import Glibc
import Hummingbird
import Synchronization

/// Passkey ceremonies: options with a fresh challenge, then the browser's answer verified
/// against it. A challenge is single use, lives `challengeLifetimeMs` (2 minutes), and belongs
/// to whoever asked for it: the session for a registration, a random pre-login cookie for a
/// sign-in. Challenges are kept in memory only; a restart forgets them, as it should.
final class Passkeys: Sendable {
    static let loginCookieName = "claworc_passkey_login"
    static let maxPerUser = 25
    /// Ceremonies pending at once per owner; a new one beyond this drops the owner's oldest.
    static let maxPendingPerOwner = 8
    /// Sign-ins pending at once per client address (each gets a fresh cookie, so the owner cap
    /// alone would not stop one address from filling the table).
    static let maxPendingPerAddress = 32
    /// Ceremonies pending at once in all: anonymous sign-in options must not grow memory unbounded.
    static let maxPending = 10_000

    enum Ceremony: Sendable { case registration, login }

    private struct Pending {
        var ceremony: Ceremony
        /// A session id (registration) or a pre-login cookie's value (sign-in).
        var owner: String
        var userID: Int64?
        /// The client address of an anonymous sign-in.
        var address: String?
        var expectation: PasskeyExpectation
        var issued: Int64
        var expires: Int64
    }

    let store: any PasskeyRepository
    let throttle: LoginThrottle
    /// Whether the dashboard is served over HTTPS (the origin's scheme, the cookie's Secure).
    let secure: Bool
    /// `serve --rp-id`: the name passkeys are bound to; nil means the Host the request came by.
    let configuredRPID: String?
    let challengeLifetimeMs: Int64
    private let now: @Sendable () -> Int64
    private let pending = Mutex<[String: Pending]>([:])

    init(store: any PasskeyRepository, throttle: LoginThrottle, secure: Bool, rpID: String? = nil,
         challengeLifetimeMs: Int64 = 120_000, now: @escaping @Sendable () -> Int64 = Passkeys.monotonicMilliseconds) {
        self.store = store
        self.throttle = throttle
        self.secure = secure
        self.configuredRPID = rpID
        self.challengeLifetimeMs = challengeLifetimeMs
        self.now = now
    }

    static func monotonicMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    // MARK: - RP ID and origin

    /// The RP ID and origin for a request that came with this Host header. An IP address is no
    /// RP ID (browsers refuse it), so a request by address cannot use passkeys at all.
    func expectation(host: String?) throws(PasskeyError) -> PasskeyExpectation {
        guard let host, let (name, port) = Self.split(host: host), Self.isName(name) else { throw .needsHostName }
        let rpID = configuredRPID ?? name
        guard name == rpID || name.hasSuffix("." + rpID) else { throw .rpIDMismatch }
        let scheme = secure ? "https" : "http"
        let defaultPort = secure ? 443 : 80
        return PasskeyExpectation(rpID: rpID, origin: port == nil || port == defaultPort ? "\(scheme)://\(name)" : "\(scheme)://\(name):\(port!)")
    }

    /// "name[:port]", lowercased; nil for anything else (an IPv6 literal included).
    static func split(host: String) -> (String, Int?)? {
        let parts = host.lowercased().split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, let first = parts.first, !first.isEmpty else { return nil }
        guard parts.count == 2 else { return (String(first), nil) }
        guard let port = Int(parts[1]), (1...65535).contains(port) else { return nil }
        return (String(first), port)
    }

    /// A DNS name of letters, digits, '-' and '.', not an IPv4 address (`localhost` is a name).
    static func isName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...253).contains(bytes.count), bytes.first != 46, bytes.last != 46 else { return false }
        guard bytes.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 46 }) else { return false }
        // The last label of a name is never all digits; an IPv4 address's always is.
        let last = name.split(separator: ".").last ?? ""
        return !last.utf8.allSatisfy { $0 >= 48 && $0 <= 57 }
    }

    /// The WebAuthn user handle: the user's row id (never reused: AUTOINCREMENT), not the name.
    static func userHandle(_ id: Int64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: id >> (56 - 8 * $0)) }
    }

    // MARK: - challenges

    private func issue(_ ceremony: Ceremony, owner: String, userID: Int64?, address: String?,
                       expectation: PasskeyExpectation) throws(PasskeyError) -> String {
        let challenge = Base64URL.encode(Secrets.randomBytes(32))
        let t = now()
        let entry = Pending(ceremony: ceremony, owner: owner, userID: userID, address: address, expectation: expectation,
                            issued: t, expires: t + challengeLifetimeMs)
        try pending.withLock { (table: inout [String: Pending]) throws(PasskeyError) in
            if table.count >= Self.maxPending { table = table.filter { $0.value.expires > t } }
            guard table.count < Self.maxPending else { throw .busy }
            // Over a cap, the group's oldest ceremony makes room: the newest request is the one
            // a person is waiting on.
            func dropOldest(over cap: Int, of group: (Pending) -> Bool) {
                let members = table.filter { group($0.value) }
                if members.count >= cap, let oldest = members.min(by: { $0.value.issued < $1.value.issued }) {
                    table[oldest.key] = nil
                }
            }
            dropOldest(over: Self.maxPendingPerOwner) { $0.owner == owner }
            if let address { dropOldest(over: Self.maxPendingPerAddress) { $0.address == address } }
            table[challenge] = entry
        }
        return challenge
    }

    /// Takes the challenge the client data names, if it is this owner's, for this ceremony and
    /// still valid. Someone else's live one is left alone (guessing one must not cancel it);
    /// every other outcome uses it up. Expiry is judged first: a late answer is told so even
    /// when its pre-login cookie has lapsed in the browser too.
    private func redeem(_ challenge: String, _ ceremony: Ceremony, owner: String?, userID: Int64?) throws(PasskeyError) -> PasskeyExpectation {
        let t = now()
        return try pending.withLock { (table: inout [String: Pending]) throws(PasskeyError) -> PasskeyExpectation in
            guard let entry = table[challenge] else { throw .challengeUnknown }
            guard t < entry.expires else {
                table[challenge] = nil
                throw .challengeExpired
            }
            guard let owner, Secrets.constantTimeEqual(entry.owner, owner), entry.ceremony == ceremony, entry.userID == userID else {
                throw .challengeNotYours
            }
            table[challenge] = nil
            return entry.expectation
        }
    }

    // MARK: - registration

    struct Descriptor: Encodable, Sendable { var type = "public-key"; var id: String }

    struct CreationOptions: Encodable, Sendable {
        struct RP: Encodable, Sendable { var id: String; var name: String }
        struct UserEntity: Encodable, Sendable { var id: String; var name: String; var displayName: String }
        struct Parameter: Encodable, Sendable { var type = "public-key"; var alg: Int64 }
        struct Selection: Encodable, Sendable {
            var residentKey = "required"
            var requireResidentKey = true
            var userVerification = "preferred"
        }
        var challenge: String
        var rp: RP
        var user: UserEntity
        var pubKeyCredParams: [Parameter]
        var timeout: Int64
        var attestation = "none"
        var authenticatorSelection = Selection()
        var excludeCredentials: [Descriptor]
    }

    func registrationOptions(for user: User, session: String, host: String?) throws -> CreationOptions {
        let expectation = try expectation(host: host)
        let existing = try store.passkeys(userID: user.id)
        guard existing.count < Self.maxPerUser else { throw PasskeyError.tooManyPasskeys }
        let challenge = try issue(.registration, owner: session, userID: user.id, address: nil, expectation: expectation)
        return CreationOptions(
            challenge: challenge, rp: .init(id: expectation.rpID, name: "Claworc"),
            user: .init(id: Base64URL.encode(Self.userHandle(user.id)), name: user.username, displayName: user.username),
            pubKeyCredParams: COSEAlgorithm.allCases.map { .init(alg: $0.rawValue) }, timeout: challengeLifetimeMs,
            excludeCredentials: existing.map { Descriptor(id: $0.credentialID) })
    }

    /// `PublicKeyCredential.toJSON()`'s shape (base64url strings), for both ceremonies.
    struct Credential: Decodable, Sendable {
        struct Response: Decodable, Sendable {
            var clientDataJSON: String
            var attestationObject: String?
            var authenticatorData: String?
            var signature: String?
            var userHandle: String?
        }
        var id: String
        var type: String
        var response: Response
    }

    func register(_ credential: Credential, name: String, for user: User, session: String) throws -> PasskeyRecord {
        let name = try Self.validName(name)
        guard credential.type == "public-key", let credentialID = Base64URL.decode(credential.id), !credentialID.isEmpty else {
            throw PasskeyError.malformed("the credential's id or type is not a passkey's")
        }
        let clientDataJSON = try Self.bytes(credential.response.clientDataJSON, "clientDataJSON")
        let attestation = try Self.bytes(credential.response.attestationObject, "attestationObject")
        let clientData = try ClientData.parse(clientDataJSON)
        let expectation = try redeem(clientData.challenge, .registration, owner: session, userID: user.id)
        let registered = try PasskeyVerifier.verifyRegistration(clientData: clientData, clientDataJSON: clientDataJSON,
                                                                attestationObject: attestation, credentialID: credentialID,
                                                                expected: expectation)
        guard try store.passkeyCount(userID: user.id) < Self.maxPerUser else { throw PasskeyError.tooManyPasskeys }
        return try store.addPasskey(userID: user.id, credentialID: Base64URL.encode(registered.credentialID),
                                    publicKey: registered.publicKey, algorithm: registered.algorithm.rawValue,
                                    signCount: registered.signCount, name: name)
    }

    // MARK: - sign-in

    struct RequestOptions: Encodable, Sendable {
        var challenge: String
        var rpId: String
        var timeout: Int64
        var userVerification = "preferred"
        /// Empty: the authenticator offers its discoverable credentials for this RP.
        var allowCredentials: [Descriptor] = []
    }

    /// Options and the pre-login cookie their challenge is bound to.
    func loginOptions(host: String?, client: String) throws -> (RequestOptions, Cookie) {
        let expectation = try expectation(host: host)
        let token = Hex.encode(Secrets.randomBytes(32))
        let challenge = try issue(.login, owner: token, userID: nil, address: client, expectation: expectation)
        // Outlives the challenge by a minute: the appliance, not the browser's clock, judges expiry.
        let cookie = Cookie(name: Self.loginCookieName, value: token, maxAge: Int(challengeLifetimeMs / 1000) + 60,
                            path: "/api/v1/auth/passkeys", secure: secure, httpOnly: true, sameSite: .strict)
        return (RequestOptions(challenge: challenge, rpId: expectation.rpID, timeout: challengeLifetimeMs), cookie)
    }

    var expiredLoginCookie: Cookie {
        Cookie(name: Self.loginCookieName, value: "", maxAge: 0, path: "/api/v1/auth/passkeys", secure: secure, httpOnly: true,
               sameSite: .strict)
    }

    /// The user the assertion signs in. Failures count in the password throttle, against the
    /// credential id as the account and the client address, like wrong passwords.
    func login(_ credential: Credential, loginToken: String?, client: String) throws -> User {
        let account = "passkey:" + credential.id
        if let wait = throttle.begin(account: account, address: client) { throw AuthError.tooManyAttempts(retryAfter: wait) }
        do {
            let user = try verifyLogin(credential, loginToken: loginToken)
            throttle.succeeded(account: account, address: client)
            return user
        } catch let error as PasskeyError {
            throw error
        } catch {
            throttle.abandoned(account: account, address: client)
            throw error
        }
    }

    private func verifyLogin(_ credential: Credential, loginToken: String?) throws -> User {
        guard credential.type == "public-key" else { throw PasskeyError.malformed("the credential's type is not a passkey's") }
        let clientDataJSON = try Self.bytes(credential.response.clientDataJSON, "clientDataJSON")
        let authenticatorData = try Self.bytes(credential.response.authenticatorData, "authenticatorData")
        let signature = try Self.bytes(credential.response.signature, "signature")
        let clientData = try ClientData.parse(clientDataJSON)
        let expectation = try redeem(clientData.challenge, .login, owner: loginToken, userID: nil)
        guard let (passkey, user) = try store.passkeyForSignIn(credentialID: credential.id) else {
            throw PasskeyError.unknownCredential
        }
        if let handle = credential.response.userHandle, !handle.isEmpty {
            guard Base64URL.decode(handle) == Self.userHandle(user.id) else { throw PasskeyError.unknownCredential }
        }
        let count = try PasskeyVerifier.verifyAssertion(clientData: clientData, clientDataJSON: clientDataJSON,
                                                        authenticatorData: authenticatorData, signature: signature,
                                                        publicKey: passkey.publicKey, storedCount: passkey.signCount,
                                                        expected: expectation)
        // Conditional on the counter read above: of two sign-ins racing with the same counter, one wins.
        guard try store.recordUse(id: passkey.id, expectedCount: passkey.signCount, newCount: count) else {
            throw PasskeyError.signCountNotIncreased
        }
        return user
    }

    // MARK: - management

    func list(for user: User) throws -> [PasskeyRecord] { try store.passkeys(userID: user.id) }

    func rename(_ id: Int64, to name: String, for user: User) throws {
        let name = try Self.validName(name)
        guard try store.renamePasskey(id: id, userID: user.id, name: name) else { throw PasskeyError.notFound }
    }

    func delete(_ id: Int64, for user: User) throws {
        guard try store.deletePasskey(id: id, userID: user.id) else { throw PasskeyError.notFound }
    }

    /// 1 to 64 characters after trimming, no control characters.
    static func validName(_ raw: String) throws(PasskeyError) -> String {
        let name = String(raw.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
        guard (1...64).contains(name.count), !name.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7f...0x9f).contains($0.value) }) else {
            throw .invalidName
        }
        return name
    }

    private static func bytes(_ text: String?, _ what: String) throws(PasskeyError) -> [UInt8] {
        guard let text, let bytes = Base64URL.decode(text), !bytes.isEmpty else {
            throw .malformed("\(what) is missing or not base64url")
        }
        return bytes
    }
}
