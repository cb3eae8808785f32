"""The routed paths of `path_break` agents: a chain of network namespaces per agent.

An agent of a path_break fault runs inside its own namespace, whose only way to the targets is
agent - r1 - r2 - r3 - target (`netns.wire_chain`); the lab's target servers for that agent
listen inside the target namespace, its resolver address answers inside the agent namespace
(the resolver is near the agent, not behind the break), and a relay there carries its stream
to the collector. The fault adds a blackhole route for the target addresses on the router at
`hop`: that router and everything beyond it go silent, so probes time out and the path trace
the collector asks for shows the hops before the break answering and none after.

Namespace names carry the lab's pid and a per-process counter, so parallel runs never collide;
`sweep_stale` removes what a killed lab (SIGKILL: no teardown) left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import socket
from collections.abc import Mapping, Sequence

from collector.lab import netns
from collector.lab.scenario import PATH_ROUTERS

log = logging.getLogger(__name__)

PREFIX = "pnlab"
TARGET_SLOT_BASE = 10
RELAY_CHUNK = 64 * 1024
_RUNS = itertools.count(1)
_OWNER = re.compile(rf"^{PREFIX}(\d+)x\d+-")

Pair = tuple[str, str]  # (agent, target)


def target_address(target_index: int) -> str:
    """Where target i listens inside every chain's target namespace (beside the last link)."""
    return netns.chain_address(PATH_ROUTERS + 1, TARGET_SLOT_BASE + target_index)


def sweep_stale() -> list[str]:
    """Delete the namespaces of labs that are no longer running; returns their names."""
    stale = []
    for name in netns.existing(PREFIX):
        owner = _OWNER.match(name)
        if owner and not _alive(int(owner.group(1))):
            stale.append(name)
    netns.delete(stale)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LabPaths:
    """The chains of `agents`; `apply` sets the breaks, `close` removes everything."""

    def __init__(self, agents: Sequence[str], targets: Sequence[str]) -> None:
        self.agents = tuple(agents)
        self.targets = tuple(targets)
        self.prefix = f"{PREFIX}{os.getpid()}x{next(_RUNS)}-"
        self._made: list[str] = []
        self._routes: dict[Pair, int] = {}  # blackholes in place: pair -> hop
        self._relays: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def names(self) -> list[str]:
        return list(self._made)

    def __contains__(self, agent: object) -> bool:
        return agent in self.agents

    def chain(self, agent: str) -> list[str]:
        """The namespaces of agent's path: agent, r1..rN, target."""
        roles = ["agent", *(f"r{i}" for i in range(1, PATH_ROUTERS + 1)), "target"]
        return [f"{self.prefix}{agent}-{role}" for role in roles]

    def agent_namespace(self, agent: str) -> str:
        return self.chain(agent)[0]

    def target_namespace(self, agent: str) -> str:
        return self.chain(agent)[-1]

    def target_address(self, target: str) -> str:
        return target_address(self.targets.index(target))

    def start(self) -> None:
        for name in sweep_stale():
            log.warning("removed network namespace %s of a lab that is gone", name)
        for agent in self.agents:
            names = self.chain(agent)
            netns.make(names)
            self._made.extend(names)
            netns.wire_chain(names)
            last_link = f"v{PATH_ROUTERS}b"
            for target in self.targets:
                netns.ip("addr", "add", f"{self.target_address(target)}/32", "dev", last_link, ns=names[-1])

    async def apply(self, breaks: Mapping[Pair, int]) -> None:
        """Make the blackhole routes those of `breaks` ((agent, target) -> hop), no more."""
        for pair, hop in list(self._routes.items()):
            if breaks.get(pair) != hop:
                await asyncio.to_thread(self._route, "del", pair, hop)
                del self._routes[pair]
        for pair, hop in breaks.items():
            if pair[0] in self and pair not in self._routes:
                await asyncio.to_thread(self._route, "add", pair, hop)
                self._routes[pair] = hop

    def _route(self, verb: str, pair: Pair, hop: int) -> None:
        agent, target = pair
        netns.ip("route", verb, "blackhole", f"{self.target_address(target)}/32", ns=self.chain(agent)[hop])

    async def relay(self, agent: str, host: str, port: int) -> None:
        """Listen on host:port inside agent's namespace and carry each connection to host:port
        here (the collector): the agent keeps the collector address of every other agent."""
        sock = netns.bound_socket(self.agent_namespace(agent), host, port, socket.SOCK_STREAM)

        async def carry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            try:
                up_reader, up_writer = await asyncio.open_connection(host, port)
            except OSError:
                writer.transport.abort()
                self._connections.discard(task)
                return
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                self._connections.discard(task)

        self._relays.append(await asyncio.start_server(carry, sock=sock))

    async def close(self) -> None:
        for server in self._relays:
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        self._relays.clear()
        # By prefix as well: whatever a start cut short by an error made is gone too.
        await asyncio.to_thread(netns.delete, sorted({*self._made, *netns.existing(self.prefix)}))
        self._made.clear()
        self._routes.clear()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(RELAY_CHUNK):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()
