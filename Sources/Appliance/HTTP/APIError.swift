import Hummingbird

/// An API failure as the client sees it: `{"error": {"code", "message"}}` with its HTTP
/// status. Only the HTTP layer makes these; the layers below throw domain errors, which
/// `APIError(mapping:)` (ErrorMapping.swift) translates.
struct APIError: Error, Sendable {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    /// Seconds for a `Retry-After` header (429, 503).
    var retryAfter: Int64? = nil

    static func badRequest(_ code: String, _ message: String) -> APIError { .init(status: .badRequest, code: code, message: message) }
    static func notFound(_ what: String) -> APIError { .init(status: .notFound, code: "not_found", message: "\(what) does not exist.") }
    static func conflict(_ code: String, _ message: String) -> APIError { .init(status: .conflict, code: code, message: message) }
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
