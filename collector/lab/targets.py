"""The lab's target servers: HTTP, HTTPS, pages with assets and gRPC health, on loopback, per agent.

Every agent gets its own copy of every target: target `t` for agent number `k` listens on
127.77.k.(10+i) (i = the target's index), all on one shared port. The lab's DNS server tells
each agent that `<target>.lab.test` is its own copy, so a fault for one agent or region is a
change in how that agent's copies behave; no root, no network namespaces.

Certificates come from a lab CA made here with `cryptography` (ECDSA P-256: cheap handshakes).
Certificate faults swap the certificate per connection (plain TCP accept, then `start_tls`),
`refuse` (and a cut-off region) closes the listener, `blackhole` accepts and never answers,
`reset` answers with RST.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h2.config
import h2.connection
import h2.events
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2

from collector.ca import new_ca
from collector.lab import netns
from collector.lab.faults import Effect
from collector.lab.paths import LabPaths
from collector.lab.scenario import Scenario, Target

log = logging.getLogger(__name__)

DOMAIN = "lab.test"
ADDRESS_PREFIX = "127.77"
TARGET_SLOT_BASE = 10
MAX_REQUEST_HEAD = 16 * 1024
IDLE_TIMEOUT_S = 15.0
HANDSHAKE_TIMEOUT_S = 10.0
READ_CHUNK = 64 * 1024
GRPC_HEALTH_CHECK = "/grpc.health.v1.Health/Check"


def hostname(target: str) -> str:
    return f"{target}.{DOMAIN}"


def agent_block(agent_number: int) -> str:
    if not 1 <= agent_number <= 250:
        raise ValueError(f"agent number {agent_number} out of range 1-250")
    return f"{ADDRESS_PREFIX}.{agent_number}"


def dns_address(agent_number: int) -> str:
    return f"{agent_block(agent_number)}.1"


def target_address(agent_number: int, target_index: int) -> str:
    return f"{agent_block(agent_number)}.{TARGET_SLOT_BASE + target_index}"


# ---------------------------------------------------------------- certificates


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass
class LabCA:
    """A throwaway CA; `pem` is what agents trust (CheckSpec.tls.ca_pem)."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, name: str = "probenet lab CA") -> LabCA:
        cert, key = new_ca(name)
        return cls(key, cert)

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, names: list[str], not_before: dt.datetime, not_after: dt.datetime) -> tuple[bytes, bytes]:
        """(certificate chain PEM, key PEM) for a server certificate."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            # Strict verifiers (cryptography's PolicyBuilder, browsers) require the AKI.
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_pem


class CertificateSet:
    """The server SSL contexts of each target: its normal certificate and one per certificate fault."""

    def __init__(self, ca: LabCA, directory: Path) -> None:
        self.ca = ca
        self.rogue = LabCA.create("rogue CA nobody trusts")
        self.directory = directory
        self._contexts: dict[tuple[str, str], ssl.SSLContext] = {}

    def context(self, target: Target, variant: str) -> ssl.SSLContext:
        key = (target.name, variant)
        if key not in self._contexts:
            self._contexts[key] = self._build(target, variant)
        return self._contexts[key]

    def _build(self, target: Target, variant: str) -> ssl.SSLContext:
        now = dt.datetime.now(dt.UTC)
        day = dt.timedelta(days=1)
        names, ca = [hostname(target.name)], self.ca
        not_before, not_after = now - day, now + dt.timedelta(days=target.cert_days_left)
        if variant == "cert_expired":
            not_before, not_after = now - 90 * day, now - day
        elif variant == "cert_not_yet_valid":
            not_before, not_after = now + 10 * day, now + 100 * day
        elif variant == "cert_wrong_host":
            names = [f"elsewhere.{DOMAIN}"]
        elif variant == "cert_untrusted":
            ca = self.rogue
        chain, key = ca.issue(names, not_before, not_after)
        cert_file = self.directory / f"{target.name}-{variant}.pem"
        key_file = self.directory / f"{target.name}-{variant}-key.pem"
        cert_file.write_bytes(chain)
        key_file.write_bytes(key)
        key_file.chmod(0o600)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        ctx.set_alpn_protocols(["h2"] if target.kind == "grpc" else ["http/1.1"])
        return ctx


# ---------------------------------------------------------------- content

_ASSET_TYPES = (
    ("css", "text/css", b"body{margin:0}\n"),
    ("js", "application/javascript", b"console.log('lab');\n"),
    ("png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64),
)


def page_html(target: Target, port: int) -> bytes:
    """The page: `assets` sub-resources on its asset host (stylesheets, scripts, images)."""
    asset_host = hostname(target.asset_host or target.name)
    scheme = "https" if target.tls else "http"
    tags = []
    for i in range(target.assets):
        ext = _ASSET_TYPES[i % 3][0]
        url = f"{scheme}://{asset_host}:{port}/assets/a{i}.{ext}"
        if ext == "css":
            tags.append(f'<link rel="stylesheet" href="{url}">')
        elif ext == "js":
            tags.append(f'<script src="{url}"></script>')
        else:
            tags.append(f'<img src="{url}" alt="">')
    body = "\n".join(tags)
    return (
        f"<!doctype html><html><head><title>{target.name}</title></head>"
        f"<body><h1>{target.name}</h1>\n{body}\n</body></html>\n"
    ).encode()


def _response(status: int, body: bytes, content_type: str, keep_alive: bool) -> bytes:
    reason = {200: "OK", 404: "Not Found"}.get(status, "Lab Fault")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n"
        "Cache-Control: no-store\r\nServer: probenet-lab\r\n\r\n"
    )
    return head.encode() + body


def content_for(target: Target, path: str, port: int) -> tuple[int, bytes, str]:
    if path.startswith("/assets/"):
        for ext, content_type, body in _ASSET_TYPES:
            if path.endswith(f".{ext}"):
                return 200, body, content_type
        return 404, b"not found\n", "text/plain"
    if target.kind == "page":
        return 200, page_html(target, port), "text/html; charset=utf-8"
    return 200, f"{target.name} is fine\n".encode(), "text/plain"


# ---------------------------------------------------------------- servers

EffectLookup = Callable[[str, str], Effect | None]


class TargetServers:
    """Every (agent, target) listener; `apply` opens and closes listeners for `refuse`."""

    def __init__(
        self,
        scenario: Scenario,
        agent_numbers: dict[str, int],
        port: int,
        certs: CertificateSet,
        effect: EffectLookup,
        *,
        paths: LabPaths | None = None,
    ) -> None:
        self.scenario = scenario
        self.paths = paths  # its agents' copies listen in their chain's target namespace
        self.agent_numbers = agent_numbers
        self.port = port
        self.certs = certs
        self.effect = effect
        self._servers: dict[tuple[str, str], asyncio.Server] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self.connections_served = 0

    def address(self, agent: str, target: str) -> str:
        if self.paths is not None and agent in self.paths:
            return self.paths.target_address(target)
        return target_address(self.agent_numbers[agent], list(self.scenario.targets).index(target))

    async def start(self) -> None:
        for agent in self.agent_numbers:
            for target in self.scenario.targets:
                await self._open(agent, target)

    async def _open(self, agent: str, target: str) -> None:
        spec = self.scenario.targets[target]

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            try:
                await self._serve(agent, spec, reader, writer)
            except (
                OSError,
                ssl.SSLError,
                TimeoutError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ValueError,
            ):
                pass  # a client that gives up or speaks nonsense only loses its connection
            finally:
                self._connections.discard(task)
                writer.transport.abort()

        address = self.address(agent, target)
        if self.paths is not None and agent in self.paths:
            sock = netns.bound_socket(
                self.paths.target_namespace(agent), address, self.port, socket.SOCK_STREAM
            )
            server = await asyncio.start_server(handle, sock=sock, backlog=256)
        else:
            server = await asyncio.start_server(handle, address, self.port, reuse_address=True, backlog=256)
        self._servers[(agent, target)] = server

    async def apply(self) -> None:
        """Close the listeners of refused pairs, reopen the others."""
        for agent in self.agent_numbers:
            for target in self.scenario.targets:
                effect = self.effect(agent, target)
                refused = effect is not None and effect.kind in ("refuse", "offline")
                server = self._servers.get((agent, target))
                if refused and server is not None:
                    server.close()
                    del self._servers[(agent, target)]
                elif not refused and server is None:
                    await self._open(agent, target)

    async def close(self) -> None:
        for server in self._servers.values():
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers.values():
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()

    async def _serve(
        self, agent: str, target: Target, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections_served += 1
        effect = self.effect(agent, target.name)
        if effect is not None and effect.kind == "blackhole":
            await _hold(reader)
            return
        if effect is not None and effect.kind == "reset":
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if target.tls:
            variant = effect.kind if effect is not None and effect.cert else "normal"
            await writer.start_tls(
                self.certs.context(target, variant), ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S
            )
        if target.kind == "grpc":
            await self._serve_grpc(agent, target, reader, writer)
            return
        while await self._one_request(agent, target, reader, writer):
            pass

    async def _serve_grpc(
        self, agent: str, target: Target, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """gRPC over HTTP/2 (h2): Health/Check answers SERVING, NOT_SERVING under grpc_not_serving."""
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        paths: dict[int, str] = {}
        while True:
            writer.write(conn.data_to_send())
            await writer.drain()
            async with asyncio.timeout(IDLE_TIMEOUT_S):
                data = await reader.read(READ_CHUNK)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    headers = {str(k): str(v) for k, v in event.headers or []}
                    paths[event.stream_id or 0] = headers.get(":path", "")
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id or 0)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id:
                    await self._grpc_answer(
                        conn, event.stream_id, paths.pop(event.stream_id, ""), agent, target
                    )

    async def _grpc_answer(
        self, conn: h2.connection.H2Connection, stream_id: int, path: str, agent: str, target: Target
    ) -> None:
        effect = self.effect(agent, target.name)
        if effect is not None and effect.kind == "slow":
            await asyncio.sleep(effect.param / 1000.0)
        if effect is not None and effect.kind == "http_status":
            conn.send_headers(stream_id, [(":status", str(int(effect.param)))], end_stream=True)
            return
        head = [(":status", "200"), ("content-type", "application/grpc")]
        if path != GRPC_HEALTH_CHECK:
            conn.send_headers(stream_id, [*head, ("grpc-status", "12")], end_stream=True)  # UNIMPLEMENTED
            return
        serving = health_pb2.HealthCheckResponse
        status = (
            serving.NOT_SERVING
            if effect is not None and effect.kind == "grpc_not_serving"
            else serving.SERVING
        )
        message = serving(status=status).SerializeToString()
        conn.send_headers(stream_id, head)
        conn.send_data(stream_id, struct.pack(">BI", 0, len(message)) + message)
        conn.send_headers(stream_id, [("grpc-status", "0")], end_stream=True)

    async def _one_request(
        self, agent: str, target: Target, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        async with asyncio.timeout(IDLE_TIMEOUT_S):
            head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_REQUEST_HEAD:
            return False
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        path = parts[1] if len(parts) >= 2 else "/"
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        length = int(headers.get("content-length", "0") or 0)
        if length:
            await reader.readexactly(min(length, 1 << 20))
        keep_alive = headers.get("connection", "").lower() != "close" and lines[0].endswith("HTTP/1.1")
        effect = self.effect(agent, target.name)  # again: a keep-alive connection outlives fault changes
        if effect is not None and effect.kind == "slow":
            await asyncio.sleep(effect.param / 1000.0)
        status, body, content_type = content_for(target, path.split("?")[0], self.port)
        if effect is not None and effect.kind == "http_status":
            status, body, content_type = int(effect.param), b"lab fault\n", "text/plain"
        writer.write(_response(status, body, content_type, keep_alive))
        await writer.drain()
        return keep_alive


async def _hold(reader: asyncio.StreamReader) -> None:
    """Blackhole: keep the connection open and say nothing until the client gives up."""
    async with asyncio.timeout(120):
        while await reader.read(4096):
            pass
