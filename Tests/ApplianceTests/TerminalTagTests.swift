import Testing
@testable import Appliance

/// What the init keeps with each shell for the next daemon: read back exactly, and nothing
/// else taken for a tag of ours (a tag comes from an untrusted init).
@Suite struct TerminalTagTests {
    @Test func roundTripsAndHoldsOnlyTheHashOfTheSessionID() {
        let id = "0123456789abcdef0123456789abcdef"
        let tag = TerminalTag(owner: 42, root: true, key: TerminalSessions.key(id))
        #expect(!tag.text.contains(id))
        #expect(tag.text.utf8.count <= 256)
        #expect(TerminalTag(tag.text) == tag)
        let agent = TerminalTag(owner: 1, root: false, key: TerminalSessions.key("x"))
        #expect(TerminalTag(agent.text) == agent)
    }

    @Test func refusesWhatIsNotATagOfOurs() {
        let key = TerminalSessions.key("s")
        for text in ["", "v1", "v2 1 root \(key)", "v1 x root \(key)", "v1 1 admin \(key)", "v1 1 root \(key.dropLast())",
                     "v1 1 root \(key.uppercased())", "v1 1 root \(key) extra", "v1  1 root \(key)", "v1 1 root \(key.dropLast())g"] {
            #expect(TerminalTag(text) == nil, "\(text)")
        }
    }
}
