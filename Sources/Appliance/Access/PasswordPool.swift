import Glibc
import Synchronization

/// Runs password hashing (bcrypt: ~0.1 s of CPU each) on a fixed set of worker threads with a
/// bounded queue. A thread per check let sixty parallel logins make sixty threads; here the
/// threads are capped at the CPU count and the waiting work at `capacity`, and a caller that
/// finds the queue full is told to come back (`AuthError.busy`) instead of piling on.
final class PasswordPool: @unchecked Sendable {
    // @unchecked: `available` is a POSIX semaphore, itself thread-safe; it is never freed
    // because the workers live as long as the process.
    private let jobs: Mutex<[@Sendable () -> Void]>
    private let available: UnsafeMutablePointer<sem_t>
    let capacity: Int

    init(workers: Int = PasswordPool.cpuCount, capacity: Int = 32) {
        self.capacity = capacity
        jobs = Mutex([])
        available = .allocate(capacity: 1)
        sem_init(available, 0, 0)
        for _ in 0..<max(1, workers) { startWorker() }
    }

    /// Jobs accepted but not yet picked up by a worker.
    var waiting: Int { jobs.withLock { $0.count } }

    static var cpuCount: Int { max(1, min(8, sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let accepted = jobs.withLock { queue in
                guard queue.count < capacity else { return false }
                queue.append {
                    do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
                }
                return true
            }
            if accepted {
                sem_post(available)
            } else {
                continuation.resume(throwing: AuthError.busy)
            }
        }
    }

    private func startWorker() {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        pthread_attr_setstacksize(&attributes, 256 * 1024)
        var thread = pthread_t()
        let unmanaged = Unmanaged.passRetained(self)
        let rc = pthread_create(&thread, &attributes, { raw in
            let pool = Unmanaged<PasswordPool>.fromOpaque(raw!).takeRetainedValue()
            pool.work()
            return nil
        }, unmanaged.toOpaque())
        pthread_attr_destroy(&attributes)
        precondition(rc == 0, "cannot start a password worker thread: \(rc)")
    }

    private func work() -> Never {
        while true {
            while sem_wait(available) != 0 {}   // EINTR
            let job = jobs.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            job?()
        }
    }
}
