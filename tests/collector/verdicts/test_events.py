"""EventTracker details: resuming after a restart, removed checks, evaluation periods, JSON shape."""

from __future__ import annotations

from collector.verdicts import Cause, CheckOptions, Evaluation, Event, EventTracker, Verdict
from collector.verdicts.engine import agent_state
from collector.verdicts.model import FAIL, OK, PARTIAL, STALE

OPTS = {"web": CheckOptions("web", interval=10.0), "api": CheckOptions("api", interval=30.0)}
CAUSE = Cause("tcp_refused", "web.example", "connection refused")


def _evaluation(now: float, **statuses: str) -> Evaluation:
    verdicts = {}
    for check, status in statuses.items():
        bad = status not in ("ok", "unknown")
        verdicts[check] = Verdict(
            check, status, "regional" if bad else "", ("it",) if bad else (), CAUSE if bad else None
        )
    return Evaluation(now, verdicts)


def test_resumed_tracker_continues_the_same_event_without_a_new_version() -> None:
    first = EventTracker(OPTS)
    opened = first.update(_evaluation(10, web="outage"))
    assert [e.version for e in opened] == [1]
    resumed = EventTracker(OPTS, open_events=[Event.from_dict(opened[0].to_dict())])
    assert resumed.update(_evaluation(20, web="outage")) == []
    assert resumed.update(_evaluation(30, web="ok")) == []
    closed = resumed.update(_evaluation(40, web="ok"))
    assert [(e.id, e.version, e.closed_at) for e in closed] == [(opened[0].id, 2, 40.0)]


def test_unknown_neither_opens_nor_closes() -> None:
    tracker = EventTracker(OPTS)
    assert tracker.update(_evaluation(10, web="unknown")) == []
    tracker.update(_evaluation(20, web="outage"))
    for now in (30, 40, 50):
        assert tracker.update(_evaluation(now, web="unknown")) == []
    assert len(tracker.current()) == 1


def test_a_removed_check_closes_its_event() -> None:
    tracker = EventTracker(OPTS)
    tracker.update(_evaluation(10, api="outage"))
    after = EventTracker({"web": OPTS["web"]}, open_events=tracker.current())
    closed = after.update(_evaluation(20, web="ok"))
    assert [(e.check, e.closed_at) for e in closed] == [("api", 20.0)]


def test_checks_are_judged_once_per_interval_even_on_faster_ticks() -> None:
    tracker = EventTracker(OPTS)
    assert len(tracker.update(_evaluation(0, api="outage"))) == 1
    # Ticks every 10 s; api's interval is 30 s, so only the ticks at 30 and 60 count for it.
    changes = [tracker.update(_evaluation(now, api="ok")) for now in (10, 20, 30, 40, 50, 60)]
    assert [len(c) for c in changes] == [0, 0, 0, 0, 0, 1]


def test_event_json_round_trips() -> None:
    event = EventTracker(OPTS).update(_evaluation(1_800_000_000.5, web="partial"))[0]
    data = event.to_dict()
    assert data["opened_at"] == "2027-01-15T08:00:00.500Z"
    assert data["cause"] == {"class": "tcp_refused", "host": "web.example", "error": "connection refused"}
    assert Event.from_dict(data) == event


def test_agent_state_rules() -> None:
    assert agent_state(["failed", "failed"], 2) == FAIL
    assert agent_state(["failed", "success"], 2) == OK  # not yet confirmed
    assert agent_state(["failed", "partial"], 2) == PARTIAL
    assert agent_state(["partial", "failed"], 2) == PARTIAL
    assert agent_state(["success", "failed"], 2) == OK
    assert agent_state(["failed"], 2) == STALE  # nothing confirmed yet
    assert agent_state([], 2) == STALE
    assert agent_state(["failed", "failed", "failed"], 3) == FAIL
