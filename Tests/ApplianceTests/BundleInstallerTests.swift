import Testing
@testable import Appliance

@Suite struct BundleInstallerTests {
    @Test func pathsStayRelativeAndInside() throws {
        #expect(try BundleInstaller.components("bin/openclaw") == ["bin", "openclaw"])
        #expect(try BundleInstaller.components("./lib//node_modules/./x") == ["lib", "node_modules", "x"])
        for bad in ["/etc/passwd", "../x", "lib/../../x", "a/..", "x\0y"] {
            #expect(throws: BundleError.self, "\(bad)") { try BundleInstaller.components(bad) }
        }
    }

    @Test func symlinksMayNotPointOut() throws {
        try BundleInstaller.checkLink("../lib/node_modules/openclaw/openclaw.mjs", from: ["bin", "openclaw"])
        try BundleInstaller.checkLink("sibling", from: ["bin", "x"])
        for (target, at) in [("../../etc", ["bin", "x"]), ("/etc/shadow", ["x"]), ("..", ["x"]), ("", ["x"]),
                             ("a/../../..", ["bin", "x"])] {
            #expect(throws: BundleError.self, "\(target)") { try BundleInstaller.checkLink(target, from: at) }
        }
    }

    @Test func tarNumbersInBothForms() throws {
        #expect(try TarReader.number(Array("0000644\0".utf8)[...]) == 0o644)
        #expect(try TarReader.number(Array("   17 \0".utf8)[...]) == 0o17)
        #expect(try TarReader.number([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00][...]) == 256)
        #expect(throws: BundleError.self) { try TarReader.number(Array("0009".utf8)[...]) }
        #expect(try TarReader.paxRecords(Array("12 path=a/b\n".utf8)) == ["path": "a/b"])
        #expect(throws: BundleError.self) { try TarReader.paxRecords(Array("99 path=a\n".utf8)) }
    }
}
