/// Instance settings in three layers: each instance's overrides over the appliance defaults
/// over the built-ins (with the daemon's --default-network). Validated before anything is
/// stored; applying new limits to running instances is the manager's part.
struct SettingsLayers: Sendable {
    static let defaultsKey = "instance_defaults"

    let settings: any SettingsRepository
    let instances: any InstanceRepository
    let builtIn: InstanceSettings

    init(settings: any SettingsRepository, instances: any InstanceRepository, defaultNetwork: Configuration.Network) {
        self.settings = settings
        self.instances = instances
        var builtIn = InstanceSettings.builtIn
        builtIn.network = defaultNetwork.rawValue
        self.builtIn = builtIn
    }

    func defaults() -> InstanceSettings {
        InstanceSettings.decode((try? settings.setting(Self.defaultsKey)) ?? "{}").over(builtIn)
    }

    func overrides(_ record: InstanceRecord) -> InstanceSettings { InstanceSettings.decode(record.limits) }

    func effective(_ record: InstanceRecord) -> InstanceSettings { overrides(record).over(defaults()) }

    func setDefaults(_ new: InstanceSettings) throws -> InstanceSettings {
        try new.validate()
        try new.over(builtIn).validate()
        try settings.setSetting(Self.defaultsKey, new.json)
        return defaults()
    }

    /// Replaces an instance's overrides (shm, tmp and network take effect at its next start).
    /// What `setOverrides` would refuse, without changing anything.
    func checkOverrides(_ id: Int64, _ new: InstanceSettings) throws {
        try new.validate()
        guard var record = try instances.instance(id: id) else { throw InstanceError.notFound }
        record.limits = new.json
        try effective(record).validate()
    }

    func setOverrides(_ id: Int64, _ new: InstanceSettings) throws -> InstanceRecord {
        try checkOverrides(id, new)
        try instances.setLimits(id, new.json)
        guard let stored = try instances.instance(id: id) else { throw InstanceError.notFound }
        return stored
    }
}
