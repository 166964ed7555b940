import CSandbox
import Glibc
import Sandbox

/// Interactive shells the daemon asks the init for (`openTerminal`): a pty whose slave becomes
/// the controlling terminal of a login shell, started like a `run` command (same user,
/// capabilities and seccomp; CommandRunner.spec). The master goes to the daemon as
/// SCM_RIGHTS and the init keeps no copy: the daemon alone reads and writes it. The init
/// only reaps the shell and reports its end as a `terminalExit` event.
final class InitTerminals {
    /// Shells that run, by pid: their terminal ids.
    private var shells: [pid_t: UInt64] = [:]
    private var nextID: UInt64 = 1
    static let maxTerminals = 64

    /// The new terminal's id and the master to send with the reply (the caller closes it once
    /// sent), or why there is none.
    func open(user: InstanceUser, cols: UInt16, rows: UInt16) -> Result<(UInt64, Int32), ControlRefusal> {
        func failure(_ text: String) -> Result<(UInt64, Int32), ControlRefusal> { .failure(ControlRefusal(text)) }
        guard shells.count < Self.maxTerminals else { return failure("too many terminals") }
        let shell = access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh"
        let argv = [shell.hasSuffix("bash") ? "bash" : "sh", "-l"]
        let spec = CommandRunner.spec(name: "terminal", path: shell, argv: argv, user: user,
                                      extraEnvironment: ["TERM=xterm-256color", "SHELL=\(shell)"])
        var slave: Int32 = -1
        let master = csbx_pty_open(cols, rows, spec.uid, spec.gid, &slave)
        guard master >= 0 else { return failure("pty: \(FileSystem.errorText(errno))") }
        var err: Int32 = 0
        let pid = SpawnCall.spawn(spec: spec, extraFDs: [], terminal: slave, err: &err)
        close(slave)
        guard pid > 0 else {
            close(master)
            return failure("cannot start \(shell): \(SpawnCall.describe(err))")
        }
        let id = nextID
        nextID += 1
        shells[pid] = id
        return .success((id, master))
    }

    /// The `terminalExit` event if the pid was a shell of ours.
    func childExited(pid: pid_t, status: Int32) -> InitMessage? {
        guard let id = shells.removeValue(forKey: pid) else { return nil }
        // What the shell left in its process group (jobs, pipelines) goes with it, as after a hang-up.
        kill(-pid, SIGKILL)
        let exited = status & 0x7f == 0
        let code = exited ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return .event(.terminalExit(terminal: id, code: code))
    }

    func killAll() {
        for pid in shells.keys { kill(-pid, SIGKILL) }
    }
}
