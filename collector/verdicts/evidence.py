"""When to ask for path evidence: a check event that opens, or widens to more regions.

`Widening.new_regions` follows the versions the evaluator produces and says, per check event,
which regions are new since the event was last seen (all of them for a new event); narrowing,
recovery and cause changes ask for nothing. Vantage events (an agent's own network) are left
out: their path is not the target's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from collector.verdicts.events import Event

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
