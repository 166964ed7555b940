import COpenSSL
import Glibc
import Sandbox

/// The certificate HTTPS is served with: the operator's, or one the appliance made for itself
/// on first start and keeps in `<data-dir>/tls`, so its fingerprint stays the one the admin
/// checked (deleting the two files makes a new one on the next start).
struct ServerCertificate: Sendable {
    let certificatePath: String
    let keyPath: String
    /// SHA-256 of the certificate's DER form, as browsers show it: "AB:CD:…".
    let fingerprint: String
    /// Whether this start made it.
    let created: Bool

    static let validityDays: Int32 = 3650

    /// The operator's certificate and key, checked by loading them.
    static func given(certificate: String, key: String) throws(TLSSetupError) -> ServerCertificate {
        ServerCertificate(certificatePath: certificate, keyPath: key, fingerprint: try fingerprint(of: certificate), created: false)
    }

    /// The appliance's own: made now for `names` and `addresses` if there is none yet.
    static func selfSigned(directory: String, names: [String], addresses: [String]) throws(TLSSetupError) -> ServerCertificate {
        let certificate = directory + "/server.crt", key = directory + "/server.key"
        FileSystem.makeDirectories(directory, mode: 0o700)
        var created = false
        if access(certificate, R_OK) != 0 || access(key, R_OK) != 0 {
            var why = [CChar](repeating: 0, count: 512)
            let commonName = names.first ?? addresses.first ?? "claworc"
            let made = withCStrings(names) { dns in
                withCStrings(addresses) { ips in
                    cossl_make_self_signed(certificate, key, dns, Int32(names.count), ips, Int32(addresses.count),
                                           commonName, validityDays, &why, why.count)
                }
            }
            guard made == 0 else { throw TLSSetupError("making a self-signed certificate: \(text(why))") }
            created = true
        }
        return ServerCertificate(certificatePath: certificate, keyPath: key, fingerprint: try fingerprint(of: certificate),
                                 created: created)
    }

    private static func fingerprint(of path: String) throws(TLSSetupError) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        var why = [CChar](repeating: 0, count: 512)
        guard cossl_certificate_sha256(path, &digest, &why, why.count) == 0 else { throw TLSSetupError(text(why)) }
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for (i, byte) in digest.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ":")) }
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map(UInt8.init(bitPattern:)), as: UTF8.self)
    }

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let copies = strings.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let pointers = copies.map { UnsafePointer($0) } + [nil]
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// What a self-made certificate should name: this machine's host name (and its mDNS `.local`
/// form), and the addresses clients may use: the one listened on, or every non-loopback
/// address of the host when listening on all of them.
enum MachineNames {
    static func hostNames() -> [String] {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return [] }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map(UInt8.init(bitPattern:)), as: UTF8.self)
        guard !name.isEmpty, name != "localhost" else { return [] }
        return name.contains(".") ? [name] : [name, name + ".local"]
    }

    static func addresses(listeningOn host: String) -> [String] {
        guard host == "0.0.0.0" || host == "::" else { return [host] }
        var found: [String] = []
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var entry = list
        while let current = entry {
            defer { entry = current.pointee.ifa_next }
            guard let address = current.pointee.ifa_addr, current.pointee.ifa_flags & UInt32(IFF_LOOPBACK) == 0 else { continue }
            let family = Int32(address.pointee.sa_family)
            guard family == AF_INET || (family == AF_INET6 && host == "::") else { continue }
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            let source: UnsafeRawPointer = family == AF_INET
                ? UnsafeRawPointer(address).advanced(by: MemoryLayout<sockaddr_in>.offset(of: \.sin_addr)!)
                : UnsafeRawPointer(address).advanced(by: MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!)
            guard inet_ntop(family, source, &text, socklen_t(text.count)) != nil else { continue }
            let string = String(decoding: text.prefix { $0 != 0 }.map(UInt8.init(bitPattern:)), as: UTF8.self)
            // Link-local IPv6 needs a zone, which a certificate cannot name.
            if !string.hasPrefix("fe80:") && !found.contains(string) { found.append(string) }
        }
        return found
    }

    /// Whether `host` is only reachable from this machine.
    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}
