import FoundationEssentials
import Sandbox
import Testing
@testable import Appliance

@Suite struct IPv4ParsingTests {
    @Test func strictDottedQuads() {
        #expect(IPv4CIDR("10.1.2.3")?.description == "10.1.2.3/32")
        #expect(IPv4CIDR("10.1.2.3/16")?.description == "10.1.0.0/16")
        #expect(IPv4CIDR("0.0.0.0/0")?.description == "0.0.0.0/0")
        for bad in ["010.1.2.3", "10.1.2", "10.1.2.3.4", "10.1.2.256", "10.1.2.3/33", "10.1.2.3/016", "10.1.2.3/",
                    " 10.1.2.3", "10.1.2.3 ", "0x0a.1.2.3", "+1.2.3.4", "1.2.3.4/-1", "", "1..2.3", "1.2.3.4/1/2"] {
            #expect(IPv4CIDR(bad) == nil, "\(bad)")
        }
    }

    @Test func containsAndOverlaps() throws {
        let net = try #require(IPv4CIDR("192.168.0.0/16"))
        #expect(net.contains(IPv4CIDR.address("192.168.77.1")!))
        #expect(!net.contains(IPv4CIDR.address("192.169.0.1")!))
        #expect(net.overlaps(IPv4CIDR("192.168.77.10")!))
        #expect(IPv4CIDR("0.0.0.0/0")!.overlaps(IPv4CIDR("169.254.169.254")!))
        #expect(!net.overlaps(IPv4CIDR("10.0.0.0/8")!))
    }
}

@Suite struct EgressAllowTests {
    @Test func refusedEntries() {
        for entry in ["0.0.0.0/0", "10.0.0.0/8", "192.168.0.0/15", "169.254.169.254", "169.254.0.0/16", "127.0.0.1",
                      "0.1.2.3", "224.0.0.1", "240.0.0.0/8", "255.255.255.255", "168.63.129.16", "168.63.129.0/24",
                      "10.200.3.4/30", "10.200.0.0/16"] {
            #expect(EgressNetwork.refusal(IPv4CIDR(entry)!) != nil, "\(entry)")
        }
        for entry in ["10.1.2.3", "10.1.0.0/16", "192.168.77.10", "172.16.5.0/24", "203.0.113.0/24", "100.64.1.0/24"] {
            #expect(EgressNetwork.refusal(IPv4CIDR(entry)!) == nil, "\(entry)")
        }
    }

    @Test func settingsValidateAndNormalise() throws {
        let decoded = try JSONDecoder().decode(InstanceSettings.self,
                                               from: Data(#"{"egress_allow": ["10.1.2.3", "10.1.2.3/16"]}"#.utf8))
        #expect(decoded.egressAllow == ["10.1.2.3/32", "10.1.0.0/16"])
        #expect(throws: Never.self) { try decoded.validate() }
        for bad in ["0.0.0.0/0", "nonsense", "169.254.169.254"] {
            #expect(throws: InvalidInput.self) { try InstanceSettings(egressAllow: [bad]).validate() }
        }
        // The host's own addresses, whatever they are here.
        for address in IPv4CIDR.hostAddresses() where address >> 24 != 127 {
            #expect(throws: InvalidInput.self) { try InstanceSettings(egressAllow: [IPv4CIDR.dotted(address)]).validate() }
        }
    }
}

@Suite struct ResolvConfTests {
    @Test func onlyStrictIPv4NameserversAreKept() {
        let text = """
            # comment
            nameserver 10.0.0.53
            nameserver\t192.168.1.1
            nameserver 127.0.0.53
            nameserver ::1
            nameserver 1.2.3.4; drop
            nameserver 1.2.3.4}
            nameserver 010.1.1.1
            nameserver
            search example.com
            options ndots:2
            """
        #expect(EgressNetwork.nameservers(resolvConf: text) == ["10.0.0.53", "192.168.1.1"])
    }
}
