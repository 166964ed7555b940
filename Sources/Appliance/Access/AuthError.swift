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
}
