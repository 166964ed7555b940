import Glibc
import Supervisor

@main
enum Entry {
    static func main() async {
        // The hidden init mode is decided before anything can start a thread: the launcher
        // exec's this binary as PID 1 of an instance, and that process must stay
        // single-threaded (see docs/architecture.md). argv and the environment are read
        // directly: CommandLine.arguments and a [String: String] would instantiate generic
        // metadata on every launch's critical path (docs/performance.md).
        // First of all: an init exec'd from its init root (image mode) returns to the
        // instance's root.
        if getpid() == 1 { InstanceInit.leaveInitRootIfAsked() }
        if CommandLine.argc > 1, let mode = CommandLine.unsafeArgv[1], strcmp(mode, "__init") == 0 {
            InstanceInit.run(environment: .fromProcess())
        }
        await Claworc.main(Array(CommandLine.arguments.dropFirst()))
    }
}
