"""`type: alertmanager`: every open event is an alert posted to Alertmanager's `/api/v2/alerts`.

Like Prometheus, the collector posts each open event again every `resend` with `endsAt` four of
those ahead: Alertmanager keeps the alert firing while the collector lives and resolves it by
itself if the collector stops. A closed event is posted once more with `endsAt` = its close.

An alert's identity in Alertmanager is its label set. `status`, `scope` and `severity` are
labels, so a real change makes a new alert; the one it replaces is posted as ended at the same
time, so it does not linger until its `endsAt`.
"""

from __future__ import annotations

from typing import Any

from collector.verdicts.events import Event, describe, iso
from collector.verdicts.sinks.base import Request, Sink, alertname, severity

_AHEAD = 4


def labels_of(event: Event) -> dict[str, str]:
    found = {
        "alertname": alertname(event),
        "check": event.check,
        "agent": event.agent,
        "status": event.status,
        "scope": event.scope,
        "severity": severity(event),
        # Two impaired regions at once must stay two alerts, so the event itself is a label.
        "event_id": event.id,
    }
    return {k: v for k, v in found.items() if v}


def annotations_of(event: Event, link: str) -> dict[str, str]:
    cause = event.cause
    found = {
        "summary": describe(event),
        "regions": ",".join(event.regions),
        "cause_class": cause.cls if cause else "",
        "cause_host": cause.host if cause else "",
        "error": cause.error if cause else "",
        "status_page": link,
    }
    return {k: v for k, v in found.items() if v}


class AlertmanagerSink(Sink):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resend_every = float(self.config.resend)
        self._labels: dict[str, dict[str, str]] = {}
        self.endpoint = self.config.url.rstrip("/") + "/api/v2/alerts"

    def _alert(self, event: Event, labels_: dict[str, str], ends_at: float) -> dict[str, Any]:
        alert: dict[str, Any] = {
            "labels": labels_,
            "annotations": annotations_of(event, self.config.link),
            "startsAt": iso(event.opened_at),
            "endsAt": iso(ends_at),
        }
        if self.config.link:
            alert["generatorURL"] = self.config.link
        return alert

    def requests(self, event: Event, first: bool, now: float) -> list[Request]:
        current = labels_of(event)
        alerts = []
        previous = self._labels.pop(event.id, None)
        if previous is not None and previous != current:
            alerts.append(self._alert(event, previous, event.updated_at))
        if event.closed_at is not None:
            alerts.append(self._alert(event, current, event.closed_at))
        else:
            self._labels[event.id] = current
            alerts.append(self._alert(event, current, now + _AHEAD * self.resend_every))
        return [Request(self.endpoint, alerts)]

    def resend(self, event: Event, now: float) -> list[Request]:
        self._labels.setdefault(event.id, labels_of(event))
        ends_at = now + _AHEAD * self.resend_every
        return [Request(self.endpoint, [self._alert(event, labels_of(event), ends_at)])]
