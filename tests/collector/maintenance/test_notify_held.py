"""The notifier and maintenance on a real store and a real receiver: an event held by a window
that ended while the collector was down goes out after the restart, once; the close of an event
the sink already had goes out during a window (nothing stays open over there); an event that
opens and closes inside a window reaches nobody; an event sent hours ago and still open is not
sent again by a restart."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from collector.config import NotifyConfig
from collector.maintenance import Window
from collector.store import Store
from collector.store.events import NOTIFY_COLUMNS, insert_events
from collector.verdicts import Cause, Event
from collector.verdicts.maintenance import MaintenanceBook
from collector.verdicts.notify import Notifier, sink_id

WAIT_S = 20.0


def _event(event_id: str, check: str, version: int, closed: bool = False) -> Event:
    at = time.time() - 30
    return Event(
        event_id, version, "check", check, "outage", "global", ("fr", "it"),
        Cause("tcp_refused", "x.test", "refused"), at, at + version, at + 5 if closed else None,
    )  # fmt: skip


async def _round(store: Store, url: str, windows: list[Window], events: list[Event]) -> None:
    book = MaintenanceBook(store, lambda: windows, refresh_s=0.0)
    notifier = Notifier(store, [NotifyConfig(type="webhook", url=url)], maintenance=book, reconcile_every=0.2)
    task = asyncio.create_task(notifier.run())
    await store.run(insert_events, store, events)
    notifier.submit(events)
    await asyncio.wait_for(notifier.wait_idle(), WAIT_S)
    await asyncio.sleep(1.0)  # a few reconciles
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _run(store: Store) -> list[list[tuple[str, int]]]:
    bodies: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    now = time.time()
    window = Window("upgrade", ("shop", "docs"), (), now - 60, now + 3600)
    rounds = []
    try:
        await store.run(store.migrate)
        # 1. api is sent; shop is held; docs opens and closes inside the window
        await _round(
            store,
            url,
            [window],
            [
                _event("api1", "api", 1),
                _event("shop1", "shop", 1),
                _event("docs1", "docs", 1),
                _event("docs1", "docs", 2, True),
            ],
        )
        rounds.append([(b["event"]["id"], b["event"]["version"]) for b in bodies])
        # 2. a window over api now: its close still goes out, shop stays held
        await _round(
            store,
            url,
            [window, Window("api-too", ("api",), (), now - 60, now + 3600)],
            [_event("api1", "api", 2, True)],
        )
        rounds.append([(b["event"]["id"], b["event"]["version"]) for b in bodies])
        # 3. restart after the window ended: shop (still open) goes out once, nothing else
        await _round(store, url, [], [])
        await _round(store, url, [], [])
        rounds.append([(b["event"]["id"], b["event"]["version"]) for b in bodies])
        return rounds
    finally:
        await runner.cleanup()


def test_held_sent_after_window_closes_go_out_inside_nothing(store: Store) -> None:
    rounds = asyncio.run(_run(store))
    assert rounds == [
        [("api1", 1)],
        [("api1", 1), ("api1", 2)],
        [("api1", 1), ("api1", 2), ("shop1", 1)],
    ]


async def _restart_with_old_record(store: Store) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        await store.run(store.migrate)
        old = _event("long1", "api", 1)
        await store.run(insert_events, store, [old])
        sink = sink_id(NotifyConfig(type="webhook", url=url))
        row = [sink, old.id, 1, 1, 1, "", datetime.now(UTC) - timedelta(hours=5)]
        await store.run(store.insert, "event_notifications", [row], NOTIFY_COLUMNS)
        await _round(store, url, [], [])  # a restart: the reconcile finds it reached long ago
        return bodies
    finally:
        await runner.cleanup()


def test_an_event_open_for_hours_is_not_sent_again_after_a_restart(store: Store) -> None:
    # (The module's store also holds the first test's events: a new sink gets their last hour.)
    bodies = asyncio.run(_restart_with_old_record(store))
    assert [b for b in bodies if b["event"]["id"] == "long1"] == []
