import Glibc
import Testing
@testable import Sandbox

/// A restarted daemon adopts a recorded init only if it is the same process: the identity must
/// tell a process apart from a later one with the same pid, and a zombie is no longer one.
@Suite struct ProcessIdentityTests {
    @Test func startTimeIsCountedFromTheLastParenthesis() {
        let line = "4242 (evil) 1 2 3 (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 12345678 100"
        #expect(ProcessIdentity.startTime(stat: line) == 987654)
        let zombie = "4242 (claworc-init) Z 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 0 0"
        #expect(ProcessIdentity.startTime(stat: zombie) == nil)
        #expect(ProcessIdentity.startTime(stat: "4242 (short) S 1 2") == nil)
    }

    @Test func ownIdentityIsStableAndFromThisBoot() throws {
        let mine = try #require(ProcessIdentity.of(getpid()))
        #expect(ProcessIdentity.of(getpid()) == mine)
        #expect(ProcessIdentity.isFromThisBoot(mine))
        #expect(!ProcessIdentity.isFromThisBoot("00000000-0000-0000-0000-000000000000/1"))
        #expect(ProcessIdentity.of(getppid()) != mine)
    }
}
