"""Real servers on 127.0.0.1 for probe tests: HTTP(S) apps, hostile behaviours, a DNS server.

Servers run in their own threads with blocking sockets, so the probe under test owns its
event loop alone and a misbehaving handler cannot stall it. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

IO_TIMEOUT_S = 10.0


@dataclass
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]


Handler = Callable[[socket.socket], None]
App = Callable[[socket.socket, HttpRequest], None]


class TcpServer:
    """Accepts on host:port (default 127.0.0.1, any free port) and runs `handler(conn)` per
    connection in a thread (TLS wrapped first)."""

    def __init__(
        self,
        handler: Handler,
        ssl_context: ssl.SSLContext | None = None,
        *,
        accept: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(0 if not accept else 128)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if accept:
            self.sock.settimeout(0.1)
            self._thread = threading.Thread(target=self._serve, daemon=True)
            self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(IO_TIMEOUT_S)
        current = conn
        try:
            if self.ssl_context is not None:
                current = self.ssl_context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
                with self._lock:
                    self._conns.append(current)
                current.do_handshake()
            self.handler(current)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                current.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sock.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.close()


@contextlib.contextmanager
def serving(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> Iterator[TcpServer]:
    server = TcpServer(handler, ssl_context)
    try:
        yield server
    finally:
        server.close()


def http_handler(app: App) -> Handler:
    """Parse one HTTP/1.1 request head and hand it to `app`, which writes the response."""

    def handle(conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        method, path, _ = [*head[0].split(" "), "", ""][:3]
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        app(conn, HttpRequest(method, path, headers))

    return handle


def respond(
    conn: socket.socket, status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None
) -> None:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


@dataclass
class Routes:
    """A tiny app: exact paths to (status, body, headers); unknown paths 404; requests logged."""

    routes: dict[str, tuple[int, bytes, dict[str, str]]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str, body: bytes | str = b"ok", status: int = 200, **headers: str) -> Routes:
        raw = body.encode() if isinstance(body, str) else body
        self.routes[path] = (status, raw, {k.replace("_", "-"): v for k, v in headers.items()})
        return self

    def __call__(self, conn: socket.socket, req: HttpRequest) -> None:
        with self.lock:
            self.seen.append(req.path)
        status, body, headers = self.routes.get(req.path, (404, b"not found", {}))
        respond(conn, status, body, headers)


# Hostile behaviours -------------------------------------------------------------------------


def slow_drip(conn: socket.socket, req: HttpRequest) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    for _ in range(200):  # 200 x 50 ms: outlives any probe deadline in the tests
        conn.sendall(b".")
        time.sleep(0.05)


def huge_body(conn: socket.socket, req: HttpRequest) -> None:
    """Announces and streams 1 GiB; stops when the client hangs up."""
    size = 1 << 30
    conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
    block = bytes(256 * 1024)
    for _ in range(size // len(block)):
        conn.sendall(block)


def huge_headers(conn: socket.socket, req: HttpRequest) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 200_000 + b"\r\n\r\n")


def reset_after_request(conn: socket.socket, req: HttpRequest) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.close()


def tls_garbage(conn: socket.socket) -> None:
    conn.recv(4096)
    conn.sendall(b"this is not TLS at all\r\n" * 100)


def hang(conn: socket.socket) -> None:
    """Accept, then say nothing until the client leaves (bounded)."""
    conn.settimeout(0.1)
    deadline = time.monotonic() + IO_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if not conn.recv(4096):
                return
        except TimeoutError:
            continue


@contextlib.contextmanager
def blackhole(host: str = "127.0.0.1", port: int = 0) -> Iterator[int]:
    """A port whose SYNs go unanswered: a listener that never accepts, its queue filled first.

    On loopback a closed port refuses at once, so this is how a dead address is made without
    root: Linux drops a SYN for a listener whose accept queue is full (tcp_abort_on_overflow=0).
    """
    server = TcpServer(lambda conn: None, accept=False, host=host, port=port)
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            fillers.append(filler)
            with contextlib.suppress(BlockingIOError):
                filler.connect((host, server.port))
        time.sleep(0.2)
        yield server.port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# DNS ------------------------------------------------------------------------------------------


class UdpResponder:
    """A UDP server on 127.0.0.1 whose `respond` makes each datagram's answer (None: none)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def respond(self, data: bytes) -> bytes | None:
        raise NotImplementedError

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            answer = self.respond(data)
            if answer is not None:
                self.sock.sendto(answer, peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


class DnsServer(UdpResponder):
    """UDP DNS on 127.0.0.1: answers A for `records` (one address or several, in that order),
    NXDOMAIN otherwise; `silent` answers nothing."""

    def __init__(self, records: dict[str, str | list[str]], *, silent: bool = False) -> None:
        self.records = {
            k.rstrip(".").lower(): [v] if isinstance(v, str) else list(v) for k, v in records.items()
        }
        self.silent = silent
        super().__init__()

    def respond(self, data: bytes) -> bytes | None:
        return None if self.silent else self._answer(data)

    def _answer(self, data: bytes) -> bytes:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        if name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A:
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, 60, dns.rdataclass.IN, dns.rdatatype.A, self.records[name]
                )
            )
        return bytes(response.to_wire(want_shuffle=False))  # keep the order the test gave
