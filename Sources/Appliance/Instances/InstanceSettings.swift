import FoundationEssentials
import Sandbox

/// Per-instance settings with appliance-wide defaults. Every field is optional in storage:
/// an instance's overrides are layered over the defaults, which are layered over built-ins.
struct InstanceSettings: Codable, Sendable, Equatable {
    var memoryMaxMiB: Int?
    var memoryHighMiB: Int?
    var cpus: Double?
    var pidsMax: Int?
    var shmMiB: Int?
    var tmpMiB: Int?
    /// Disk bandwidth of the instance's storage in MiB/s (0: unlimited); enforced where the
    /// host's cgroup v2 tree has the io controller and the data dir is on a block device.
    var ioReadMiBps: Int?
    var ioWriteMiBps: Int?
    /// "egress": a veth with NAT to the outside, private ranges and the host refused;
    /// "none": loopback only.
    var network: String?
    /// Destinations (IPv4 address or CIDR) an instance may reach despite the private-range
    /// block, e.g. a LAN proxy.
    var egressAllow: [String]?
    /// The agent's model, "provider/model", and the ones it falls back to, in order.
    var model: String?
    var fallbacks: [String]?
    /// Everyone's chat with the agent is one conversation (`agent:main:main`) instead of one
    /// session per user.
    var chatShared: Bool?
    /// Input plus output tokens the instance may spend through the key proxy per UTC month;
    /// nil: the default's, and nil there too: unlimited.
    var monthlyTokenBudget: Int?

    enum CodingKeys: String, CodingKey {
        case cpus, network, model, fallbacks
        case chatShared = "chat_shared"
        case memoryMaxMiB = "memory_max_mib", memoryHighMiB = "memory_high_mib", pidsMax = "pids_max"
        case shmMiB = "shm_mib", tmpMiB = "tmp_mib", egressAllow = "egress_allow"
        case ioReadMiBps = "io_read_mib_per_s", ioWriteMiBps = "io_write_mib_per_s"
        case monthlyTokenBudget = "monthly_token_budget"
    }

    init(memoryMaxMiB: Int? = nil, memoryHighMiB: Int? = nil, cpus: Double? = nil, pidsMax: Int? = nil,
         shmMiB: Int? = nil, tmpMiB: Int? = nil, ioReadMiBps: Int? = nil, ioWriteMiBps: Int? = nil,
         network: String? = nil, egressAllow: [String]? = nil, model: String? = nil, fallbacks: [String]? = nil,
         chatShared: Bool? = nil, monthlyTokenBudget: Int? = nil) {
        self.chatShared = chatShared
        self.monthlyTokenBudget = monthlyTokenBudget
        self.model = model
        self.fallbacks = fallbacks
        self.memoryMaxMiB = memoryMaxMiB
        self.memoryHighMiB = memoryHighMiB
        self.cpus = cpus
        self.pidsMax = pidsMax
        self.shmMiB = shmMiB
        self.tmpMiB = tmpMiB
        self.ioReadMiBps = ioReadMiBps
        self.ioWriteMiBps = ioWriteMiBps
        self.network = network
        self.egressAllow = egressAllow
    }

    /// Strict: a misspelt field is an error, not a silently ignored setting. `extraKeys` are
    /// fields a wrapper decodes from the same object (an instance's `provider_keys`).
    init(from decoder: any Decoder) throws { try self.init(from: decoder, extraKeys: []) }

