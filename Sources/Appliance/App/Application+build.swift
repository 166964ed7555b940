import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import Supervisor

/// The application and what running it takes besides serving HTTP.
struct BuiltApplication<App: ApplicationProtocol> {
    let application: App
    /// The one-time code for creating the first admin, while there is no user (the caller
    /// shows it; it is also in `<data-dir>/setup-code`).
    let setupCode: String?
    let manager: InstanceManager

    /// Re-attaches to the instances that run (starts those that should but do not), serves
    /// until SIGINT/SIGTERM, and leaves the instances running.
    func run() async throws {
        await manager.resume()
        let manager = self.manager
        let sweeper = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                await manager.sweep()
            }
        }
        try await application.runService()
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
    let paths = DataPaths(root: configuration.dataDir)
    try paths.prepare()
    let store = try SQLiteStore(path: paths.database)
    let accounts = Accounts(users: store, setupCodePath: paths.setupCode)
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
        host = InstanceHost.acquire(dataDir: paths.root, logger: logger)
        launcher = try InstanceLauncher(paths: paths, services: configuration.instanceServices, baseRoot: configuration.baseRoot,
                                        disabled: unsafe.disabled, initProgram: unsafe.initProgram)
    case .detached:
        (host, launcher) = (.detached, nil)
    }
    let layers = SettingsLayers(settings: store, instances: store, defaultNetwork: configuration.defaultNetwork)
    let manager = InstanceManager(instances: store, settings: layers, paths: paths, logger: logger,
                                  host: host, launcher: launcher, services: configuration.instanceServices,
                                  slots: configuration.unsafe.firstSlot...InstanceIDs.maxSlot)
    let policy = AccessPolicy(instances: store)
    let control = ControlRegistry()

    let router = Router(context: AppContext.self)
    router.middlewares.add(ErrorEnvelopeMiddleware(logger: logger))
    router.middlewares.add(SessionMiddleware(accounts: accounts))
    HealthController().addRoutes(to: router.group())
    let api = router.group("/api/v1")
    AuthController(accounts: accounts, policy: policy).addRoutes(to: api)
    InstancesController(policy: policy, manager: manager).addRoutes(to: api)
    SettingsController(policy: policy, layers: layers, manager: manager).addRoutes(to: api)
    FilesController(policy: policy, paths: paths).addRoutes(to: api)
    ServicesController(policy: policy, manager: manager).addRoutes(to: api)
    EventsController(policy: policy, manager: manager).addRoutes(to: api)
    ControlController(policy: policy, control: control).addRoutes(to: api)
    LogsController(policy: policy, paths: paths,
                   services: ServiceCatalog.named(configuration.instanceServices.rawValue).map(\.name)).addRoutes(to: api)
    assets.register(on: router)

    let webSocketRouter = Router(context: AppContext.self)
    webSocketRouter.middlewares.add(ErrorEnvelopeMiddleware(logger: logger))
    webSocketRouter.middlewares.add(SessionMiddleware(accounts: accounts))
    VNCController(policy: policy, manager: manager, control: control).addRoutes(to: webSocketRouter)

    let application = Application(
        router: router,
        server: server(webSocketRouter: webSocketRouter, limits: limits),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
        logger: logger)
    return BuiltApplication(application: application, setupCode: setupCode, manager: manager)
}

/// HTTP/1 with the WebSocket upgrade (the VNC relay), inside the connection limits.
private func server(webSocketRouter: Router<AppContext>, limits: ConnectionLimits) -> HTTPServerBuilder {
    let webSocketResponder = webSocketRouter.buildResponder()
    return HTTPServerBuilder { responder in
        LimitedChildChannel(
            inner: HTTP1WebSocketUpgradeChannel(
                responder: responder, webSocketResponder: webSocketResponder,
                configuration: .init(http1: .init(additionalChannelHandlers: [ResponseEndWatcher()]),
                                     ws: .init(maxFrameSize: 1 << 20))),
            limits: limits)
    }
}
