"""A minimal RFB 3.8 client over the appliance's VNC WebSocket: enough to read a frame and send input."""
import struct

import websocket


class RFBClient:
    """RFB over the appliance's WebSocket (the path the dashboard's noVNC takes)."""

    def __init__(self, base_url: str, instance_id: int, cookie: str, timeout: float = 30):
        url = base_url.replace("http://", "ws://") + f"/api/v1/instances/{instance_id}/vnc"
        self.ws = websocket.create_connection(url, header=[f"Cookie: claworc_session={cookie}"], timeout=timeout)
        self.buf = b""

    def _receive(self) -> bytes:
        opcode, data = self.ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise ConnectionError("server closed the WebSocket")
        return data

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.buf += self._receive()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, data: bytes):
        self.ws.send(data, opcode=websocket.ABNF.OPCODE_BINARY)

    def handshake(self):
        version = self._read(12)
        assert version.startswith(b"RFB 003."), version
        self._send(b"RFB 003.008\n")
        (count,) = struct.unpack("B", self._read(1))
        types = self._read(count)
        assert 1 in types, f"security type None not offered: {list(types)}"
        self._send(b"\x01")
        (result,) = struct.unpack(">I", self._read(4))
        assert result == 0, "security handshake failed"
        self._send(b"\x01")   # ClientInit: shared session
        self.width, self.height = struct.unpack(">HH", self._read(4))
        self.pixel_format = self._read(16)
        self.bpp = self.pixel_format[0]
        (name_len,) = struct.unpack(">I", self._read(4))
        self.name = self._read(name_len).decode(errors="replace")
        self._send(struct.pack(">BxHi", 2, 1, 0))   # SetEncodings: raw only
        self.fb = None
        return self

    def frame(self, incremental: bool = False) -> bytes:
        """Requests and returns one full framebuffer in the server's pixel format. Incremental
        (after a first frame): the server answers once something changed, with only the
        changes, applied here to the previous frame (what a viewer like noVNC asks for)."""
        incremental = incremental and self.fb is not None
        self._send(struct.pack(">BBHHHH", 3, 1 if incremental else 0, 0, 0, self.width, self.height))
        bytes_per_pixel = self.bpp // 8
        fb = bytearray(self.fb) if incremental else bytearray(self.width * self.height * bytes_per_pixel)
        while True:
            (kind,) = struct.unpack("B", self._read(1))
            if kind == 2:            # Bell
                continue
            if kind == 3:            # ServerCutText
                self._read(3)
                (n,) = struct.unpack(">I", self._read(4))
                self._read(n)
                continue
            if kind == 1:            # SetColourMapEntries
                self._read(1)
                _, n = struct.unpack(">HH", self._read(4))
                self._read(6 * n)
                continue
            assert kind == 0, f"unexpected server message {kind}"
            self._read(1)
            (rects,) = struct.unpack(">H", self._read(2))
            for _ in range(rects):
                x, y, w, h, enc = struct.unpack(">HHHHi", self._read(12))
                assert enc == 0, f"unexpected encoding {enc}"
                data = self._read(w * h * bytes_per_pixel)
                for row in range(h):
                    start = ((y + row) * self.width + x) * bytes_per_pixel
                    fb[start:start + w * bytes_per_pixel] = data[row * w * bytes_per_pixel:(row + 1) * w * bytes_per_pixel]
            self.fb = bytes(fb)
            return self.fb

    def pointer(self, x: int, y: int, buttons: int = 0):
        """PointerEvent: move to (x, y) with the given button mask."""
        self._send(struct.pack(">BBHH", 5, buttons, x, y))

    def key(self, keysym: int, down: bool):
        """KeyEvent for an X keysym."""
        self._send(struct.pack(">BBxxI", 4, 1 if down else 0, keysym))

    def sync(self):
        """Returns once the server has handled every message sent before: it handles a client's
        messages in order, so the answer to a fresh update request comes after them."""
        self.frame()

    def distinct_colours(self, fb: bytes, step: int = 7) -> int:
        bpp = self.bpp // 8
        return len({fb[i:i + bpp] for i in range(0, len(fb) - bpp, bpp * step)})

    def close(self):
        self.ws.close()


class TCPRFBClient(RFBClient):
    """The same client over plain TCP, for a VNC server reached directly (benchmark peer)."""

    def __init__(self, host: str, port: int, timeout: float = 30):
        import socket
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def _receive(self) -> bytes:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("VNC server closed the connection")
        return data

    def _send(self, data: bytes):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()
