import Glibc
import Supervisor

@main
enum Entry {
    static func main() async {
        // The hidden init mode is decided before anything can start a thread: the launcher
        // exec's this binary as PID 1 of an instance, and that process must stay
        // single-threaded (see docs/architecture.md).
        if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "__init" {
            InstanceInit.run(environment: environmentDictionary())
        }
        await Claworc.main()
    }

    static func environmentDictionary() -> [String: String] {
        var env: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return env
    }
}
