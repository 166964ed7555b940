import Glibc

/// The init's side of the control protocol's JSON, written by hand.
///
/// The daemon encodes requests and decodes replies with Codable. The init must not: in a
/// 20 MB binary, the first Codable round trip instantiates generic metadata through mangled-name
/// lookups that scan every protocol conformance record, which cost more than a millisecond
/// of every launch (the hello is the launch's acknowledgement) and keep pages of the init
/// resident for nothing. This writes `InitMessage`s (as their flat `ControlResponse` record) and
/// reads `ControlRequest`s in exactly the shapes JSONEncoder/JSONDecoder use for them;
/// InitWireTests checks both directions.
enum InitWire {
    // ---- writing ------------------------------------------------------------------------

    static func encode(_ message: InitMessage) -> [UInt8] { encode(message.wire) }

    static func encode(_ response: ControlResponse) -> [UInt8] {
        var w = Writer()
        w.open()
        w.key("id"); w.number(response.id)
        w.key("ok"); w.bool(response.ok)
        if let version = response.version { w.key("version"); w.string(version) }
        if let event = response.event { w.key("event"); w.string(event) }
        if let terminal = response.terminal { w.key("terminal"); w.number(terminal) }
        if let code = response.code { w.key("code"); w.number(Int64(code)) }
        if let error = response.error { w.key("error"); w.string(error) }
        if let services = response.services {
            w.key("services")
            w.objects(services) { w, s in
                w.key("name"); w.string(s.name)
                w.key("state"); w.string(s.state)
                w.key("pid"); if let pid = s.pid { w.number(Int64(pid)) } else { w.null() }
                w.key("restarts"); w.number(Int64(s.restarts))
                w.key("last_exit"); if let e = s.lastExit { w.string(e) } else { w.null() }
                w.key("error"); if let e = s.error { w.string(e) } else { w.null() }
                w.key("reason"); if let r = s.reason { w.string(r) } else { w.null() }
                w.key("oom_kills"); if let o = s.oomKills { w.number(Int64(o)) } else { w.null() }
                w.key("started_at"); if let t = s.startedAt { w.number(t) } else { w.null() }
            }
        }
        if let terminals = response.terminals {
            w.key("terminals")
            w.objects(terminals) { w, t in
                w.key("id"); w.number(t.id)
                w.key("tag"); w.string(t.tag)
            }
        }
        if let run = response.run {
            w.key("run")
            w.open()
            if let code = run.exitCode { w.key("exitCode"); w.number(Int64(code)) }
            if let signal = run.signal { w.key("signal"); w.number(Int64(signal)) }
            w.key("output"); w.string(run.output)
            w.key("truncated"); w.bool(run.truncated)
            w.key("timedOut"); w.bool(run.timedOut)
            w.close()
        }
        w.close()
        return w.bytes
    }

    struct Writer {
        var bytes: [UInt8] = []
        private var first = [true]

        init() { bytes.reserveCapacity(256) }

        mutating func open() {
            bytes.append(UInt8(ascii: "{"))
            first.append(true)
        }

        mutating func close() {
            bytes.append(UInt8(ascii: "}"))
            first.removeLast()
        }

        /// An array of objects, each written by `members`.
        mutating func objects<T>(_ items: [T], _ members: (inout Writer, T) -> Void) {
            bytes.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                open()
                members(&self, item)
                close()
            }
            bytes.append(UInt8(ascii: "]"))
        }

        mutating func key(_ name: StaticString) {
            if first[first.count - 1] { first[first.count - 1] = false } else { bytes.append(UInt8(ascii: ",")) }
            bytes.append(UInt8(ascii: "\""))
            bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        }

        mutating func bool(_ v: Bool) { append(v ? "true" : "false") }
        mutating func null() { append("null") }
        mutating func number(_ v: UInt64) { append(String(v)) }
        mutating func number(_ v: Int64) { append(String(v)) }

