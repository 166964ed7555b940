import Glibc
import Synchronization
import Testing
@testable import Appliance

/// A clock the test moves by hand.
final class FakeClock: Sendable {
    let seconds = Mutex<Int64>(1000)
    func advance(_ by: Int64) { seconds.withLock { $0 += by } }
    var read: @Sendable () -> Int64 { { [self] in seconds.withLock { $0 } } }
}

@Suite struct LoginThrottleTests {
    @Test func accountRefusedAfterTenFailuresUntilTheWindowEnds() {
        let clock = FakeClock()
        let throttle = LoginThrottle(now: clock.read)
        for _ in 0..<10 { #expect(throttle.begin(account: "admin", address: "10.0.0.1") == nil) }
        #expect(throttle.begin(account: "admin", address: "10.0.0.1") == 300)
        clock.advance(120)
        // From another address too: the account is what is guessed at.
        #expect(throttle.begin(account: "admin", address: "10.0.0.2") == 180)
        clock.advance(180)
        #expect(throttle.begin(account: "admin", address: "10.0.0.1") == nil)
    }

    @Test func successResetsTheAccountButNotTheAddress() {
        let throttle = LoginThrottle(policy: .init(perAccount: 3, perAddress: 5), now: FakeClock().read)
        for _ in 0..<2 { #expect(throttle.begin(account: "a", address: "x") == nil) }
        #expect(throttle.begin(account: "a", address: "x") == nil)
        throttle.succeeded(account: "a", address: "x")
        for _ in 0..<2 { #expect(throttle.begin(account: "a", address: "x") == nil) }
        // Address: 2 + 2 failures counted (the success uncounted itself), one more allowed.
        #expect(throttle.begin(account: "b", address: "x") == nil)
        #expect(throttle.begin(account: "c", address: "x") != nil)
        #expect(throttle.begin(account: "c", address: "y") == nil)
    }

    @Test func abandonedAttemptsDoNotCount() {
        let throttle = LoginThrottle(policy: .init(perAccount: 1, perAddress: 1), now: FakeClock().read)
        #expect(throttle.begin(account: "a", address: "x") == nil)
        throttle.abandoned(account: "a", address: "x")
        #expect(throttle.begin(account: "a", address: "x") == nil)
        #expect(throttle.begin(account: "a", address: "x") != nil)
    }

    @Test func fullTableRefusesRatherThanForgets() {
        let clock = FakeClock()
        let throttle = LoginThrottle(policy: .init(maxEntries: 4), now: clock.read)
        #expect(throttle.begin(account: "a", address: "x") == nil)
        #expect(throttle.begin(account: "b", address: "y") == nil)
        #expect(throttle.begin(account: "c", address: "z") == 300)
        clock.advance(300)   // expired entries make room
        #expect(throttle.begin(account: "c", address: "z") == nil)
    }
}

@Suite struct PasswordPoolTests {
    @Test func fullQueueIsBusyNotAnotherThread() async throws {
        let pool = PasswordPool(workers: 1, capacity: 1)
        var gate: [Int32] = [0, 0]
        #expect(pipe(&gate) == 0)
        let (readEnd, writeEnd) = (gate[0], gate[1])
        defer { close(readEnd); close(writeEnd) }
        let started = Mutex(false)
        // Occupies the only worker until the test writes to the pipe.
        let blocker = Task {
            try await pool.run { () -> Int in
                started.withLock { $0 = true }
                var byte: UInt8 = 0
                return read(readEnd, &byte, 1)
            }
        }
        for _ in 0..<2000 where !started.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
        #expect(started.withLock { $0 })
        let queued = Task { try await pool.run { 42 } }
        for _ in 0..<2000 where pool.waiting < 1 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(pool.waiting == 1)
        await #expect(throws: AuthError.busy) { try await pool.run { 0 } }
        let refused = APIError(mapping: AuthError.busy)
        #expect(refused?.status == .serviceUnavailable && refused?.code == "busy" && refused?.retryAfter != nil)
        var one: UInt8 = 1
        #expect(write(writeEnd, &one, 1) == 1)
        #expect(try await blocker.value == 1)
        #expect(try await queued.value == 42)
    }
}

@Suite struct CredentialTests {
    @Test func nulBytesAreRefused() {
        #expect(throws: InvalidInput.self) { try Accounts.refuseNUL("admin", "password\0junk") }
        #expect(throws: InvalidInput.self) { try Accounts.refuseNUL("ad\0min", "password") }
        #expect(throws: Never.self) { try Accounts.refuseNUL("admin", "pässword") }
    }
}
