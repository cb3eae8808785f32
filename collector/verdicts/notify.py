"""Webhooks: one notification per event version per webhook, retried with backoff, never repeated.

Outbox pattern: the evaluator stores an event version before submitting it here; a worker per
webhook delivers it and records the outcome in `event_notifications`. After a restart the
worker first reads those records, then sends the recent versions that have none (made but not
delivered before the stop) and skips everything already recorded. A version is recorded even
when delivery finally fails, so a dead webhook is not flooded with history after a restart.

Bodies: `json` = {"text", "event": <the event's stable JSON form>}; `slack` = Slack's incoming
webhook form {"text", "attachments": [{"color", "fields"}]}.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from collector.config import WebhookConfig
from collector.errors import StoreError
from collector.store import Store
from collector.store.events import record_notification, sent_versions, unsent_event_rows
from collector.verdicts.events import Event, describe, event_from_row

log = logging.getLogger(__name__)

# Versions older than this are not sent after a restart: a stale page helps nobody.
BACKLOG_S = 3600.0
_COLORS = {"outage": "#d93025", "partial": "#e8a317", "impaired": "#7b61ff", "warning": "#e8a317"}


def sink_id(hook: WebhookConfig) -> str:
    """A webhook's identity in the store: a hash, because the URL itself may carry a secret."""
    return hashlib.sha256(f"{hook.format} {hook.url}".encode()).hexdigest()[:16]


def json_body(event: Event) -> dict[str, Any]:
    return {"text": describe(event), "event": event.to_dict()}


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


def body_for(hook: WebhookConfig, event: Event) -> dict[str, Any]:
    return slack_body(event) if hook.format == "slack" else json_body(event)


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    attempts: int
    error: str = ""


class _Permanent(Exception):
    """The webhook refused the body (4xx other than 429): retrying cannot help."""


def unsent_versions(store: Store, sink: str, since: float) -> list[Event]:
    return [event_from_row(r) for r in unsent_event_rows(store, sink, since)]


class _Sink:
    def __init__(self, hook: WebhookConfig) -> None:
        self.hook = hook
        self.id = sink_id(hook)
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.done: set[tuple[str, int]] = set()
        self.pending = 0
        self.recovered = False

    def put(self, event: Event) -> None:
        self.pending += 1
        self.queue.put_nowait(event)


class Notifier:
    def __init__(
        self,
        store: Store,
        webhooks: Sequence[WebhookConfig],
        *,
        retries: int = 5,
        first_delay: float = 0.5,
        max_delay: float = 30.0,
        timeout: float = 10.0,
    ) -> None:
        self.store = store
        self.sinks = [_Sink(h) for h in webhooks]
        self.retries = retries
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.delivered = 0
        self.failed = 0
        self._progress = asyncio.Event()

    def submit(self, events: Sequence[Event]) -> None:
        for sink in self.sinks:
            for event in events:
                sink.put(event)

    async def run(self) -> None:
        if not self.sinks:
            return
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            workers = [asyncio.create_task(self._work(sink, session)) for sink in self.sinks]
            try:
                await asyncio.gather(*workers)
            finally:
                for w in workers:
                    w.cancel()
                for w in workers:
                    with contextlib.suppress(asyncio.CancelledError):
                        await w

    @property
    def idle(self) -> bool:
        """True when every submitted version has been handled (recovery included)."""
        return all(s.recovered and s.pending == 0 for s in self.sinks)

    async def wait_idle(self) -> None:
        """Until every version submitted so far has been handled (callers bound it with a timeout)."""
        while not self.idle:
            self._progress.clear()
            await self._progress.wait()

    async def _recover(self, sink: _Sink) -> None:
        since = time.time() - BACKLOG_S
        while True:
            try:
                sink.done |= await self.store.run(sent_versions, self.store, sink.id, since)
                backlog = await self.store.run(unsent_versions, self.store, sink.id, since)
                break
            except StoreError as exc:
                log.warning("notify: cannot read what was sent, retrying: %s", exc)
                await asyncio.sleep(self.first_delay)
        for event in backlog:
            sink.put(event)
        sink.recovered = True
        self._progress.set()

    async def _work(self, sink: _Sink, session: aiohttp.ClientSession) -> None:
        await self._recover(sink)
        while True:
            event = await sink.queue.get()
            try:
                if (event.id, event.version) not in sink.done:
                    sink.done.add((event.id, event.version))
                    delivery = await self._deliver(session, sink.hook, event)
                    await self._record(sink, event, delivery)
            finally:
                sink.pending -= 1
                self._progress.set()

    async def _record(self, sink: _Sink, event: Event, delivery: Delivery) -> None:
        for attempt in range(self.retries):
            try:
                await self.store.run(record_notification, self.store, sink.id, event, delivery)
                return
            except StoreError as exc:
                log.warning("notify: cannot record delivery of %s v%d: %s", event.id, event.version, exc)
                await asyncio.sleep(min(self.first_delay * 2**attempt, self.max_delay))

    async def _deliver(self, session: aiohttp.ClientSession, hook: WebhookConfig, event: Event) -> Delivery:
        body = body_for(hook, event)
        error = ""
        for attempt in range(1, self.retries + 1):
            try:
                async with session.post(hook.url, json=body) as response:
                    if response.status < 300:
                        self.delivered += 1
                        return Delivery(True, attempt)
                    error = f"HTTP {response.status}"
                    if 400 <= response.status < 500 and response.status != 429:
                        raise _Permanent(error)
            except _Permanent:
                break
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                await asyncio.sleep(min(self.first_delay * 2 ** (attempt - 1), self.max_delay))
        self.failed += 1
        log.warning(
            "notify: giving up on event %s v%d after %s: %s",
            event.id,
            event.version,
            f"{attempt} attempts",
            error,
        )
        return Delivery(False, attempt, error)
