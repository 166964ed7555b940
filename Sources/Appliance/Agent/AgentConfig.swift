import Glibc
import Sandbox
import Supervisor

/// The part of an instance's `~/.openclaw/openclaw.json` Claworc owns, merged into whatever the
/// file already holds: OpenClaw itself rewrites the file (`meta`, `wizard`, …) and the user may
/// add their own settings in the terminal, so only the members below are replaced and every
/// other member keeps its value and place. The provider entries point at the daemon's key
/// proxy and carry the instance's proxy credential, never a provider's key.
struct AgentConfig: Sendable {
    struct Provider: Sendable {
        var name: String
        var api: String
        var models: [String]
    }

    var gatewayToken: String
    var proxyCredential: String
    /// "provider/model", and the ones to fall back to.
    var model: String?
    var fallbacks: [String]
    var providers: [Provider]

    static let proxyBase = "http://127.0.0.1:\(ServiceCatalog.llmProxyPort)/providers/"
    static let browserProfile = "claworc"

    /// `existing` with Claworc's members set. Providers that point at the proxy but are no
    /// longer configured are removed; a provider the user added (any other baseUrl) stays.
    func merged(into existing: ConfigJSON?) -> ConfigJSON {
        var root = existing ?? .object([])
        if case .object = root {} else { root = .object([]) }
        root.update("gateway") { g in
            g.set("mode", .string("local"))
            g.set("port", .number(String(ServiceCatalog.gatewayPort)))
            g.set("bind", .string("loopback"))
            g.set("auth", .object([("mode", .string("token")), ("token", .string(gatewayToken))]))
        }
        root.update("agents") { a in
            a.update("defaults") { d in
                d.set("model", model.map { primary in
                    .object([("primary", .string(primary)), ("fallbacks", .array(fallbacks.map { .string($0) }))])
                })
            }
        }
        root.update("models") { m in
            m.update("providers") { p in
                for (name, value) in p.members where Self.pointsAtProxy(value) && !providers.contains(where: { $0.name == name }) {
                    p.set(name, nil)
                }
                for provider in providers {
                    p.set(provider.name, .object([
                        ("baseUrl", .string(Self.proxyBase + provider.name)),
                        ("api", .string(provider.api)),
                        ("apiKey", .string(proxyCredential)),
                        ("models", .array(provider.models.map { .object([("id", .string($0)), ("name", .string($0))]) })),
                    ]))
                }
            }
        }
        root.update("tools") { $0.set("profile", .string("full")) }
        root.update("browser") { b in
            b.set("enabled", .bool(true))
            b.set("attachOnly", .bool(true))
            b.set("defaultProfile", .string(Self.browserProfile))
            b.update("profiles") { p in
                p.set(Self.browserProfile, .object([
                    ("cdpUrl", .string("http://127.0.0.1:\(ServiceCatalog.devToolsPort)")), ("color", .string("#2F6FEB")),
                ]))
            }
        }
        return root
    }

    static func pointsAtProxy(_ provider: ConfigJSON) -> Bool {
        if case .string(let url)? = provider["baseUrl"] { return url.hasPrefix(proxyBase) }
        return false
    }

    /// The top-level members whose values differ between two configs.
    static func changedSections(_ old: ConfigJSON?, _ new: ConfigJSON) -> [String] {
        let before = old?.members ?? []
        var names: [String] = []
        for (key, value) in new.members where before.last(where: { $0.0 == key })?.1 != value { names.append(key) }
        for (key, _) in before where new[key] == nil && !names.contains(key) { names.append(key) }
        return names
    }
}

/// Writes instances' `openclaw.json` from the stored settings and providers, through HomeFiles
/// (every path resolved below the home; the instance may be changing it meanwhile).
struct AgentConfigWriter: Sendable {
    let layers: SettingsLayers
    let providers: any ProviderRepository
    let credentials: AgentCredentials
    let bundles: AgentBundles
    let paths: DataPaths

    static let directory = ".openclaw"
    static let file = ".openclaw/openclaw.json"
    /// A config larger than this is not OpenClaw's: kept aside, rewritten.
    static let maxBytes = 4 << 20

    enum Outcome: Equatable {
        case unchanged
        /// Written; the top-level sections that changed.
        case changed([String])
    }

    /// The host directory of the active bundle, if one is installed.
    func activeBundle() -> String? {
        guard let version = try? bundles.settings.setting(AgentBundles.activeKey) else { return nil }
        let dir = bundles.directory + "/" + version
        return FileSystem.isDirectory(dir) ? dir : nil
    }

    func config(for record: InstanceRecord) throws -> AgentConfig {
        let settings = layers.effective(record)
        let id = String(record.id)
        return AgentConfig(gatewayToken: credentials.gatewayToken(instance: id), proxyCredential: credentials.proxyCredential(instance: id),
                           model: settings.model, fallbacks: settings.fallbacks ?? [],
                           providers: try providers.providers().map { .init(name: $0.name, api: $0.api.rawValue, models: $0.models) })
    }

    /// Blocking. Merges Claworc's members into the file and writes it (0600, the agent user's)
    /// if that changes it. A file that is not strict JSON is kept as `openclaw.json.bak-<time>`.
    func write(_ record: InstanceRecord) throws -> Outcome {
        guard let owner = InstanceIDs.agentHostUID(slot: record.idSlot) else { throw FileError.notFound }
        let home = HomeFiles(home: paths.home(record.id), owner: owner)
        if let failure = Self.attempt({ () throws(FileError) in try home.makeDirectory(Self.directory, mode: 0o700) }),
           failure != .exists { throw failure }
        var existing: ConfigJSON?
        var oldBytes: [UInt8]? = try read(home)
        if let bytes = oldBytes {
            do { existing = try ConfigJSON.parse(bytes) } catch {
                try home.move(from: Self.file, to: Self.file + ".bak-\(Int64(time(nil)))")
                oldBytes = nil
            }
        }
        let new = try config(for: record).merged(into: existing)
        let text = Array(new.text.utf8)
        if let oldBytes, oldBytes == text { return .unchanged }
        let upload = try home.beginUpload(Self.file, mode: 0o600)
        defer { upload.close() }
        var offset = 0
        while offset < text.count {
            let n = text[offset...].withUnsafeBytes { Glibc.write(upload.fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FileError(errno: errno) }
            offset += n
        }
        try upload.commit()
        return .changed(AgentConfig.changedSections(existing, new))
    }

    /// The error a file operation threw, if any (kept apart from the throwing paths above).
    static func attempt(_ body: () throws(FileError) -> Void) -> FileError? {
        do { try body(); return nil } catch { return error }
    }

    /// The current file's bytes; nil if there is none.
    private func read(_ home: HomeFiles) throws -> [UInt8]? {
        var opened: (fd: Int32, size: Int64)?
        if let failure = Self.attempt({ () throws(FileError) in opened = try home.openForReading(Self.file) }) {
            if failure == .notFound { return nil }
            throw failure
        }
        guard let (fd, size) = opened else { return nil }
        defer { close(fd) }
        guard size <= Self.maxBytes else { return Array("too large".utf8) }   // not JSON: kept aside
        var bytes = [UInt8](repeating: 0, count: Int(size))
        var got = 0
        while got < bytes.count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, $0.count - got, off_t(got)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            got += n
        }
        return Array(bytes[..<got])
    }
}
