import Glibc

/// Runs blocking work (waiting on a process, a control-socket round trip) on a
/// thread of its own, so neither NIO's event loops nor Swift's two cooperative threads on
/// this 2-core appliance ever stall behind it.
enum Blocking {
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = Job {
                do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
            }
            var attributes = pthread_attr_t()
            pthread_attr_init(&attributes)
            pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
            pthread_attr_setstacksize(&attributes, 512 * 1024)
            var thread = pthread_t()
            let unmanaged = Unmanaged.passRetained(job)
            let rc = pthread_create(&thread, &attributes, { raw in
                let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
                job.body()
                return nil
            }, unmanaged.toOpaque())
            pthread_attr_destroy(&attributes)
            if rc != 0 {
                unmanaged.release()
                continuation.resume(throwing: ThreadStartFailed(code: rc))
            }
        }
    }

    struct ThreadStartFailed: Error { var code: Int32 }

    private final class Job: @unchecked Sendable {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }
}
