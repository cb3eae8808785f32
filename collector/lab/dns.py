"""The lab's DNS server (UDP), one listening address per agent.

Each agent is configured with its own resolver address (its `dns_server`), so the address a
query arrives on says who asks: the server answers `<target>.lab.test` with that agent's copy
of the target, NXDOMAIN under a `dns_nxdomain` fault, and REFUSED when the agent's network is cut
(`offline`). AAAA queries get an empty answer (the lab is IPv4).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Callable, Mapping

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from collector.lab import netns
from collector.lab.faults import Effect

log = logging.getLogger(__name__)

TTL = 1


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: LabDns, agent: str) -> None:
        self.server = server
        self.agent = agent
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        reply = self.server.answer(self.agent, data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class LabDns:
    """`addresses`: agent -> (listen address, {target name: address to answer}); `namespaces`:
    agent -> the network namespace its listen address is in (path_break agents), else here."""

    def __init__(
        self,
        domain: str,
        addresses: dict[str, tuple[str, dict[str, str]]],
        port: int,
        effect: Callable[[str, str], Effect | None],
        namespaces: Mapping[str, str] | None = None,
    ) -> None:
        self.domain = domain.rstrip(".") + "."
        self.addresses = addresses
        self.port = port
        self.effect = effect
        self.namespaces = dict(namespaces or {})
        self.queries = 0
        self._transports: list[asyncio.DatagramTransport] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for agent, (listen, _) in self.addresses.items():
            protocol = functools.partial(_Protocol, self, agent)
            if agent in self.namespaces:
                sock = netns.bound_socket(self.namespaces[agent], listen, self.port, socket.SOCK_DGRAM)
                transport, _ = await loop.create_datagram_endpoint(protocol, sock=sock)
            else:
                transport, _ = await loop.create_datagram_endpoint(protocol, local_addr=(listen, self.port))
            self._transports.append(transport)

    def close(self) -> None:
        for transport in self._transports:
            transport.close()
        self._transports.clear()

    def answer(self, agent: str, data: bytes) -> bytes | None:
        """The wire reply to one query from `agent`, or None to stay silent."""
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return None
        self.queries += 1
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        name = question.name.to_text().lower()
        target = name.removesuffix("." + self.domain) if name.endswith("." + self.domain) else ""
        address = self.addresses[agent][1].get(target)
        if address is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        effect = self.effect(agent, target)
        if effect is not None and effect.kind == "offline":
            # The agent's network is cut: its resolver refuses at once (like an unreachable
            # network), so every probe fails in the same interval rather than at its timeout.
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        if effect is not None and effect.kind == "dns_nxdomain":
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        if question.rdtype == dns.rdatatype.A:
            response.answer.append(
                dns.rrset.from_text(question.name, TTL, dns.rdataclass.IN, dns.rdatatype.A, address)
            )
        return response.to_wire()
