"""When to ask for path evidence: a check event that opens, or widens to more regions.

`Widening.new_regions` follows the versions the evaluator produces and says, per check event,
which regions are new since the event was last seen (all of them for a new event); narrowing,
recovery and cause changes ask for nothing. Vantage events (an agent's own network) are left
out: their path is not the target's. `trace_request` says what to ask the agents.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from collector.verdicts.events import Event
from collector.verdicts.model import target_host
from probenet.v1.probe_pb2 import CheckSpec
from probenet.v1.stream_pb2 import PathTraceRequest

# Probes whose traffic is TCP: their traces are TCP SYNs to the check's port, so they cross the
# firewalls the check's traffic crosses (many drop UDP to traceroute's ports).
TCP_PROBES = frozenset({"http", "page", "tls", "tcp", "grpc"})
_SCHEME_PORTS = {"http": 80, "https": 443}

# Events remembered; a closed event is forgotten at once.
MAX_TRACKED = 10_000


@dataclass
class Widening:
    _seen: dict[str, frozenset[str]] = field(default_factory=dict)

    def new_regions(self, events: Iterable[Event]) -> list[tuple[Event, tuple[str, ...]]]:
        out: list[tuple[Event, tuple[str, ...]]] = []
        for event in events:
            if event.kind != "check":
                continue
            if event.closed_at is not None:
                self._seen.pop(event.id, None)
                continue
            seen = self._seen.get(event.id, frozenset())
            fresh = tuple(sorted(set(event.regions) - seen))
            if len(self._seen) >= MAX_TRACKED and event.id not in self._seen:
                self._seen.pop(next(iter(self._seen)))
            self._seen[event.id] = seen | set(event.regions)
            if fresh:
                out.append((event, fresh))
        return out


def trace_request(event: Event, check: CheckSpec | None) -> PathTraceRequest | None:
    """A trace to the failing host (the cause's, else the check's target), or None without one."""
    host = (event.cause.host if event.cause else "") or (target_host(check.target) if check else "")
    if not host:
        return None
    return PathTraceRequest(
        event_id=event.id,
        check_id=event.check,
        host=host,
        dns_server=check.dns_server if check else "",
        tcp_port=tcp_port(check) if check and check.probe in TCP_PROBES else 0,
    )


def tcp_port(check: CheckSpec) -> int:
    """The port the check connects to: the target's, else its scheme's, else 443."""
    target = check.target.strip()
    try:
        parts = urlsplit(target if "://" in target else "//" + target)
        port = parts.port
    except ValueError:
        return 443
    return port or _SCHEME_PORTS.get(parts.scheme, 443)
