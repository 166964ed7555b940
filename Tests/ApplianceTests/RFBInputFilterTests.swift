import Testing
@testable import Appliance

/// The client half of an RFB 3.8 session as noVNC sends it: the handshake, then one of every
/// message the filter knows, input and not.
private enum Stream {
    static let handshake: [UInt8] = Array("RFB 003.008\n".utf8) + [1] + [1]   // security None, ClientInit shared

    static let setPixelFormat: [UInt8] = [0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]
    static let setEncodings: [UInt8] = [2, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0x21]
    static let updateRequest: [UInt8] = [3, 1, 0, 0, 0, 0, 5, 0, 3, 32]
    static let key: [UInt8] = [4, 1, 0, 0, 0, 0, 0xff, 0x0d]
    static let pointer: [UInt8] = [5, 1, 0, 10, 0, 20]
    static let cutText: [UInt8] = [6, 0, 0, 0, 0, 0, 0, 5] + Array("hello".utf8)
    /// Extended Clipboard: a negative length, whose magnitude counts the bytes that follow.
    static let extendedCutText: [UInt8] = [6, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc, 1, 2, 3, 4]
    static let continuousUpdates: [UInt8] = [150, 1, 0, 0, 0, 0, 5, 0, 3, 32]
    static let fence: [UInt8] = [248, 0, 0, 0, 0, 0, 0, 3, 2, 0xaa, 0xbb]
    static let xvp: [UInt8] = [250, 0, 1, 2]
    static let desktopSize: [UInt8] = [251, 0, 5, 0, 3, 32, 1, 0] + [UInt8](repeating: 9, count: 16)
    static let qemuKey: [UInt8] = [255, 0, 0, 1, 0, 0, 0xff, 0x0d, 0, 0, 0, 28]

    static let messages: [(bytes: [UInt8], input: Bool)] = [
        (setPixelFormat, false), (setEncodings, false), (updateRequest, false), (key, true), (pointer, true),
        (cutText, true), (extendedCutText, true), (continuousUpdates, false), (fence, false), (xvp, false),
        (desktopSize, false), (qemuKey, true), (updateRequest, false),
    ]

    static var all: [UInt8] { handshake + messages.flatMap(\.bytes) }
    static var withoutInput: [UInt8] { handshake + messages.filter { !$0.input }.flatMap(\.bytes) }
}

/// Feeds `bytes` in the given chunks and returns everything forwarded.
private func run(_ chunks: [ArraySlice<UInt8>], control: Bool) throws -> [UInt8] {
    var filter = RFBInputFilter()
    return try chunks.flatMap { try filter.feed($0, control: control) }
}

private func split(_ bytes: [UInt8], at cut: Int) -> [ArraySlice<UInt8>] {
    [bytes[..<cut], bytes[cut...]]
}

@Suite struct RFBInputFilterTests {
    @Test func theControllerSendsEverythingWhateverTheSplit() throws {
        let all = Stream.all
        #expect(try run([all[...]], control: true) == all)
        for cut in 0...all.count { #expect(try run(split(all, at: cut), control: true) == all, "split at \(cut)") }
        #expect(try run(all.map { [$0][...] }, control: true) == all)
    }

    @Test func aViewerLosesExactlyTheInputWhateverTheSplit() throws {
        let all = Stream.all, expected = Stream.withoutInput
        #expect(try run([all[...]], control: false) == expected)
        for cut in 0...all.count { #expect(try run(split(all, at: cut), control: false) == expected, "split at \(cut)") }
        // Two cuts, so a message can be split in three (header, header, payload).
        for first in stride(from: 0, through: all.count, by: 3) {
            for second in first...all.count {
                let chunks = [all[..<first], all[first..<second], all[second...]]
                #expect(try run(chunks, control: false) == expected, "split at \(first), \(second)")
            }
        }
        #expect(try run(all.map { [$0][...] }, control: false) == expected)
    }

    @Test(arguments: Stream.messages.indices)
    func eachMessageAlone(index: Int) throws {
        let (bytes, input) = Stream.messages[index]
        var filter = RFBInputFilter()
        #expect(try filter.feed(Stream.handshake, control: false) == Stream.handshake)
        #expect(try filter.feed(bytes, control: false) == (input ? [] : bytes))
        #expect(try filter.feed(bytes, control: true) == bytes)
        // And the filter is back at a message boundary.
        #expect(try filter.feed(Stream.updateRequest, control: false) == Stream.updateRequest)
    }

    @Test func controlIsDecidedWhenAMessageHeaderCompletes() throws {
        var filter = RFBInputFilter()
        _ = try filter.feed(Stream.handshake, control: false)
        // Taking control halfway through a pointer event: the whole event goes (headers are never half-sent).
        #expect(try filter.feed(Stream.pointer[..<3], control: false) == [])
        #expect(try filter.feed(Stream.pointer[3...], control: true) == Stream.pointer)
        // Losing it after a cut-text header went out: the text must follow, or x11vnc would lose its place.
        let text = Stream.cutText
        #expect(try filter.feed(text[..<9], control: true) == Array(text[..<9]))
        #expect(try filter.feed(text[9...], control: false) == Array(text[9...]))
    }

    @Test func aLongDroppedClipboardIsSkippedAcrossFrames() throws {
        let length = 300_000
        let header: [UInt8] = [6, 0, 0, 0, UInt8(length >> 24), UInt8((length >> 16) & 0xff), UInt8((length >> 8) & 0xff), UInt8(length & 0xff)]
        let stream = Stream.handshake + header + [UInt8](repeating: 0x41, count: length) + Stream.updateRequest
        var filter = RFBInputFilter()
        var out: [UInt8] = []
        var start = 0
        while start < stream.count {
            let end = min(stream.count, start + 4096)
            out += try filter.feed(stream[start..<end], control: false)
            start = end
        }
        #expect(out == Stream.handshake + Stream.updateRequest)
    }

    @Test func vncAuthenticationResponsePassesThrough() throws {
        let handshake = Array("RFB 003.007\n".utf8) + [2] + [UInt8](repeating: 7, count: 16) + [0]
        var filter = RFBInputFilter()
        #expect(try filter.feed(handshake + Stream.pointer + Stream.updateRequest, control: false) == handshake + Stream.updateRequest)
    }

    @Test func unknownMessagesEndTheStream() throws {
        var filter = RFBInputFilter()
        _ = try filter.feed(Stream.handshake, control: true)
        // Bytes before the unknown message in the same frame are not forwarded either: the call fails as a whole.
        #expect(throws: RFBInputFilter.Failure.unknownMessage(7)) { try filter.feed(Stream.updateRequest + [7, 0, 0], control: true) }

        var qemu = RFBInputFilter()
        _ = try qemu.feed(Stream.handshake, control: true)
        #expect(throws: RFBInputFilter.Failure.unknownQEMUMessage(1)) { try qemu.feed([255, 1, 0, 0], control: true) }

        var gii = RFBInputFilter()
        _ = try gii.feed(Stream.handshake, control: true)
        #expect(throws: RFBInputFilter.Failure.unknownMessage(253)) { try gii.feed([253], control: true) }
    }

    @Test func handshakesTheFilterCannotFollowAreRefused() throws {
        var old = RFBInputFilter()
        #expect(throws: RFBInputFilter.Failure.unsupportedVersion) { try old.feed(Array("RFB 003.003\n".utf8), control: true) }
        var tight = RFBInputFilter()
        #expect(throws: RFBInputFilter.Failure.unsupportedSecurityType(16)) { try tight.feed(Array("RFB 003.008\n".utf8) + [16], control: true) }
    }
}
