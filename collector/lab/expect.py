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

    @property
    def latest(self) -> dict[str, Any]:
        return self.versions[-1]

    @property
    def opened_at(self) -> Any:
        return self.versions[0].get("opened_at")

    def to_dict(self) -> dict[str, Any]:
        return {**self.latest, "versions": self.versions}


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
    return not expectation.closed or bool(event.latest.get("closed_at"))


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
