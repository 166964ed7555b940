"""A small RFC 6455 WebSocket server side (stdlib only): the upgrade, framing with masking,
fragmentation and 16/64-bit lengths, ping/pong and close codes. One blocking reader per
connection; sends are serialised by a lock because events are broadcast from other threads."""
import base64
import hashlib
import socket
import struct
import threading

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Closed(Exception):
    """The peer closed, or the connection broke; `code` is what we saw or sent."""

    def __init__(self, code, reason=""):
        super().__init__(f"websocket closed {code} {reason}")
        self.code, self.reason = code, reason


def accept_key(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def handshake_response(headers):
    """The 101 response for a valid upgrade request (headers: lower-cased dict), or None."""
    key = headers.get("sec-websocket-key", "")
    if "websocket" not in headers.get("upgrade", "").lower() or "upgrade" not in headers.get("connection", "").lower():
        return None
    if headers.get("sec-websocket-version") != "13" or len(base64.b64decode(key + "==")[:16]) != 16:
        return None
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n").encode()


class WebSocket:
    def __init__(self, sock, rfile, max_message=64 * 1024):
        self.sock, self.rfile = sock, rfile
        self.max_message = max_message  # the gateway raises it after connect
        self._send_lock = threading.Lock()
        self.closed = False
        self.close_code = None

    def _read(self, n):
        try:
            data = self.rfile.read(n)
        except OSError:  # including the handshake timeout
            raise Closed(1006, "connection lost")
        if data is None or len(data) < n:
            raise Closed(1006, "connection lost")
        return data

    def _frame(self):
        b0, b1 = self._read(2)
        fin, rsv, opcode = b0 & 0x80, b0 & 0x70, b0 & 0x0F
        masked, length = b1 & 0x80, b1 & 0x7F
        if rsv:
            self._fail(1002, "reserved bits set")
        if not masked:
            self._fail(1002, "client frames must be masked")
        if length == 126:
            length = struct.unpack("!H", self._read(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._read(8))[0]
            if length >> 63:
                self._fail(1002, "bad length")
        if opcode >= 0x8 and (length > 125 or not fin):
            self._fail(1002, "bad control frame")
        if length > self.max_message:
            self._fail(1009, "message too big")
        mask = self._read(4)
        data = self._read(length)
        keystream = (mask * (length // 4 + 1))[:length]
        payload = (int.from_bytes(data, "big") ^ int.from_bytes(keystream, "big")).to_bytes(length, "big")
        return bool(fin), opcode, payload

    def recv(self):
        """The next text (str) or binary (bytes) message; raises Closed at the end."""
        parts, kind, size = [], None, 0
        while True:
            fin, opcode, payload = self._frame()
            if opcode == PING:
                self._send(PONG, payload)
                continue
            if opcode == PONG:
                continue
            if opcode == CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                reason = payload[2:].decode("utf-8", "replace")
                if not self.closed:
                    self.close(1000 if code == 1005 else code)
                raise Closed(code, reason)
            if opcode in (TEXT, BINARY):
                if kind is not None:
                    self._fail(1002, "new message inside a fragmented one")
                kind = opcode
            elif opcode == CONT:
                if kind is None:
                    self._fail(1002, "continuation without a start")
            else:
                self._fail(1002, "unknown opcode")
            size += len(payload)
            if size > self.max_message:
                self._fail(1009, "message too big")
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                if kind == BINARY:
                    return data
                try:
                    return data.decode("utf-8")
                except UnicodeDecodeError:
                    self._fail(1007, "invalid utf-8")

    def _fail(self, code, reason):
        self.close(code, reason)
        self._linger()
        raise Closed(code, reason)

    def _linger(self):
        """After a protocol error the rest of the peer's data is read and dropped: closing with
        unread data would reset the connection and could destroy our close frame in flight."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(1)
            while self.rfile.read1(65536):
                pass
        except OSError:
            pass

    @staticmethod
    def _encode(opcode, payload):
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
        return head + payload

    def _send(self, opcode, payload):
        with self._send_lock:
            if self.closed:
                raise Closed(self.close_code or 1006, "already closed")
            try:
                self.sock.sendall(self._encode(opcode, payload))
            except OSError:
                self.closed = True
                raise Closed(1006, "connection lost")

    def send_text(self, text):
        self._send(TEXT, text.encode("utf-8"))

    def close(self, code=1000, reason=""):
        """Sends a close frame once; the reader ends when the peer answers or the socket drops."""
        with self._send_lock:
            if self.closed:
                return
            self.closed, self.close_code = True, code
            try:
                self.sock.sendall(self._encode(CLOSE, struct.pack("!H", code) + reason.encode("utf-8")[:120]))
            except OSError:
                pass
