"""`type: slack`: Slack's incoming webhook form {"text", "attachments": [{"color", "fields"}]}."""

from __future__ import annotations

from typing import Any

from collector.verdicts.events import Event, describe
from collector.verdicts.sinks.base import Request, Sink

_COLORS = {"outage": "#d93025", "partial": "#e8a317", "impaired": "#7b61ff", "warning": "#e8a317"}


def slack_body(event: Event) -> dict[str, Any]:
    resolved = event.closed_at is not None
    fields = [
        {"title": "Status", "value": "resolved" if resolved else event.status, "short": True},
        {"title": "Scope", "value": event.scope or "-", "short": True},
        {"title": "Regions", "value": ", ".join(event.regions) or "-", "short": True},
    ]
    if event.cause:
        fields.append(
            {"title": "Cause", "value": f"{event.cause.cls} {event.cause.host}".strip(), "short": True}
        )
        if event.cause.error:
            fields.append({"title": "Error", "value": event.cause.error, "short": False})
    color = "#2da44e" if resolved else _COLORS.get(event.status, "#b0b4ba")
    return {
        "text": describe(event),
        "attachments": [
            {"color": color, "fields": fields, "footer": f"probenet event {event.id} v{event.version}"}
        ],
    }


class SlackSink(Sink):
    def requests(self, event: Event, first: bool, now: float) -> list[Request]:
        return [Request(self.config.url, slack_body(event))]
