"""`type: webhook`: {"text", "event": <the event's stable JSON form>} to any URL."""

from __future__ import annotations

from typing import Any

from collector.verdicts.events import Event, describe
from collector.verdicts.sinks.base import Request, Sink


def json_body(event: Event) -> dict[str, Any]:
    return {"text": describe(event), "event": event.to_dict()}


class WebhookSink(Sink):
    def requests(self, event: Event, first: bool, now: float) -> list[Request]:
        return [Request(self.config.url, json_body(event))]
