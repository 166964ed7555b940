import Glibc

/// A 32-byte secret in a file of its own, 0600 (the secrets key, the device key). Made once:
/// written to a temporary name, synced, then linked into place; link, not rename, so when two
/// processes make it at once the first one's wins and the other reads that.
enum KeyFile {
    enum Created { case ours, anothers }

    /// Writes `bytes` as the file at `path`: whose key is there now, or why none could be made.
    static func create(_ path: String, bytes: [UInt8]) -> Result<Created, KeyFileError> {
        let tmp = path + ".tmp"
        unlink(tmp)
        let out = Glibc.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard out >= 0 else { return .failure(KeyFileError("\(path) could not be created")) }
        let written = bytes.withUnsafeBytes { write(out, $0.baseAddress, $0.count) }
        let synced = fsync(out) == 0
        close(out)
        let linked = written == bytes.count && synced && link(tmp, path) == 0
        let raced = !linked && errno == EEXIST
        unlink(tmp)
        guard linked || raced else { return .failure(KeyFileError("\(path) could not be written")) }
        return .success(linked ? .ours : .anothers)
    }
}

struct KeyFileError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
