/// What can go wrong with an instance, in the lifecycle's terms. The HTTP edge
/// (HTTP/ErrorMapping.swift) decides what a client sees for each.
enum InstanceError: Error, Equatable, Sendable {
    /// The transition the caller asked for, which the instance's state did not allow.
    enum Action: Sendable { case start, stop, delete }
    /// Which storage step failed: nothing was kept (create) or some may be left (remove).
    enum StorageStep: Sendable { case create, remove }

    /// No such instance, or none the caller may see: the two look the same.
    case notFound
    case invalidState(current: InstanceState, action: Action)
    case nameTaken(String)
    case noIDRangeLeft(maxSlot: Int64)
    case storageFailed(StorageStep)
    case startFailed(String)
    /// Processes of the instance's id range outlived SIGKILL; its storage was left alone.
    case processesRemain(String)
    case notRunning
    /// The instance's init could not connect to one of its services.
    case serviceUnreachable(String?)
    case execFailed(String?)
    /// The instance runs no service of that name.
    case noSuchService(String)
}

/// A request's input broke a rule (a name, a setting, a credential's shape): `code` and
/// `message` are what the client is told.
struct InvalidInput: Error, Equatable, Sendable {
    var code: String
    var message: String
    init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }
}
