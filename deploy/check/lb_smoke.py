"""Runs deploy/haproxy-local.cfg.tmpl for real: HAProxy on loopback in front of two stand-in
backends that answer /readyz like a gateway (200, or 503 while "draining"), name themselves on
/whoami, and echo bytes after a `101 Switching Protocols` on /ws. Checks: both backends get
traffic, an upgrade passes through as a tunnel, a backend whose /readyz fails leaves the rotation
while its open tunnel keeps working, and it comes back when ready again. Also exercises the
container health probe script against the same backends.

Usage: lb_smoke.py REPO_ROOT HAPROXY_BINARY
"""

import base64
import hashlib
import http.client
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from report import check, fail, info, run_checks

DEADLINE_S = 10.0
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class QuietServer(ThreadingHTTPServer):
    """HAProxy ends its health-check connections with a reset; that is not an error here."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Backend:
    """A stand-in gateway on 127.0.0.1 with a switchable /readyz."""

    def __init__(self, name: str):
        self.name = name
        self.ready = threading.Event()
        self.ready.set()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
                    return self.upgrade()
                if self.path == "/readyz":
                    status = 200 if backend.ready.is_set() else 503
                elif self.path in ("/whoami", "/healthz"):
                    status = 200
                else:
                    status = 404
                body = backend.name.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def upgrade(self):
                key = self.headers.get("Sec-WebSocket-Key", "") + WEBSOCKET_GUID
                accept = base64.b64encode(hashlib.sha1(key.encode()).digest()).decode()
                self.send_response(101)
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.send_header("Sec-WebSocket-Accept", accept)
                self.send_header("X-Backend", backend.name)
                self.end_headers()
                self.wfile.flush()
                self.close_connection = True
                while chunk := self.connection.recv(4096):
                    self.connection.sendall(chunk)

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render_template(root: Path, ports: dict[str, int]) -> str:
    text = (root / "deploy/haproxy-local.cfg.tmpl").read_text()
    for name, port in ports.items():
        text = text.replace("${%s}" % name, str(port))
    assert "${" not in text.split("global", 1)[1], "unreplaced placeholder"
    return text


def whoami(lb_port: int) -> str | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", lb_port, timeout=2)
        conn.request("GET", "/whoami")
        response = conn.getresponse()
        body = response.read().decode()
        conn.close()
        return body if response.status == 200 else None
    except OSError:
        return None


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {DEADLINE_S}s: {what}")


def served_by(lb_port: int, samples: int) -> set:
    return {whoami(lb_port) for _ in range(samples)}


def open_tunnel(lb_port: int) -> tuple[socket.socket, str]:
    sock = socket.create_connection(("127.0.0.1", lb_port), timeout=3)
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "LB closed during the upgrade"
        head += chunk
    lines = head.decode().split("\r\n")
    assert lines[0].startswith("HTTP/1.1 101"), f"upgrade answered {lines[0]}"
    backend = next(line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("x-backend:"))
    return sock, backend


def echo(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(4096)
        assert chunk, "tunnel closed"
        received += chunk
    return received


def scenario(lb_port: int, backends: dict[str, Backend]) -> None:
    wait_until(lambda: served_by(lb_port, 6) == set(backends), "both gateways in rotation")
    sock, on = open_tunnel(lb_port)
    try:
        assert echo(sock, b"frame-1") == b"frame-1", "tunnel echo"
        other = next(n for n in backends if n != on)
        backends[on].ready.clear()
        wait_until(lambda: served_by(lb_port, 6) == {other}, f"{on} out of rotation after /readyz 503")
        assert echo(sock, b"frame-2") == b"frame-2", "open tunnel cut when its server went down"
    finally:
        sock.close()
    # With the tunnel closed both servers are idle again, so leastconn alternates between them.
    backends[on].ready.set()
    wait_until(lambda: served_by(lb_port, 6) == set(backends), f"{on} back in rotation")


def check_healthcheck_script(root: Path, backend: Backend) -> None:
    script = str(root / "deploy/container-healthcheck.sh")

    def run(*args):
        return subprocess.run(["bash", script, *args], capture_output=True, text=True, timeout=10)

    assert run(str(backend.port), "/readyz").returncode == 0, "ready backend reported unhealthy"
    backend.ready.clear()
    try:
        result = run(str(backend.port), "/readyz")
        assert result.returncode == 1 and "503" in result.stderr, f"503 not reported: {result.stderr!r}"
    finally:
        backend.ready.set()
    assert run(str(free_port())).returncode != 0, "closed port reported healthy"


def main() -> None:
    root, haproxy = Path(sys.argv[1]).resolve(), sys.argv[2]
    backends = {name: Backend(name) for name in ("gateway-1", "gateway-2")}
    lb_port = free_port()
    ports = {"LB_PORT": lb_port, "GATEWAY_1_PORT": backends["gateway-1"].port,
             "GATEWAY_2_PORT": backends["gateway-2"].port}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "haproxy-local.cfg"
        cfg.write_text(render_template(root, ports))
        syntax = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True)
        output = (syntax.stdout + syntax.stderr).splitlines()
        warnings = [line for line in output if "[WARNING]" in line or "[ALERT]" in line]
        if not check("haproxy -c: local template after substitution, no warnings",
                     syntax.returncode == 0 and not warnings, "\n".join(warnings) or syntax.stderr):
            return
        proc = subprocess.Popen([haproxy, "-db", "-f", str(cfg)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            backends_at = f"{ports['GATEWAY_1_PORT']}, {ports['GATEWAY_2_PORT']}"
            info(f"haproxy pid {proc.pid} on 127.0.0.1:{lb_port} -> {backends_at}")
            run_checks("local LB: both in rotation, upgrade tunnels, /readyz 503 drains without cutting tunnels",
                       lambda: scenario(lb_port, backends))
        finally:
            proc.terminate()
            output, _ = proc.communicate(timeout=10)
            if proc.returncode not in (0, -15, 143):
                fail("local LB: haproxy exit", f"code {proc.returncode}\n{output[-1500:]}")
    run_checks("container-healthcheck.sh: 200 healthy, 503 and refused unhealthy",
               lambda: check_healthcheck_script(root, backends["gateway-1"]))
    for backend in backends.values():
        backend.close()


if __name__ == "__main__":
    main()
