import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import COpenSSL
import Logging
import NIOCore
import ServiceLifecycle
import Supervisor

/// The application and what running it takes besides serving HTTP.
struct BuiltApplication<App: ApplicationProtocol> {
    let application: App
    /// The one-time code for creating the first admin, while there is no user (the caller
    /// shows it; it is also in `<data-dir>/setup-code`).
    let setupCode: String?
    /// The certificate HTTPS is served with (nil: plain HTTP).
    let certificate: ServerCertificate?
    /// The plain-HTTP listener that only redirects to HTTPS, when asked for.
    let redirect: (any Service)?
    let manager: InstanceManager
    /// Terminal sessions: those whose shells outlived the previous daemon are taken back.
    let terminals: TerminalSessions
    let logger: Logger
    /// Every route of both routers as "METHOD /path/{param}" (the API document is held
    /// against this list by a test).
    let routes: [String]

    /// Re-attaches to the instances that run (starts those that should but do not), serves
    /// until SIGINT/SIGTERM, and leaves the instances running.
    func run() async throws {
        await manager.resume()
        await terminals.adoptRunning(manager)
        let manager = self.manager
        let sweeper = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                await manager.sweep()
            }
        }
        try await ServiceGroup(configuration: .init(
            services: [application] + (redirect.map { [$0] } ?? []),
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)).run()
        sweeper.cancel()
        await manager.detachAll()
    }
}

