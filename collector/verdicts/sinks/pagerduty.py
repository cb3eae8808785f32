"""`type: pagerduty`: PagerDuty Events API v2 (`POST /v2/enqueue`).

`trigger` when the event opens and again on each real change (PagerDuty folds a trigger with a
known `dedup_key` into the open alert), `resolve` when it closes. `dedup_key` is the event id,
so a retried delivery or a restarted collector never opens a second incident.
"""

from __future__ import annotations

from typing import Any

from collector.verdicts.events import Event, describe, iso
from collector.verdicts.sinks.base import Request, Sink, severity, subject


class PagerDutySink(Sink):
    def _payload(self, event: Event) -> dict[str, Any]:
        cause = event.cause
        payload: dict[str, Any] = {
            "summary": describe(event)[:1024],
            "source": subject(event),
            "severity": severity(event),
            "timestamp": iso(event.updated_at),
            "group": ",".join(event.regions),
            "class": cause.cls if cause else event.status,
            "custom_details": event.to_dict(),
        }
        if cause and cause.host:
            payload["component"] = cause.host
        return payload

    def requests(self, event: Event, first: bool, now: float) -> list[Request]:
        body: dict[str, Any] = {"routing_key": self.secret, "dedup_key": event.id}
        if event.closed_at is not None:
            body["event_action"] = "resolve"
        else:
            body |= {"event_action": "trigger", "payload": self._payload(event), "client": "probenet"}
            if self.config.link:
                body |= {
                    "client_url": self.config.link,
                    "links": [{"href": self.config.link, "text": "status page"}],
                }
        return [Request(self.config.url, body)]
