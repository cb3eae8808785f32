"""SLO burn-rate alerts through the sinks, against a real aiohttp receiver and a real chDB store.

A check with `slo: {target: 99.9}` has results for the last 6 hours and has been down for the
last 30 minutes: the budget burns at 500x over the hour and 1000x over the last slot, a fast
burn. The alert opens as an event of kind slo_burn, reaches a webhook sink once (a second tick
changes nothing), and closes when the windows no longer burn; a check without an SLO never
alerts. A restarted watcher resumes the open alert instead of opening another.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from collector.config import NotifyConfig, config_from_mapping
from collector.store import Store
from collector.verdicts.evaluator import load_open_events
from collector.verdicts.events import KIND_SLO
from collector.verdicts.notify import Notifier
from collector.verdicts.slo_alerts import SloAlerts

WAIT_S = 20.0
CONFIG = {
    "insecure": True,
    "checks": [
        {
            "id": "shop",
            "probe": "http",
            "target": "https://shop.test/",
            "slo": {"target": 99.9, "window": "30d"},
        },
        {"id": "video", "probe": "http", "target": "https://video.test/"},
    ],
}


def _fill(store: Store, now: float) -> None:
    store.migrate()
    store.command(
        "INSERT INTO probe_results (started_at, received_at, check_id, agent_id, region, seq, outcome) "
        "SELECT toDateTime64({now:Int64} - 6 * 3600 + number * 60, 3, 'UTC') AS t, t, c, 'it-1', 'it', "
        "number, 'success' FROM numbers(360) ARRAY JOIN ['shop', 'video'] AS c",
        {"now": int(now)},
    )
    store.command(
        "INSERT INTO outage_events (event_id, version, kind, check_id, status, scope, regions, "
        "cause_class, opened_at, updated_at) VALUES "
        "('o1', 1, 'check', 'shop', 'outage', 'undetermined', ['it'], 'tcp_refused', {t:DateTime64(3)}, "
        "{t:DateTime64(3)}), ('o2', 1, 'check', 'video', 'outage', 'undetermined', ['it'], 'tcp_refused', "
        "{t:DateTime64(3)}, {t:DateTime64(3)})",
        {"t": datetime.fromtimestamp(now // 360 * 360 - 1800, UTC)},
    )


async def _run(tmp_path: Path) -> dict[str, Any]:
    bodies: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    sink = NotifyConfig(type="webhook", url=f"http://127.0.0.1:{runner.addresses[0][1]}/hook")
    config = config_from_mapping(CONFIG, "collector.yaml")
    store = Store(f"chdb://{tmp_path / 'store'}")
    now = (datetime.now(UTC).timestamp() // 360) * 360 + 5
    try:
        await store.run(_fill, store, now)
        notifier = Notifier(store, [sink], first_delay=0.01)
        task = asyncio.create_task(notifier.run())
        watch = SloAlerts(store, lambda: config, notifier)
        opened = await watch.tick(now)
        again = await watch.tick(now + 1)
        resumed = SloAlerts(store, lambda: config, notifier)  # a restart
        closed = await resumed.tick(now + 8 * 3600)
        await asyncio.wait_for(notifier.wait_idle(), WAIT_S)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        tracked = await store.run(load_open_events, store)
        return {"opened": opened, "again": again, "closed": closed, "bodies": bodies, "tracked": tracked}
    finally:
        await store.aclose()
        await runner.cleanup()


def test_a_fast_burn_opens_notifies_once_and_closes(tmp_path: Path) -> None:
    out = asyncio.run(_run(tmp_path))
    (opened,) = out["opened"]
    assert (opened.kind, opened.check, opened.status) == (KIND_SLO, "shop", "fast_burn")
    assert opened.cause is not None and "1h 500.0x" in opened.cause.error
    assert out["again"] == []
    (closed,) = out["closed"]
    assert (closed.id, closed.version, closed.closed_at) == (opened.id, 2, closed.updated_at)
    # (The notifier also sends the stored check events it finds unsent: not this test's subject.)
    alerts = [b["event"] for b in out["bodies"] if b["event"]["kind"] == KIND_SLO]
    assert [(e["check"], e["status"], e["version"]) for e in alerts] == [
        ("shop", "fast_burn", 1),
        ("shop", "fast_burn", 2),
    ]
    assert alerts[1]["closed_at"] is not None
    # The verdict tracker never adopts an SLO alert (nor would it close one it does not own).
    assert all(e.kind != KIND_SLO for e in out["tracked"])
