import FoundationEssentials
import Hummingbird
import Logging

/// Every API failure, rendered as `{"error": {"code", "message"}}` with its HTTP status.
struct APIError: Error, Sendable {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    /// Seconds for a `Retry-After` header (429, 503).
    var retryAfter: Int64? = nil

    static func badRequest(_ code: String, _ message: String) -> APIError { .init(status: .badRequest, code: code, message: message) }
    static let unauthorized = APIError(status: .unauthorized, code: "unauthorized", message: "Log in to continue.")
    static let forbidden = APIError(status: .forbidden, code: "forbidden", message: "You are not allowed to do this.")
    static func notFound(_ what: String) -> APIError { .init(status: .notFound, code: "not_found", message: "\(what) does not exist.") }
    static func conflict(_ code: String, _ message: String) -> APIError { .init(status: .conflict, code: code, message: message) }
    static let busy = APIError(status: .serviceUnavailable, code: "busy",
                               message: "The appliance is busy checking passwords; try again shortly.", retryAfter: 2)
    static func tooManyAttempts(retryAfter: Int64) -> APIError {
        APIError(status: .tooManyRequests, code: "too_many_attempts",
                 message: "Too many failed attempts; try again later.", retryAfter: retryAfter)
    }
    static let internalError = APIError(status: .internalServerError, code: "internal",
                                        message: "Something went wrong on the appliance; the details are in its log.")

    func response() -> Response {
        var response = JSON.response(ErrorEnvelope(error: .init(code: code, message: message)), status: status)
        if let retryAfter { response.headers[.retryAfter] = String(retryAfter) }
        return response
    }
}

struct ErrorEnvelope: Encodable {
    struct Body: Encodable { var code: String; var message: String }
    var error: Body
}

enum JSON {
    static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// Decodes a JSON request body; anything unreadable is a 400 with a message, never a crash.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, expecting: String) async throws -> T {
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: 64 * 1024)
        } catch {
            throw APIError(status: .contentTooLarge, code: "body_too_large", message: "The request body is larger than 64 KiB.")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer: body))
        } catch let error as APIError {
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

/// Turns every error into the JSON envelope; internal details go to the log only.
struct ErrorEnvelopeMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return error.response()
        } catch let error as HTTPError {
            return Self.envelope(for: error.status).response()
        } catch {
            logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return APIError.internalError.response()
        }
    }

    static func envelope(for status: HTTPResponse.Status) -> APIError {
        switch status {
        case .notFound: return APIError(status: .notFound, code: "not_found", message: "There is nothing at this address.")
        case .methodNotAllowed: return APIError(status: .methodNotAllowed, code: "method_not_allowed", message: "This method is not allowed here.")
        case .unauthorized: return .unauthorized
        case .badRequest: return .badRequest("bad_request", "The request could not be understood.")
        case .contentTooLarge: return APIError(status: .contentTooLarge, code: "body_too_large", message: "The request body is too large.")
        default:
            return status.code >= 500 ? .internalError : APIError(status: status, code: "http_\(status.code)", message: status.reasonPhrase)
        }
    }
}
