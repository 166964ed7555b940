import Glibc
import Hummingbird
import NIOCore
import NIOPosix
import Sandbox
import Supervisor

struct PathBody: Decodable { var path: String }
struct MoveBody: Decodable { var from: String; var to: String }
struct FileListing: Encodable { var path: String; var entries: [FileEntry] }

/// `/api/v1/instances/{id}/files`: the instance's persistent home, "/" being the home. Works
/// whether the instance runs or not. Transfers stream in both directions: neither an upload
/// nor a download is ever held whole in the daemon's memory, and file I/O runs on NIO's
/// blocking-I/O pool, not on an event loop.
struct FilesController {
    let policy: AccessPolicy
    let paths: DataPaths
    /// Bytes read per hop to the blocking-I/O pool on a download: each hop is a thread switch
    /// there and back, a fixed cost per chunk (docs/performance.md, file transfers).
    static let chunk = 1024 * 1024

    func addRoutes(to group: RouterGroup<AppContext>) {
        let files = group.group("/instances/:id/files")
        files.get { request, context in
            let home = try await homeFiles(context)
            let path = try Self.path(request)
            let entries = try await Self.io { () throws(FileError) in try home.list(path) }
            return JSON.response(FileListing(path: path, entries: entries))
        }
        files.delete { request, context in
            let home = try await homeFiles(context)
            let path = try Self.path(request)
            try await Self.io { () throws(FileError) in try home.delete(path) }
            return Response(status: .noContent)
        }
        files.post("mkdir") { request, context in
            let home = try await homeFiles(context)
            let body = try await JSON.decode(PathBody.self, from: request, expecting: #"with a "path""#)
            try await Self.io { () throws(FileError) in try home.makeDirectory(body.path) }
            return Response(status: .created)
        }
        files.post("move") { request, context in
            let home = try await homeFiles(context)
            let body = try await JSON.decode(MoveBody.self, from: request, expecting: #"with "from" and "to""#)
            try await Self.io { () throws(FileError) in try home.move(from: body.from, to: body.to) }
            return Response(status: .noContent)
        }
        files.get("content") { request, context in
            let home = try await homeFiles(context)
            let path = try Self.path(request)
            let (fd, size) = try await Self.io { () throws(FileError) in try home.openForReading(path) }
            let name = (try? HomeFiles.components(path).last) ?? "download"
            let body = ResponseBody(contentLength: Int(size)) { writer in
                defer { close(fd) }
                while true {
                    let buffer = try await NIOThreadPool.singleton.runIfActive { () -> ByteBuffer in
                        var buffer = ByteBufferAllocator().buffer(capacity: Self.chunk)
                        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.chunk) { raw in
                            max(0, read(fd, raw.baseAddress, raw.count))
                        }
                        return buffer
                    }
                    if buffer.readableBytes == 0 { break }
                    try await writer.write(buffer)
                }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: [
                .contentType: "application/octet-stream",
                .contentDisposition: Self.attachment(name),
                .cacheControl: "no-store",
            ], body: body)
        }
        files.put("content") { request, context in
            let home = try await homeFiles(context)
            let path = try Self.path(request)
            let upload = try await Self.io { () throws(FileError) in try home.beginUpload(path) }
            defer { upload.close() }
            // A client that goes away mid-body ends this loop with an error: the unnamed file
            // is dropped with its descriptor and the target never changes.
            for try await part in request.body {
                try await Self.io { () throws(FileError) in
                    try part.withUnsafeReadableBytes { (raw) throws(FileError) in try upload.write(raw) }
                }
            }
            try await Self.io { () throws(FileError) in try upload.commit() }
            return Response(status: .created)
        }
    }

    /// The home of an instance the caller may operate, with the agent user that owns what the
    /// API creates there.
    private func homeFiles(_ context: AppContext) async throws -> HomeFiles {
        let record = try policy.authorize(.operate, instance: try context.instanceID(), by: context.user)
        guard let owner = InstanceIDs.agentHostUID(slot: record.idSlot) else { throw InstanceError.notFound }
        return HomeFiles(home: paths.home(record.id), owner: owner)
    }

    private static func path(_ request: Request) throws -> String {
        guard let raw = request.uri.queryParameters["path"] else {
            throw APIError.badRequest("invalid_path", "The query needs a path, e.g. ?path=/ for the home.")
        }
        return String(raw)
    }

    /// Blocking file work on NIO's thread pool (its FileErrors are mapped at the edge).
    private static func io<T: Sendable>(_ work: @escaping @Sendable () throws(FileError) -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive { try work() }
    }

    /// RFC 6266 with an RFC 5987 UTF-8 name; the plain fallback keeps only safe ASCII.
    static func attachment(_ name: String) -> String {
        let safe = String(name.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 && $0 != "\"" && $0 != "\\" ? Character($0) : "_" })
        var encoded = ""
        for byte in name.utf8 {
            let c = Character(Unicode.Scalar(byte))
            if (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || "-._~".contains(c) {
                encoded.append(c)
            } else {
                let hex = Array("0123456789ABCDEF")
                encoded += "%\(hex[Int(byte >> 4)])\(hex[Int(byte & 15)])"
            }
        }
        return "attachment; filename=\"\(safe)\"; filename*=UTF-8''\(encoded)"
    }
}
