import FoundationEssentials
import Hummingbird

enum JSON {
    static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// Decodes a JSON request body; anything unreadable is a 400 with a message, never a crash.
    /// A rule a type enforces while decoding (InstanceSettings' unknown fields) keeps its own error.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, expecting: String) async throws -> T {
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: 64 * 1024)
        } catch {
            throw APIError(status: .contentTooLarge, code: "body_too_large", message: "The request body is larger than 64 KiB.")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer: body))
        } catch let error as InvalidInput {
            throw error
        } catch {
            throw APIError.badRequest("invalid_body", "The request body must be a JSON object \(expecting).")
        }
    }
}

extension Data {
    init(buffer: ByteBuffer) {
        self = buffer.withUnsafeReadableBytes { Data($0) }
    }
}
