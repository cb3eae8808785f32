"""`type: opsgenie`: Opsgenie's Alert API (`url` is the API base, EU: https://api.eu.opsgenie.com).

Create the alert (`alias` = the event id, so a retried create is folded into the same alert) the
first time, on each real change add a note and set the priority, close it when the event closes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from collector.verdicts.events import Event, describe
from collector.verdicts.sinks.base import Request, Sink, severity, subject

_PRIORITY = {"critical": "P1", "error": "P2", "warning": "P3", "info": "P5"}
SOURCE = "probenet"


class OpsgenieSink(Sink):
    def _url(self, path: str) -> str:
        return self.config.url.rstrip("/") + path

    def _alert_url(self, event: Event, action: str) -> str:
        return self._url(f"/v2/alerts/{quote(event.id, safe='')}/{action}?identifierType=alias")

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"GenieKey {self.secret}"}

    def _create(self, event: Event) -> dict[str, Any]:
        cause = event.cause
        details = {
            "check": event.check,
            "agent": event.agent,
            "status": event.status,
            "scope": event.scope,
            "regions": ",".join(event.regions),
            "cause_class": cause.cls if cause else "",
            "cause_host": cause.host if cause else "",
            "error": cause.error if cause else "",
            "status_page": self.config.link,
        }
        return {
            "message": f"probenet {event.status}: {subject(event)} {event.scope}".strip()[:130],
            "alias": event.id,
            "description": describe(event)[:15000],
            "tags": [t for t in ("probenet", event.kind, event.status, event.scope) if t],
            "details": {k: v[:500] for k, v in details.items() if v},
            "entity": subject(event)[:512],
            "source": SOURCE,
            "priority": _PRIORITY[severity(event)],
        }

    def requests(self, event: Event, first: bool, now: float) -> list[Request]:
        note = {"source": SOURCE, "user": SOURCE, "note": describe(event)}
        if event.closed_at is not None:
            return [Request(self._alert_url(event, "close"), note, headers=self._headers)]
        if first:
            return [Request(self._url("/v2/alerts"), self._create(event), headers=self._headers)]
        return [
            Request(self._alert_url(event, "notes"), note, headers=self._headers),
            Request(
                self._alert_url(event, "priority"),
                {"priority": _PRIORITY[severity(event)]},
                method="PUT",
                headers=self._headers,
            ),
        ]
