import CZlib
import Glibc

/// Why an archive is refused. Every case names what was wrong, never a host path.
struct BundleError: Error, Equatable {
    let code: String
    let message: String
    init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }

    static func invalid(_ message: String) -> BundleError { BundleError("invalid_bundle", message) }
}

/// One member of a tar archive, as the installer sees it.
struct TarEntry: Equatable {
    enum Kind: Equatable { case file, directory, symlink(target: String), other(UInt8) }
    var path: String
    var kind: Kind
    var size: Int64
    var mode: UInt32
}

/// The decompressed bytes of a .tar.gz file, pulled as the reader needs them: the archive is
/// never held in memory, whatever its size.
final class GzipFile {
    private let fd: Int32
    private let inflater: OpaquePointer
    private var input = [UInt8](repeating: 0, count: 64 * 1024)
    private var inputStart = 0, inputEnd = 0
    private var ended = false

    init(fd: Int32) throws {
        guard let inflater = czlib_gunzip_new() else { throw BundleError("zlib_unavailable", "The system zlib could not be loaded.") }
        self.fd = fd
        self.inflater = inflater
    }

    deinit { czlib_inflater_free(inflater) }

    /// Reads to the end of the gzip stream, so its length and CRC are checked: an upload cut
    /// short after the tar's end marker is still refused.
    func finish() throws {
        var scratch = [UInt8](repeating: 0, count: 512)
        while !ended {
            var consumed = 0, produced = 0
            if inputStart == inputEnd {
                let n = input.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                guard n > 0 else { throw BundleError.invalid("The gzip stream is truncated.") }
                inputStart = 0
                inputEnd = n
            }
            let rc = input.withUnsafeBytes { source in
                scratch.withUnsafeMutableBytes { out in
                    czlib_inflate(inflater, source.baseAddress!.assumingMemoryBound(to: UInt8.self) + inputStart, inputEnd - inputStart,
                                  &consumed, out.baseAddress!.assumingMemoryBound(to: UInt8.self), out.count, &produced)
                }
            }
            inputStart += consumed
            if rc < 0 { throw BundleError.invalid("Not a gzip'd tar archive: \(String(cString: czlib_error(inflater))).") }
            if rc == 1 { ended = true }
        }
    }

    /// Fills `buffer` completely, or throws: a tar archive is whole blocks.
    func readExactly(_ buffer: UnsafeMutableRawBufferPointer) throws {
        var filled = 0
        while filled < buffer.count {
            guard !ended else { throw BundleError.invalid("The archive ends in the middle of a member.") }
            if inputStart == inputEnd {
                let n = input.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                guard n > 0 else { throw BundleError.invalid(n == 0 ? "The gzip stream is truncated." : "The upload could not be read.") }
                inputStart = 0
                inputEnd = n
            }
            var consumed = 0, produced = 0
            let rc = input.withUnsafeBytes { source in
                czlib_inflate(inflater, source.baseAddress!.assumingMemoryBound(to: UInt8.self) + inputStart, inputEnd - inputStart,
                              &consumed, buffer.baseAddress!.assumingMemoryBound(to: UInt8.self) + filled, buffer.count - filled, &produced)
            }
            inputStart += consumed
            filled += produced
            if rc < 0 { throw BundleError.invalid("Not a gzip'd tar archive: \(String(cString: czlib_error(inflater))).") }
            if rc == 1 { ended = true }
        }
    }
}

/// A streaming reader of ustar archives with the pax and GNU long-name extensions npm's and
/// GNU tar's output uses. Each header's checksum is verified; sizes are checked against the
/// limits before a byte of content is read.
final class TarReader {
    private let source: GzipFile
    private var remaining: Int64 = 0   // content bytes of the current member not yet read
    private var padding = 0

    init(_ source: GzipFile) { self.source = source }

