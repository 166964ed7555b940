import Glibc

/// A command line that cannot be run as written; printed with the command's usage, exit 64
/// (EX_USAGE).
struct UsageError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// `--name value`, `--name=value` and `--flag` options of one subcommand, read once.
///
/// The appliance has two commands with a handful of options each; this replaces
/// swift-argument-parser, whose reflection-driven machinery cost 0.6 MiB of the 20 MiB budget.
/// Every option must be declared: a misspelt one is an error, never silently ignored.
struct CommandOptions {
    private var values: [String: [String]] = [:]
    private var flags: Set<String> = []
    /// Arguments that are not options, in order (at most `positionals` of them).
    private(set) var positionals: [String] = []

    /// `valued`: options that take a value (they may repeat); `flags`: options that do not.
    init(_ arguments: ArraySlice<String>, valued: Set<String>, flags known: Set<String>, positionals allowed: Int = 0) throws(UsageError) {
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            guard argument.hasPrefix("--"), argument.count > 2 else {
                guard positionals.count < allowed, !argument.hasPrefix("-") else { throw UsageError("unexpected argument '\(argument)'") }
                positionals.append(argument)
                continue
            }
            var name = String(argument.dropFirst(2))
            var inline: String?
            if let eq = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            if known.contains(name) {
                guard inline == nil else { throw UsageError("--\(name) takes no value") }
                flags.insert(name)
            } else if valued.contains(name) {
                guard let value = inline ?? rest.popFirst() else { throw UsageError("--\(name) needs a value") }
                values[name, default: []].append(value)
            } else {
                throw UsageError("unknown option '--\(name)'")
            }
        }
    }

    /// The option's value; given twice is an error (only `all` options repeat).
    func value(_ name: String) throws(UsageError) -> String? {
        guard let given = values[name] else { return nil }
        guard given.count == 1 else { throw UsageError("--\(name) is given more than once") }
        return given[0]
    }

    func all(_ name: String) -> [String] { values[name] ?? [] }

    func flag(_ name: String) -> Bool { flags.contains(name) }

    func integer(_ name: String) throws(UsageError) -> Int? {
        guard let text = try value(name) else { return nil }
        guard let number = Int(text) else { throw UsageError("--\(name) takes a whole number, not '\(text)'") }
        return number
    }
}