    init(from decoder: any Decoder, extraKeys: [String]) throws {
        struct AnyKey: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
        let known = Set(["memory_max_mib", "memory_high_mib", "cpus", "pids_max", "shm_mib", "tmp_mib",
                         "io_read_mib_per_s", "io_write_mib_per_s", "network", "egress_allow", "model", "fallbacks",
                         "chat_shared", "monthly_token_budget"]
                        + extraKeys)
        let unknown = try decoder.container(keyedBy: AnyKey.self).allKeys.map(\.stringValue).filter { !known.contains($0) }
        if let first = unknown.sorted().first {
            throw InvalidInput("unknown_setting", "Unknown setting \"\(first)\"; known: \(known.sorted().joined(separator: ", ")).")
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        memoryMaxMiB = try c.decodeIfPresent(Int.self, forKey: .memoryMaxMiB)
        memoryHighMiB = try c.decodeIfPresent(Int.self, forKey: .memoryHighMiB)
        cpus = try c.decodeIfPresent(Double.self, forKey: .cpus)
        pidsMax = try c.decodeIfPresent(Int.self, forKey: .pidsMax)
        shmMiB = try c.decodeIfPresent(Int.self, forKey: .shmMiB)
        tmpMiB = try c.decodeIfPresent(Int.self, forKey: .tmpMiB)
        ioReadMiBps = try c.decodeIfPresent(Int.self, forKey: .ioReadMiBps)
        ioWriteMiBps = try c.decodeIfPresent(Int.self, forKey: .ioWriteMiBps)
        network = try c.decodeIfPresent(String.self, forKey: .network)
        // Stored normalised ("10.1.2.3" → "10.1.2.3/32", host bits cleared); what does not
        // parse is kept as given for `validate` to name.
        egressAllow = try c.decodeIfPresent([String].self, forKey: .egressAllow)?.map { IPv4CIDR($0)?.description ?? $0 }
        model = try c.decodeIfPresent(String.self, forKey: .model)
        fallbacks = try c.decodeIfPresent([String].self, forKey: .fallbacks)
        chatShared = try c.decodeIfPresent(Bool.self, forKey: .chatShared)
        monthlyTokenBudget = try c.decodeIfPresent(Int.self, forKey: .monthlyTokenBudget)
    }

    static let builtIn = InstanceSettings(memoryMaxMiB: 4096, memoryHighMiB: 3584, cpus: 2, pidsMax: 4096,
                                          shmMiB: 512, tmpMiB: 512, ioReadMiBps: 0, ioWriteMiBps: 0,
                                          network: "egress", egressAllow: [])

    /// Fields set here win over `base`.
    func over(_ base: InstanceSettings) -> InstanceSettings {
        InstanceSettings(memoryMaxMiB: memoryMaxMiB ?? base.memoryMaxMiB, memoryHighMiB: memoryHighMiB ?? base.memoryHighMiB,
                         cpus: cpus ?? base.cpus, pidsMax: pidsMax ?? base.pidsMax, shmMiB: shmMiB ?? base.shmMiB,
                         tmpMiB: tmpMiB ?? base.tmpMiB, ioReadMiBps: ioReadMiBps ?? base.ioReadMiBps,
                         ioWriteMiBps: ioWriteMiBps ?? base.ioWriteMiBps, network: network ?? base.network,
                         egressAllow: egressAllow ?? base.egressAllow, model: model ?? base.model,
                         fallbacks: fallbacks ?? base.fallbacks, chatShared: chatShared ?? base.chatShared,
                         monthlyTokenBudget: monthlyTokenBudget ?? base.monthlyTokenBudget)
    }

    /// Rejects nonsense with a message naming the field.
    func validate() throws {
        func check(_ ok: Bool, _ field: String, _ rule: String) throws {
            if !ok { throw InvalidInput("invalid_setting", "\(field): \(rule).") }
        }
        if let v = memoryMaxMiB { try check((64...1_048_576).contains(v), "memory_max_mib", "64 to 1048576") }
        if let v = memoryHighMiB { try check((32...1_048_576).contains(v), "memory_high_mib", "32 to 1048576") }
        if let v = cpus { try check(v >= 0.05 && v <= 1024, "cpus", "0.05 to 1024") }
        if let v = pidsMax { try check((32...4_194_304).contains(v), "pids_max", "32 to 4194304") }
        if let v = shmMiB { try check((1...65536).contains(v), "shm_mib", "1 to 65536") }
        if let v = tmpMiB { try check((1...65536).contains(v), "tmp_mib", "1 to 65536") }
        if let v = ioReadMiBps { try check((0...1_048_576).contains(v), "io_read_mib_per_s", "0 (unlimited) to 1048576") }
        if let v = ioWriteMiBps { try check((0...1_048_576).contains(v), "io_write_mib_per_s", "0 (unlimited) to 1048576") }
        if let v = network { try check(v == "egress" || v == "none", "network", "\"egress\" or \"none\"") }
        if let list = egressAllow {
            try check(list.count <= 256, "egress_allow", "at most 256 entries")
            let host = IPv4CIDR.hostAddresses()
            for entry in list {
                guard let cidr = IPv4CIDR(entry) else {
                    throw InvalidInput("invalid_setting", "egress_allow: \"\(entry)\" is not an IPv4 address or CIDR such as 192.168.1.10 or 10.0.0.0/24.")
                }
                if let reason = EgressNetwork.refusal(cidr) ?? host.first(where: cidr.contains).map({ "it holds \(IPv4CIDR.dotted($0)), an address of the appliance itself" }) {
                    throw InvalidInput("invalid_setting", "egress_allow: \(entry) is refused: \(reason).")
                }
            }
        }
        for (field, value) in [("model", model)] + (fallbacks ?? []).map({ ("fallbacks", Optional($0)) }) {
            guard let value else { continue }
            try check(Self.isModelReference(value), field, "\"provider/model\", such as \"openai/gpt-5\"")
        }
        if let list = fallbacks { try check(list.count <= 8, "fallbacks", "at most 8 models") }
        if let v = monthlyTokenBudget { try check(v >= 0 && v <= 1_000_000_000_000, "monthly_token_budget", "0 to 10^12 tokens, or null for unlimited") }
        if let high = memoryHighMiB, let max = memoryMaxMiB {
            try check(high <= max, "memory_high_mib", "at most memory_max_mib")
        }
    }

    /// "provider/model": a provider name (as Providers allows) and a model id.
    static func isModelReference(_ text: String) -> Bool {
        guard let slash = text.firstIndex(of: "/") else { return false }
        let provider = text[..<slash], model = text[text.index(after: slash)...]
        return (1...32).contains(provider.utf8.count) && (1...128).contains(model.utf8.count)
            && provider.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 }
            && model.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 122) || "._:/-@".utf8.contains($0) }
    }

    /// The cgroup files these settings come to; `ioDevice` is the disk of the data dir when
    /// the io controller can limit it.
    func cgroupLimits(ioDevice: String?) -> CgroupLimits {
        let builtIn = Self.builtIn
        func bytesPerSecond(_ mib: Int?) -> UInt64? { (mib ?? 0) > 0 ? UInt64(mib!) << 20 : nil }
        return CgroupLimits(memoryMaxBytes: UInt64(memoryMaxMiB ?? builtIn.memoryMaxMiB!) << 20,
                            memoryHighBytes: UInt64(memoryHighMiB ?? builtIn.memoryHighMiB!) << 20,
                            cpus: cpus ?? builtIn.cpus!, pidsMax: pidsMax ?? builtIn.pidsMax!,
                            io: ioDevice.map { IOLimit(device: $0, readBytesPerSecond: bytesPerSecond(ioReadMiBps),
                                                       writeBytesPerSecond: bytesPerSecond(ioWriteMiBps)) })
    }

    static func decode(_ json: String) -> InstanceSettings {
        (try? JSONDecoder().decode(InstanceSettings.self, from: Data(json.utf8))) ?? InstanceSettings()
    }

    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? "{}"
    }
}
