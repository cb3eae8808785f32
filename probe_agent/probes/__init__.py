"""Probe registry: one module per probe type, one key per module."""

from __future__ import annotations

from probe_agent.probes import dns, grpchealth, http, icmp, page, tcp, tls
from probe_agent.probes.base import ProbeFn

PROBE_TYPES: dict[str, ProbeFn] = {
    "http": http.probe,
    "tls": tls.probe,
    "page": page.probe,
    "dns": dns.probe,
    "tcp": tcp.probe,
    "grpc": grpchealth.probe,
    "icmp": icmp.probe,
}
