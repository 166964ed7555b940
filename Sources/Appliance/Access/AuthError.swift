/// Why the appliance refuses to say who someone is or to let them act.
enum AuthError: Error, Equatable, Sendable {
    /// No valid session.
    case unauthorized
    /// Signed in, but the action is not theirs to take.
    case forbidden
    case setupComplete
    case invalidSetupCode
    case invalidCredentials
    case tooManyAttempts(retryAfter: Int64)
    /// Every password worker is taken and the queue is full.
    case busy
    /// The right password (or passkey) of a disabled user.
    case disabled
    /// A cookie-authenticated change from another site, or from nowhere a browser would say.
    case crossOrigin
}

/// What can go wrong administering users.
enum UserError: Error, Equatable, Sendable {
    case notFound
    case usernameTaken(String)
    /// The change would leave the appliance without an enabled admin.
    case lastAdmin
}
