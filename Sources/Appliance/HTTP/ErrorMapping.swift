import Hummingbird
import Logging
import Sandbox

/// The one place where domain errors become HTTP statuses and the codes clients (the
/// dashboard, the tests) rely on. Anything not listed here is a 500 whose details go to the
/// log only.
extension APIError {
    /// nil for an error that is no client's business (a database failure, a bug).
    init?(mapping error: any Error) {
        switch error {
        case let error as APIError: self = error
        case let error as InvalidInput: self = .badRequest(error.code, error.message)
        case let error as AuthError: self = Self.map(error)
        case let error as UserError: self = Self.map(error)
        case let error as BundleError:
            let status: HTTPResponse.Status = switch error.code {
            case "not_found": .notFound
            case "version_installed", "bundle_active": .conflict
            case "storage_failed", "zlib_unavailable": .internalServerError
            default: .badRequest
            }
            self = APIError(status: status, code: error.code, message: error.message)
        case let error as InstanceError: self = Self.map(error)
        case let error as FileError: self = Self.map(error)
        case let error as ControlRegistry.Failure: self = Self.map(error)
        case let error as LogError: self = Self.map(error)
        case let error as PasskeyError: self = Self.map(error)
        default: return nil
        }
    }

    private static func map(_ error: UserError) -> APIError {
        switch error {
        case .notFound: return .notFound("The user")
        case .usernameTaken(let name): return .conflict("username_taken", "A user named '\(name)' already exists.")
        case .lastAdmin: return .conflict("last_admin", "This is the last enabled admin: make another admin first.")
        }
    }

    private static func map(_ error: AuthError) -> APIError {
        switch error {
        case .unauthorized: return APIError(status: .unauthorized, code: "unauthorized", message: "Log in to continue.")
        case .forbidden: return APIError(status: .forbidden, code: "forbidden", message: "You are not allowed to do this.")
        case .setupComplete: return .conflict("setup_complete", "The appliance is already set up; log in instead.")
        case .invalidSetupCode: return APIError(status: .forbidden, code: "invalid_setup_code", message: "The setup code is not correct.")
        case .invalidCredentials:
            return APIError(status: .unauthorized, code: "invalid_credentials", message: "The username or password is not correct.")
        case .tooManyAttempts(let wait):
            return APIError(status: .tooManyRequests, code: "too_many_attempts",
                            message: "Too many failed attempts; try again later.", retryAfter: wait)
        case .disabled: return APIError(status: .forbidden, code: "account_disabled", message: "This account is disabled; ask an admin.")
        case .crossOrigin:
            return APIError(status: .forbidden, code: "cross_origin", message: "Changes are only accepted from the appliance's own pages.")
        case .busy:
            return APIError(status: .serviceUnavailable, code: "busy",
                            message: "The appliance is busy checking passwords; try again shortly.", retryAfter: 2)
        }
    }

    private static func map(_ error: PasskeyError) -> APIError {
        let unauthorized = HTTPResponse.Status.unauthorized
        switch error {
        case .malformed(let why): return .badRequest("invalid_credential", "The passkey response cannot be read: \(why).")
        case .challengeUnknown:
            return .badRequest("challenge_unknown", "This passkey request is unknown or was already used; start again.")
        case .challengeExpired: return .badRequest("challenge_expired", "This passkey request has expired; start again.")
        case .challengeNotYours:
            return APIError(status: .forbidden, code: "challenge_mismatch",
                            message: "This passkey request was issued to another session or for another step.")
        case .wrongCeremony: return .badRequest("wrong_ceremony", "The passkey response is for the other step (registration or sign-in).")
        case .originMismatch(let expected, let got):
            return .badRequest("origin_mismatch", "The passkey response comes from \(got), not \(expected).")
        case .rpIDMismatch:
            return .badRequest("rp_id_mismatch", "The passkey is for another site name than this appliance's (see serve --rp-id).")
        case .userNotPresent: return .badRequest("user_not_present", "The authenticator did not confirm that a person was present.")
        case .unsupportedAlgorithm:
            return .badRequest("unsupported_algorithm", "The passkey's key type is not supported (ES256, EdDSA or RS256 of 2048 bits or more).")
        case .unsupportedAttestation(let format):
            return .badRequest("unsupported_attestation", "The attestation format '\(format)' is not accepted.")
        case .unknownCredential: return APIError(status: unauthorized, code: "unknown_passkey", message: "This passkey is not registered here.")
        case .badSignature: return APIError(status: unauthorized, code: "invalid_signature", message: "The passkey's signature is not valid.")
        case .signCountNotIncreased:
            return APIError(status: unauthorized, code: "sign_count_not_increased",
                            message: "The passkey's signature counter did not increase: the response was replayed or the key was copied.")
        case .credentialExists: return .conflict("passkey_exists", "This passkey is already registered.")
        case .tooManyPasskeys: return .conflict("too_many_passkeys", "An account can have at most \(Passkeys.maxPerUser) passkeys.")
        case .notFound: return APIError(status: .notFound, code: "not_found", message: "The passkey does not exist.")
        case .invalidName: return .badRequest("invalid_name", "A passkey name is 1 to 64 characters, without control characters.")
        case .needsHostName:
            return .badRequest("needs_host_name",
                               "Passkeys need the appliance to be reached by a name (such as claworc.local or localhost), not an IP address.")
        case .busy:
            return APIError(status: .serviceUnavailable, code: "busy", message: "Too many passkey requests are pending; try again shortly.",
                            retryAfter: 2)
        }
    }

