"""What each sink type makes of an event version (pure): Alertmanager ends the label set a real
change replaced and keeps `endsAt` ahead while open; PagerDuty resolves by dedup key only;
Opsgenie creates the first time it sees an event, whatever its version."""

from __future__ import annotations

import pytest

from collector.config import NotifyConfig, Seconds
from collector.verdicts import Cause, Event
from collector.verdicts.events import iso
from collector.verdicts.sinks import make_sink
from collector.verdicts.sinks.alertmanager import AlertmanagerSink
from collector.verdicts.sinks.opsgenie import OpsgenieSink
from collector.verdicts.sinks.pagerduty import PagerDutySink

AT = 1_900_000_000.0


def _event(version: int, scope: str, closed: bool = False, kind: str = "check", check: str = "shop") -> Event:
    return Event(
        "ev1", version, kind, check, "outage", scope, ("fr", "it"), Cause("tcp_refused", "x.test", "refused"),
        AT, AT + 10 * version, AT + 100 if closed else None, "it-1" if kind == "vantage" else "",
    )  # fmt: skip


def test_alertmanager_ends_the_replaced_label_set_and_stays_ahead() -> None:
    sink = AlertmanagerSink(NotifyConfig(type="alertmanager", url="http://am:9093/", resend=Seconds(30)))
    (first,) = sink.requests(_event(1, "regional"), True, AT + 10)
    assert first.url == "http://am:9093/api/v2/alerts"
    (alert,) = first.body
    assert alert["startsAt"] == iso(AT) and alert["endsAt"] == iso(AT + 10 + 120)
    (second,) = sink.requests(_event(2, "global"), False, AT + 20)
    ended, current = second.body
    assert (ended["labels"]["scope"], ended["endsAt"]) == ("regional", iso(AT + 20))
    assert (current["labels"]["scope"], current["endsAt"]) == ("global", iso(AT + 20 + 120))
    (beat,) = sink.resend(_event(2, "global"), AT + 50)
    assert [a["endsAt"] for a in beat.body] == [iso(AT + 50 + 120)]
    (close,) = sink.requests(_event(3, "global", closed=True), False, AT + 100)
    assert [(a["labels"]["scope"], a["endsAt"]) for a in close.body] == [("global", iso(AT + 100))]
    vantage = sink.requests(_event(1, "agent", kind="vantage", check=""), True, AT)[0].body[0]["labels"]
    assert (vantage["alertname"], vantage["agent"], "check" in vantage) == (
        "ProbenetImpairedVantage",
        "it-1",
        False,
    )


def test_pagerduty_resolve_is_the_dedup_key_only() -> None:
    sink = PagerDutySink(NotifyConfig(type="pagerduty", url="http://pd/v2/enqueue"), "KEY")
    (resolve,) = sink.requests(_event(3, "global", closed=True), False, AT)
    assert resolve.body == {"routing_key": "KEY", "dedup_key": "ev1", "event_action": "resolve"}


def test_opsgenie_creates_on_first_sight_and_authorizes() -> None:
    sink = OpsgenieSink(NotifyConfig(type="opsgenie", url="https://api.eu.opsgenie.com"), "K")
    (create,) = sink.requests(_event(4, "global"), True, AT)  # an event first seen at version 4
    assert create.url == "https://api.eu.opsgenie.com/v2/alerts"
    assert create.headers == {"Authorization": "GenieKey K"}
    assert (create.body["alias"], create.body["priority"]) == ("ev1", "P1")


def test_make_sink_reads_the_secret_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OG_KEY", " secret\n")
    sink = make_sink(NotifyConfig(type="opsgenie", url="https://api.opsgenie.com", key_env="TEST_OG_KEY"))
    assert sink.secret == "secret"
