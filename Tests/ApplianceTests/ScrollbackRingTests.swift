import Testing
@testable import Appliance

/// The terminal's scrollback: what a re-attaching client is replayed.
@Suite struct ScrollbackRingTests {
    @Test func keepsEverythingUntilFull() {
        var ring = ScrollbackRing(capacity: 8)
        #expect(ring.contents.isEmpty)
        ring.append(Array("abc".utf8))
        ring.append(Array("de".utf8))
        #expect(ring.contents == Array("abcde".utf8) && ring.count == 5)
    }

    @Test func keepsTheNewestBytesAcrossTheWrap() {
        var ring = ScrollbackRing(capacity: 8)
        ring.append(Array("abcdef".utf8))
        ring.append(Array("ghij".utf8))
        #expect(ring.contents == Array("cdefghij".utf8))
        ring.append(Array("k".utf8))
        #expect(ring.contents == Array("defghijk".utf8) && ring.count == 8)
    }

    @Test func aChunkLargerThanTheRingKeepsItsTail() {
        var ring = ScrollbackRing(capacity: 4)
        ring.append(Array("xy".utf8))
        ring.append(Array("0123456789".utf8))
        #expect(ring.contents == Array("6789".utf8))
    }

    /// Against a model (an array cut to its last `capacity` bytes), chunk sizes of every kind.
    @Test func matchesAModelForManyChunkSizes() {
        for capacity in [1, 3, 7, 64] {
            var ring = ScrollbackRing(capacity: capacity)
            var model: [UInt8] = []
            var next: UInt8 = 0
            for size in [0, 1, 2, 5, 13, 64, 3, 0, 100, 7, 1] {
                let chunk = (0..<size).map { _ in next &+= 1; return next }
                ring.append(chunk)
                model = Array((model + chunk).suffix(capacity))
                #expect(ring.contents == model, "capacity \(capacity) after a chunk of \(size)")
            }
        }
    }
}
