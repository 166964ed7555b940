/// The client-to-server half of RFB (RFC 6143), parsed so the VNC relay can drop input
/// (KeyEvent, PointerEvent, ClientCutText, QEMU extended key events) from every connection
/// that does not hold control of the instance. Bytes in, bytes to forward out; a message may
/// arrive split across any number of WebSocket frames, and several may share one.
///
/// Viewing is the default, so the filter must never lose its place in the stream: a message
/// whose length it cannot know (an unknown type, an unsupported security type or protocol
/// version) is an error, and the relay closes the connection rather than guess.
struct RFBInputFilter {
    enum Failure: Error, Equatable {
        case unsupportedVersion
        case unsupportedSecurityType(UInt8)
        case unknownMessage(UInt8)
        case unknownQEMUMessage(UInt8)
    }

    private enum Phase {
        /// "RFB 003.00x\n" (12 bytes). Only 3.7 and 3.8: in 3.3 the server picks the security
        /// type, which the client's bytes alone do not reveal.
        case version
        /// The one security-type byte of 3.7/3.8.
        case securityType
        /// The 16-byte VNC Authentication response (if the server ever asks for a password).
        case vncAuthResponse
        /// ClientInit: the shared flag.
        case clientInit
        /// Normal client messages: collecting a message's fixed header.
        case header
        /// The variable part of the message whose header was just read.
        case payload(remaining: UInt64, forward: Bool)
    }

    private var phase: Phase = .version
    /// The bytes of the current fixed-size unit (handshake step or message header) so far;
    /// never more than 24 bytes.
    private var pending: [UInt8] = []

    init() {}

    /// Feeds the next bytes from the client. `control` is whether the connection holds
    /// control now; it decides for every input message whose header completes in this call.
    /// Returns the bytes to pass on to the VNC server, in order.
    mutating func feed(_ bytes: some Collection<UInt8>, control: Bool) throws(Failure) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index != bytes.endIndex {
            if case .payload(let remaining, let forward) = phase {
                let available = UInt64(bytes.distance(from: index, to: bytes.endIndex))
                let take = Int(min(remaining, available))
                let end = bytes.index(index, offsetBy: take)
                if forward { out.append(contentsOf: bytes[index..<end]) }
                index = end
                phase = remaining == UInt64(take) ? .header : .payload(remaining: remaining - UInt64(take), forward: forward)
                continue
            }
            pending.append(bytes[index])
            index = bytes.index(after: index)
            try advance(into: &out, control: control)
        }
        return out
    }

    /// Acts on `pending` after each byte: completes a handshake step or a message header once
    /// all of it is there.
    private mutating func advance(into out: inout [UInt8], control: Bool) throws(Failure) {
        switch phase {
        case .version:
            guard pending.count == 12 else { return }
            let expected37 = Array("RFB 003.007\n".utf8), expected38 = Array("RFB 003.008\n".utf8)
            guard pending == expected37 || pending == expected38 else { throw .unsupportedVersion }
            phase = .securityType
        case .securityType:
            switch pending[0] {
            case 1: phase = .clientInit            // None
            case 2: phase = .vncAuthResponse       // VNC Authentication
            case let other: throw .unsupportedSecurityType(other)
            }
        case .vncAuthResponse:
            guard pending.count == 16 else { return }
            phase = .clientInit
        case .clientInit:
            phase = .header
        case .header:
            guard let header = try Self.header(pending), pending.count == header.length else { return }
            let forward = control || !header.isInput
            let payload = Self.payloadLength(pending)
            if forward { out.append(contentsOf: pending) }
            pending.removeAll(keepingCapacity: true)
            phase = payload > 0 ? .payload(remaining: payload, forward: forward) : .header
            return
        case .payload:
            preconditionFailure("payload bytes never reach pending")
        }
        // A handshake step just completed (those that did not have returned above); they are
        // always forwarded, a viewer needs them as much as the controller.
        out.append(contentsOf: pending)
        pending.removeAll(keepingCapacity: true)
    }

    /// The fixed header length of the message starting with `header` and whether it is input;
    /// nil while the bytes so far do not tell yet.
    private static func header(_ header: [UInt8]) throws(Failure) -> (length: Int, isInput: Bool)? {
        switch header[0] {
        case 0: return (20, false)      // SetPixelFormat
        case 2: return (4, false)       // SetEncodings, then 4 per encoding
        case 3: return (10, false)      // FramebufferUpdateRequest
        case 4: return (8, true)        // KeyEvent
        case 5: return (6, true)        // PointerEvent
        case 6: return (8, true)        // ClientCutText, then the text
        case 150: return (10, false)    // EnableContinuousUpdates
        case 248: return (9, false)     // Fence, then up to 64 payload bytes
        case 250: return (4, false)     // xvp (shutdown/reboot/reset requests; x11vnc ignores them)
        case 251: return (8, false)     // SetDesktopSize, then 16 per screen
        case 255:                       // QEMU: noVNC sends only the extended key event (12)
            guard header.count >= 2 else { return nil }
            guard header[1] == 0 else { throw .unknownQEMUMessage(header[1]) }
            return (12, true)
        case let other: throw .unknownMessage(other)
        }
    }

    /// The length of the variable part following a complete header.
    private static func payloadLength(_ h: [UInt8]) -> UInt64 {
        switch h[0] {
        case 2: return 4 * (UInt64(h[2]) << 8 | UInt64(h[3]))
        case 6:
            // Negative lengths are the Extended Clipboard form; the magnitude is the length.
            let raw = UInt32(h[4]) << 24 | UInt32(h[5]) << 16 | UInt32(h[6]) << 8 | UInt32(h[7])
            return UInt64(Int32(bitPattern: raw).magnitude)
        case 248: return UInt64(h[8])
        case 251: return 16 * UInt64(h[6])
        default: return 0
        }
    }
}
