import FoundationEssentials
import Hummingbird
import HummingbirdBcrypt
import Synchronization
import Glibc
import Sandbox

/// Password checks (on a bounded pool, throttled), session tokens and the first-admin setup code.
final class Accounts: Sendable {
    static let cookieName = "claworc_session"
    /// A session ends 7 days after sign-in at the latest, and after 12 hours without a request.
    static let sessionLifetime: Int64 = 7 * 24 * 3600
    static let sessionIdle: Int64 = 12 * 3600
    static let bcryptCost: UInt8 = 12
    /// Verified against for unknown usernames so both failures take the same time.
    private let decoyHash: String

    let users: any UserRepository
    let setupCodePath: String
    private let setupCode: Mutex<String?>
    let pool: PasswordPool
    let throttle: LoginThrottle
    /// Cookies marked `Secure` (served over HTTPS): a browser then never sends them in clear.
    let secureCookies: Bool

    init(users: any UserRepository, setupCodePath: String, pool: PasswordPool = PasswordPool(), throttle: LoginThrottle = LoginThrottle(),
         secureCookies: Bool = false) {
        self.secureCookies = secureCookies
        self.users = users
        self.setupCodePath = setupCodePath
        self.setupCode = Mutex(nil)
        self.pool = pool
        self.throttle = throttle
        self.decoyHash = Self.passwordHash("decoy-password-never-used")
    }

    var setupRequired: Bool { (try? users.userCount()) ?? 1 == 0 }

    /// On a store without users: a fresh one-time code, printed and written 0600.
    func issueSetupCodeIfNeeded() throws -> String? {
        guard try users.userCount() == 0 else {
            unlink(setupCodePath)
            return nil
        }
        let code = Secrets.setupCode()
        setupCode.withLock { $0 = code }
        unlink(setupCodePath)
        let fd = open(setupCodePath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StartupError("cannot write the setup code to \(setupCodePath): \(FileSystem.errorText(errno))") }
        let line = code + "\n"
        _ = line.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        return code
    }

    func completeSetup(code: String, username: String, password: String) async throws -> User {
        try Self.refuseNUL(username, password)
        try checkSetupCode(code)
        try Self.validate(username: username, password: password)
        let hash = try await pool.run { Self.passwordHash(password) }
        guard let user = try users.createFirstAdmin(username: username, passwordHash: hash) else {
            throw AuthError.setupComplete
        }
        setupCode.withLock { $0 = nil }
        unlink(setupCodePath)
        return user
    }

    private func checkSetupCode(_ code: String) throws {
        guard let expected = setupCode.withLock({ $0 }), setupRequired else {
            throw AuthError.setupComplete
        }
        guard Secrets.constantTimeEqual(String(code.filter { !$0.isWhitespace }).uppercased(), expected) else {
            throw AuthError.invalidSetupCode
        }
    }

    /// `client` is the peer address of the connection, never a header a client could forge.
    func login(username: String, password: String, client: String) async throws -> User {
        try Self.refuseNUL(username, password)
        if let wait = throttle.begin(account: username, address: client) {
            throw AuthError.tooManyAttempts(retryAfter: wait)
        }
        let checked: User?
        do {
            let credentials = try users.credentials(username: username)
            let decoyHash = self.decoyHash
            checked = try await pool.run { () -> User? in
                guard let (user, hash) = credentials else {
                    // Same work for an unknown name, so timing tells nothing either.
                    _ = Bcrypt.verify(password, hash: decoyHash)
                    return nil
                }
                return Bcrypt.verify(password, hash: hash) ? user : nil
            }
        } catch {
            throttle.abandoned(account: username, address: client)
            throw error
        }
        guard let user = checked else { throw AuthError.invalidCredentials }
        throttle.succeeded(account: username, address: client)
        // Told only to someone who knows the password: it reveals nothing to a guesser.
        guard !user.disabled else { throw AuthError.disabled }
        return user
    }

    /// What the users table keeps of a password (cost: lower only in tests).
    static func passwordHash(_ password: String, cost: UInt8 = bcryptCost) -> String {
        Bcrypt.hash(password, cost: cost)
    }

    /// bcrypt and C strings stop at a NUL: "pw\0anything" would be checked as "pw".
    static func refuseNUL(_ username: String, _ password: String) throws {
        if username.utf8.contains(0) || password.utf8.contains(0) {
            throw InvalidInput("nul_in_credentials", "Usernames and passwords cannot contain NUL bytes.")
        }
    }

    static func validate(username: String, password: String) throws {
        let allowed = username.utf8.allSatisfy { c in
            (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c == 46 || c == 95 || c == 45
        }
        guard (1...64).contains(username.utf8.count), allowed else {
            throw InvalidInput("invalid_username", "A username is 1 to 64 letters, digits, '.', '_' or '-'.")
        }
        guard password.utf8.count >= 8 else {
            throw InvalidInput("weak_password", "A password needs at least 8 characters.")
        }
        guard password.utf8.count <= 72 else {
            throw InvalidInput("password_too_long", "A password can be at most 72 bytes long.")
        }
    }

    /// Creates a session and returns the cookie that carries its token: always a new token, at
    /// sign-in and whenever the user's privileges or password change. Only the token's SHA-256
    /// is stored.
    func openSession(for user: User, client: String) throws -> Cookie {
        let token = Hex.encode(Secrets.randomBytes(32))
        let now = Self.now()
        try users.createSession(tokenHash: Self.sessionID(forToken: token), userID: user.id, now: now,
                                lifetime: Self.sessionLifetime, client: client)
        try? users.deleteExpiredSessions(now: now, idle: Self.sessionIdle)
        return Cookie(name: Self.cookieName, value: token, maxAge: Int(Self.sessionLifetime), path: "/",
                      secure: secureCookies, httpOnly: true, sameSite: .strict)
    }

    func user(forToken token: String) -> User? {
        guard token.utf8.count == 64 else { return nil }
        return try? users.sessionUser(tokenHash: Self.sessionID(forToken: token), now: Self.now(), idle: Self.sessionIdle)
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970) }

    /// What identifies a session outside the cookie: the token's hash, as the store keeps it.
    static func sessionID(forToken token: String) -> String {
        SHA256.hex(Array(token.utf8))
    }

    func closeSession(token: String) {
        try? users.deleteSession(tokenHash: SHA256.hex(Array(token.utf8)))
    }

    var expiredCookie: Cookie {
        Cookie(name: Self.cookieName, value: "", maxAge: 0, path: "/", secure: secureCookies, httpOnly: true, sameSite: .strict)
    }
}

