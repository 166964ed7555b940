import Glibc
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The daemon's LLM key proxy. Every running instance has one listener, a socket its init
/// bound on the instance's loopback (127.0.0.1:8399) and handed over (`listen` op): the
/// daemon accepts on it from the host while the socket stays in the instance's network
/// namespace, so no route between the two exists. Which listener a connection came in on says
/// which instance it is; the credential it presents must be that instance's too.
///
/// A request is checked (route, credential, size), then planned off the event loop (the
/// provider, the real key, the budget: SQLite and AES), then forwarded with the real key to the
/// provider, whose response streams back as it arrives while `UsageMeter` counts its tokens.
final class LLMProxy: Sendable {
    /// A request body larger than this is refused (413): prompts with long contexts fit.
    static let requestLimit = 32 << 20
    /// Connections one instance may hold open at once: each is a descriptor of the daemon's,
    /// and code inside an instance must not be able to spend them all.
    static let connectionLimit = 256

    let planner: ProxyPlanner
    let credentials: AgentCredentials
    let usage: any UsageRepository
    let logger: Logger
    let group: any EventLoopGroup
    let upstreams: UpstreamConnector
    private let listeners = Mutex<[Int64: any Channel]>([:])

    init(planner: ProxyPlanner, credentials: AgentCredentials, usage: any UsageRepository, logger: Logger,
         group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.planner = planner
        self.credentials = credentials
        self.usage = usage
        self.logger = logger
        self.group = group
        self.upstreams = UpstreamConnector()
    }

    /// Accepts on `fd`, a socket listening inside instance `id` (it is the proxy's from here,
    /// also on failure). A listener the instance had before is closed.
    func attach(instance id: Int64, fd: Int32) async throws {
        guard Self.isListeningTCP(fd) else {
            close(fd)
            throw ProxyAttachFailure(description: "the instance's init handed over something that is not a listening TCP socket")
        }
        let credential = Array(credentials.proxyCredential(instance: String(id)).utf8)
        let proxy = self
        let open = OpenConnections()
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { child in
                    guard open.admit() else { return child.close() }
                    child.closeFuture.whenComplete { _ in open.release() }
                    return child.eventLoop.makeCompletedFuture {
                        try child.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try child.pipeline.syncOperations.addHandler(
                            ProxyServerHandler(proxy: proxy, instance: id, credential: credential))
                    }
                }
                .withBoundSocket(fd).get()
        } catch {
            close(fd)
            throw error
        }
        let previous = listeners.withLock { all in
            defer { all[id] = channel }
            return all[id]
        }
        previous?.close(promise: nil)
    }

    /// The instance stopped: its listener goes (connections in flight finish or fail on their own).
    func detach(instance id: Int64) {
        let channel = listeners.withLock { $0.removeValue(forKey: id) }
        channel?.close(promise: nil)
    }

    func isAttached(_ id: Int64) -> Bool { listeners.withLock { $0[id] != nil } }

    /// Stores a request's outcome on a thread of its own (SQLite must not stall an event loop);
    /// the future succeeds once it is stored, or failed to be (which is logged).
    func record(_ sample: UsageSample, on loop: any EventLoop) -> EventLoopFuture<Void> {
        let usage = self.usage, logger = self.logger
        return loop.makeFutureWithTask {
            do { try await Blocking.run { try usage.record(sample) } } catch {
                logger.error("cannot record LLM usage", metadata: ["instance": "\(sample.instanceID)", "error": "\(error)"])
            }
        }
    }

    /// What an untrusted init hands over must be what was asked for.
    static func isListeningTCP(_ fd: Int32) -> Bool {
        func option(_ name: Int32) -> Int32? {
            var value: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            return getsockopt(fd, SOL_SOCKET, name, &value, &length) == 0 ? value : nil
        }
        return option(SO_ACCEPTCONN) == 1 && option(SO_DOMAIN) == AF_INET && option(SO_TYPE) == Int32(SOCK_STREAM.rawValue)
    }
}

/// Open connections on one instance's listener, against `LLMProxy.connectionLimit`.
final class OpenConnections: Sendable {
    private let count = Atomic<Int>(0)

    func admit() -> Bool {
        if count.add(1, ordering: .relaxed).newValue <= LLMProxy.connectionLimit { return true }
        count.subtract(1, ordering: .relaxed)
        return false
    }

    func release() { count.subtract(1, ordering: .relaxed) }
}

struct ProxyAttachFailure: Error, CustomStringConvertible {
    var description: String
}
