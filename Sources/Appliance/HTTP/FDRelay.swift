import Glibc
import NIOCore
import NIOPosix

/// A descriptor an instance's init handed over (a TCP socket from `connect`, a pty master
/// from `openTerminal`) as an async NIO channel of bytes: the one way the WebSocket relays
/// (VNC, terminals) read and write what lives inside an instance. Takes ownership of the
/// descriptor: it is closed on failure, and by NIO once the channel exists.
enum FDRelay {
    struct Failed: Error {}

    /// A connected stream socket.
    static func socketChannel(_ fd: Int32) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try makeNonBlocking(fd)
        return try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .withConnectedSocket(fd) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
    }

    /// A character device read and written through one descriptor (a pty master).
    static func pipeChannel(_ fd: Int32) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try makeNonBlocking(fd)
        do {
            return try await NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .takingOwnershipOfDescriptor(inputOutput: fd) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            // A failed bootstrap leaves the descriptor to the caller (NIO's contract).
            close(fd)
            throw error
        }
    }

    /// The one step before NIO owns the descriptor that can fail: ours to clean up.
    private static func makeNonBlocking(_ fd: Int32) throws {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else {
            close(fd)
            throw Failed()
        }
    }
}
