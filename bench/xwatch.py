"""Watches an X display from outside for the start-up timeline: when the first top-level window
is mapped (viewable) and when the screen first shows Chromium painted.

Speaks just enough of the X11 protocol (setup, QueryTree, GetWindowAttributes, GetImage) over
the display's Unix socket; for an instance that socket is reached from the host through
/proc/<init>/root/tmp/.X11-unix/X0 (Xvfb runs without authorisation, as in the instance).
"Painted" is the test the RFB side applies (at least PAINTED_COLOURS distinct colours over the
whole screen, every 7th pixel), so the two are comparable. Fewer do not do: a mapped but not yet
painted Chromium window already gives 2, and x11vnc's frames 3 (the cursor it draws in). Polling: a QueryTree plus a few attribute requests every
10 ms until a window is mapped, then one full-screen GetImage (4 MB) every 30 ms until painted.
"""
import socket
import struct
import threading
import time

PAINTED_COLOURS = 16


class XConnection:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(5)
        self.sock.connect(path)
        self.sock.sendall(struct.pack("<BxHHHHxx", 0x6c, 11, 0, 0, 0))
        head = self._read(8)
        if head[0] != 1:
            raise ConnectionError("X refused the connection")
        body = self._read(struct.unpack("<H", head[6:8])[0] * 4)
        vendor_len, formats = struct.unpack("<H", body[16:18])[0], body[21]
        screen = body[32 + (vendor_len + 3) // 4 * 4 + 8 * formats:]
        self.root = struct.unpack("<I", screen[:4])[0]
        self.width, self.height = struct.unpack("<HH", screen[20:24])

    def _read(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("X closed the connection")
            out += chunk
        return out

    def _request(self, data):
        """Sends one request and returns its reply, or None for an X error (a window gone)."""
        self.sock.sendall(data)
        while True:
            head = self._read(32)
            if head[0] == 0:
                return None
            if head[0] == 1:
                extra = struct.unpack("<I", head[4:8])[0] * 4
                return head + (self._read(extra) if extra else b"")
            # an event: none is selected, but skip anything that arrives

    def children(self):
        reply = self._request(struct.pack("<BxHI", 15, 2, self.root))
        if reply is None:
            return []
        n = struct.unpack("<H", reply[16:18])[0]
        return list(struct.unpack(f"<{n}I", reply[32:32 + 4 * n]))

    def viewable(self, window):
        reply = self._request(struct.pack("<BxHI", 3, 2, window))
        return reply is not None and reply[26] == 2

    def distinct_colours(self, step=7):
        h = self.height
        reply = self._request(struct.pack("<BBHIhhHHI", 73, 2, 5, self.root, 0, 0, self.width, h, 0xFFFFFFFF))
        if reply is None:
            return 0
        data = reply[32:]
        return len({data[i:i + 3] for i in range(0, len(data) - 4, 4 * step)})

    def close(self):
        self.sock.close()


class ScreenWatcher:
    """In a thread: records the monotonic times `mapped` (a top-level window is viewable) and
    `painted` (the screen shows PAINTED_COLOURS colours), None if never seen."""

    def __init__(self, socket_path, deadline_s=60):
        self.path, self.deadline_s = socket_path, deadline_s
        self.mapped = self.painted = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def join(self):
        self.thread.join(self.deadline_s)

    def _run(self):
        end = time.monotonic() + self.deadline_s
        x = None
        while time.monotonic() < end and self.painted is None:
            try:
                if x is None:
                    x = XConnection(self.path)
                if self.mapped is None:
                    if any(x.viewable(w) for w in x.children()):
                        self.mapped = time.monotonic()
                    else:
                        time.sleep(0.01)
                        continue
                if x.distinct_colours() >= PAINTED_COLOURS:
                    self.painted = time.monotonic()
                else:
                    time.sleep(0.03)
            except OSError:
                # Not there yet (Xvfb starting) or gone: try again.
                if x is not None:
                    x.close()
                    x = None
                time.sleep(0.01)
        if x is not None:
            x.close()
