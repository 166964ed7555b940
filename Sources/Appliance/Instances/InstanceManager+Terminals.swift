import Glibc
import Supervisor

/// Terminals inside a running instance, as its init hands them over: a new one, and the ones
/// that outlived a daemon restart. TerminalSessions keeps the sessions (and hangs them up
/// through the channel they came with).
extension InstanceManager {
    struct OpenedTerminal: Sendable {
        let terminal: UInt64
        let master: Int32
        /// The instance's control channel: it reports the shell's exit.
        let channel: ControlChannel
    }

    /// A login shell on a new pty inside the instance (as its agent or its root); the master
    /// is the caller's to close. The init keeps `tag` with the shell (TerminalTag).
    func openTerminal(_ id: Int64, user: InstanceUser, cols: UInt16, rows: UInt16, tag: String) async throws -> OpenedTerminal {
        guard let runtime = runtimes[id] else { throw InstanceError.notRunning }
        let channel = runtime.channel
        let terminal: UInt64, fd: Int32
        do {
            (terminal, fd) = try await Blocking.run { try channel.openTerminal(user: user, cols: cols, rows: rows, tag: tag) }
        } catch let failure as ControlChannel.Failure where failure.refusedByInit {
            throw InstanceError.serviceUnreachable(failure.description)
        }
        return try Self.checkedTerminal(terminal, fd, channel)
    }

    /// The terminals whose shells still run in the instance (a previous daemon opened them),
    /// each with another copy of its master and the tag it was opened with. An init too old to
    /// keep terminals has none.
    func runningTerminals(_ id: Int64) async -> [(tag: String, terminal: OpenedTerminal)] {
        guard let channel = runtimes[id]?.channel else { return [] }
        let taken = try? await Blocking.run { () -> [(tag: String, terminal: OpenedTerminal)] in
            guard let entries = try? channel.terminals() else { return [] }
            return entries.compactMap { entry -> (tag: String, terminal: OpenedTerminal)? in
                guard let fd = try? channel.adoptTerminal(entry.id),
                      let opened = try? Self.checkedTerminal(entry.id, fd, channel) else { return nil }
                return (entry.tag, opened)
            }
        }
        return taken ?? []
    }

    /// The instances that run now, by id.
    var runningIDs: [Int64] { Array(runtimes.keys) }

    /// The init is untrusted: what it handed over must at least be a terminal.
    private static func checkedTerminal(_ terminal: UInt64, _ fd: Int32, _ channel: ControlChannel) throws -> OpenedTerminal {
        guard isatty(fd) == 1 else {
            close(fd)
            throw InstanceError.serviceUnreachable("the instance's init handed over something that is not a terminal")
        }
        return OpenedTerminal(terminal: terminal, master: fd, channel: channel)
    }
}
