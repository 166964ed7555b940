import COpenSSL
import Glibc
import Logging

/// `claworc admin create USER`, `claworc admin reset-password USER`, `claworc user list`: the
/// way back in for a locked-out admin, working on the data dir directly (as root, like the
/// daemon). Safe while the daemon runs: SQLite in WAL mode with a busy timeout, and each change
/// is one transaction. Passwords are read from standard input, never from the command line
/// (where `ps` and shell history would show them).
enum AccountCommands {
    static let usage = """
        usage: claworc admin create [--data-dir DIR] USERNAME          a new admin (password on stdin)
               claworc admin reset-password [--data-dir DIR] USERNAME  a new password; also re-enables the
                                                                       account and ends its sessions
               claworc user list [--data-dir DIR]
        """

    static func run(_ command: String, _ arguments: ArraySlice<String>) async throws(UsageError) {
        let options = try CommandOptions(arguments, valued: ["data-dir"], flags: [], positionals: 1)
        let dataDir = try options.value("data-dir") ?? ProcessInfoLite.environment("CLAWORC_DATA_DIR") ?? "/var/lib/claworc"
        guard getuid() == 0 else { Claworc.fail("this command must run as root: the data dir is root's", status: 1) }
        let name = options.positionals.first
        if command != "user list" && name == nil { throw UsageError("which user? (USERNAME is missing)") }
        if command == "user list" && name != nil { throw UsageError("unexpected argument '\(name!)'") }

        do {
            var why = [CChar](repeating: 0, count: 256)
            guard cossl_load(&why, why.count) == 0 else { throw TLSSetupError(String(cString: why)) }
            let paths = DataPaths(root: dataDir)
            guard access(paths.database, F_OK) == 0 else {
                Claworc.fail("no appliance database at \(paths.database) (is --data-dir right?)", status: 1)
            }
            let store = try SQLiteStore(path: paths.database)
            let accounts = Accounts(users: store, setupCodePath: paths.setupCode)
            let administration = UserAdministration(accounts: accounts, tokens: store)
            let audit = AuditLog(store: store, logger: Logger(label: "claworc-cli"))
            switch command {
            case "user list":
                Console.say("id  username                          role   disabled  created")
                for user in try store.allUsers() {
                    let padded = user.username + String(repeating: " ", count: max(0, 32 - user.username.count))
                    Console.say("\(user.id)".padding(4) + padded + "  " + user.role.rawValue.padding(7)
                                + (user.disabled ? "yes" : "no").padding(10) + user.createdAt)
                }
            case "admin create":
                let password = try readNewPassword()
                let user = try await administration.create(username: name!, password: password, role: .admin)
                audit.record("user.create", by: nil, actorName: "cli", target: "user:\(user.username)", client: "local", detail: "role:admin")
                Console.say("created admin '\(user.username)' (id \(user.id))")
            default:   // admin reset-password
                guard let (user, _) = try store.credentials(username: name!) else { Claworc.fail("no user named '\(name!)'", status: 1) }
                let password = try readNewPassword()
                _ = try await administration.update(id: user.id, role: nil, disabled: false, password: password)
                audit.record("user.update", by: nil, actorName: "cli", target: "user:\(user.username)", client: "local",
                             detail: "password reset, enabled")
                Console.say("new password set for '\(user.username)'; the account is enabled and its sessions have ended")
            }
        } catch let error as InvalidInput {
            Claworc.fail(error.message, status: 1)
        } catch {
            Claworc.fail(APIError(mapping: error).map { $0.message } ?? "\(error)", status: 1)
        }
    }

    /// From a terminal: asked twice without echo. From a pipe: the first line.
    private static func readNewPassword() throws -> String {
        guard isatty(0) == 1 else {
            guard let line = readLine(strippingNewline: true), !line.isEmpty else { Claworc.fail("no password on standard input", status: 1) }
            return line
        }
        let first = prompt("New password: "), second = prompt("Repeat it: ")
        guard first == second else { Claworc.fail("the two passwords differ", status: 1) }
        return first
    }

    private static func prompt(_ text: String) -> String {
        _ = text.withCString { write(2, $0, strlen($0)) }
        var saved = termios()
        tcgetattr(0, &saved)
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(0, TCSAFLUSH, &quiet)
        defer {
            tcsetattr(0, TCSAFLUSH, &saved)
            _ = "\n".withCString { write(2, $0, 1) }
        }
        return readLine(strippingNewline: true) ?? ""
    }
}

private extension String {
    func padding(_ width: Int) -> String { self + String(repeating: " ", count: max(1, width - count)) }
}
