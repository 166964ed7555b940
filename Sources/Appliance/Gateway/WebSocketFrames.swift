import COpenSSL
import FoundationEssentials

/// The client side of RFC 6455, as bytes: the upgrade request, masked frames out, and an
/// incremental reader of the server's frames. No I/O here (the link feeds it what the socket
/// delivered), so the framing is tested on its own.
enum WebSocketFrames {
    enum Opcode: UInt8 { case continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 }

    enum Message: Equatable, Sendable {
        case text(String)
        case binary([UInt8])
        case ping([UInt8])
        case pong([UInt8])
        case close(code: UInt16?, reason: String)
    }

    struct ProtocolError: Error, Equatable, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    // MARK: handshake

    /// The upgrade request. Never any forwarding header: the gateway must see a direct loopback
    /// client (silent pairing), which it is: the socket was connected inside the instance.
    static func upgradeRequest(host: String, path: String, key: String) -> [UInt8] {
        Array(("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
               "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\nUser-Agent: claworc\r\n\r\n").utf8)
    }

    /// A fresh Sec-WebSocket-Key: 16 random bytes, base64.
    static func newKey() -> String { Data(Secrets.randomBytes(16)).base64EncodedString() }

    /// The Sec-WebSocket-Accept a server must answer `key` with: base64(SHA-1(key + the
    /// RFC's GUID)). It proves the server read this request (no cached or stray response).
    static func acceptValue(for key: String) -> String {
        let input = Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8)
        var digest = [UInt8](repeating: 0, count: 20)
        precondition(cossl_sha1(input, input.count, &digest) == 0, "SHA-1 failed")
        return Data(digest).base64EncodedString()
    }

    /// Where the server's response head ends in `buffer` (the bytes after it are frames), nil
    /// while incomplete; throws unless it is a 101 upgrade to websocket that accepts `key`.
    static func upgradeResponseEnd(_ buffer: [UInt8], key: String) throws -> Int? {
        guard let end = headEnd(buffer) else {
            if buffer.count > 16 << 10 { throw ProtocolError("upgrade response head over 16 KiB") }
            return nil
        }
        let head = String(decoding: buffer[..<end], as: UTF8.self)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard let status = lines.first, status.hasPrefix("HTTP/1.1 101") else {
            throw ProtocolError("not upgraded: \(lines.first.map(String.init) ?? "")")
        }
        let headers = lines.dropFirst().compactMap { line -> (name: String, value: String)? in
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { return nil }
            return (parts[0].lowercased(), parts[1].split(separator: " ").joined(separator: " "))
        }
        guard headers.contains(where: { $0.name == "upgrade" && $0.value.lowercased() == "websocket" }) else {
            throw ProtocolError("upgrade response without Upgrade: websocket")
        }
        guard headers.contains(where: { $0.name == "sec-websocket-accept" && $0.value == acceptValue(for: key) }) else {
            throw ProtocolError("upgrade response without the Sec-WebSocket-Accept for our key")
        }
        return end + 4
    }

    private static func headEnd(_ b: [UInt8]) -> Int? {
        guard b.count >= 4 else { return nil }
        for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i }
        return nil
    }

    // MARK: frames out

    /// One final frame, masked with `mask` (a client must mask every frame).
    static func encode(_ opcode: Opcode, _ payload: [UInt8], mask: [UInt8] = Secrets.randomBytes(4)) -> [UInt8] {
        precondition(mask.count == 4)
        var out: [UInt8] = [0x80 | opcode.rawValue]
        out.reserveCapacity(payload.count + 14)
        let n = payload.count
        if n < 126 {
            out.append(0x80 | UInt8(n))
        } else if n <= 0xFFFF {
            out.append(0x80 | 126)
            out += [UInt8(n >> 8), UInt8(n & 0xFF)]
        } else {
            out.append(0x80 | 127)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8((UInt64(n) >> UInt64(shift)) & 0xFF)) }
        }
        out += mask
        for (i, byte) in payload.enumerated() { out.append(byte ^ mask[i & 3]) }
        return out
    }

    static func closeFrame(code: UInt16, reason: String = "") -> [UInt8] {
        encode(.close, [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8.prefix(123)))
    }

    // MARK: frames in

    /// Reads the server's frames from the bytes fed so far: unmasked (a masked server frame is
    /// a protocol error), fragments reassembled, control frames between fragments, messages
    /// capped at `maxMessage` bytes.
    struct Reader {
        let maxMessage: Int
        private var buffer: [UInt8] = []
        private var start = 0
        private var fragments: [UInt8] = []
        private var fragmentOpcode: Opcode?

        init(maxMessage: Int) { self.maxMessage = maxMessage }

        mutating func feed<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
            if start > 0 && start == buffer.count { buffer.removeAll(keepingCapacity: true); start = 0 }
            buffer.append(contentsOf: bytes)
        }

        /// The next whole message, nil until one is complete.
        mutating func next() throws -> Message? {
            while true {
                let available = buffer.count - start
                guard available >= 2 else { return nil }
                let b0 = buffer[start], b1 = buffer[start + 1]
                guard b0 & 0x70 == 0 else { throw ProtocolError("reserved bits set") }
                guard b1 & 0x80 == 0 else { throw ProtocolError("masked frame from the server") }
                guard let opcode = Opcode(rawValue: b0 & 0x0F) else { throw ProtocolError("unknown opcode \(b0 & 0x0F)") }
                let fin = b0 & 0x80 != 0
                var length = Int(b1 & 0x7F)
                var offset = 2
                if length == 126 {
                    guard available >= 4 else { return nil }
                    length = Int(buffer[start + 2]) << 8 | Int(buffer[start + 3])
                    offset = 4
                } else if length == 127 {
                    guard available >= 10 else { return nil }
                    var n: UInt64 = 0
                    for i in 0..<8 { n = n << 8 | UInt64(buffer[start + 2 + i]) }
                    guard n <= UInt64(maxMessage) else { throw ProtocolError("frame of \(n) bytes over the limit") }
                    length = Int(n)
                    offset = 10
                }
                let isControl = opcode.rawValue >= 8
                if isControl && (length > 125 || !fin) { throw ProtocolError("bad control frame") }
                guard length <= maxMessage, fragments.count + length <= maxMessage else {
                    throw ProtocolError("message over \(maxMessage) bytes")
                }
                guard available >= offset + length else { return nil }
                let payload = Array(buffer[(start + offset)..<(start + offset + length)])
                start += offset + length
                switch opcode {
                case .ping: return .ping(payload)
                case .pong: return .pong(payload)
                case .close:
                    guard payload.count >= 2 else { return .close(code: nil, reason: "") }
                    return .close(code: UInt16(payload[0]) << 8 | UInt16(payload[1]),
                                  reason: String(decoding: payload[2...], as: UTF8.self))
                case .continuation:
                    guard let first = fragmentOpcode else { throw ProtocolError("continuation without a first fragment") }
                    fragments += payload
                    if fin {
                        let whole = fragments
                        fragments = []
                        fragmentOpcode = nil
                        return try Self.message(first, whole)
                    }
                case .text, .binary:
                    guard fragmentOpcode == nil else { throw ProtocolError("new message inside a fragmented one") }
                    if fin { return try Self.message(opcode, payload) }
                    fragmentOpcode = opcode
                    fragments = payload
                }
            }
        }

        private static func message(_ opcode: Opcode, _ payload: [UInt8]) throws -> Message {
            guard opcode == .text else { return .binary(payload) }
            guard let text = String(validating: payload, as: UTF8.self) else { throw ProtocolError("text frame is not UTF-8") }
            return .text(text)
        }
    }
}
