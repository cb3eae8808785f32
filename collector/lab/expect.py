"""`expect` semantics (DESIGN.md section 6, a contract) and the events the lab saw.

An entry whose status is not `ok` is met when some version of some event of that check has
that status and, where given, that scope, exactly those regions and that cause class (and
that kind, that cause host - a target name). `status: ok` is met when no event was opened for that check during the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from collector.lab.scenario import Expectation


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
            hits = [
                e
                for e in related
                if any(version_matches(expectation, v) for v in e.versions)
                and (not expectation.closed or e.latest.get("closed_at"))
            ]
            met = bool(hits)
            if met:
                detail = f"event {hits[0].id}"
            elif related:
                seen = {_summary(v) for e in related for v in e.versions}
                detail = "no matching version; saw: " + "; ".join(sorted(seen))
            else:
                detail = "no event for this check"
        outcomes.append(ExpectOutcome(expectation, met, detail))
    return outcomes


def _summary(version: Mapping[str, Any]) -> str:
    regions = ",".join(version.get("regions") or ())
    return (
        f"{version.get('kind', '?')} {version.get('check') or '-'} {version.get('status')} "
        f"{version.get('scope')} [{regions}] {cause_class(version) or '-'}"
    )
