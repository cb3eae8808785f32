"""The fault timeline is a pure function of the scenario and the clock."""

from __future__ import annotations

from typing import Any

from collector.lab.faults import Effect, Timeline
from collector.lab.scenario import scenario_from_mapping


def timeline(*faults: dict[str, Any]) -> Timeline:
    raw = {
        "name": "t",
        "interval": "1s",
        "duration": "60s",
        "regions": {"it": 2, "fr": 1},
        "targets": {"shop": {"kind": "https"}, "static": {"kind": "https"}},
        "checks": [{"id": "c", "probe": "http", "target": "shop"}],
        "faults": list(faults),
    }
    return Timeline(scenario_from_mapping(raw, "t.yaml"))


def test_a_fault_bites_only_its_agents_target_and_window() -> None:
    tl = timeline({"at": 10, "until": 20, "target": "static", "regions": ["it"], "fault": "cert_expired"})
    assert tl.effects(9.99) == {}
    assert tl.effects(10) == {
        ("it-1", "static"): Effect("cert_expired", 0, 0),
        ("it-2", "static"): Effect("cert_expired", 0, 0),
    }
    assert tl.effects(20) == {}


def test_no_target_means_every_target_and_no_regions_every_agent() -> None:
    tl = timeline({"at": 0, "fault": "reset"})
    assert set(tl.effects(1)) == {(a, t) for a in ("it-1", "it-2", "fr-1") for t in ("shop", "static")}


def test_region_offline_cuts_everything_for_that_region() -> None:
    tl = timeline({"at": 5, "until": 15, "regions": ["fr"], "fault": "region_offline"})
    assert tl.effects(6) == {
        ("fr-1", "shop"): Effect("offline", 0, 0),
        ("fr-1", "static"): Effect("offline", 0, 0),
    }


def test_later_faults_win_on_the_same_pair() -> None:
    tl = timeline(
        {"at": 0, "target": "shop", "fault": "http_status:503"},
        {"at": 10, "until": 20, "target": "shop", "agents": ["it-1"], "fault": "slow:500"},
    )
    assert tl.effects(12)[("it-1", "shop")] == Effect("slow", 500, 1)
    assert tl.effects(12)[("it-2", "shop")] == Effect("http_status", 503, 0)
    assert tl.effects(25)[("it-1", "shop")] == Effect("http_status", 503, 0)


def test_path_break_is_a_route_not_a_server_effect() -> None:
    tl = timeline(
        {"at": 0, "target": "shop", "fault": "http_status:503"},
        {"at": 10, "until": 20, "regions": ["it"], "target": "shop", "fault": "path_break", "hop": 1},
        {"at": 15, "until": 20, "agents": ["it-1"], "fault": "path_break", "hop": 3},
    )
    assert tl.path_breaks(9) == {}
    assert tl.path_breaks(10) == {("it-1", "shop"): 1, ("it-2", "shop"): 1}
    # The later fault wins on a pair; one without a target breaks every target's path.
    assert tl.path_breaks(15) == {("it-1", "shop"): 3, ("it-1", "static"): 3, ("it-2", "shop"): 1}
    assert tl.path_breaks(20) == {}
    # The server keeps its own fault for when the path heals.
    assert tl.effects(15)[("it-1", "shop")] == Effect("http_status", 503, 0)
    assert tl.next_change(10) == 15


def test_flap_alternates_by_period() -> None:
    tl = timeline({"at": 10, "until": 30, "target": "shop", "fault": "flap:4s"})
    biting = [t for t in range(0, 35) if tl.effects(t)]
    assert biting == [10, 11, 12, 13, 18, 19, 20, 21, 26, 27, 28, 29]
    assert tl.effects(10)[("fr-1", "shop")].kind == "reset"
    assert tl.next_change(11) == 14
    assert tl.next_change(14.5) == 18


def test_agent_offline_stops_processes_not_targets() -> None:
    tl = timeline({"at": 5, "until": 8, "agents": ["it-2"], "fault": "agent_offline"})
    assert tl.effects(6) == {}
    assert tl.offline_agents(6) == {"it-2"}
    assert tl.offline_agents(8) == set()


def test_fault_start_before_picks_the_latest_relevant_fault() -> None:
    tl = timeline(
        {"at": 5, "target": "static", "fault": "refuse"}, {"at": 9, "target": "shop", "fault": "refuse"}
    )
    assert tl.fault_start_before(10, {"static"}) == (tl.scenario.faults[0], 5)
    assert tl.fault_start_before(10, {"shop", "static"}) == (tl.scenario.faults[1], 9)
    assert tl.fault_start_before(4, {"static"}) is None


def test_a_flap_starts_again_at_each_cycle() -> None:
    tl = timeline({"at": 10, "until": 30, "target": "shop", "fault": "flap:4s"})
    assert tl.fault_start_before(12, {"shop"}) == (tl.scenario.faults[0], 10)
    assert tl.fault_start_before(21, {"shop"}) == (tl.scenario.faults[0], 18)
