"""Fixtures for probe tests: a PKI made in the test session and a one-call probe runner."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvloop
from google.protobuf import json_format

from probe_agent.probes import PROBE_TYPES
from probe_agent.probes.base import run_probe
from probe_agent.probes.context import ProbeContext
from probenet.v1.probe_pb2 import CheckSpec, ProbeResult
from tests.probe_agent.probes.certs import Issued, make_ca, make_leaf
from tests.probe_agent.probes.servers import DnsServer


@dataclass
class Pki:
    root: Issued
    intermediate: Issued

    @property
    def ca_pem(self) -> str:
        return self.root.pem

    def leaf(self, *hosts: str, **kwargs: Any) -> Issued:
        return make_leaf(list(hosts or ("localhost",)), self.intermediate, **kwargs)


@pytest.fixture(scope="session")
def pki() -> Pki:
    root = make_ca("probenet test root")
    return Pki(root, make_ca("probenet test intermediate", root))


def spec_for(probe: str, target: str, timeout_s: float = 3.0, **fields: Any) -> CheckSpec:
    spec = json_format.ParseDict(
        {"id": f"test-{probe}", "probe": probe, "target": target, **fields}, CheckSpec()
    )
    spec.timeout.FromMilliseconds(round(timeout_s * 1000))
    spec.interval.FromMilliseconds(round(max(timeout_s, 1.0) * 1000))
    return spec


def run_check(
    probe: str,
    target: str,
    timeout_s: float = 3.0,
    ctx: ProbeContext | None = None,
    *,
    loop: str = "asyncio",
    **fields: Any,
) -> ProbeResult:
    """Run one probe to completion on a fresh event loop (`loop="uvloop"`: the agent's loop)."""
    spec = spec_for(probe, target, timeout_s, **fields)
    coro = run_probe(PROBE_TYPES[probe], spec, ctx or ProbeContext())
    if loop == "uvloop":
        result: ProbeResult = uvloop.run(coro)
        return result
    return asyncio.run(coro)


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer({"ok.test": "127.0.0.1"})
    yield server
    server.close()
