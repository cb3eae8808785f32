"""Events: verdicts over time, with hysteresis (DESIGN section 4).

An event opens after `open_after` evaluations that are not ok, gets a new version whenever
something a responder acts on changes (status, scope, affected regions, cause class or host),
and closes after `close_after` ok evaluations. Every change is a new immutable version; the
tracker returns the versions it made so the caller can store and notify them. A check with no
data anywhere (`unknown`) neither opens nor closes an event: no evidence is no news.

Settled evidence (a contract): while a check has pending regions (Verdict.pending: latest
results that disagree with their confirmed state), its event is not opened, widened, narrowed,
escalated or closed on the strength of the others, for at most an interval and a timeout of the check and never
past the latency budget (an opening within `confirm + 1` intervals of the failures' onset, a
close at most one evaluation after `close_after`). Recovery is settled the way an event closes:
a region stops being affected after `close_after` evaluations without it and two intervals (and
a status is lowered after `close_after` evaluations); until then it is listed in `recovering_regions` of the current version, which
changes without making a version. Every version carries the event's peak (`peak_status`,
`peak_scope`, `peak_regions`: the worst status and scope and every region it ever affected).
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
    GLOBAL,
    NO_DATA,
    REGIONAL,
    STATUS_OK,
    STATUS_UNKNOWN,
    UNDETERMINED,
    Cause,
    CheckOptions,
    Evaluation,
    agent_key,
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
    peak_status: str = ""  # "" = this version's own (see `with_peak`)
    peak_scope: str = ""
    peak_regions: tuple[str, ...] = ()
    # Regions of this version no longer affected whose recovery has not settled yet: they change
    # without a new version (recovery is not news a responder acts on).
    recovering_regions: tuple[str, ...] = ()

    def with_peak(self, before: Event | None = None) -> Event:
        """This version with its peak: the worst of `before`'s peak and its own state."""
        status, scope, regions = self.status, self.scope, set(self.regions)
        if before is not None:
            status = max(status, before.peak_status or before.status, key=_status_rank)
            scope = max(scope, before.peak_scope or before.scope, key=_scope_rank)
            regions |= set(before.peak_regions or before.regions)
        return replace(self, peak_status=status, peak_scope=scope, peak_regions=tuple(sorted(regions)))

    @property
    def key(self) -> str:
        return event_key(self.kind, self.check, self.agent, self.scope, self.regions)

    @property
    def signature(self) -> tuple[Any, ...]:
        """What a responder acts on. For a vantage event that is which agent or region is
        impaired: its cause (whichever of its checks failed last) is not news."""
        if self.kind == KIND_VANTAGE:
            return (self.status, self.scope, self.regions)
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
            "peak_status": self.peak_status or self.status,
            "peak_scope": self.peak_scope or self.scope,
            "peak_regions": list(self.peak_regions or self.regions),
            "recovering_regions": list(self.recovering_regions),
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
            peak_status=str(raw.get("peak_status") or raw["status"]),
            peak_scope=str(raw.get("peak_scope") or raw.get("scope", "")),
            peak_regions=tuple(sorted(raw.get("peak_regions") or raw.get("regions", ()))),
            recovering_regions=tuple(sorted(raw.get("recovering_regions") or ())),
        )


_STATUS_RANK = {"partial": 1, "warning": 1, "outage": 2, "impaired": 2}
_SCOPE_RANK = {"undetermined": 1, "regional": 2, "global": 3}


def _status_rank(status: str) -> int:
    return _STATUS_RANK.get(status, 0)


def _scope_rank(scope: str) -> int:
    return _SCOPE_RANK.get(scope, 0)


def event_key(kind: str, check: str, agent: str, scope: str, regions: tuple[str, ...]) -> str:
    if kind != KIND_VANTAGE:
        return f"{kind}:{check}"
    if scope == "agent":  # an agent id is only unique within its region
        return f"vantage:agent:{agent_key(','.join(regions), agent)}"
    return f"vantage:region:{','.join(regions)}"


