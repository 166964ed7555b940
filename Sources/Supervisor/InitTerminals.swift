import CSandbox
import Glibc
import Sandbox

/// Interactive shells the daemon asks the init for (`openTerminal`): a pty whose slave becomes
/// the controlling terminal of a login shell, started like a `run` command (same user,
/// capabilities and seccomp; CommandRunner.spec). The master goes to the daemon as
/// SCM_RIGHTS; the daemon alone reads and writes it.
///
/// The init keeps a copy of the master that it never reads, with the daemon's tag: a shell
/// must outlive the daemon as the instance does. Without the copy, a daemon that exits (an
/// upgrade, a crash) closes the last master, the pty hangs up and the shell dies with it. A
/// restarted daemon lists the shells (`terminals`) and takes each back (`adoptTerminal`);
/// while no daemon reads, a shell that writes a lot blocks on the full pty, as on a slow
/// terminal. Ending a terminal is therefore the init's job (`closeTerminal`: SIGHUP to its
/// process group, and the copy dropped). The init reaps the shell and reports its end as a
/// `terminalExit` event.
final class InitTerminals {
    private struct Shell {
        let id: UInt64
        /// The init's copy of the master; -1 once the terminal was hung up.
        var master: Int32
        let tag: String
    }

    /// Shells that run, by pid.
    private var shells: [pid_t: Shell] = [:]
    private var nextID: UInt64 = 1
    static let maxTerminals = 64

    /// The new terminal's id and the master to send with the reply (the caller closes it once
    /// sent), or why there is none.
    func open(user: InstanceUser, cols: UInt16, rows: UInt16, tag: String) -> Result<(UInt64, Int32), ControlRefusal> {
        func failure(_ text: String) -> Result<(UInt64, Int32), ControlRefusal> { .failure(ControlRefusal(text)) }
        guard shells.count < Self.maxTerminals else { return failure("too many terminals") }
        let shell = access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh"
        let argv = [shell.hasSuffix("bash") ? "bash" : "sh", "-l"]
        let spec = CommandRunner.spec(name: "terminal", path: shell, argv: argv, user: user,
                                      extraEnvironment: ["TERM=xterm-256color", "SHELL=\(shell)"])
        var slave: Int32 = -1
        let master = csbx_pty_open(cols, rows, spec.uid, spec.gid, &slave)
        guard master >= 0 else { return failure("pty: \(FileSystem.errorText(errno))") }
        let kept = fcntl(master, F_DUPFD_CLOEXEC, 0)
        guard kept >= 0 else {
            let why = FileSystem.errorText(errno)
            close(slave)
            close(master)
            return failure("pty: \(why)")
        }
        var err: Int32 = 0
        let pid = SpawnCall.spawn(spec: spec, extraFDs: [], terminal: slave, err: &err)
        close(slave)
        guard pid > 0 else {
            close(kept)
            close(master)
            return failure("cannot start \(shell): \(SpawnCall.describe(err))")
        }
        let id = nextID
        nextID += 1
        shells[pid] = Shell(id: id, master: kept, tag: tag)
        return .success((id, master))
    }

    /// The terminals a daemon can take back: running and not hung up.
    var list: [TerminalEntry] {
        shells.values.filter { $0.master >= 0 }.sorted { $0.id < $1.id }.map { TerminalEntry(id: $0.id, tag: $0.tag) }
    }

    /// Another copy of a terminal's master for the daemon (the caller closes it once sent).
    func adopt(_ id: UInt64) -> Result<Int32, ControlRefusal> {
        guard let shell = shells.values.first(where: { $0.id == id && $0.master >= 0 }) else {
            return .failure(ControlRefusal("no terminal \(id)"))
        }
        let copy = fcntl(shell.master, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { return .failure(ControlRefusal("pty: \(FileSystem.errorText(errno))")) }
        return .success(copy)
    }

    /// Hangs a terminal up: what runs in its process group gets SIGHUP (as when a terminal
    /// closes) and the init's copy of the master goes, so once the daemon closes its own the
    /// pty is gone. False when there is no such terminal.
    func hangUp(_ id: UInt64) -> Bool {
        guard let (pid, shell) = shells.first(where: { $0.value.id == id && $0.value.master >= 0 }) else { return false }
        kill(-pid, SIGHUP)
        kill(-pid, SIGCONT)
        close(shell.master)
        shells[pid]?.master = -1
        return true
    }

    /// The `terminalExit` event if the pid was a shell of ours.
    func childExited(pid: pid_t, status: Int32) -> InitMessage? {
        guard let shell = shells.removeValue(forKey: pid) else { return nil }
        if shell.master >= 0 { close(shell.master) }
        // What the shell left in its process group (jobs, pipelines) goes with it, as after a hang-up.
        kill(-pid, SIGKILL)
        let exited = status & 0x7f == 0
        let code = exited ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return .event(.terminalExit(terminal: shell.id, code: code))
    }

    func killAll() {
        for (pid, shell) in shells {
            kill(-pid, SIGKILL)
            if shell.master >= 0 { close(shell.master) }
            shells[pid]?.master = -1
        }
    }
}
