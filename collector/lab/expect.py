"""`expect` semantics (DESIGN.md section 6, a contract) and the events the lab saw.

An entry whose status is not `ok` is met when some version of some event of that check has
that status and, where given, that scope, exactly those regions and that cause class (and
that kind, that cause host - a target name). `status: ok` is met when no event was opened for
that check during the run.

Compatible extensions: `first: true` asks that the matching version be the event's first (it
opened right), `versions: N` that the event had exactly N versions (the closing one included);
a scenario with `strict: true` also fails on any event no entry asks for (by kind, `check`
when not given, and check, with some version matching the entry): no false events, no vantage
event unless expected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from collector.lab.scenario import STRICT_KIND, Expectation


@dataclass
class EventHistory:
    """One event and every version of it the lab saw, oldest first."""

    id: str
    kind: str
    check: str
    versions: list[dict[str, Any]] = field(default_factory=list)
    path_traces: list[dict[str, Any]] = field(default_factory=list)  # as GET /api/v1/events/ID

    @property
    def latest(self) -> dict[str, Any]:
        return self.versions[-1]

    @property
    def opened_at(self) -> Any:
        return self.versions[0].get("opened_at")

    def to_dict(self) -> dict[str, Any]:
        return {**self.latest, "versions": self.versions, "path_traces": self.path_traces}


def cause_class(version: Mapping[str, Any]) -> str:
    cause = version.get("cause")
    if isinstance(cause, Mapping):
        return str(cause.get("class") or "")
    return str(cause or "")


def cause_host(version: Mapping[str, Any]) -> str:
    cause = version.get("cause")
    return str(cause.get("host") or "") if isinstance(cause, Mapping) else ""


def version_matches(expectation: Expectation, version: Mapping[str, Any]) -> bool:
    if version.get("status") != expectation.status:
        return False
    if expectation.scope and version.get("scope") != expectation.scope:
        return False
    if expectation.regions is not None and tuple(sorted(version.get("regions") or ())) != expectation.regions:
        return False
    if expectation.host and cause_host(version).partition(".")[0] != expectation.host:
        return False
    return not expectation.cause or cause_class(version) == expectation.cause


def _hit(expectation: Expectation, event: EventHistory) -> bool:
    versions = event.versions[:1] if expectation.first else event.versions
    if not any(version_matches(expectation, v) for v in versions):
        return False
    if expectation.versions and len(event.versions) != expectation.versions:
        return False
    if expectation.broken_at and not broken_at(event.path_traces, expectation.broken_at):
        return False
    return not expectation.closed or bool(event.latest.get("closed_at"))


def broken_at(traces: Sequence[Mapping[str, Any]], hop: int) -> bool:
    """Every trace (there is one at least) ends unreached, silent from `hop` on after an answer
    at every hop before it: the path breaks at that hop."""
    if not traces:
        return False
    for trace in traces:
        hops = list(trace.get("hops") or ())
        if trace.get("reached") or not any(h["ttl"] >= hop for h in hops):
            return False
        if any(bool(h.get("address")) != (h["ttl"] < hop) for h in hops):
            return False
    return True


def describe_trace(trace: Mapping[str, Any]) -> str:
    """One line per agent's trace: answering hops by address, runs of silent ones as `a-b *`."""
    where = f"path from {trace.get('agent')} to {trace.get('host')} ({trace.get('address') or '?'}):"
    if trace.get("error"):
        return f"{where} {trace['error']}"
    parts: list[str] = []
    silent: list[int] = []
    for hop in trace.get("hops") or ():
        if hop.get("address"):
            parts.extend(_silent_run(silent))
            silent = []
            parts.append(f"{hop['ttl']} {hop['address']}")
        else:
            silent.append(int(hop["ttl"]))
    parts.extend(_silent_run(silent))
    end = "reached" if trace.get("reached") else "not reached"
    return f"{where} {', '.join(parts) or 'no hops'} ({end})"


def _silent_run(ttls: list[int]) -> list[str]:
    if not ttls:
        return []
    return [f"{ttls[0]} *" if len(ttls) == 1 else f"{ttls[0]}-{ttls[-1]} *"]


def _concerns(expectation: Expectation, event: EventHistory) -> bool:
    if expectation.kind and event.kind != expectation.kind:
        return False
    if not expectation.check:
        return True
    return event.check == expectation.check


@dataclass(frozen=True)
class ExpectOutcome:
    expectation: Expectation
    met: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        e = self.expectation
        return {
            "check": e.check,
            "status": e.status,
            "scope": e.scope or None,
            "regions": list(e.regions) if e.regions is not None else None,
            "cause": e.cause or None,
            "host": e.host or None,
            "kind": e.kind or None,
            "first": e.first,
            "versions": e.versions or None,
            "broken_at": e.broken_at or None,
            "met": self.met,
            "detail": self.detail,
        }


def evaluate(expectations: Sequence[Expectation], events: Iterable[EventHistory]) -> list[ExpectOutcome]:
    history = list(events)
    outcomes: list[ExpectOutcome] = []
    for expectation in expectations:
        related = [e for e in history if _concerns(expectation, e)]
        if expectation.status == "ok":
            met = not related
            detail = "no event" if met else "events: " + "; ".join(_summary(e.latest) for e in related)
        else:
            hits = [e for e in related if _hit(expectation, e)]
            met = bool(hits)
            if met:
                detail = f"event {hits[0].id}"
            elif related:
                seen = {
                    f"v{v.get('version')}/{len(e.versions)} {_summary(v)}"
                    for e in related
                    for v in e.versions
                }
                detail = "no matching version; saw: " + "; ".join(sorted(seen))
                traces = [describe_trace(t) for e in related for t in e.path_traces]
                if expectation.broken_at:
                    detail += "; path traces: " + ("; ".join(traces) or "none")
            else:
                detail = "no event for this check"
        outcomes.append(ExpectOutcome(expectation, met, detail))
    return outcomes


UNEXPECTED = Expectation("", "ok", kind=STRICT_KIND)  # the strict rule, reported as one more entry


def _asks_for(expectation: Expectation, event: EventHistory) -> bool:
    """By kind (`check` when not given) and check, and some version of it matches the entry: a
    second event of an expected check for another reason (another cause, elsewhere) is unexpected."""
    if (expectation.kind or "check") != event.kind:
        return False
    if expectation.check and expectation.check != event.check:
        return False
    return any(version_matches(expectation, v) for v in event.versions)


def unexpected_events(expectations: Sequence[Expectation], events: Iterable[EventHistory]) -> ExpectOutcome:
    """The strict rule: every event is one some entry (not `ok`) asks for, by kind and check."""
    asked = [e for e in expectations if e.status != "ok"]
    extra = [event for event in events if not any(_asks_for(e, event) for e in asked)]
    detail = "none" if not extra else "; ".join(_summary(e.latest) for e in extra)
    return ExpectOutcome(UNEXPECTED, not extra, f"unexpected events: {detail}")


def _summary(version: Mapping[str, Any]) -> str:
    regions = ",".join(version.get("regions") or ())
    return (
        f"{version.get('kind', '?')} {version.get('check') or '-'} {version.get('status')} "
        f"{version.get('scope')} [{regions}] {cause_class(version) or '-'}"
    )
