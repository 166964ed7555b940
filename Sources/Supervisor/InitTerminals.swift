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

    /// The reply, and the master to send with it (the caller closes it once sent), or -1.
    func open(_ request: ControlRequest) -> (ControlResponse, Int32) {
        func failure(_ text: String) -> (ControlResponse, Int32) { (ControlResponse(id: request.id, ok: false, error: text), -1) }
        guard shells.count < Self.maxTerminals else { return failure("too many terminals") }
        let cols = request.cols ?? 80, rows = request.rows ?? 24
        guard (1...1000).contains(cols), (1...1000).contains(rows) else { return failure("invalid terminal size") }
        let shell = access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh"
        let argv = [shell.hasSuffix("bash") ? "bash" : "sh", "-l"]
        let spec: ServiceSpec
        switch CommandRunner.spec(name: "terminal", path: shell, argv: argv, user: request.user,
                                  extraEnvironment: ["TERM=xterm-256color", "SHELL=\(shell)"]) {
        case .success(let s): spec = s
        case .failure(let text): return failure(text)
        }
        var slave: Int32 = -1
        let master = csbx_pty_open(UInt16(cols), UInt16(rows), spec.uid, spec.gid, &slave)
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
        return (ControlResponse(id: request.id, ok: true, terminal: id), master)
    }

    /// The `terminalExit` event if the pid was a shell of ours.
    func childExited(pid: pid_t, status: Int32) -> ControlResponse? {
        guard let id = shells.removeValue(forKey: pid) else { return nil }
        // What the shell left in its process group (jobs, pipelines) goes with it, as after a hang-up.
        kill(-pid, SIGKILL)
        let exited = status & 0x7f == 0
        let code = exited ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return ControlResponse(id: 0, ok: true, event: "terminalExit", terminal: id, code: code)
    }

    func killAll() {
        for pid in shells.keys { kill(-pid, SIGKILL) }
    }
}
