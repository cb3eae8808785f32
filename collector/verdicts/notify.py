"""Notifications: each event version to each sink once, retried with backoff, never repeated.

Outbox pattern: the evaluator stores an event version before submitting it here; a worker per
sink delivers it and records the outcome in `event_notifications`. After a restart the worker
first reads those records, then sends the recent versions that have none (made but not
delivered before the stop) and skips everything already recorded. A version is recorded even
when delivery finally fails, so a dead sink is not flooded with history after a restart.

What a version becomes on the wire is the sink type's (collector/verdicts/sinks/). A sink's
`match` filter picks the events it gets; once an event has reached a sink, its later versions
(an update, the close) follow whatever they look like, so nothing is left open on the other side.
Sinks that want open events posted again (Alertmanager) get them every `resend_every`; those
posts are heartbeats, not versions, and are not recorded.

Maintenance (collector.maintenance): a version of an event covered by an active window or
silence is recorded as held and sent nowhere; the close of an event a sink already has still
goes out, so nothing stays open on the other side. When the window ends on an event that is
still open, its latest version goes out then (checked every `reconcile_every` when idle, and
after a restart, from what the store says was attempted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from collector.config import NotifyConfig, WebhookConfig
from collector.errors import StoreError
from collector.store import Store
from collector.store.events import (
    open_event_rows,
    reached_events,
    record_notification,
    sent_versions,
    unsent_event_rows,
)
from collector.verdicts.events import Event, event_from_row
from collector.verdicts.maintenance import MaintenanceBook
from collector.verdicts.sinks import Request, Sink, json_body, make_sink, matches, slack_body
from collector.verdicts.sinks.base import sink_id as _sink_id

log = logging.getLogger(__name__)

# Versions older than this are not sent after a restart: a stale page helps nobody.
BACKLOG_S = 3600.0

__all__ = ["BACKLOG_S", "Delivery", "Notifier", "json_body", "sink_id", "slack_body"]


def sink_id(config: NotifyConfig | WebhookConfig) -> str:
    return _sink_id(config.as_notify() if isinstance(config, WebhookConfig) else config)


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    attempts: int
    error: str = ""


class _Permanent(Exception):
    """The sink refused the body (4xx other than 429): retrying cannot help."""


def unsent_versions(store: Store, sink: str, since: float) -> list[Event]:
    return [event_from_row(r) for r in unsent_event_rows(store, sink, since)]


def open_events(store: Store) -> list[Event]:
    return [event_from_row(r) for r in open_event_rows(store)]


@dataclass
class _Outbox:
    """One sink's queue and memory: the versions handled, the highest version of each event it
    was sent, the latest version of every open event, and the open ones it has (for heartbeats)."""

    sink: Sink
    # None in the queue: time to look for events a maintenance window no longer holds.
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)
    done: set[tuple[str, int]] = field(default_factory=set)
    reached: dict[str, int] = field(default_factory=dict)
    latest: dict[str, Event] = field(default_factory=dict)
    open: dict[str, Event] = field(default_factory=dict)
    pending: int = 0
    recovered: bool = False

    def put(self, event: Event) -> None:
        self.pending += 1
        self.queue.put_nowait(event)

    def wanted(self, event: Event) -> bool:
        if event.id in self.reached:
            return True
        return event.closed_at is None and matches(self.sink.config.match, event)


class Notifier:
    def __init__(
        self,
        store: Store,
        sinks: Sequence[NotifyConfig | WebhookConfig],
        *,
        retries: int = 5,
        first_delay: float = 0.5,
        max_delay: float = 30.0,
        timeout: float = 10.0,
        maintenance: MaintenanceBook | None = None,
        reconcile_every: float = 2.0,
    ) -> None:
        self.store = store
        self.maintenance = maintenance
        self.reconcile_every = reconcile_every
        self.outboxes = [_Outbox(make_sink(s)) for s in sinks]
        self.retries = retries
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.delivered = 0
        self.failed = 0
        self._progress = asyncio.Event()

    def submit(self, events: Sequence[Event]) -> None:
        for outbox in self.outboxes:
            for event in events:
                outbox.put(event)

    async def run(self) -> None:
        if not self.outboxes:
            return
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            workers = [asyncio.create_task(self._work(o, session)) for o in self.outboxes]
            workers += [
                asyncio.create_task(self._heartbeat(o, session)) for o in self.outboxes if o.sink.resend_every
            ]
            if self.maintenance is not None:
                workers += [asyncio.create_task(self._tick(o)) for o in self.outboxes]
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
        return all(o.recovered and o.pending == 0 for o in self.outboxes)

    async def wait_idle(self) -> None:
        """Until every version submitted so far has been handled (callers bound it with a timeout)."""
        while not self.idle:
            self._progress.clear()
            await self._progress.wait()

    async def _recover(self, outbox: _Outbox) -> None:
        since = time.time() - BACKLOG_S
        sink = outbox.sink.id
        while True:
            try:
                outbox.done |= await self.store.run(sent_versions, self.store, sink, since)
                outbox.reached |= await self.store.run(reached_events, self.store, sink, since)
                backlog = await self.store.run(unsent_versions, self.store, sink, since)
                still_open = await self.store.run(open_events, self.store)
                break
            except StoreError as exc:
                log.warning("notify: cannot read what was sent, retrying: %s", exc)
                await asyncio.sleep(self.first_delay)
        outbox.latest |= {e.id: e for e in still_open}
        outbox.open |= {e.id: e for e in still_open if e.id in outbox.reached}
        for event in backlog:
            outbox.put(event)
        outbox.recovered = True
        self._progress.set()

    async def _work(self, outbox: _Outbox, session: aiohttp.ClientSession) -> None:
        await self._recover(outbox)
        while True:
            event = await outbox.queue.get()
            if event is None:
                await self._reconcile(outbox, session)
                continue
            try:
                if (event.id, event.version) not in outbox.done:
                    outbox.done.add((event.id, event.version))
                    await self._handle(outbox, session, event)
            finally:
                outbox.pending -= 1
                self._progress.set()

    async def _tick(self, outbox: _Outbox) -> None:
        """Ask the worker to reconcile every `reconcile_every`, when it has nothing else to do
        (through its queue, so a version and a reconcile never run at once)."""
        while True:
            await asyncio.sleep(self.reconcile_every)
            if outbox.queue.empty():
                outbox.queue.put_nowait(None)

    def _held_by(self, outbox: _Outbox, event: Event) -> str:
        """The maintenance window holding this version back, or ""."""
        if self.maintenance is None or (event.closed_at is not None and event.id in outbox.reached):
            return ""
        window = self.maintenance.covering(event, time.time())
        return window.name if window else ""

    async def _handle(self, outbox: _Outbox, session: aiohttp.ClientSession, event: Event) -> None:
        if event.closed_at is None:
            outbox.latest[event.id] = event
        else:
            outbox.latest.pop(event.id, None)
        if self.maintenance is not None:
            await self.maintenance.refresh()
        # Recorded with no attempt either way, so a restart does not take it for one never sent.
        if not outbox.wanted(event):
            await self._record(outbox, event, Delivery(False, 0, "not matched"))
        elif held := self._held_by(outbox, event):
            await self._record(outbox, event, Delivery(False, 0, f"in maintenance: {held}"))
        else:
            await self._send_version(outbox, session, event)

    async def _send_version(self, outbox: _Outbox, session: aiohttp.ClientSession, event: Event) -> None:
        first = event.id not in outbox.reached
        outbox.reached[event.id] = event.version
        requests = outbox.sink.requests(event, first, time.time())
        delivery = await self._deliver(session, requests, event)
        if event.closed_at is None:
            outbox.open[event.id] = event
        else:
            outbox.open.pop(event.id, None)
        await self._record(outbox, event, delivery)

    async def _reconcile(self, outbox: _Outbox, session: aiohttp.ClientSession) -> None:
        """Send the latest version of open events held back by a window that has ended."""
        if self.maintenance is None:
            return
        await self.maintenance.refresh()
        for event in list(outbox.latest.values()):
            behind = event.version > outbox.reached.get(event.id, 0)
            if behind and outbox.wanted(event) and not self._held_by(outbox, event):
                log.info("notify: %s v%d held by maintenance, sending it now", event.id, event.version)
                await self._send_version(outbox, session, event)
        self._progress.set()

    async def _heartbeat(self, outbox: _Outbox, session: aiohttp.ClientSession) -> None:
        """Post every open event again (one attempt each: the next heartbeat is the retry)."""
        while True:
            await asyncio.sleep(outbox.sink.resend_every)
            for event in list(outbox.open.values()):
                for request in outbox.sink.resend(event, time.time()):
                    with contextlib.suppress(_Permanent):
                        error = await self._send(session, request)
                        if error:
                            log.warning("notify: resend of %s to %s failed: %s", event.id, request.url, error)

    async def _record(self, outbox: _Outbox, event: Event, delivery: Delivery) -> None:
        for attempt in range(self.retries):
            try:
                await self.store.run(record_notification, self.store, outbox.sink.id, event, delivery)
                return
            except StoreError as exc:
                log.warning("notify: cannot record delivery of %s v%d: %s", event.id, event.version, exc)
                await asyncio.sleep(min(self.first_delay * 2**attempt, self.max_delay))

    async def _send(self, session: aiohttp.ClientSession, request: Request) -> str:
        """One attempt: "" when accepted, else the error; raises _Permanent on a refusal."""
        try:
            async with session.request(
                request.method, request.url, json=request.body, headers=dict(request.headers)
            ) as response:
                if response.status < 300:
                    return ""
                error = f"HTTP {response.status}"
                if 400 <= response.status < 500 and response.status != 429:
                    raise _Permanent(error)
                return error
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"

    async def _deliver(
        self, session: aiohttp.ClientSession, requests: Sequence[Request], event: Event
    ) -> Delivery:
        """Every request of the version in order, each retried with backoff; a refusal ends it."""
        attempts = 0
        for request in requests:
            error = "no attempt"
            for attempt in range(1, self.retries + 1):
                attempts += 1
                try:
                    error = await self._send(session, request)
                except _Permanent as exc:
                    return self._failed(event, attempts, str(exc))
                if not error:
                    break
                if attempt < self.retries:
                    await asyncio.sleep(min(self.first_delay * 2 ** (attempt - 1), self.max_delay))
            else:
                return self._failed(event, attempts, error)
        self.delivered += 1
        return Delivery(True, attempts)

    def _failed(self, event: Event, attempts: int, error: str) -> Delivery:
        self.failed += 1
        log.warning(
            "notify: giving up on event %s v%d after %d attempts: %s",
            event.id,
            event.version,
            attempts,
            error,
        )
        return Delivery(False, attempts, error)