def event_id(key: str, opened_at: float) -> str:
    """Deterministic, so a replay or a restarted evaluator names the same event the same way."""
    return hashlib.sha256(f"{key}@{opened_at:.3f}".encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Signal:
    """What an evaluation says about one event key (not ok, or ok with `pending` regions)."""

    kind: str
    check: str
    status: str
    scope: str
    regions: tuple[str, ...]
    cause: Cause | None
    agent: str = ""
    pending: tuple[str, ...] = ()
    onset: float | None = None
    seen: tuple[str, ...] = ()  # regions with data (what scope is judged over)

    @property
    def key(self) -> str:
        return event_key(self.kind, self.check, self.agent, self.scope, self.regions)


def signals(evaluation: Evaluation) -> tuple[dict[str, Signal], dict[str, tuple[str, ...]]]:
    """Split an evaluation into not-ok signals by key and the keys that are explicitly ok (with
    their pending regions)."""
    bad: dict[str, Signal] = {}
    ok: dict[str, tuple[str, ...]] = {}
    for verdict in evaluation.verdicts.values():
        if verdict.status == STATUS_OK:
            ok[event_key(KIND_CHECK, verdict.check_id, "", "", ())] = verdict.pending
        elif verdict.status != STATUS_UNKNOWN:
            s = Signal(
                KIND_CHECK,
                verdict.check_id,
                verdict.status,
                verdict.scope,
                verdict.regions,
                verdict.cause,
                pending=verdict.pending,
                onset=verdict.onset,
                seen=tuple(r.region for r in verdict.region_states if r.state != NO_DATA),
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
    deferred_since: float | None = None  # first evaluation of the current wait for settled evidence
    deadline: float = math.inf  # the latest an opening may wait until (the latency budget)
    close_deferred: bool = False
    gone: dict[str, tuple[int, float]] = field(default_factory=dict)  # region -> (evaluations, since)
    lower: int = 0  # evaluations with a lower status than the event's
    seen: tuple[Any, ...] = ()  # the previous signal's scope and regions (a warning settles on them)


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

    def _period(self, check: str) -> float:
        opts = self.options.get(check)
        return self.every or (opts.interval if opts else 0.0)

    def _due(self, check: str, now: float) -> bool:
        """A check is judged once per period even when evaluations come more often."""
        last = self._last_eval.get(check)
        return last is None or now - last >= self._period(check) * 0.999

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
                changes += self._close(key, now, pending=ok.get(key, ()))
        return changes

    @staticmethod
    def _judged_ok(key: str, check: str, ok: Mapping[str, tuple[str, ...]], evaluation: Evaluation) -> bool:
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

    def _close_after(self, event: Event) -> int:
        opts = self.options.get(event.check)
        return opts.close_after if opts and event.kind != KIND_VANTAGE else DEFAULT_CLOSE_AFTER

    def _wait(self, track: _Track, signal: Signal, now: float, opening: bool) -> bool:
        """Whether to wait for pending regions rather than act now: for at most an interval and a
        timeout of the check, an opening never past `confirm + 1` intervals from the onset.

        Before an opening, a region that is not affected has not settled either while less than
        an interval and a timeout have passed since the failures' onset: its agents may not have
        probed since, or their result may still be on its way (with `confirm: 1`, or a partial
        page, a failure counts at once and is never pending)."""
        opts = self.options.get(signal.check)
        unseen = (
            opening
            and opts is not None
            and signal.scope != GLOBAL
            and signal.onset is not None
            and now - signal.onset < (opts.interval + min(opts.timeout, opts.interval)) * 0.999
        )
        if opts is None or not (signal.pending or unseen):
            track.deferred_since = None
            return False
        if track.deferred_since is None:
            track.deferred_since = now
            # Pending regions are evidence of what comes next: wait up to confirm + 1 intervals
            # from the fault's first sign. Regions merely not probed yet are not: wait only as long
            # as the budget holds even if the fault came an interval before its first sign.
            onset = signal.onset if opening and signal.onset is not None else math.inf
            track.deadline = onset + (opts.confirm + (1 if signal.pending else 0)) * opts.interval
        if now - track.deferred_since >= (opts.interval + min(opts.timeout, opts.interval)) * 0.999:
            return False
        return now + self._period(signal.check) <= track.deadline + 1e-6

    def _bad(self, key: str, signal: Signal, now: float) -> list[Event]:
        track = self._tracks.setdefault(key, _Track())
        track.ok_streak = 0
        track.close_deferred = False
        track.bad_streak += 1
        opts = self.options.get(signal.check)
        open_after = opts.open_after if opts and signal.kind != KIND_VANTAGE else DEFAULT_OPEN_AFTER
        if track.event is None:
            where, track.seen = track.seen, (signal.scope, signal.regions)
            if signal.kind == KIND_CERT and where != track.seen:
                # Not urgent (days ahead): it opens once two evaluations agree on where (at a
                # start some regions have not reported yet, and their warning is the same news).
                return []
            if track.bad_streak < open_after or self._wait(track, signal, now, opening=True):
                return []
            track.deferred_since = None
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
            ).with_peak()
            return [track.event]
        return self._revise(track, signal, now)

    def _revise(self, track: _Track, signal: Signal, now: float) -> list[Event]:
        """A new version for a settled change; recovery in progress only updates the current one."""
        event = track.event
        assert event is not None
        close_after = self._close_after(event)
        for region in event.regions:
            if region in signal.regions:
                track.gone.pop(region, None)
            elif region not in signal.pending:
                count, since = track.gone.get(region, (0, now))
                track.gone[region] = (count + 1, since)
        track.lower = track.lower + 1 if _status_rank(signal.status) < _status_rank(event.status) else 0
        # Regions recovering together settle together: one narrowing, not one version each. A
        # recovery has settled after `close_after` evaluations and two intervals of the check (the
        # regions still affected may be a probe slot and a timeout behind).
        gone = track.gone
        opts = self.options.get(event.check)
        span = 2 * opts.interval * 0.999 if opts else 0.0
        settled = all(n >= close_after and now - since >= span for n, since in gone.values())
        settled_gone = set(gone) if gone and settled else set()
        kept = tuple(r for r in event.regions if r not in settled_gone)
        recovering = tuple(r for r in kept if r not in signal.regions)
        candidate = self._candidate(event, signal, kept, recovering, track.lower >= close_after)
        if candidate.signature == event.signature or self._wait(track, signal, now, opening=False):
            track.event = replace(event, recovering_regions=recovering)
            return []
        track.deferred_since = None
        track.gone = {r: n for r, n in track.gone.items() if r not in settled_gone}
        track.lower = 0
        track.event = replace(
            candidate, version=event.version + 1, updated_at=now, recovering_regions=recovering
        ).with_peak(event)
        return [track.event]

    @staticmethod
    def _candidate(
        event: Event, signal: Signal, kept: tuple[str, ...], recovering: tuple[str, ...], lower: bool
    ) -> Event:
        """What the event would say now: the signal, except that regions (and a status) on their
        way to recovery stay until that has settled, and so does the cause while they do."""
        if not recovering and (lower or _status_rank(signal.status) >= _status_rank(event.status)):
            return replace(
                event, status=signal.status, scope=signal.scope, regions=signal.regions, cause=signal.cause
            )
        regions = tuple(sorted(set(kept) | set(signal.regions)))
        if regions == signal.regions or not signal.seen:
            scope = signal.scope
        elif len(signal.seen) < 2:
            scope = UNDETERMINED
        else:
            scope = GLOBAL if set(signal.seen) <= set(regions) else REGIONAL
        raise_status = _status_rank(signal.status) > _status_rank(event.status)
        status = signal.status if raise_status or lower else event.status
        cause = signal.cause if not recovering else event.cause
        return replace(event, status=status, scope=scope, regions=regions, cause=cause)

    def _close(self, key: str, now: float, force: bool = False, pending: tuple[str, ...] = ()) -> list[Event]:
        track = self._tracks.get(key)
        if track is None:
            return []
        track.bad_streak = 0
        if track.event is None:
            del self._tracks[key]
            return []
        track.ok_streak += 1
        event = track.event
        if not force and track.ok_streak < self._close_after(event):
            track.event = replace(event, recovering_regions=event.regions)
            return []
        if not force and pending and not track.close_deferred:
            # New failures not confirmed yet: one more evaluation to see whether they do.
            track.close_deferred = True
            return []
        closed = replace(
            event, version=event.version + 1, updated_at=now, closed_at=now, recovering_regions=()
        ).with_peak(event)
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