    /// The next member, or nil at the end of the archive. The previous member's unread
    /// content is skipped.
    func next() throws -> TarEntry? {
        try skipRest()
        var longName: String?, longLink: String?, pax: [String: String] = [:]
        var header = [UInt8](repeating: 0, count: 512)
        while true {
            try header.withUnsafeMutableBytes { buffer in try source.readExactly(buffer) }
            if header.allSatisfy({ $0 == 0 }) {   // the end marker
                try source.finish()
                return nil
            }
            guard Self.checksumMatches(header) else { throw BundleError.invalid("A tar header's checksum is wrong.") }
            let size = try Self.number(header[124..<136])
            guard size >= 0, size <= 1 << 40 else { throw BundleError.invalid("A tar member has an impossible size.") }
            let type = header[156]
            switch type {
            case UInt8(ascii: "L"), UInt8(ascii: "K"), UInt8(ascii: "x"), UInt8(ascii: "g"):
                guard size <= 64 * 1024 else { throw BundleError.invalid("A tar extension header is larger than 64 KiB.") }
                let data = try readContent(Int(size))
                switch type {
                case UInt8(ascii: "L"): longName = Self.text(data[...])
                case UInt8(ascii: "K"): longLink = Self.text(data[...])
                case UInt8(ascii: "x"): pax = try Self.paxRecords(data)
                default: break   // global pax records carry nothing the installer uses
                }
                continue
            default:
                break
            }
            var path = longName ?? pax["path"] ?? Self.ustarName(header)
            if path.hasPrefix("./") { path.removeFirst(2) }
            let link = longLink ?? pax["linkpath"] ?? Self.text(header[157..<257])
            let kind: TarEntry.Kind = switch type {
            case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): .file
            case UInt8(ascii: "5"): .directory
            case UInt8(ascii: "2"): .symlink(target: link)
            default: .other(type)
            }
            let fullSize = pax["size"].flatMap { Int64($0) } ?? size
            remaining = kind == .file ? fullSize : 0
            padding = kind == .file ? Int((512 - fullSize % 512) % 512) : 0
            if kind != .file && size > 0 {
                remaining = size
                padding = Int((512 - size % 512) % 512)
            }
            return TarEntry(path: path, kind: kind, size: kind == .file ? fullSize : 0, mode: UInt32(try Self.number(header[100..<108]) & 0o7777))
        }
    }

    /// Up to `buffer.count` bytes of the current member's content; 0 at its end.
    func readContent(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = Int(min(Int64(buffer.count), remaining))
        guard n > 0 else { return 0 }
        try source.readExactly(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]))
        remaining -= Int64(n)
        return n
    }

    private func readContent(_ size: Int) throws -> [UInt8] {
        var data = [UInt8](repeating: 0, count: size)
        try data.withUnsafeMutableBytes { buffer in try source.readExactly(buffer) }
        let pad = (512 - size % 512) % 512
        if pad > 0 {
            var skip = [UInt8](repeating: 0, count: pad)
            try skip.withUnsafeMutableBytes { buffer in try source.readExactly(buffer) }
        }
        return data
    }

    private func skipRest() throws {
        var scratch = [UInt8](repeating: 0, count: 64 * 1024)
        while remaining > 0 {
            _ = try scratch.withUnsafeMutableBytes { buffer in try readContent(into: buffer) }
        }
        if padding > 0 {
            try scratch.withUnsafeMutableBytes { buffer in
                try source.readExactly(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<padding]))
            }
            padding = 0
        }
    }

    // MARK: header fields

    static func checksumMatches(_ header: [UInt8]) -> Bool {
        guard let stored = try? number(header[148..<156]) else { return false }
        var sum: Int64 = 0
        for (i, byte) in header.enumerated() { sum += (148..<156).contains(i) ? 32 : Int64(byte) }
        return sum == stored
    }

    /// An octal field (NUL or space terminated), or GNU's base-256 form for large values.
    static func number(_ field: ArraySlice<UInt8>) throws -> Int64 {
        if let first = field.first, first & 0x80 != 0 {
            var value: Int64 = Int64(first & 0x3f)
            for byte in field.dropFirst() {
                guard value < 1 << 48 else { throw BundleError.invalid("A tar number is out of range.") }
                value = value << 8 | Int64(byte)
            }
            return value
        }
        var value: Int64 = 0
        var seen = false
        for byte in field {
            if byte == 0 || byte == 32 { if seen { break } else { continue } }
            guard (48...55).contains(byte), value < 1 << 60 else { throw BundleError.invalid("A tar header has a malformed number.") }
            value = value * 8 + Int64(byte - 48)
            seen = true
        }
        return value
    }

    static func text(_ field: ArraySlice<UInt8>) -> String {
        String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
    }

    static func ustarName(_ header: [UInt8]) -> String {
        let name = text(header[0..<100])
        let isUstar = header[257..<262].elementsEqual("ustar".utf8)
        let prefix = isUstar ? text(header[345..<500]) : ""
        return prefix.isEmpty ? name : prefix + "/" + name
    }

    /// pax records: "<length> <key>=<value>\n", the length counting the whole record.
    static func paxRecords(_ data: [UInt8]) throws -> [String: String] {
        var records: [String: String] = [:]
        var i = 0
        while i < data.count {
            guard let space = data[i...].firstIndex(of: 32), let length = Int(String(decoding: data[i..<space], as: UTF8.self)),
                  length > 0, i + length <= data.count, data[i + length - 1] == 10,
                  let equals = data[(space + 1)..<(i + length)].firstIndex(of: UInt8(ascii: "=")) else {
                throw BundleError.invalid("A pax header is malformed.")
            }
            records[String(decoding: data[(space + 1)..<equals], as: UTF8.self)] =
                String(decoding: data[(equals + 1)..<(i + length - 1)], as: UTF8.self)
            i += length
        }
        return records
    }
}
