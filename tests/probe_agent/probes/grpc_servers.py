"""A real gRPC server on 127.0.0.1 with the standard health servicer (grpcio-health-checking)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent import futures

import grpc
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.probe_agent.probes.certs import Issued

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _credentials(issued: Issued) -> grpc.ServerCredentials:
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [issued.cert, *issued.chain])
    key = issued.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return grpc.ssl_server_credentials([(key, chain)])


@contextlib.contextmanager
def grpc_server(
    statuses: dict[str, int] | None = None, *, tls: Issued | None = None, with_health: bool = True
) -> Iterator[int]:
    """Serve health `statuses` (service name -> status; "" is the server) and yield the port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    if with_health:
        servicer = health.HealthServicer()
        for service, status in (statuses or {"": SERVING}).items():
            servicer.set(service, status)
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    address = "127.0.0.1:0"
    port = server.add_secure_port(address, _credentials(tls)) if tls else server.add_insecure_port(address)
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None).wait(5)
