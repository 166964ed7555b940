import Glibc
import NIOPosix
import Sandbox

/// The installed OpenClaw bundles and which one is active (the one instances mount at their
/// next agent start). Installing goes through `BundleInstaller`; this keeps the catalogue.
struct AgentBundles: Sendable {
    struct Bundle: Encodable, Equatable {
        var version: String
        var node: Bool
        var active: Bool
    }

    static let activeKey = "agent.active_bundle"
    /// Largest upload accepted (compressed).
    static let maxUpload = 1 << 30

    let directory: String
    let settings: any SettingsRepository

    func list() throws -> [Bundle] {
        let active = try settings.setting(Self.activeKey)
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var found: [Bundle] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            guard !name.hasPrefix("."), FileSystem.isDirectory(directory + "/" + name) else { continue }
            found.append(Bundle(version: name, node: FileSystem.exists(directory + "/" + name + "/bin/node"), active: name == active))
        }
        return found.sorted { $0.version < $1.version }
    }

    /// Installs from a readable descriptor; the first bundle installed becomes the active one.
    func install(from fd: Int32) async throws -> Bundle {
        let installer = BundleInstaller(directory: directory)
        let installed = try await NIOThreadPool.singleton.runIfActive { () throws -> BundleInstaller.Installed in
            try installer.install(from: fd)
        }
        if try settings.setting(Self.activeKey) == nil { try settings.setSetting(Self.activeKey, installed.version) }
        return Bundle(version: installed.version, node: installed.hasNode,
                      active: try settings.setting(Self.activeKey) == installed.version)
    }

    func activate(_ version: String) throws {
        guard try list().contains(where: { $0.version == version }) else { throw BundleError("not_found", "OpenClaw \(version) is not installed.") }
        try settings.setSetting(Self.activeKey, version)
    }

    func delete(_ version: String) throws {
        guard let bundle = try list().first(where: { $0.version == version }) else {
            throw BundleError("not_found", "OpenClaw \(version) is not installed.")
        }
        guard !bundle.active else { throw BundleError("bundle_active", "OpenClaw \(version) is the active version; activate another first.") }
        guard FileSystem.removeTree(directory + "/" + version) else { throw BundleError("storage_failed", "The bundle could not be removed.") }
    }
}