/// Everything the daemon is, wired from one configuration: the data dir and store, accounts,
/// the instance manager, the controllers on their routers and the HTTP server. Needs nothing
/// but the data dir when `configuration.hostAccess` is `.detached` (in-process tests).
/// `onServerRunning` gets the port actually bound.
func buildApplication(configuration: Configuration, logger: Logger,
                      onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) throws
    -> BuiltApplication<some ApplicationProtocol> {
    var why = [CChar](repeating: 0, count: 256)
    guard cossl_load(&why, why.count) == 0 else { throw TLSSetupError(String(cString: why)) }
    // The operator's certificate is checked before anything is made: a typo in a path must
    // not leave a half-initialised data dir behind.
    var certificate: ServerCertificate?
    if case .https(let given?, let key?) = configuration.transport {
        certificate = try ServerCertificate.given(certificate: given, key: key)
    }
    let paths = DataPaths(root: configuration.dataDir)
    try paths.prepare()
    if case .https(nil, nil) = configuration.transport {
        certificate = try ServerCertificate.selfSigned(directory: paths.root + "/tls", names: MachineNames.hostNames(),
                                                       addresses: MachineNames.addresses(listeningOn: configuration.host))
    }
    let tls = try certificate.map { chosen throws(TLSSetupError) in
        let server = try TLSServer(certificate: chosen.certificatePath, key: chosen.keyPath)
        logger.info("serving HTTPS", metadata: ["certificate": "\(chosen.certificatePath)", "sha256": "\(chosen.fingerprint)",
                                                "created": "\(chosen.created)"])
        return server
    }
    let store = try SQLiteStore(path: paths.database)
    let accounts = Accounts(users: store, setupCodePath: paths.setupCode, secureCookies: tls != nil)
    let setupCode = try accounts.issueSetupCodeIfNeeded()
    let assets = try StaticAssets()

    var limits = ConnectionLimits()
    let unsafe = configuration.unsafe
    if let (head, idle) = unsafe.httpTimeouts {
        limits = ConnectionLimits(headTimeout: head, idleTimeout: idle)
        logger.critical("UNSAFE: HTTP timeouts set for testing", metadata: ["head_ms": "\(head.nanoseconds / 1_000_000)",
                                                                            "idle_ms": "\(idle.nanoseconds / 1_000_000)"])
    }
    if let program = unsafe.initProgram {
        logger.critical("UNSAFE: instances run a test program as their init", metadata: ["init": "\(program)"])
    }
    if !unsafe.disabled.isEmpty {
        logger.critical("UNSAFE: protections disabled for testing", metadata: ["disabled": "\(unsafe.disabled.map(\.rawValue).sorted())"])
    }

    let host: InstanceHost
    let launcher: InstanceLauncher?
    switch configuration.hostAccess {
    case .system:
        host = InstanceHost.acquire(dataDir: paths.root, cgroupParent: configuration.cgroupParent, logger: logger)
        launcher = try InstanceLauncher(paths: paths, services: configuration.instanceServices, baseRoot: configuration.baseRoot,
                                        disabled: unsafe.disabled, initProgram: unsafe.initProgram)
    case .detached:
        (host, launcher) = (.detached, nil)
    }
    let layers = SettingsLayers(settings: store, instances: store, defaultNetwork: configuration.defaultNetwork)
    let secretBox = try SecretBox(keyFile: paths.secretKey)
    let bundles = AgentBundles(directory: paths.agentBundles, settings: store)
    let agentConfig = AgentConfigWriter(layers: layers, providers: store, credentials: AgentCredentials(secrets: secretBox),
                                        bundles: bundles, paths: paths)
    let providers = Providers(store: store, secrets: secretBox)
    let keyProxy = LLMProxy(planner: ProxyPlanner(providers: providers, layers: layers, instances: store, usage: store),
                            credentials: AgentCredentials(secrets: secretBox), usage: store, logger: logger)
    let manager = InstanceManager(instances: store, settings: layers, paths: paths, logger: logger,
                                  host: host, launcher: launcher, services: configuration.instanceServices,
                                  slots: configuration.unsafe.firstSlot...InstanceIDs.maxSlot, agentConfig: agentConfig,
                                  keyProxy: keyProxy)
    let policy = AccessPolicy(instances: store)
    let control = ControlRegistry()
    let tokens = APITokens(store: store)
    let audit = AuditLog(store: store, logger: logger)
    let administration = UserAdministration(accounts: accounts, tokens: store)

    let router = Router(context: AppContext.self)
    router.middlewares.add(ErrorEnvelopeMiddleware(logger: logger))
    router.middlewares.add(SessionMiddleware(accounts: accounts, tokens: tokens))
    router.middlewares.add(OriginGuard())
    router.middlewares.add(AuditMiddleware(audit: audit))
    HealthController(assets: assets).addRoutes(to: router.group())
    let api = router.group("/api/v1")
    AuthController(accounts: accounts, policy: policy, audit: audit).addRoutes(to: api)
    let passkeys = Passkeys(store: store, throttle: accounts.throttle, secure: tls != nil, rpID: configuration.rpID,
                            challengeLifetimeMs: unsafe.passkeyChallengeMs ?? 120_000)
    if let ttl = unsafe.passkeyChallengeMs {
        logger.critical("UNSAFE: passkey challenge lifetime set for testing", metadata: ["ms": "\(ttl)"])
    }
    PasskeysController(passkeys: passkeys, accounts: accounts, policy: policy, audit: audit).addRoutes(to: api)
    AccountController(policy: policy, administration: administration, tokens: tokens, audit: audit).addRoutes(to: api)
    UsersController(policy: policy, administration: administration, instances: store, audit: audit).addRoutes(to: api)
    AuditController(policy: policy, store: store).addRoutes(to: api)
    AgentController(policy: policy, bundles: bundles).addRoutes(to: api)
    InstancesController(policy: policy, manager: manager).addRoutes(to: api)
    SettingsController(policy: policy, layers: layers, manager: manager, providers: providers).addRoutes(to: api)
    ProvidersController(policy: policy, providers: providers, layers: layers, manager: manager).addRoutes(to: api)
    UsageController(policy: policy, usage: store, layers: layers, instances: store).addRoutes(to: api)
    FilesController(policy: policy, paths: paths).addRoutes(to: api)
    ServicesController(policy: policy, manager: manager).addRoutes(to: api)
    EventsController(policy: policy, manager: manager).addRoutes(to: api)
    ControlController(policy: policy, control: control).addRoutes(to: api)
    LogsController(policy: policy, paths: paths,
                   services: ServiceCatalog.named(configuration.instanceServices.rawValue).map(\.name)).addRoutes(to: api)
    assets.register(on: router)

    let webSocketRouter = Router(context: AppContext.self)
    webSocketRouter.middlewares.add(ErrorEnvelopeMiddleware(logger: logger))
    webSocketRouter.middlewares.add(SessionMiddleware(accounts: accounts, tokens: tokens, refusesBadTokens: false))
    webSocketRouter.middlewares.add(AuditMiddleware(audit: audit))
    VNCController(policy: policy, manager: manager, control: control).addRoutes(to: webSocketRouter)
    let terminals = TerminalSessions(idleTimeoutMs: unsafe.terminalIdleMs, logger: logger)
    TerminalController(policy: policy, manager: manager, sessions: terminals).addRoutes(to: webSocketRouter)
    let gatewayLinks = GatewayLinks(manager: manager, credentials: AgentCredentials(secrets: secretBox),
                                    device: try DeviceIdentity(keyFile: paths.deviceKey), logger: logger)
    gatewayLinks.follow(manager.events)
    ChatController(policy: policy, layers: layers, links: gatewayLinks).addRoutes(to: webSocketRouter)

    let application = Application(
        router: router,
        server: server(webSocketRouter: webSocketRouter, limits: limits, tls: tls),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
        logger: logger)
    let redirect = configuration.redirect.map { listen in
        Application(responder: HTTPSRedirect(httpsPort: configuration.port, fallbackHost: configuration.host),
                    configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: nil), logger: logger)
    }
    let routes = (router.routes + webSocketRouter.routes).map { "\($0.method) \($0.path)" }
    return BuiltApplication(application: application, setupCode: setupCode, certificate: certificate, redirect: redirect,
                            manager: manager, terminals: terminals, logger: logger, routes: routes)
}

/// HTTP/1 with the WebSocket upgrade (the VNC relay), over TLS when there is a certificate,
/// inside the connection limits (a refused connection costs no handshake).
private func server(webSocketRouter: Router<AppContext>, limits: ConnectionLimits, tls: TLSServer?) -> HTTPServerBuilder {
    let webSocketResponder = webSocketRouter.buildResponder()
    return HTTPServerBuilder { responder in
        let http = HTTP1WebSocketUpgradeChannel(
            responder: responder, webSocketResponder: webSocketResponder,
            configuration: .init(http1: .init(additionalChannelHandlers: [ResponseEndWatcher()]),
                                 ws: .init(maxFrameSize: 1 << 20)))
        guard let tls else { return LimitedChildChannel(inner: http, limits: limits) }
        return LimitedChildChannel(inner: TLSChildChannel(base: http, server: tls), limits: limits)
    }
}
