import Sandbox
import Supervisor

/// Everything the API reports about one instance.
struct InstanceView: Encodable, Sendable {
    var id: Int64
    var name: String
    var state: InstanceState
    var createdAt: String
    var lastError: String?
    var services: [ServiceStatus]
    var settings: InstanceSettings
    /// nil: the host cannot enforce limits (no usable cgroup v2).
    var limitsEnforced: Bool
    /// The disk whose bandwidth io_*_mib_per_s limits; nil: those two are not enforced.
    var ioDevice: String?
    var usage: CgroupUsage?
    var address: String?

    enum CodingKeys: String, CodingKey {
        case id, name, state, services, settings, limits, usage, network
        case createdAt = "created_at"
        case lastError = "last_error"
    }

    struct Limits: Encodable {
        var memoryMaxMiB: Int?, memoryHighMiB: Int?, cpus: Double?, pidsMax: Int?
        var ioDevice: String?, ioReadMiBps: Int?, ioWriteMiBps: Int?
        enum CodingKeys: String, CodingKey {
            case cpus; case memoryMaxMiB = "memory_max_mib", memoryHighMiB = "memory_high_mib", pidsMax = "pids_max"
            case ioDevice = "io_device", ioReadMiBps = "io_read_mib_per_s", ioWriteMiBps = "io_write_mib_per_s"
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(memoryMaxMiB, forKey: .memoryMaxMiB)
            try c.encode(memoryHighMiB, forKey: .memoryHighMiB)
            try c.encode(cpus, forKey: .cpus)
            try c.encode(pidsMax, forKey: .pidsMax)
            // The disk limits exist only with a disk to apply them to: null says "not enforced".
            try c.encode(ioDevice, forKey: .ioDevice)
            try c.encode(ioDevice == nil ? nil : ioReadMiBps, forKey: .ioReadMiBps)
            try c.encode(ioDevice == nil ? nil : ioWriteMiBps, forKey: .ioWriteMiBps)
        }
    }

    struct Usage: Encodable {
        var u: CgroupUsage
        enum CodingKeys: String, CodingKey {
            case memoryCurrent = "memory_current_bytes", memoryPeak = "memory_peak_bytes", memoryHigh = "memory_high_events"
            case memoryMax = "memory_max_events", oomKills = "oom_kills", cpuUsage = "cpu_usage_usec"
            case throttled = "cpu_throttled_periods", pids = "pids_current"
            case ioRead = "io_read_bytes", ioWrite = "io_write_bytes"
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(u.memoryCurrent, forKey: .memoryCurrent)
            try c.encode(u.memoryPeak, forKey: .memoryPeak)
            try c.encode(u.memoryHighEvents, forKey: .memoryHigh)
            try c.encode(u.memoryMaxEvents, forKey: .memoryMax)
            try c.encode(u.oomKills, forKey: .oomKills)
            try c.encode(u.cpuUsageMicros, forKey: .cpuUsage)
            try c.encode(u.cpuThrottledPeriods, forKey: .throttled)
            try c.encode(u.pidsCurrent, forKey: .pids)
            try c.encode(u.ioReadBytes, forKey: .ioRead)
            try c.encode(u.ioWriteBytes, forKey: .ioWrite)
        }
    }

    struct Network: Encodable {
        var mode: String
        var address: String?
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(mode, forKey: .mode)
            try c.encode(address, forKey: .address)
        }
        enum CodingKeys: String, CodingKey { case mode, address }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(name, forKey: .name)
        try c.encode(state, forKey: .state)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(lastError, forKey: .lastError)   // explicit null, never missing
        try c.encode(services, forKey: .services)
        try c.encode(settings, forKey: .settings)
        if limitsEnforced {
            try c.encode(Limits(memoryMaxMiB: settings.memoryMaxMiB, memoryHighMiB: settings.memoryHighMiB,
                                cpus: settings.cpus, pidsMax: settings.pidsMax, ioDevice: ioDevice,
                                ioReadMiBps: settings.ioReadMiBps, ioWriteMiBps: settings.ioWriteMiBps), forKey: .limits)
        } else {
            try c.encode("unavailable", forKey: .limits)
        }
        try c.encode(usage.map(Usage.init), forKey: .usage)
        try c.encode(Network(mode: settings.network ?? "none", address: address), forKey: .network)
    }
}
