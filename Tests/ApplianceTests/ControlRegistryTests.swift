import Testing
@testable import Appliance

@Suite struct ControlRegistryTests {
    @Test func oneControllerAtATime() throws {
        let control = ControlRegistry()
        control.connected(1, session: "a")
        control.connected(1, session: "b")
        #expect(control.holder(of: 1) == nil)
        let holder = try control.take(1, session: "a", username: "alice", force: false)
        #expect(holder.username == "alice")
        #expect(control.holds("a", 1) && !control.holds("b", 1))
        // Taking it again is a no-op for the holder; another session is refused.
        #expect(try control.take(1, session: "a", username: "alice", force: false) == holder)
        #expect(throws: ControlRegistry.Failure.held(by: "alice")) { try control.take(1, session: "b", username: "bob", force: false) }
        // Control is per instance.
        _ = try control.take(2, session: "b", username: "bob", force: false)
        #expect(control.holds("a", 1) && control.holds("b", 2))
    }

    @Test func forceTakesOverAndReleaseIsTheHoldersOrAnAdmins() throws {
        let control = ControlRegistry()
        control.connected(1, session: "a")
        control.connected(1, session: "b")
        _ = try control.take(1, session: "a", username: "alice", force: false)
        _ = try control.take(1, session: "b", username: "bob", force: true)
        #expect(control.holds("b", 1) && !control.holds("a", 1))
        #expect(throws: ControlRegistry.Failure.notHolder) { try control.release(1, session: "a", isAdmin: false) }
        try control.release(1, session: "a", isAdmin: true)
        #expect(control.holder(of: 1) == nil)
        try control.release(1, session: "a", isAdmin: false)   // nobody holds it: nothing to refuse
    }

    @Test func controlLapsesWhenTheHoldersLastConnectionHasBeenClosedForTheGracePeriod() async throws {
        let control = ControlRegistry(releaseAfter: .milliseconds(50))
        control.connected(1, session: "a")
        control.connected(1, session: "a")
        control.connected(1, session: "b")
        _ = try control.take(1, session: "a", username: "alice", force: false)
        control.disconnected(1, session: "a")
        control.disconnected(1, session: "b")   // another session's comings and goings change nothing
        control.connected(1, session: "b")
        #expect(control.holds("a", 1))
        control.disconnected(1, session: "a")
        let deadline = ContinuousClock.now + .seconds(5)
        while control.holds("a", 1), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(control.holder(of: 1) == nil)
    }

    @Test func aReconnectWithinTheGracePeriodKeepsControl() async throws {
        let control = ControlRegistry(releaseAfter: .milliseconds(100))
        control.connected(1, session: "a")
        _ = try control.take(1, session: "a", username: "alice", force: false)
        control.disconnected(1, session: "a")
        control.connected(1, session: "a")
        // Nothing signals "a release did not happen"; wait out the grace period, twice over.
        try await Task.sleep(for: .milliseconds(250))
        #expect(control.holds("a", 1))
    }

    @Test func controlTakenWithoutAScreenLapses() async throws {
        let control = ControlRegistry(releaseAfter: .milliseconds(50))
        _ = try control.take(1, session: "a", username: "alice", force: false)
        let deadline = ContinuousClock.now + .seconds(5)
        while control.holds("a", 1), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(control.holder(of: 1) == nil)
    }
}
