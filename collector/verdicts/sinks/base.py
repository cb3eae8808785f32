"""What every sink shares: the request it asks for, the severity of an event, the match filter."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from collector.config import SEVERITIES, MatchConfig, NotifyConfig
from collector.verdicts.events import KIND_CERT, KIND_SLO, KIND_VANTAGE, Event

# A fast SLO burn pages, a slow one is a ticket (the SRE workbook's multi-window alerts).
_SEVERITY = {
    "outage": "critical",
    "partial": "error",
    "impaired": "warning",
    "warning": "warning",
    "fast_burn": "critical",
    "slow_burn": "warning",
}
ALERTNAMES = {
    KIND_VANTAGE: "ProbenetImpairedVantage",
    KIND_CERT: "ProbenetCertExpiring",
    KIND_SLO: "ProbenetSloBurn",
}


@dataclass(frozen=True)
class Request:
    """One HTTP call a sink asks the notifier to make (JSON body)."""

    url: str
    body: Any  # anything json.dumps takes
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)


def severity(event: Event) -> str:
    """info < warning < error < critical (PagerDuty's scale): an outage is critical."""
    return _SEVERITY.get(event.status, "warning")


def alertname(event: Event) -> str:
    return ALERTNAMES.get(event.kind, "ProbenetOutage")


def subject(event: Event) -> str:
    """What the event is about: the check, else the impaired agent or region."""
    if event.check:
        return event.check
    return f"agent {event.agent}" if event.agent else f"region {','.join(event.regions)}"


def matches(match: MatchConfig, event: Event) -> bool:
    if match.checks and not any(fnmatch.fnmatchcase(event.check, glob) for glob in match.checks):
        return False
    if match.statuses and event.status not in match.statuses:
        return False
    if match.scopes and event.scope not in match.scopes:
        return False
    return SEVERITIES.index(severity(event)) >= SEVERITIES.index(match.min_severity)


def sink_id(config: NotifyConfig) -> str:
    """A sink's identity in the store: a hash, because the URL itself may carry a secret. A
    webhook keeps the identity it had as a `webhooks:` entry, so an upgrade re-sends nothing."""
    legacy = {"webhook": "json", "slack": "slack"}.get(config.type)
    text = (
        f"{legacy} {config.url}"
        if legacy
        else f"{config.type} {config.url} {config.key_env} {config.key_file}"
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Sink:
    """A sink type: turns an event version into requests. `first` is true when this sink has not
    been sent this event before (it may have been filtered out or held so far), so a sink that
    creates something on the other side (an incident, an alert) creates it then.

    `resend_every` > 0 asks the notifier to call `resend` for each open event that often."""

    resend_every = 0.0

    def __init__(self, config: NotifyConfig, secret: str = "") -> None:
        self.config = config
        self.secret = secret

    @property
    def id(self) -> str:
        return sink_id(self.config)

    def requests(self, event: Event, first: bool, now: float) -> list[Request]:
        raise NotImplementedError

    def resend(self, event: Event, now: float) -> list[Request]:
        return []
