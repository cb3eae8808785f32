"""Webhook delivery edge cases against a real aiohttp receiver and a real chDB store: a refused
body is not retried but recorded (so never re-sent), a flaky webhook gets one delivery, and the
two body formats carry the event."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from collector.config import WebhookConfig
from collector.store import Store
from collector.store.events import insert_events
from collector.verdicts import Cause, Event
from collector.verdicts.notify import Notifier, json_body, sink_id, slack_body

WAIT_S = 20.0


def _event(version: int = 1, closed: bool = False) -> Event:
    return Event(
        "e1",
        version,
        "check",
        "shop",
        "outage",
        "regional",
        ("fr", "it"),
        Cause("tls_cert_expired", "static.example", "certificate has expired"),
        1_800_000_000.0,
        1_800_000_000.0 + 10 * version,
        1_800_000_100.0 if closed else None,
    )


async def _run(tmp_path: Path) -> dict[str, Any]:
    calls: dict[str, int] = {"/refuse": 0, "/flaky": 0}
    bodies: list[dict[str, Any]] = []

    async def refuse(request: web.Request) -> web.Response:
        calls["/refuse"] += 1
        return web.Response(status=400, text="bad body")

    async def flaky(request: web.Request) -> web.Response:
        calls["/flaky"] += 1
        if calls["/flaky"] <= 2:
            return web.Response(status=500)
        bodies.append(await request.json())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/refuse", refuse)
    app.router.add_post("/flaky", flaky)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    hooks = [WebhookConfig(f"{base}/refuse", "json"), WebhookConfig(f"{base}/flaky", "slack")]
    store = Store(f"chdb://{tmp_path / 'store'}")
    try:
        await store.run(store.migrate)
        events = [_event(1), _event(2, closed=True)]
        await store.run(insert_events, store, events)
        for _ in range(2):  # the second notifier is a restart: it must find nothing left to send
            notifier = Notifier(store, hooks, first_delay=0.01)
            task = asyncio.create_task(notifier.run())
            notifier.submit(events)
            await asyncio.wait_for(notifier.wait_idle(), WAIT_S)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        _, records = await store.run(
            store.query,
            "SELECT sink, version, delivered, attempts, error FROM event_notifications FINAL ORDER BY sink, version",
        )
        return {"calls": calls, "bodies": bodies, "records": records, "hooks": hooks}
    finally:
        await store.aclose()
        await runner.cleanup()


def test_refused_not_retried_flaky_retried_and_nothing_repeated_after_restart(tmp_path: Path) -> None:
    out = asyncio.run(_run(tmp_path))
    assert out["calls"] == {"/refuse": 2, "/flaky": 4}  # one call per version; two 500s then two 200s
    assert [b["attachments"][0]["footer"] for b in out["bodies"]] == [
        "probenet event e1 v1",
        "probenet event e1 v2",
    ]
    refuse, flaky = (sink_id(h) for h in out["hooks"])
    by_sink = {
        (sink, version): (delivered, attempts, error)
        for sink, version, delivered, attempts, error in out["records"]
    }
    assert by_sink[(refuse, 1)] == (0, 1, "HTTP 400")
    assert by_sink[(flaky, 1)] == (1, 3, "")
    assert by_sink[(flaky, 2)] == (1, 1, "")


def test_bodies() -> None:
    closed = _event(2, closed=True)
    generic = json_body(closed)
    assert generic["event"]["closed_at"] == "2027-01-15T08:01:40.000Z"
    assert generic["text"].startswith(
        "2027-01-15T08:01:40.000Z closed  check shop v2: outage regional [fr,it]"
    )
    slack = slack_body(_event(1))
    fields = {f["title"]: f["value"] for f in slack["attachments"][0]["fields"]}
    assert fields == {
        "Status": "outage",
        "Scope": "regional",
        "Regions": "fr, it",
        "Cause": "tls_cert_expired static.example",
        "Error": "certificate has expired",
    }
    assert slack_body(closed)["attachments"][0]["fields"][0]["value"] == "resolved"
