import CSandbox
import Glibc
import Hummingbird
import NIOPosix
import Sandbox

/// The OpenClaw bundles, under /api/v1/agent (admins only): list, upload (streamed, never
/// held in memory), choose the active version, delete.
struct AgentController {
    struct ActiveBody: Decodable { var version: String }
    struct BundlesEnvelope: Encodable { var bundles: [AgentBundles.Bundle] }
    struct ActivatedEnvelope: Encodable { var bundles: [AgentBundles.Bundle]; var note: String }
    static let activationNote = "Running instances keep the version they started with; each picks up the new one at its next start (or when its agent service is restarted after a stop of the instance)."

    struct BundleEnvelope: Encodable { var bundle: AgentBundles.Bundle }

    let policy: AccessPolicy
    let bundles: AgentBundles

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.get("/agent/bundles") { _, context in
            _ = try policy.authorize(.manageAgent, by: context.user)
            return JSON.response(BundlesEnvelope(bundles: try bundles.list()))
        }
        group.post("/agent/bundles", use: upload)
        group.put("/agent/active") { request, context in
            _ = try policy.authorize(.manageAgent, by: context.user)
            let body = try await JSON.decode(ActiveBody.self, from: request, expecting: #"with "version""#)
            try bundles.activate(body.version)
            return JSON.response(ActivatedEnvelope(bundles: try bundles.list(), note: Self.activationNote))
        }
        group.delete("/agent/bundles/:version") { _, context in
            _ = try policy.authorize(.manageAgent, by: context.user)
            try bundles.delete(context.parameters.get("version") ?? "")
            return Response(status: .noContent)
        }
    }

    /// The body goes to an unnamed file in the bundle directory's file system (O_TMPFILE), then
    /// is unpacked from it: a client that goes away mid-upload leaves nothing behind.
    @Sendable func upload(_ request: Request, context: AppContext) async throws -> Response {
        _ = try policy.authorize(.manageAgent, by: context.user)
        guard FileSystem.makeDirectories(bundles.directory, mode: 0o755) == 0 else {
            throw BundleError("storage_failed", "The bundle directory could not be created.")
        }
        let fd = open(bundles.directory, CSBX_O_TMPFILE | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BundleError("storage_failed", "No room for the upload.") }
        defer { close(fd) }
        var size = 0
        for try await part in request.body {
            size += part.readableBytes
            guard size <= AgentBundles.maxUpload else {
                throw APIError(status: .contentTooLarge, code: "body_too_large", message: "A bundle upload is at most 1 GiB.")
            }
            try await NIOThreadPool.singleton.runIfActive {
                let written = part.withUnsafeReadableBytes { write(fd, $0.baseAddress, $0.count) }
                guard written == part.readableBytes else { throw BundleError("storage_failed", "Writing the upload failed (disk full?).") }
            }
        }
        lseek(fd, 0, SEEK_SET)
        let bundle = try await bundles.install(from: fd)
        return JSON.response(BundleEnvelope(bundle: bundle), status: .created)
    }
}
