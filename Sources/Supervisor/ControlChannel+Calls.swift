import Glibc

/// One typed function per operation: what the daemon asks an init for, and what it gets back.
/// A refusal by the init throws a `Failure` with `refusedByInit` set and the init's reason.
extension ControlChannel {
    /// The services' states as the init sees them now.
    public func status(timeoutMs: Int = 5000) throws(Failure) -> [ServiceStatus] {
        guard case .services(let services) = try expect(.status, timeoutMs: timeoutMs).reply else { throw Self.misfit }
        return services
    }

    /// A TCP socket connected to 127.0.0.1:`port` inside the instance; the caller closes it.
    public func connect(port: UInt16, timeoutMs: Int = 5000) throws(Failure) -> Int32 {
        try descriptor(.connect(port: port), timeoutMs: timeoutMs).fd
    }

    /// The socket listening on 127.0.0.1:`port` inside the instance (the key proxy's); the
    /// caller accepts on it and closes it.
    public func listeningSocket(port: UInt16) throws(Failure) -> Int32 {
        try descriptor(.listen(port: port), timeoutMs: 5000).fd
    }

    /// A login shell on a new pty: the terminal's id and the master (the caller closes it).
    /// The init keeps `tag` with the shell for a daemon that takes it back later.
    public func openTerminal(user: InstanceUser, cols: UInt16, rows: UInt16, tag: String) throws(Failure) -> (terminal: UInt64, master: Int32) {
        try terminal(.openTerminal(user: user, cols: cols, rows: rows, tag: tag))
    }

    /// The shells that run in the instance, with their tags.
    public func terminals() throws(Failure) -> [TerminalEntry] {
        guard case .terminals(let terminals) = try expect(.terminals).reply else { throw Self.misfit }
        return terminals
    }

    /// A running terminal's master, taken back after a daemon restart (the caller closes it).
    public func adoptTerminal(_ terminal: UInt64) throws(Failure) -> Int32 {
        let (id, master) = try self.terminal(.adoptTerminal(terminal))
        guard id == terminal else {
            close(master)
            throw Self.misfit
        }
        return master
    }

    /// Hangs a terminal up (its shell gets SIGHUP; the init drops its copy of the master).
    public func closeTerminal(_ terminal: UInt64) throws(Failure) {
        guard case .done = try expect(.closeTerminal(terminal)).reply else { throw Self.misfit }
    }

    private func terminal(_ call: ControlCall) throws(Failure) -> (terminal: UInt64, master: Int32) {
        let (reply, fd) = try descriptor(call, timeoutMs: 5000)
        guard case .terminal(let terminal) = reply else {
            close(fd)
            throw Self.misfit
        }
        return (terminal, fd)
    }

    /// Restarts one service; the services after the restart.
    public func restartService(_ name: String) throws(Failure) -> [ServiceStatus] {
        guard case .services(let services) = try expect(.restartService(name)).reply else { throw Self.misfit }
        return services
    }

    /// Runs a command to its end. The init kills it a second before this call gives up, so
    /// its reply (with `timedOut`) still arrives in time.
    public func run(argv: [String], user: InstanceUser, timeoutMs: Int) throws(Failure) -> RunResult {
        let call = ControlCall.run(argv: argv, user: user, timeoutMs: max(100, timeoutMs - 1000))
        guard case .ran(let result) = try expect(call, timeoutMs: timeoutMs).reply else { throw Self.misfit }
        return result
    }

    private static var misfit: Failure { Failure(description: "the instance's init answered with a reply of another kind") }

    /// The reply, with a refusal turned into a thrown Failure; a stray descriptor is closed.
    private func expect(_ call: ControlCall, timeoutMs: Int = 5000) throws(Failure) -> (reply: ControlReply, fd: Int32) {
        let (reply, fd) = try self.call(call, timeoutMs: timeoutMs)
        if case .failed(let text) = reply {
            if fd >= 0 { close(fd) }
            throw Failure(description: text, refusedByInit: true)
        }
        return (reply, fd)
    }

    /// A reply that must carry a descriptor.
    private func descriptor(_ call: ControlCall, timeoutMs: Int) throws(Failure) -> (reply: ControlReply, fd: Int32) {
        let (reply, fd) = try expect(call, timeoutMs: timeoutMs)
        guard fd >= 0 else { throw Failure(description: "the instance's init answered \(call.op.rawValue) without a descriptor") }
        return (reply, fd)
    }
}
