import Glibc

/// `claworc agent install FILE`, `claworc agent list`: the bundle catalogue from the command
/// line, on the data dir directly (safe while the daemon runs: the install is atomic, and the
/// active version is one row).
enum AgentCommands {
    static let usage = """
        usage: claworc agent install [--data-dir DIR] FILE.tar.gz   install an OpenClaw bundle (an npm install
                                                                   prefix: tar -C PREFIX -czf FILE.tar.gz .)
               claworc agent list [--data-dir DIR]
        """

    static func run(_ command: String, _ arguments: ArraySlice<String>) async throws(UsageError) {
        let options = try CommandOptions(arguments, valued: ["data-dir"], flags: [], positionals: 1)
        let dataDir = try options.value("data-dir") ?? ProcessInfoLite.environment("CLAWORC_DATA_DIR") ?? "/var/lib/claworc"
        guard getuid() == 0 else { Claworc.fail("this command must run as root: the data dir is root's", status: 1) }
        let file = options.positionals.first
        if command == "agent install" && file == nil { throw UsageError("which file? (FILE is missing)") }
        if command == "agent list" && file != nil { throw UsageError("unexpected argument '\(file!)'") }
        do {
            let paths = DataPaths(root: dataDir)
            guard access(paths.database, F_OK) == 0 else { Claworc.fail("no appliance database at \(paths.database) (is --data-dir right?)", status: 1) }
            let bundles = AgentBundles(directory: paths.agentBundles, settings: try SQLiteStore(path: paths.database))
            if command == "agent list" {
                for bundle in try bundles.list() {
                    Console.say("\(bundle.version)\(bundle.active ? "  (active)" : "")\(bundle.node ? "  with its own Node.js" : "")")
                }
                return
            }
            let fd = open(file!, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { Claworc.fail("cannot open \(file!): \(String(cString: strerror(errno)))", status: 1) }
            defer { close(fd) }
            let bundle = try await bundles.install(from: fd)
            Console.say("installed OpenClaw \(bundle.version)\(bundle.active ? " (active)" : "; activate it in the dashboard or with the API")")
        } catch let error as BundleError {
            Claworc.fail(error.message, status: 1)
        } catch {
            Claworc.fail("\(error)", status: 1)
        }
    }
}
