/// Strict JSON (RFC 8259) as a tree that keeps the order of object members, so rewriting
/// `openclaw.json` changes only the members Claworc owns and leaves the rest where OpenClaw or
/// the user put them. Numbers keep their text: nothing foreign is re-formatted. JSON5 (comments,
/// trailing commas, unquoted keys) is refused; the caller keeps such a file aside.
indirect enum ConfigJSON: Equatable, Sendable {
    case object([(String, ConfigJSON)])
    case array([ConfigJSON])
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    struct SyntaxError: Error, CustomStringConvertible {
        var offset: Int
        var description: String { "not strict JSON (at byte \(offset))" }
    }

    static func == (a: ConfigJSON, b: ConfigJSON) -> Bool {
        switch (a, b) {
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.array(let x), .array(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.number(let x), .number(let y)): return x == y
        case (.bool(let x), .bool(let y)): return x == y
        case (.null, .null): return true
        default: return false
        }
    }

    // MARK: access

    subscript(key: String) -> ConfigJSON? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.0 == key }?.1
    }

    /// Sets `key` in place (where it was) or appends it; `nil` removes it. A non-object
    /// becomes an object first.
    mutating func set(_ key: String, _ value: ConfigJSON?) {
        var members: [(String, ConfigJSON)] = []
        if case .object(let existing) = self { members = existing }
        if let i = members.firstIndex(where: { $0.0 == key }) {
            // A repeated key (legal, the last one counts) collapses into the first's place.
            let tail = members[(i + 1)...].filter { $0.0 != key }
            members = Array(members[..<i]) + (value.map { [(key, $0)] } ?? []) + tail
        } else if let value {
            members.append((key, value))
        }
        self = .object(members)
    }

    /// Changes the object at `key` (made if missing or not an object) with `body`.
    mutating func update(_ key: String, _ body: (inout ConfigJSON) -> Void) {
        var child = self[key] ?? .object([])
        if case .object = child {} else { child = .object([]) }
        body(&child)
        set(key, child)
    }

    var members: [(String, ConfigJSON)] {
        if case .object(let m) = self { return m }
        return []
    }

    // MARK: parsing

    static func parse(_ bytes: [UInt8]) throws -> ConfigJSON {
        var p = Parser(bytes: bytes)
        p.skipSpace()
        let value = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == bytes.count else { throw SyntaxError(offset: p.i) }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0

        mutating func skipSpace() {
            while i < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[i]) { i += 1 }
        }

        func fail() -> SyntaxError { SyntaxError(offset: i) }

        mutating func expect(_ word: String) throws {
            for b in word.utf8 {
                guard i < bytes.count, bytes[i] == b else { throw fail() }
                i += 1
            }
        }

        mutating func value(depth: Int) throws -> ConfigJSON {
            guard depth < 128, i < bytes.count else { throw fail() }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                i += 1
                var members: [(String, ConfigJSON)] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                while true {
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail() }
                    let key = try string()
                    skipSpace()
                    try expect(":")
                    skipSpace()
                    members.append((key, try value(depth: depth + 1)))
                    skipSpace()
                    guard i < bytes.count else { throw fail() }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                    throw fail()
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [ConfigJSON] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    skipSpace()
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    guard i < bytes.count else { throw fail() }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                    throw fail()
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "n"): try expect("null"); return .null
            default: return .number(try number())
            }
        }

        mutating func number() throws -> String {
            let start = i
            func digits() -> Int {
                let s = i
                while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 { i += 1 }
                return i - s
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count else { throw fail() }
            if bytes[i] == 48 { i += 1 } else if digits() == 0 { throw fail() }
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard digits() > 0 else { throw fail() }
            }
            if i < bytes.count, bytes[i] | 0x20 == UInt8(ascii: "e") {
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                guard digits() > 0 else { throw fail() }
            }
            return String(decoding: bytes[start..<i], as: UTF8.self)
        }

        mutating func string() throws -> String {
            i += 1   // the opening quote
            var out: [UInt8] = []
            while i < bytes.count {
                let b = bytes[i]
                i += 1
                switch b {
                case UInt8(ascii: "\""):
                    guard String(validating: out, as: UTF8.self) != nil else { throw fail() }
                    return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard i < bytes.count else { throw fail() }
                    let e = bytes[i]
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "b"): out.append(8)
                    case UInt8(ascii: "f"): out.append(12)
                    case UInt8(ascii: "n"): out.append(10)
                    case UInt8(ascii: "r"): out.append(13)
                    case UInt8(ascii: "t"): out.append(9)
                    case UInt8(ascii: "u"):
                        var code = try hex4()
                        if (0xD800..<0xDC00).contains(code) {
                            try expect("\\u")
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw fail() }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let scalar = Unicode.Scalar(code) else { throw fail() }
                        out += Array(String(Character(scalar)).utf8)
                    default: throw fail()
                    }
                default:
                    guard b >= 0x20 else { throw fail() }
                    out.append(b)
                }
            }
            throw fail()
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= bytes.count else { throw fail() }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i] | 0x20
                let d: UInt8
                if c >= 48 && c <= 57 { d = c - 48 } else if c >= 97 && c <= 102 { d = c - 87 } else { throw fail() }
                v = v << 4 | UInt32(d)
                i += 1
            }
            return v
        }
    }

    // MARK: writing

    /// Two-space indented, one member per line, a final newline.
    var text: String {
        var out = ""
        write(to: &out, indent: "")
        return out + "\n"
    }

    private func write(to out: inout String, indent: String) {
        switch self {
        case .object(let members):
            guard !members.isEmpty else { out += "{}"; return }
            out += "{\n"
            for (n, (key, value)) in members.enumerated() {
                out += indent + "  " + Self.quoted(key) + ": "
                value.write(to: &out, indent: indent + "  ")
                out += n == members.count - 1 ? "\n" : ",\n"
            }
            out += indent + "}"
        case .array(let items):
            guard !items.isEmpty else { out += "[]"; return }
            out += "[\n"
            for (n, item) in items.enumerated() {
                out += indent + "  "
                item.write(to: &out, indent: indent + "  ")
                out += n == items.count - 1 ? "\n" : ",\n"
            }
            out += indent + "]"
        case .string(let s): out += Self.quoted(s)
        case .number(let n): out += n
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        }
    }

    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
