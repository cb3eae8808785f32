"""The lab DNS server answers each agent with its own copy of a target, over real UDP."""

from __future__ import annotations

import asyncio

import dns.asyncresolver
import dns.resolver
import pytest

from collector.lab.dns import LabDns
from collector.lab.faults import Effect
from collector.lab.runner import _shared_port


def _resolver(address: str, port: int) -> dns.asyncresolver.Resolver:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [address]
    resolver.port = port
    return resolver


def test_answers_per_agent_and_obeys_faults() -> None:
    effects: dict[tuple[str, str], Effect] = {}

    async def scenario() -> None:
        listen = {"it-1": "127.77.201.1", "fr-1": "127.77.202.1"}
        port = _shared_port(list(listen.values()))
        server = LabDns(
            "lab.test",
            {
                "it-1": (listen["it-1"], {"shop": "127.77.201.10"}),
                "fr-1": (listen["fr-1"], {"shop": "127.77.202.10"}),
            },
            port,
            lambda agent, target: effects.get((agent, target)),
        )
        await server.start()
        try:
            it, fr = _resolver(listen["it-1"], port), _resolver(listen["fr-1"], port)
            assert [r.to_text() for r in await it.resolve("shop.lab.test", "A")] == ["127.77.201.10"]
            assert [r.to_text() for r in await fr.resolve("shop.lab.test", "A")] == ["127.77.202.10"]
            with pytest.raises(dns.resolver.NoAnswer):
                await it.resolve("shop.lab.test", "AAAA")
            with pytest.raises(dns.resolver.NXDOMAIN):
                await it.resolve("nothing.lab.test", "A")
            effects[("fr-1", "shop")] = Effect("dns_nxdomain")
            with pytest.raises(dns.resolver.NXDOMAIN):
                await fr.resolve("shop.lab.test", "A")
            assert [r.to_text() for r in await it.resolve("shop.lab.test", "A")] == ["127.77.201.10"]
            effects[("fr-1", "shop")] = Effect("offline")
            with pytest.raises(dns.resolver.NoNameservers):
                await fr.resolve("shop.lab.test", "A", lifetime=2)
        finally:
            server.close()

    asyncio.run(scenario())


def test_garbage_gets_no_answer() -> None:
    server = LabDns("lab.test", {"it-1": ("127.0.0.1", {})}, 0, lambda a, t: None)
    assert server.answer("it-1", b"\x00\x01garbage") is None
