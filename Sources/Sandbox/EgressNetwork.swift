import Glibc

/// Outbound networking for instances: each gets a veth pair (`cw-<slot>` on the host, `eth0`
/// inside) on its own /30 in 10.200.0.0/16, a default route through the host, and NAT to the
/// outside world. One nftables table (`inet claworc`) keeps instances from reaching the host
/// itself, each other, and private, loopback, link-local (cloud metadata included) and
/// multicast ranges, except for destinations an admin allowed per instance. IPv6 from
/// instances is dropped.
public final class EgressNetwork: Sendable {
    public static let table = "claworc"
    /// 168.63.129.16 is the host agent of one cloud (Azure's wireserver), reachable from VMs
    /// like a metadata service although it is not link-local.
    static let refused = ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "168.63.129.16",
                          "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15",
                          "224.0.0.0/3"]
    /// What `egress_allow` may never reopen, whatever an admin asks: these reach the host, its
    /// cloud's metadata and agents, or no host at all. (Addresses of the host itself are
    /// refused where settings are validated; they change with its interfaces.)
    static let neverAllowed: [(IPv4CIDR, String)] = [
        ("0.0.0.0/8", "\"this network\""), ("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link-local (cloud metadata)"),
        ("168.63.129.16/32", "a cloud host agent"), ("224.0.0.0/3", "multicast or reserved"),
        ("10.200.0.0/16", "the instances' own network"),
    ].map { (IPv4CIDR($0.0)!, $0.1) }
    /// An allowance is meant for LAN hosts and subnets; anything wider than a /16 is refused.
    public static let widestAllowedPrefix = 16
    static let guardComment = "claworc: not a router"
    public static let maxSlot: Int64 = 16383

    /// Nameservers of the host (from /etc/resolv.conf, which instances share): DNS to them
    /// stays allowed even when they sit in a private range.
    public let nameservers: [String]
    /// True when the host did not forward before the daemon: the forward chain then drops
    /// whatever neither comes from nor goes to an instance, so enabling forwarding for the
    /// instances does not make the host a router between its other networks. False when
    /// someone else had turned forwarding on: their routing is left alone.
    public let guardsForwarding: Bool

    public init() throws(HostCommand.Failure) {
        nameservers = Self.nameservers(resolvConf: FileSystem.readText("/etc/resolv.conf") ?? "")
        let forwarding = FileSystem.readText("/proc/sys/net/ipv4/ip_forward")?.hasPrefix("1") ?? false
        // Forwarding that is on because an earlier run of ours turned it on still needs the guard.
        let ours = forwarding && ((try? HostCommand.run(["nft", "list", "chain", "inet", Self.table, "forward"]))?
            .contains(Self.guardComment) ?? false)
        guardsForwarding = !forwarding || ours
        guard Self.writeSysctl("/proc/sys/net/ipv4/ip_forward", "1") else {
            throw HostCommand.Failure(description: "cannot enable IPv4 forwarding: \(FileSystem.errorText(errno))")
        }
        // Replace whatever an earlier run left (elements of instances that no longer run) in
        // one transaction: instances a restarted daemon adopts are never without the table.
        // Their allow-list elements come back as each is adopted (`admit`).
        try HostCommand.run(["nft", "-f", "-"], input: "table inet \(Self.table) {}\ndelete table inet \(Self.table)\n" + ruleset)
    }

    /// IPv4 nameservers other than loopback ones, strictly parsed: a line that is not
    /// "nameserver <dotted quad>" is ignored, never copied into the ruleset.
    public static func nameservers(resolvConf: String) -> [String] {
        resolvConf.split(separator: "\n").compactMap { line in
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard parts.count >= 2, parts[0] == "nameserver", let address = IPv4CIDR.address(parts[1]),
                  address >> 24 != 127 else { return nil }
            return IPv4CIDR.dotted(address)
        }
    }

    /// Why an `egress_allow` entry may not be allowed, or nil.
    public static func refusal(_ cidr: IPv4CIDR) -> String? {
        if cidr.prefix < widestAllowedPrefix { return "wider than a /\(widestAllowedPrefix)" }
        return neverAllowed.first(where: { $0.0.overlaps(cidr) }).map { "it overlaps \($0.0) (\($0.1))" }
    }

    /// Entries stored by an older version that would now be refused are not applied.
    static func applicable(_ allow: [String]) -> [String] {
        allow.compactMap { IPv4CIDR($0) }.filter { refusal($0) == nil }.map(\.description)
    }

    var ruleset: String {
        let dns = nameservers.isEmpty ? "" : """
                iifname "cw-*" ip daddr { \(nameservers.joined(separator: ", ")) } udp dport 53 accept
                iifname "cw-*" ip daddr { \(nameservers.joined(separator: ", ")) } tcp dport 53 accept

            """
        return """
            table inet \(Self.table) {
              set allow4 {
                type ifname . ipv4_addr
                flags interval
              }
              chain input {
                type filter hook input priority filter; policy accept;
                iifname "cw-*" ct state established,related accept
                iifname "cw-*" counter drop
              }
              chain forward {
                type filter hook forward priority filter; policy accept;
            \(routerGuard)    oifname "cw-*" ct state established,related accept
                oifname "cw-*" counter drop
                iifname "cw-*" meta nfproto ipv6 counter drop
                iifname . ip daddr @allow4 accept
            \(dns)    iifname "cw-*" ip daddr { \(Self.refused.joined(separator: ", ")) } counter drop
                iifname "cw-*" accept
              }
              chain postrouting {
                type nat hook postrouting priority srcnat; policy accept;
                ip saddr 10.200.0.0/16 oifname != "cw-*" masquerade
              }
            }

            """
    }

    private var routerGuard: String {
        guardsForwarding ? "    iifname != \"cw-*\" oifname != \"cw-*\" counter drop comment \"\(Self.guardComment)\"\n" : ""
    }

    public struct Addresses: Sendable, Equatable {
        public var interface: String
        public var host: String
        public var instance: String
    }

    public static func addresses(slot: Int64) -> Addresses {
        let base = UInt32(10 << 24 | 200 << 16) + UInt32(slot) * 4
        return Addresses(interface: "cw-\(slot)", host: IPv4CIDR.dotted(base + 1), instance: IPv4CIDR.dotted(base + 2))
    }

    /// Gives the waiting child (still before "go") its interface; runs in the launcher's
    /// beforeGo hook. On failure nothing is left: the pair dies with the child's namespace.
    public func attach(slot: Int64, pid: pid_t, allow: [String]) throws(HostCommand.Failure) {
        guard (1...Self.maxSlot).contains(slot) else {
            throw HostCommand.Failure(description: "no network address left for slot \(slot)")
        }
        let a = Self.addresses(slot: slot)
        // A pair left by a crashed daemon would block the name.
        _ = try? HostCommand.run(["ip", "link", "delete", a.interface])
        try HostCommand.run(["ip", "-batch", "-"], input: """
            link add \(a.interface) type veth peer name eth0 netns \(pid)
            addr add \(a.host)/30 dev \(a.interface)
            link set \(a.interface) up

            """)
        try HostCommand.run(["nsenter", "--net=/proc/\(pid)/ns/net", "ip", "-batch", "-"], input: """
            addr add \(a.instance)/30 dev eth0
            link set eth0 up
            route add default via \(a.host)

            """)
        try admit(slot: slot, allow: allow)
    }

    /// Adds an instance's allow-list entries (at launch, and when a restarted daemon adopts it).
    public func admit(slot: Int64, allow: [String]) throws(HostCommand.Failure) {
        let allow = Self.applicable(allow)
        if !allow.isEmpty {
            let elements = allow.map { "\"\(Self.addresses(slot: slot).interface)\" . \($0)" }.joined(separator: ", ")
            try HostCommand.run(["nft", "add", "element", "inet", Self.table, "allow4", "{ \(elements) }"])
        }
    }

    /// Whether the host end of the slot's veth exists (an adopted instance launched with egress).
    public static func hasInterface(slot: Int64) -> Bool {
        FileSystem.exists("/sys/class/net/\(addresses(slot: slot).interface)")
    }

    /// Forgets an instance's allow-list entries; its veth went away with its network namespace
    /// (deleted here too in case the namespace outlived the stop).
    public func detach(slot: Int64, allow: [String]) {
        let a = Self.addresses(slot: slot)
        let allow = Self.applicable(allow)
        if !allow.isEmpty {
            let elements = allow.map { "\"\(a.interface)\" . \($0)" }.joined(separator: ", ")
            _ = try? HostCommand.run(["nft", "delete", "element", "inet", Self.table, "allow4", "{ \(elements) }"])
        }
        _ = try? HostCommand.run(["ip", "link", "delete", a.interface])
    }

    static func writeSysctl(_ path: String, _ value: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return value.withCString { write(fd, $0, strlen($0)) } == value.utf8.count
    }
}
