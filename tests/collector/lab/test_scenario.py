"""Scenario files: every built-in one parses; every bad one names file, key and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.errors import ConfigError
from collector.lab.scenario import (
    DEFAULT_SCENARIO,
    builtin_names,
    builtin_path,
    load_scenario,
    resolve_scenario_path,
    scenario_from_mapping,
)

BASE: dict[str, Any] = {
    "name": "t",
    "interval": "2s",
    "duration": "30s",
    "regions": {"it": 2, "fr": 1},
    "targets": {
        "shop": {"kind": "page", "assets": 3, "asset_host": "static"},
        "static": {"kind": "https"},
        "plain": {"kind": "http"},
    },
    "checks": [
        {"id": "shop-page", "probe": "page", "target": "shop"},
        {"id": "static-tls", "probe": "tls", "target": "static"},
    ],
}


def with_(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def test_every_builtin_scenario_parses_and_has_expectations() -> None:
    names = builtin_names()
    assert DEFAULT_SCENARIO in names
    assert len(names) >= 7
    for name in names:
        scenario = load_scenario(builtin_path(name))
        assert scenario.name == name
        assert scenario.expect, name


def test_default_is_the_23_april_replay() -> None:
    scenario = load_scenario(resolve_scenario_path(None))
    fault = scenario.faults[0]
    assert (fault.kind, fault.target, fault.at, fault.until) == ("cert_expired", "static", 10.0, 40.0)
    assert fault.agents == ("it-1", "it-2", "fr-1", "fr-2")
    assert scenario.targets["shop"].assets == 30


def test_agents_are_named_region_dash_number() -> None:
    scenario = scenario_from_mapping(BASE, "s.yaml")
    assert scenario.agents == [("it-1", "it"), ("it-2", "it"), ("fr-1", "fr")]


def test_speed_divides_every_time() -> None:
    raw = with_(
        faults=[
            {"at": "10s", "until": "20s", "target": "static", "fault": "flap:4s"},
            {"at": "4s", "target": "shop", "fault": "slow:800"},
        ]
    )
    scenario = scenario_from_mapping(raw, "s.yaml").scaled(4)
    assert (scenario.interval, scenario.duration, scenario.speed) == (0.5, 7.5, 4)
    flap, slow = scenario.faults
    assert (flap.at, flap.until, flap.param) == (2.5, 5.0, 1.0)
    assert (slow.at, slow.until, slow.param) == (1.0, 7.5, 200.0)


def test_fault_targets_regions_and_agents() -> None:
    raw = with_(faults=[{"at": 1, "agents": ["fr-1"], "regions": ["it"], "fault": "blackhole"}])
    fault = scenario_from_mapping(raw, "s.yaml").faults[0]
    assert fault.agents == ("it-1", "it-2", "fr-1")
    assert fault.target == ""
    assert fault.until == 30.0


@pytest.mark.parametrize(
    ("raw", "key", "reason"),
    [
        ([1, 2], "-", "top level must be a mapping"),
        ({k: v for k, v in BASE.items() if k != "name"}, "name", "is required"),
        (with_(colour="red"), "colour", "unknown key"),
        (with_(interval="soon"), "interval", "expected a duration"),
        (with_(duration="4s"), "duration", "at least 3 intervals"),
        (with_(regions={"it": 0}), "regions.it", "integer 1-20"),
        (with_(regions={"IT": 1}), "regions.IT", "lower-case"),
        (with_(targets={"shop": {"kind": "ftp"}}), "targets.shop.kind", "expected one of http, https, page"),
        (
            with_(targets={"shop": {"kind": "page", "asset_host": "cdn"}}),
            "targets.shop.asset_host",
            "unknown target 'cdn'",
        ),
        (with_(targets={"x": {"kind": "https", "assets": 3}}), "targets.x.assets", "only a page target"),
        (
            with_(checks=[{"id": "a", "probe": "ping", "target": "shop"}]),
            "checks[0].probe",
            "expected one of",
        ),
        (
            with_(checks=[{"id": "a", "probe": "http", "target": "nope"}]),
            "checks[0].target",
            "unknown target 'nope'",
        ),
        (with_(checks=[{"id": "a", "probe": "tls", "target": "plain"}]), "checks[0].probe", "plain http"),
        (
            with_(checks=[{"id": "a", "probe": "http", "target": "shop", "timeout": "3s"}]),
            "checks[0].timeout",
            "must not exceed the interval (2s)",
        ),
        (
            with_(
                checks=[
                    {"id": "a", "probe": "http", "target": "shop"},
                    {"id": "a", "probe": "http", "target": "shop"},
                ]
            ),
            "checks[1].id",
            "duplicate check id",
        ),
        (
            with_(checks=[{"id": "a", "probe": "http", "target": "shop", "interval": "1s"}]),
            "checks[0].interval",
            "set by the lab",
        ),
        (
            with_(faults=[{"at": "5s", "target": "static", "fault": "cert_melted"}]),
            "faults[0].fault",
            "unknown fault 'cert_melted'",
        ),
        (
            with_(faults=[{"at": "5s", "target": "static", "fault": "http_status:999"}]),
            "faults[0].fault",
            "code 100-599",
        ),
        (
            with_(faults=[{"at": "5s", "target": "static", "fault": "slow:fast"}]),
            "faults[0].fault",
            "slow:<ms>",
        ),
        (
            with_(faults=[{"at": "5s", "target": "static", "fault": "flap"}]),
            "faults[0].fault",
            "flap needs a parameter: flap:<period>",
        ),
        (
            with_(faults=[{"at": "5s", "until": "3s", "target": "static", "fault": "refuse"}]),
            "faults[0].until",
            "must be after at",
        ),
        (
            with_(faults=[{"at": "5s", "until": "40s", "target": "static", "fault": "refuse"}]),
            "faults[0].until",
            "end of the run",
        ),
        (
            with_(faults=[{"at": "31s", "target": "static", "fault": "refuse"}]),
            "faults[0].at",
            "before the end of the run",
        ),
        (
            with_(faults=[{"at": "1s", "target": "cdn", "fault": "refuse"}]),
            "faults[0].target",
            "unknown target 'cdn'",
        ),
        (with_(faults=[{"at": "1s", "fault": "cert_expired"}]), "faults[0].target", "is required"),
        (
            with_(faults=[{"at": "1s", "target": "plain", "fault": "cert_expired"}]),
            "faults[0].fault",
            "no certificate",
        ),
        (
            with_(faults=[{"at": "1s", "target": "shop", "fault": "agent_offline"}]),
            "faults[0].target",
            "concerns agents",
        ),
        (
            with_(faults=[{"at": "1s", "regions": ["mars"], "fault": "region_offline"}]),
            "faults[0].regions[0]",
            "unknown region 'mars'",
        ),
        (
            with_(faults=[{"at": "1s", "agents": ["it-3"], "fault": "agent_offline"}]),
            "faults[0].agents[0]",
            "unknown agent 'it-3'",
        ),
        (with_(expect=[{"check": "nope", "status": "ok"}]), "expect[0].check", "unknown check 'nope'"),
        (with_(expect=[{"check": "shop-page", "status": "broken"}]), "expect[0].status", "expected one of"),
        (
            with_(expect=[{"check": "shop-page", "status": "partial", "cause": "gremlins"}]),
            "expect[0].cause",
            "unknown failure class 'gremlins'",
        ),
        (
            with_(expect=[{"check": "shop-page", "status": "partial", "regions": ["mars"]}]),
            "expect[0].regions[0]",
            "unknown region",
        ),
        (
            with_(expect=[{"check": "shop-page", "status": "partial", "host": "cdn"}]),
            "expect[0].host",
            "unknown target 'cdn'",
        ),
        (
            with_(expect=[{"check": "shop-page", "status": "ok", "scope": "global"}]),
            "expect[0]",
            "status: ok takes no",
        ),
        (
            with_(expect=[{"check": "shop-page", "status": "ok", "versions": 2}]),
            "expect[0]",
            "status: ok takes no",
        ),
        (
            with_(expect=[{"check": "shop-page", "status": "partial", "versions": "two"}]),
            "expect[0].versions",
            "expected a number of versions",
        ),
        (
            with_(expect=[{"check": "shop-page", "status": "partial", "first": "yes"}]),
            "expect[0].first",
            "expected true or false",
        ),
        (
            with_(faults=[{"at": "1s", "regions": ["fr"], "fault": "path_break", "hop": 4}]),
            "faults[0].hop",
            "expected the router that breaks, an integer 1-3, got 4",
        ),
        (
            with_(faults=[{"at": "1s", "regions": ["fr"], "fault": "path_break", "hop": True}]),
            "faults[0].hop",
            "an integer 1-3",
        ),
        (
            with_(faults=[{"at": "1s", "target": "static", "fault": "refuse", "hop": 2}]),
            "faults[0].hop",
            "only a path_break fault has a hop",
        ),
        (
            with_(faults=[{"at": "1s", "regions": ["fr"], "fault": "path_break:2"}]),
            "faults[0].fault",
            "unknown fault 'path_break:2'",
        ),
        (
            with_(expect=[{"check": "shop-page", "status": "partial", "broken_at": 0}]),
            "expect[0].broken_at",
            "the hop where the path breaks, 1-3",
        ),
        (
            with_(expect=[{"check": "shop-page", "status": "ok", "broken_at": 2}]),
            "expect[0]",
            "status: ok takes no",
        ),
        (
            with_(expect=[{"kind": "vantage", "status": "impaired", "broken_at": 2}]),
            "expect[0].broken_at",
            "only check events have path traces",
        ),
        (with_(phase_spread=1.0), "phase_spread", "expected a number in [0, 1) or 'random'"),
        (with_(strict="always"), "strict", "expected true or false"),
    ],
)
def test_bad_scenarios_name_file_key_and_reason(raw: Any, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        scenario_from_mapping(raw, "bad.yaml")
    assert info.value.file == "bad.yaml"
    assert info.value.key == key
    assert reason in info.value.reason


def test_path_break_names_a_hop_and_its_agents_run_behind_routers() -> None:
    scenario = scenario_from_mapping(
        with_(
            faults=[
                {"at": "4s", "regions": ["fr"], "target": "static", "fault": "path_break", "hop": 3},
                {"at": "6s", "agents": ["it-2"], "fault": "path_break"},  # every target, hop 2
                {"at": "8s", "regions": ["it"], "target": "static", "fault": "refuse"},
            ],
            expect=[{"check": "static-tls", "status": "outage", "broken_at": 3}],
        ),
        "pb.yaml",
    )
    first, second, _ = scenario.faults
    assert (first.kind, first.hop, first.target, first.agents) == ("path_break", 3, "static", ("fr-1",))
    assert (second.hop, second.target, second.agents, second.label) == (2, "", ("it-2",), "path_break@hop2")
    assert scenario.path_agents == ("it-2", "fr-1")  # file order, not fault order
    assert scenario.expect[0].broken_at == 3
    assert "path broken at hop 3" in scenario.expect[0].describe()
    assert scenario_from_mapping(BASE, "calm.yaml").path_agents == ()


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_scenario(bad)


def test_builtin_names_resolve_and_unknown_names_fail(tmp_path: Path) -> None:
    assert resolve_scenario_path("global-outage") == builtin_path("global-outage")
    with pytest.raises(ConfigError, match="built-in"):
        resolve_scenario_path("no-such-scenario")
    own = tmp_path / "mine.yaml"
    own.write_text(yaml.safe_dump(BASE))
    assert load_scenario(resolve_scenario_path(str(own))).name == "t"


def test_phase_spread_places_agents_at_fixed_shares_of_the_interval() -> None:
    spread = scenario_from_mapping(with_(phase_spread=0.6), "s.yaml")
    assert [spread.phase(a) for a, _ in spread.agents] == pytest.approx([0.0, 0.3, 0.6])
    # The default is production-like (spread over the interval); `random` is the scheduler's own.
    assert scenario_from_mapping(BASE, "s.yaml").phase("fr-1") == pytest.approx(0.9)
    assert scenario_from_mapping(with_(phase_spread="random"), "s.yaml").phase("it-1") is None
    # Speed divides times, not shares of the interval.
    assert spread.scaled(4).phase("it-2") == pytest.approx(0.3)


def test_every_builtin_scenario_is_strict_and_asks_for_first_versions() -> None:
    for name in builtin_names():
        scenario = load_scenario(builtin_path(name))
        assert scenario.strict, name
        failing = [e for e in scenario.expect if e.status != "ok"]
        assert failing and all(e.versions for e in failing), name
        assert any(e.first for e in failing), name
