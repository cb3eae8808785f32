"""PagerDuty (Events API v2) and Opsgenie (Alert API) sinks against local receivers that check
the documented request shapes and keep incidents by dedup key / alias as the services do: one
event is one incident through a retried delivery and a restart; trigger, update, resolve."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from collector.config import MatchConfig, NotifyConfig
from collector.store import Store
from collector.store.events import insert_events
from collector.verdicts import Cause, Event
from collector.verdicts.notify import Notifier

WAIT_S = 20.0
PD_KEY = "R0UTINGKEY0123456789abcdefghijkl"
OG_KEY = "eb243592-faa2-4ba2-a551-1afdf565c889"

PD_TOP = {"routing_key", "event_action", "dedup_key", "payload", "images", "links", "client", "client_url"}
PD_PAYLOAD = {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}
OG_CREATE = {
    "message", "alias", "description", "responders", "visibleTo", "actions", "tags", "details",
    "entity", "source", "priority", "user", "note",
}  # fmt: skip


def _event(version: int, status: str, scope: str, closed: bool = False) -> Event:
    at = 1_900_000_000.0
    return Event(
        "ev-pd-1",
        version,
        "check",
        "shop",
        status,
        scope,
        ("fr", "it") if scope == "regional" else ("de", "fr", "it"),
        Cause("http_status", "shop.example", "HTTP 503"),
        at,
        at + 10 * version,
        at + 30 if closed else None,
    )


class Services:
    """What PagerDuty and Opsgenie would hold: incidents by dedup key, alerts by alias."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.incidents: dict[str, dict[str, Any]] = {}
        self.alerts: dict[str, dict[str, Any]] = {}
        self.fail_next = 1  # the first PagerDuty call fails: the retry must not make a second incident

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.problems.append(what)

    async def pagerduty(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(("pagerduty", request.method, body))
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=503)
        self.check(request.content_type == "application/json", "content type")
        self.check(set(body) <= PD_TOP, f"unknown keys {set(body) - PD_TOP}")
        self.check(body.get("routing_key") == PD_KEY, "routing_key")
        self.check(0 < len(body.get("dedup_key", "")) <= 255, "dedup_key")
        action = body.get("event_action")
        if action == "trigger":
            payload = body.get("payload", {})
            self.check(set(payload) <= PD_PAYLOAD, f"unknown payload keys {set(payload) - PD_PAYLOAD}")
            self.check(0 < len(payload.get("summary", "")) <= 1024, "summary")
            self.check(bool(payload.get("source")), "source")
            self.check(payload.get("severity") in ("critical", "error", "warning", "info"), "severity")
            datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))
            incident = self.incidents.setdefault(body["dedup_key"], {"triggers": 0, "resolved": False})
            incident["triggers"] += 1
            incident["severity"] = payload["severity"]
        elif action == "resolve":
            self.incidents[body["dedup_key"]]["resolved"] = True
        else:
            self.check(False, f"event_action {action!r}")
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": body["dedup_key"]}, status=202
        )

    async def opsgenie(self, request: web.Request) -> web.Response:
        body = await request.json()
        path = request.path
        self.calls.append(("opsgenie", f"{request.method} {path}", body))
        self.check(request.headers.get("Authorization") == f"GenieKey {OG_KEY}", "GenieKey")
        if path == "/v2/alerts":
            self.check(set(body) <= OG_CREATE, f"unknown keys {set(body) - OG_CREATE}")
            self.check(0 < len(body.get("message", "")) <= 130, "message")
            self.check(len(body.get("alias", "")) <= 512, "alias")
            self.check(len(body.get("tags", [])) <= 20 and all(len(t) <= 50 for t in body["tags"]), "tags")
            self.check(all(isinstance(v, str) for v in body.get("details", {}).values()), "details")
            self.check(body.get("priority") in ("P1", "P2", "P3", "P4", "P5"), "priority")
            self.alerts.setdefault(body["alias"], {"count": 0, "notes": 0, "closed": False})["count"] += 1
            self.alerts[body["alias"]]["priority"] = body["priority"]
        else:
            match = re.fullmatch(r"/v2/alerts/([^/]+)/(notes|priority|close)", path)
            self.check(match is not None and request.query.get("identifierType") == "alias", path)
            assert match is not None
            alert = self.alerts[match.group(1)]
            action = match.group(2)
            if action == "notes":
                self.check(0 < len(body.get("note", "")) <= 25000, "note")
                alert["notes"] += 1
            elif action == "priority":
                self.check(request.method == "PUT" and body.get("priority") in ("P1", "P2", "P3"), "priority")
                alert["priority"] = body["priority"]
            else:
                alert["closed"] = True
        return web.json_response(
            {"result": "Request will be processed", "took": 0.1, "requestId": "r"}, status=202
        )


async def _run(store: Store, services: Services, key_file: Path) -> list[int]:
    app = web.Application()
    app.router.add_post("/v2/enqueue", services.pagerduty)
    app.router.add_route("*", "/{tail:.*}", services.opsgenie)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    sinks = [
        NotifyConfig(type="pagerduty", url=f"{base}/v2/enqueue", key_env="TEST_PD_KEY"),
        NotifyConfig(
            type="opsgenie", url=base, key_file=str(key_file), match=MatchConfig(min_severity="critical")
        ),
    ]
    versions = [
        _event(1, "partial", "regional"),
        _event(2, "outage", "global"),
        _event(3, "outage", "regional"),
        _event(4, "outage", "regional", closed=True),
    ]
    calls = []
    try:
        await store.run(store.migrate)
        await store.run(insert_events, store, versions)
        for _ in range(2):  # the second notifier is a restart: nothing left to send
            notifier = Notifier(store, sinks, first_delay=0.01)
            task = asyncio.create_task(notifier.run())
            notifier.submit(versions)
            await asyncio.wait_for(notifier.wait_idle(), WAIT_S)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            calls.append(len(services.calls))
        return calls
    finally:
        await runner.cleanup()


def test_one_incident_per_event_trigger_update_resolve(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_PD_KEY", PD_KEY)
    key_file = tmp_path / "opsgenie.key"
    key_file.write_text(OG_KEY + "\n")
    services = Services()
    calls = asyncio.run(_run(store, services, key_file))
    assert services.problems == []
    # PagerDuty: one failed try, 3 triggers, 1 resolve; Opsgenie: v1 (partial) filtered out, the
    # escalation creates, the narrowing adds a note and a priority, the close closes.
    assert calls == [1 + 4 + 4, 9]
    assert services.incidents == {"ev-pd-1": {"triggers": 3, "resolved": True, "severity": "critical"}}
    assert services.alerts == {"ev-pd-1": {"count": 1, "notes": 1, "closed": True, "priority": "P1"}}
    ops = [what for sink, what, _ in services.calls if sink == "opsgenie"]
    assert ops == [
        "POST /v2/alerts",
        "POST /v2/alerts/ev-pd-1/notes",
        "PUT /v2/alerts/ev-pd-1/priority",
        "POST /v2/alerts/ev-pd-1/close",
    ]
    first_pd = next(body for sink, _, body in services.calls if sink == "pagerduty")
    assert first_pd["payload"]["severity"] == "error"  # v1 was partial
