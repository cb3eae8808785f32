"""Events: verdicts over time, with hysteresis (DESIGN section 4).

An event opens after `open_after` evaluations that are not ok, gets a new version whenever its
status, scope, regions or cause (class and host) change, and closes after `close_after` ok
evaluations. Every change is a new immutable version; the tracker returns the versions it made
so the caller can store and notify them. A check with no data anywhere (`unknown`) neither opens
nor closes an event: no evidence is no news.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from collector.store.events import event_fields
from collector.verdicts.model import (
    DEFAULT_CLOSE_AFTER,
    DEFAULT_OPEN_AFTER,
    STATUS_OK,
    STATUS_UNKNOWN,
    Cause,
    CheckOptions,
    Evaluation,
)

KIND_CHECK, KIND_VANTAGE, KIND_CERT = "check", "vantage", "cert_expiring"
KIND_SLO = "slo_burn"  # collector.verdicts.slo_alerts: not the tracker's
STATUS_IMPAIRED, STATUS_WARNING = "impaired", "warning"
CERT_EXPIRING_CLASS = "tls_cert_expiring"


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True, slots=True)
class Event:
    """One version of an event. Its JSON form (`to_dict`) is a stable contract."""

    id: str
    version: int
    kind: str
    check: str
    status: str
    scope: str
    regions: tuple[str, ...]
    cause: Cause | None
    opened_at: float
    updated_at: float
    closed_at: float | None = None
    agent: str = ""  # the impaired agent of a vantage event with scope `agent`

    @property
    def key(self) -> str:
        return event_key(self.kind, self.check, self.agent, self.scope, self.regions)

    @property
    def signature(self) -> tuple[Any, ...]:
        cause = (self.cause.cls, self.cause.host) if self.cause else None
        return (self.status, self.scope, self.regions, cause)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "kind": self.kind,
            "check": self.check,
            "agent": self.agent,
            "status": self.status,
            "scope": self.scope,
            "regions": list(self.regions),
            "cause": self.cause.to_dict() if self.cause else None,
            "opened_at": iso(self.opened_at),
            "updated_at": iso(self.updated_at),
            "closed_at": iso(self.closed_at),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Event:
        return cls(
            id=str(raw["id"]),
            version=int(raw["version"]),
            kind=str(raw["kind"]),
            check=str(raw.get("check", "")),
            status=str(raw["status"]),
            scope=str(raw.get("scope", "")),
            regions=tuple(sorted(raw.get("regions", ()))),
            cause=Cause.from_dict(raw.get("cause")),
            opened_at=parse_iso(raw["opened_at"]) or 0.0,
            updated_at=parse_iso(raw["updated_at"]) or 0.0,
            closed_at=parse_iso(raw.get("closed_at")),
            agent=str(raw.get("agent", "")),
        )


def event_key(kind: str, check: str, agent: str, scope: str, regions: tuple[str, ...]) -> str:
    if kind != KIND_VANTAGE:
        return f"{kind}:{check}"
    return f"vantage:agent:{agent}" if scope == "agent" else f"vantage:region:{','.join(regions)}"


def event_id(key: str, opened_at: float) -> str:
    """Deterministic, so a replay or a restarted evaluator names the same event the same way."""
    return hashlib.sha256(f"{key}@{opened_at:.3f}".encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Signal:
    """What an evaluation says about one event key when it is not ok."""

    kind: str
    check: str
    status: str
    scope: str
    regions: tuple[str, ...]
    cause: Cause | None
    agent: str = ""

    @property
    def key(self) -> str:
        return event_key(self.kind, self.check, self.agent, self.scope, self.regions)


def signals(evaluation: Evaluation) -> tuple[dict[str, Signal], set[str]]:
    """Split an evaluation into not-ok signals by key and the keys that are explicitly ok."""
    bad: dict[str, Signal] = {}
    ok: set[str] = set()
    for verdict in evaluation.verdicts.values():
        if verdict.status == STATUS_OK:
            ok.add(event_key(KIND_CHECK, verdict.check_id, "", "", ()))
        elif verdict.status != STATUS_UNKNOWN:
            s = Signal(
                KIND_CHECK, verdict.check_id, verdict.status, verdict.scope, verdict.regions, verdict.cause
            )
            bad[s.key] = s
    for v in evaluation.vantage:
        s = Signal(KIND_VANTAGE, "", STATUS_IMPAIRED, v.scope, (v.region,), v.cause, v.agent_id)
        bad[s.key] = s
    for c in evaluation.certs:
        days = math.floor(c.days_left)
        error = (
            f"certificate expires in {days} days" if days >= 0 else f"certificate expired {-days} days ago"
        )
        s = Signal(
            KIND_CERT,
            c.check_id,
            STATUS_WARNING,
            c.scope,
            c.regions,
            Cause(CERT_EXPIRING_CLASS, c.host, error),
        )
        bad[s.key] = s
    return bad, ok


@dataclass
class _Track:
    event: Event | None = None
    bad_streak: int = 0
    ok_streak: int = 0


@dataclass
class EventTracker:
    """Turns successive evaluations into event versions.

    `options` gives each check's open_after / close_after and its evaluation period (its
    interval, unless `every` overrides it for all checks). Vantage events use the defaults and
    are judged at every evaluation. Pass `open_events` (latest versions of events not closed, e.g.
    read back from the store) to resume after a restart without re-opening anything.
    """

    options: Mapping[str, CheckOptions]
    open_events: Iterable[Event] = ()
    every: float = 0.0
    _tracks: dict[str, _Track] = field(default_factory=dict, init=False)
    _last_eval: dict[str, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for event in self.open_events:
            if event.closed_at is None:
                opts = self.options.get(event.check)
                self._tracks[event.key] = _Track(event, opts.open_after if opts else DEFAULT_OPEN_AFTER)

    def current(self) -> list[Event]:
        """Latest version of every open event."""
        return sorted((t.event for t in self._tracks.values() if t.event), key=lambda e: (e.opened_at, e.id))

    def _due(self, check: str, now: float) -> bool:
        """A check is judged once per period even when evaluations come more often."""
        opts = self.options.get(check)
        period = self.every or (opts.interval if opts else 0.0)
        last = self._last_eval.get(check)
        return last is None or now - last >= period * 0.999

    def update(self, evaluation: Evaluation) -> list[Event]:
        now = evaluation.now
        bad, ok = signals(evaluation)
        due_checks = {c for c in evaluation.verdicts if self._due(c, now)}
        for c in due_checks:
            self._last_eval[c] = now
        changes: list[Event] = []
        for key in sorted(set(bad) | set(self._tracks)):
            signal = bad.get(key)
            check = signal.check if signal else self._check_of(key)
            if check and check not in self.options:
                changes += self._close(key, now, force=True)
            elif check and check in evaluation.verdicts and check not in due_checks:
                continue
            elif signal:
                changes += self._bad(key, signal, now)
            elif self._judged_ok(key, check, ok, evaluation):
                changes += self._close(key, now)
        return changes

    @staticmethod
    def _judged_ok(key: str, check: str, ok: set[str], evaluation: Evaluation) -> bool:
        """Absent from the not-ok signals and backed by data (an unknown check proves nothing)."""
        if key.startswith(f"{KIND_CHECK}:"):
            return key in ok
        if key.startswith(f"{KIND_CERT}:"):
            verdict = evaluation.verdicts.get(check)
            return verdict is not None and verdict.status != STATUS_UNKNOWN
        return True

    def _check_of(self, key: str) -> str:
        track = self._tracks.get(key)
        if track and track.event:
            return track.event.check
        kind, _, rest = key.partition(":")
        return rest if kind in (KIND_CHECK, KIND_CERT) else ""

    def _bad(self, key: str, signal: Signal, now: float) -> list[Event]:
        track = self._tracks.setdefault(key, _Track())
        track.ok_streak = 0
        track.bad_streak += 1
        opts = self.options.get(signal.check)
        open_after = opts.open_after if opts and signal.kind != KIND_VANTAGE else DEFAULT_OPEN_AFTER
        if track.event is None:
            if track.bad_streak < open_after:
                return []
            track.event = Event(
                event_id(key, now),
                1,
                signal.kind,
                signal.check,
                signal.status,
                signal.scope,
                signal.regions,
                signal.cause,
                now,
                now,
                None,
                signal.agent,
            )
            return [track.event]
        candidate = replace(
            track.event, status=signal.status, scope=signal.scope, regions=signal.regions, cause=signal.cause
        )
        if candidate.signature == track.event.signature:
            return []
        track.event = replace(candidate, version=track.event.version + 1, updated_at=now)
        return [track.event]

    def _close(self, key: str, now: float, force: bool = False) -> list[Event]:
        track = self._tracks.get(key)
        if track is None:
            return []
        track.bad_streak = 0
        if track.event is None:
            del self._tracks[key]
            return []
        track.ok_streak += 1
        opts = self.options.get(track.event.check)
        close_after = opts.close_after if opts and track.event.kind != KIND_VANTAGE else DEFAULT_CLOSE_AFTER
        if not force and track.ok_streak < close_after:
            return []
        closed = replace(track.event, version=track.event.version + 1, updated_at=now, closed_at=now)
        del self._tracks[key]
        return [closed]


def describe(event: Event) -> str:
    """One line for humans: when, what happened, status, scope, regions, cause."""
    data = event.to_dict()
    when = data["closed_at"] if event.closed_at is not None else data["updated_at"]
    action = "closed" if event.closed_at is not None else ("opened" if event.version == 1 else "updated")
    subject = event.check or (f"agent {event.agent}" if event.agent else f"region {','.join(event.regions)}")
    parts = [f"{when} {action:7} {event.kind} {subject} v{event.version}: {event.status}"]
    if event.scope:
        parts.append(event.scope)
    if event.regions:
        parts.append("[" + ",".join(event.regions) + "]")
    if event.cause:
        cause = event.cause.cls + (f" at {event.cause.host}" if event.cause.host else "")
        parts.append(f"cause {cause}" + (f" ({event.cause.error})" if event.cause.error else ""))
    return " ".join(parts)


def event_from_row(row: Sequence[Any]) -> Event:
    """An event version read back from an `outage_events` row (collector.store.events)."""
    fields = event_fields(row)
    cause = fields.pop("cause")
    return Event(**fields, cause=Cause(*cause) if cause else None)
