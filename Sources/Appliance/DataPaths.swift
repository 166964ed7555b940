import Glibc
import Sandbox

/// Where the appliance keeps its state under the data directory.
struct DataPaths: Sendable {
    let root: String

    var database: String { root + "/claworc.db" }
    var setupCode: String { root + "/setup-code" }
    var instances: String { root + "/instances" }
    /// The empty mount point every launch assembles its root on (inside its own mount namespace).
    var stage: String { root + "/run/stage" }

    func instanceDir(_ id: Int64) -> String { "\(instances)/\(id)" }
    func home(_ id: Int64) -> String { instanceDir(id) + "/home" }
    func log(_ id: Int64) -> String { instanceDir(id) + "/instance.log" }

    func prepare() throws {
        for dir in [root, instances, root + "/run", stage] {
            let rc = FileSystem.makeDirectories(dir, mode: 0o700)
            if rc != 0 { throw StartupError("cannot create \(dir): \(FileSystem.errorText(rc))") }
        }
        chmod(root, 0o700)
    }
}

struct StartupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
