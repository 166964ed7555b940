import Glibc
import Sandbox

/// Where the appliance keeps its state under the data directory.
struct DataPaths: Sendable {
    let root: String

    var database: String { root + "/claworc.db" }
    var setupCode: String { root + "/setup-code" }
    var instances: String { root + "/instances" }
    /// Installed OpenClaw bundles, one folder per version.
    var agentBundles: String { root + "/agent/bundles" }
    /// The key that seals secrets in the database (provider API keys): 32 bytes, 0600.
    var secretKey: String { root + "/secrets.key" }
    /// The appliance's Ed25519 device key towards the agents' gateways: its 32-byte seed, 0600.
    var deviceKey: String { root + "/device.key" }
    /// The empty mount point every launch assembles its root on (inside its own mount namespace).
    var stage: String { root + "/run/stage" }

    /// Each running instance's control listener: root only, never mounted into an instance.
    var control: String { root + "/run/control" }
    func controlSocket(_ id: Int64) -> String { "\(control)/\(id).sock" }

    func instanceDir(_ id: Int64) -> String { "\(instances)/\(id)" }
    func home(_ id: Int64) -> String { instanceDir(id) + "/home" }
    /// Chromium's home (profile, NSS database), owned by the instance's browser uid.
    func browserHome(_ id: Int64) -> String { instanceDir(id) + "/browser" }
    func log(_ id: Int64) -> String { instanceDir(id) + "/instance.log" }
    /// The writable layer of an instance's overlay root (image mode) and its work dir.
    func upper(_ id: Int64) -> String { instanceDir(id) + "/root/upper" }
    func work(_ id: Int64) -> String { instanceDir(id) + "/root/work" }

    /// Instances run as unprivileged host ids, and their launcher reaches its mount point and
    /// their home through these paths: directories on the way are searchable (0711) but not
    /// listable by others; each home itself is private to its instance.
    func prepare() throws {
        for dir in [root, instances, root + "/run", stage] {
            let rc = FileSystem.makeDirectories(dir, mode: 0o711)
            if rc != 0 { throw StartupError("cannot create \(dir): \(FileSystem.errorText(rc))") }
        }
        for dir in [root, instances, root + "/run"] { chmod(dir, 0o711) }
        // Only a mount point: the launcher's tmpfs covers it before anything looks inside.
        chmod(stage, 0o700)
        // Whoever can connect to an init's listener controls the instance.
        let rc = FileSystem.makeDirectories(control, mode: 0o700)
        if rc != 0 { throw StartupError("cannot create \(control): \(FileSystem.errorText(rc))") }
        chown(control, 0, 0)
        chmod(control, 0o700)
        // Older versions created these with the default umask; the database holds the
        // password hashes.
        for file in [database, database + "-wal", database + "-shm", setupCode] where FileSystem.exists(file) {
            if chmod(file, 0o600) != 0 { throw StartupError("cannot make \(file) private: \(FileSystem.errorText(errno))") }
        }
        var path = root
        while let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            path = String(path[..<slash])
            var st = stat()
            if stat(path, &st) == 0 && st.st_mode & 0o001 == 0 {
                throw StartupError("\(path) is not searchable by other users (mode \(String(st.st_mode & 0o777, radix: 8))); " +
                                   "instances run as unprivileged ids and must reach their storage under \(root). " +
                                   "Use a data directory whose parents have the x bit for others.")
            }
        }
    }
}

struct StartupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
