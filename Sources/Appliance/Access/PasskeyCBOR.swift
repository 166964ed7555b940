/// The subset of CBOR (RFC 8949) that WebAuthn sends: the attestation object and COSE keys.
/// Definite lengths only, nesting at most 8 deep, every length checked against what is left,
/// so a hostile credential can neither read past its bytes nor make us allocate more than it
/// sent. Indefinite lengths, tags and floats are refused: no authenticator output needs them.
indirect enum CBOR: Equatable, Sendable {
    case unsigned(UInt64)
    /// -1 - n, kept as n (COSE's labels and algorithms are small negatives).
    case negative(UInt64)
    case bytes([UInt8])
    case text(String)
    case array([CBOR])
    case map([(CBOR, CBOR)])
    case bool(Bool)
    case null

    static func == (a: CBOR, b: CBOR) -> Bool {
        switch (a, b) {
        case let (.unsigned(x), .unsigned(y)), let (.negative(x), .negative(y)): return x == y
        case let (.bytes(x), .bytes(y)): return x == y
        case let (.text(x), .text(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.map(x), .map(y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case let (.bool(x), .bool(y)): return x == y
        case (.null, .null): return true
        default: return false
        }
    }

    /// The integer value, when it fits an Int64.
    var int: Int64? {
        switch self {
        case .unsigned(let n): return n <= UInt64(Int64.max) ? Int64(n) : nil
        case .negative(let n): return n <= UInt64(Int64.max) ? -1 - Int64(n) : nil
        default: return nil
        }
    }

    /// The value under an integer key (COSE) of a map.
    subscript(int key: Int64) -> CBOR? {
        guard case .map(let pairs) = self else { return nil }
        return pairs.first { $0.0.int == key }?.1
    }

    /// The value under a text key (the attestation object) of a map.
    subscript(text key: String) -> CBOR? {
        guard case .map(let pairs) = self else { return nil }
        return pairs.first { $0.0 == .text(key) }?.1
    }

    /// Decodes one item from the start of `bytes`; returns it and how many bytes it took
    /// (a COSE key in authenticator data may be followed by extensions).
    static func decodePrefix(_ bytes: ArraySlice<UInt8>) throws(CBORError) -> (CBOR, Int) {
        var reader = Reader(bytes: bytes)
        let value = try reader.item(depth: 0)
        return (value, reader.position - bytes.startIndex)
    }

    /// Decodes exactly one item: trailing bytes are an error.
    static func decode(_ bytes: [UInt8]) throws(CBORError) -> CBOR {
        let (value, used) = try decodePrefix(bytes[...])
        guard used == bytes.count else { throw CBORError("trailing bytes after the CBOR item") }
        return value
    }

    private struct Reader {
        let bytes: ArraySlice<UInt8>
        var position: Int

        init(bytes: ArraySlice<UInt8>) {
            self.bytes = bytes
            position = bytes.startIndex
        }

        var remaining: Int { bytes.endIndex - position }

        mutating func take(_ n: Int) throws(CBORError) -> ArraySlice<UInt8> {
            guard n >= 0, n <= remaining else { throw CBORError("truncated CBOR") }
            defer { position += n }
            return bytes[position..<position + n]
        }

        mutating func argument(_ info: UInt8) throws(CBORError) -> UInt64 {
            switch info {
            case 0..<24: return UInt64(info)
            case 24...27:
                var value: UInt64 = 0
                for b in try take(1 << Int(info - 24)) { value = value << 8 | UInt64(b) }
                return value
            default: throw CBORError("indefinite or reserved CBOR length")
            }
        }

        /// A length that must fit in what is left (each element takes at least one byte).
        mutating func length(_ info: UInt8) throws(CBORError) -> Int {
            let n = try argument(info)
            guard n <= UInt64(remaining) else { throw CBORError("CBOR length beyond the data") }
            return Int(n)
        }

        mutating func item(depth: Int) throws(CBORError) -> CBOR {
            guard depth <= 8 else { throw CBORError("CBOR nested too deeply") }
            let initial = try take(1).first!
            let major = initial >> 5, info = initial & 0x1f
            switch major {
            case 0: return .unsigned(try argument(info))
            case 1: return .negative(try argument(info))
            case 2: return .bytes(Array(try take(try length(info))))
            case 3:
                guard let text = String(validating: try take(try length(info)), as: UTF8.self) else {
                    throw CBORError("CBOR text is not UTF-8")
                }
                return .text(text)
            case 4:
                let n = try length(info)
                var items: [CBOR] = []
                for _ in 0..<n { items.append(try item(depth: depth + 1)) }
                return .array(items)
            case 5:
                let n = try length(info)
                var pairs: [(CBOR, CBOR)] = []
                for _ in 0..<n {
                    let key = try item(depth: depth + 1)
                    guard !pairs.contains(where: { $0.0 == key }) else { throw CBORError("duplicate CBOR map key") }
                    pairs.append((key, try item(depth: depth + 1)))
                }
                return .map(pairs)
            case 7:
                switch info {
                case 20: return .bool(false)
                case 21: return .bool(true)
                case 22: return .null
                default: throw CBORError("unsupported CBOR simple value or float")
                }
            default: throw CBORError("CBOR tags are not supported")
            }
        }
    }
}

struct CBORError: Error, Equatable, Sendable {
    let message: String
    init(_ message: String) { self.message = message }
}