    private static func map(_ error: ControlRegistry.Failure) -> APIError {
        switch error {
        case .held(let user):
            return .conflict("control_held", "\(user) controls this instance's screen in another session; an admin can take over.")
        case .notHolder:
            return APIError(status: .forbidden, code: "not_controller", message: "Only the session in control, or an admin, can release it.")
        }
    }

    private static func map(_ error: FileError) -> APIError {
        switch error {
        case .invalidPath(let message): return .badRequest("invalid_path", message)
        case .notFound: return APIError(status: .notFound, code: "not_found", message: "No such file or folder in the home.")
        case .outsideHome: return APIError(status: .forbidden, code: "outside_home",
                                           message: "The path leads outside the instance's home.")
        case .notADirectory: return .badRequest("not_a_directory", "A part of the path is not a folder.")
        case .isADirectory: return .badRequest("is_a_directory", "The path is a folder.")
        case .exists: return .conflict("exists", "Something already exists at the target path.")
        case .noSpace: return APIError(status: .init(code: 507, reasonPhrase: "Insufficient Storage"), code: "no_space", message: "The disk is full.")
        case .failed(let code): return APIError(status: .internalServerError, code: "file_error",
                                                message: "The file operation failed: \(FileSystem.errorText(code)).")
        }
    }

    private static func map(_ error: LogError) -> APIError {
        switch error {
        case .unsafeFile(let name):
            return APIError(status: .forbidden, code: "unsafe_log_file",
                            message: "The log file '\(name)' is not a regular file; it is not read.")
        case .failed(let code):
            return APIError(status: .internalServerError, code: "log_error", message: "The log could not be read: \(FileSystem.errorText(code)).")
        }
    }

    private static func map(_ error: InstanceError) -> APIError {
        switch error {
        case .notFound: return .notFound("The instance")
        case .invalidState(let current, let action):
            let rule = switch action {
            case .start: "it can only be started when stopped."
            case .stop: "it cannot be stopped now."
            case .delete: "try again in a moment."
            }
            return .conflict("invalid_state", "The instance is \(current.rawValue); \(rule)")
        case .nameTaken(let name): return .conflict("name_taken", "An instance named '\(name)' already exists.")
        case .noIDRangeLeft(let maxSlot):
            return .conflict("no_id_range_left",
                             "Every host id range is in use (at most \(maxSlot) instances); delete an instance first.")
        case .storageFailed(.create):
            return APIError(status: .internalServerError, code: "storage_failed",
                            message: "The instance's storage could not be created; nothing was kept.")
        case .storageFailed(.remove):
            return APIError(status: .internalServerError, code: "storage_failed",
                            message: "The instance's storage could not be removed completely; try deleting it again.")
        case .startFailed(let reason):
            return APIError(status: .internalServerError, code: "start_failed", message: "The instance could not start: \(reason)")
        case .processesRemain(let survivors):
            return APIError(status: .internalServerError, code: "processes_remain", message: "The instance was not deleted: \(survivors).")
        case .notRunning: return .conflict("not_running", "The instance is not running.")
        case .noSuchService(let name): return APIError(status: .notFound, code: "no_such_service",
                                                       message: "The instance runs no service named '\(name)'.")
        case .serviceUnreachable(let why):
            return APIError(status: .serviceUnavailable, code: "service_unavailable",
                            message: why ?? "The service inside the instance is not reachable.")
        case .execFailed(let why): return .badRequest("exec_failed", why ?? "The command could not be started.")
        }
    }

    /// Hummingbird's own refusals (no route, wrong method, body limits) in our envelope.
    static func envelope(for status: HTTPResponse.Status) -> APIError {
        switch status {
        case .notFound: return APIError(status: .notFound, code: "not_found", message: "There is nothing at this address.")
        case .methodNotAllowed: return APIError(status: .methodNotAllowed, code: "method_not_allowed", message: "This method is not allowed here.")
        case .unauthorized: return APIError(mapping: AuthError.unauthorized)!
        case .badRequest: return .badRequest("bad_request", "The request could not be understood.")
        case .contentTooLarge: return APIError(status: .contentTooLarge, code: "body_too_large", message: "The request body is too large.")
        default:
            return status.code >= 500 ? .internalError : APIError(status: status, code: "http_\(status.code)", message: status.reasonPhrase)
        }
    }
}

/// Turns every error into the JSON envelope; internal details go to the log only.
struct ErrorEnvelopeMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            return APIError.envelope(for: error.status).response()
        } catch {
            if let mapped = APIError(mapping: error) { return mapped.response() }
            logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return APIError.internalError.response()
        }
    }
}