        mutating func string(_ s: String) {
            bytes.append(UInt8(ascii: "\""))
            for b in s.utf8 {
                switch b {
                case UInt8(ascii: "\""): bytes.append(contentsOf: [92, 34])
                case UInt8(ascii: "\\"): bytes.append(contentsOf: [92, 92])
                case 0x0A: bytes.append(contentsOf: [92, UInt8(ascii: "n")])
                case 0x0D: bytes.append(contentsOf: [92, UInt8(ascii: "r")])
                case 0x09: bytes.append(contentsOf: [92, UInt8(ascii: "t")])
                case 0..<0x20:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    bytes.append(contentsOf: [92, UInt8(ascii: "u"), 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]])
                default: bytes.append(b)
                }
            }
            bytes.append(UInt8(ascii: "\""))
        }

        private mutating func append(_ s: String) { bytes.append(contentsOf: s.utf8) }
    }

    // ---- reading ------------------------------------------------------------------------

    /// What the init makes of one packet.
    enum DecodedRequest: Equatable {
        case call(ControlRequest)
        /// Well-formed, with an id to answer, but not a call the init can make.
        case refused(id: UInt64, ControlRefusal)
        /// Not a request object at all: nobody to answer.
        case malformed
    }

    static func decodeRequest(_ bytes: ArraySlice<UInt8>) -> DecodedRequest {
        var r = Reader(bytes: Array(bytes))
        var id: UInt64?
        var op: String?
        var m = ControlCall.Members()
        func optionalInteger(_ r: inout Reader, into slot: inout Int64?) -> Bool {
            if r.null() { return true }
            guard let v = r.integer() else { return false }
            slot = v
            return true
        }
        func optionalString(_ r: inout Reader, into slot: inout String?) -> Bool {
            if r.null() { return true }
            guard let v = r.string() else { return false }
            slot = v
            return true
        }
        guard r.object({ key, r in
            switch key {
            case "id": guard let v = r.integer(), v >= 0 else { return false }; id = UInt64(v)
            case "op": guard let v = r.string() else { return false }; op = v
            case "port": return optionalInteger(&r, into: &m.port)
            case "timeoutMs": return optionalInteger(&r, into: &m.timeoutMs)
            case "cols": return optionalInteger(&r, into: &m.cols)
            case "rows": return optionalInteger(&r, into: &m.rows)
            case "terminal": return optionalInteger(&r, into: &m.terminal)
            case "tag": return optionalString(&r, into: &m.tag)
            case "user": return optionalString(&r, into: &m.user)
            case "service": return optionalString(&r, into: &m.service)
            case "argv":
                if !r.null() {
                    var list: [String] = []
                    guard r.array({ r in
                        guard let s = r.string() else { return false }
                        list.append(s)
                        return true
                    }) else { return false }
                    m.argv = list
                }
            default: return r.skipValue()
            }
            return true
        }), r.atEnd, let id, id > 0, let op else { return .malformed }
        switch ControlCall.checked(op: op, m) {
        case .success(let call): return .call(ControlRequest(id: id, call: call))
        case .failure(let refusal): return .refused(id: id, refusal)
        }
    }

    /// A strict reader for the subset of JSON the daemon's JSONEncoder produces (and any other
    /// valid JSON value, which it can skip).
    struct Reader {
        let bytes: [UInt8]
        var i = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool {
            mutating get { space(); return i == bytes.count }
        }

        private var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

        private mutating func space() {
            while let c = peek, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1 }
        }

        private mutating func expect(_ c: UInt8) -> Bool {
            space()
            guard peek == c else { return false }
            i += 1
            return true
        }

        private mutating func literal(_ word: String) -> Bool {
            space()
            let n = word.utf8.count
            guard i + n <= bytes.count, bytes[i..<i + n].elementsEqual(word.utf8) else { return false }
            i += n
            return true
        }

        /// Consumes `null` if it is next.
        mutating func null() -> Bool { literal("null") }

        mutating func object(_ member: (String, inout Reader) -> Bool) -> Bool {
            guard expect(UInt8(ascii: "{")) else { return false }
            if expect(UInt8(ascii: "}")) { return true }
            repeat {
                guard let key = string(), expect(UInt8(ascii: ":")), member(key, &self) else { return false }
            } while expect(UInt8(ascii: ","))
            return expect(UInt8(ascii: "}"))
        }

        mutating func array(_ element: (inout Reader) -> Bool) -> Bool {
            guard expect(UInt8(ascii: "[")) else { return false }
            if expect(UInt8(ascii: "]")) { return true }
            repeat {
                guard element(&self) else { return false }
            } while expect(UInt8(ascii: ","))
            return expect(UInt8(ascii: "]"))
        }

        mutating func integer() -> Int64? {
            space()
            let start = i
            if peek == UInt8(ascii: "-") { i += 1 }
            while let c = peek, c >= 48 && c <= 57 { i += 1 }
            guard i > start, i - start <= 20 else { return nil }
            // A fraction or exponent is not an integer.
            if let c = peek, c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") { return nil }
            return Int64(String(decoding: bytes[start..<i], as: UTF8.self))
        }

        mutating func string() -> String? {
            guard expect(UInt8(ascii: "\"")) else { return nil }
            var out: [UInt8] = []
            while let c = peek {
                i += 1
                switch c {
                case UInt8(ascii: "\""):
                    return String(validating: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard let e = peek else { return nil }
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        guard var scalar = hex4() else { return nil }
                        if (0xD800..<0xDC00).contains(scalar) {
                            // A high surrogate must be followed by an escaped low one.
                            guard literal("\\u"), let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(scalar) {
                            return nil
                        }
                        guard let u = Unicode.Scalar(scalar) else { return nil }
                        UTF8.encode(u) { out.append($0) }
                    default:
                        return nil
                    }
                case 0..<0x20:
                    return nil   // raw control characters are not allowed in JSON strings
                default:
                    out.append(c)
                }
            }
            return nil
        }

        private mutating func hex4() -> UInt32? {
            guard i + 4 <= bytes.count else { return nil }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                i += 1
                let d: UInt32
                switch c {
                case 48...57: d = UInt32(c - 48)
                case 65...70: d = UInt32(c - 55)
                case 97...102: d = UInt32(c - 87)
                default: return nil
                }
                v = v << 4 | d
            }
            return v
        }

        /// Skips one value of any kind (members the init does not know).
        mutating func skipValue() -> Bool {
            space()
            switch peek {
            case UInt8(ascii: "\""): return string() != nil
            case UInt8(ascii: "{"): return object { _, r in r.skipValue() }
            case UInt8(ascii: "["): return array { r in r.skipValue() }
            case UInt8(ascii: "t"): return literal("true")
            case UInt8(ascii: "f"): return literal("false")
            case UInt8(ascii: "n"): return literal("null")
            default:
                let start = i
                while let c = peek, (c >= 48 && c <= 57) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+")
                    || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") { i += 1 }
                return i > start
            }
        }
    }
}
