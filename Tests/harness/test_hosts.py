"""Test hosts: network namespaces a test makes itself, each on a veth to the root namespace
with an HTTP server on port 8080. Traffic of the tests goes only to them and to loopback."""
import subprocess
import sys
import time


def sh(*args, check=True):
    return subprocess.run(args, capture_output=True, text=True, check=check)


class TestHost:
    """`name` (a namespace of the test's own) at `addr`/24, the host side at `host_addr`;
    `routed` gives it a default route through the host."""

    __test__ = False   # not a pytest test class

    def __init__(self, name, addr, host_addr, routed=False):
        self.name, self.addr = name, addr
        self.veth = f"{name[-6:]}h"
        # The names are the test's own: what an interrupted run left of them goes first.
        self.close(quiet=True)
        sh("ip", "netns", "add", name)
        sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", name)
        sh("ip", "addr", "add", f"{host_addr}/24", "dev", self.veth)
        sh("ip", "link", "set", self.veth, "up")
        sh("ip", "-n", name, "addr", "add", f"{addr}/24", "dev", "eth0")
        sh("ip", "-n", name, "link", "set", "eth0", "up")
        sh("ip", "-n", name, "link", "set", "lo", "up")
        if routed:
            sh("ip", "-n", name, "route", "add", "default", "via", host_addr)
        self.server = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-m", "http.server", "8080",
                                        "--bind", addr], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not self.reaches(addr, 1):   # readiness: the server accepts inside its namespace
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"test host {name} did not come up")
            time.sleep(0.05)

    def reaches(self, addr, timeout=1.5):
        """Whether this host connects to addr:8080."""
        return sh("ip", "netns", "exec", self.name, sys.executable, "-c",
                  f"import socket; socket.create_connection(('{addr}', 8080), {timeout})", check=False).returncode == 0

    def close(self, quiet=False):
        server = getattr(self, "server", None)
        if server:
            server.kill()
            server.wait()
            self.server = None
        sh("ip", "netns", "delete", self.name, check=False)
        sh("ip", "link", "delete", self.veth, check=False)
