import Glibc

/// An IPv4 network in CIDR form with its host bits cleared. Parsing is strict: four decimal
/// octets without leading zeros (no octal or hex forms some parsers accept), and an optional
/// "/prefix" written the same way. Anything else is nil, so nothing unparsed ever reaches an
/// nftables ruleset.
public struct IPv4CIDR: Equatable, Sendable, CustomStringConvertible {
    public var address: UInt32
    public var prefix: Int

    public init(address: UInt32, prefix: Int) {
        self.prefix = prefix
        self.address = address & Self.mask(prefix)
    }

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = Self.address(parts[0]) else { return nil }
        var prefix = 32
        if parts.count == 2 {
            guard let p = Self.decimal(parts[1], max: 32) else { return nil }
            prefix = p
        }
        self.init(address: address, prefix: prefix)
    }

    /// A single dotted-quad address, strictly.
    public static func address(_ text: Substring) -> UInt32? {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return nil }
        var value: UInt32 = 0
        for octet in octets {
            guard let byte = decimal(octet, max: 255) else { return nil }
            value = value << 8 | UInt32(byte)
        }
        return value
    }

    private static func decimal(_ text: Substring, max: Int) -> Int? {
        let digits = text.utf8
        guard (1...3).contains(digits.count), digits.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              digits.count == 1 || digits.first != 48, let value = Int(text), value <= max else { return nil }
        return value
    }

    static func mask(_ prefix: Int) -> UInt32 { prefix == 0 ? 0 : ~UInt32(0) << UInt32(32 - prefix) }

    public func contains(_ address: UInt32) -> Bool { address & Self.mask(prefix) == self.address }

    public func overlaps(_ other: IPv4CIDR) -> Bool {
        let shorter = min(prefix, other.prefix)
        return address & Self.mask(shorter) == other.address & Self.mask(shorter)
    }

    public static func dotted(_ a: UInt32) -> String { "\(a >> 24).\(a >> 16 & 0xff).\(a >> 8 & 0xff).\(a & 0xff)" }

    public var description: String { "\(Self.dotted(address))/\(prefix)" }

    /// Every IPv4 address on the host's interfaces.
    public static func hostAddresses() -> [UInt32] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var found: [UInt32] = []
        var entry = list
        while let current = entry {
            if let sa = current.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET) {
                sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { found.append(UInt32(bigEndian: $0.pointee.sin_addr.s_addr)) }
            }
            entry = current.pointee.ifa_next
        }
        return found
    }
}
