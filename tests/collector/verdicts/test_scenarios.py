"""Table-driven verdict scenarios (DESIGN section 4) through the engine and the event tracker.

Each scenario is a synthetic network (regions of agents probing checks every 10 s), faults, and
the exact event versions expected: (kind, subject, version, status, scope, regions, cause
class, closed). Faults start at 60 s: with confirm 2 the second failing round (71 s) makes the
agents FAIL, so events open at the 80 s tick.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.cli import main
from collector.verdicts import CheckOptions, Evaluation, Event, EventTracker, replay
from tests.collector.verdicts.sim import START, Fault, Network, check_yaml, summary, to_proto_json

FOUR = {"it": 3, "fr": 3, "de": 3, "us": 3}
ALL = ("de", "fr", "it", "us")


@dataclass
class Scenario:
    name: str
    network: Network
    expected: list[tuple[Any, ...]]
    options: dict[str, Any] = field(default_factory=dict)
    probe: str = "http"
    check_regions: tuple[str, ...] = ()


def _opts(s: Scenario) -> list[CheckOptions]:
    return [
        CheckOptions(
            c,
            probe=s.probe,
            target=f"{c}.example:443",
            interval=s.network.interval,
            regions=s.check_regions,
            **s.options,
        )
        for c in s.network.checks
    ]


def outage(
    scope: str, regions: tuple[str, ...], cls: str = "tcp_refused", check: str = "web", status: str = "outage"
) -> list[tuple[Any, ...]]:
    return [
        ("check", check, 1, status, scope, regions, cls, False),
        ("check", check, 2, status, scope, regions, cls, True),
    ]


FIVE_CHECKS = ("web", "api", "cdn", "img", "auth")

SCENARIOS = [
    Scenario(
        "one agent failing in a region of three: no outage",
        Network(FOUR, faults=[Fault(60, 150, agents=("it-1",))]),
        [],
    ),
    Scenario(
        "one agent failing every check: an impaired agent, no check outage",
        Network(FOUR, checks=FIVE_CHECKS, faults=[Fault(60, 150, agents=("it-1",), cls="tcp_timeout")]),
        [
            ("vantage", "it-1", 1, "impaired", "agent", ("it",), "tcp_timeout", False),
            ("vantage", "it-1", 2, "impaired", "agent", ("it",), "tcp_timeout", True),
        ],
    ),
    Scenario(
        "a minority failing in two regions: no outage",
        Network(FOUR, faults=[Fault(60, 150, agents=("it-1", "fr-2"))]),
        [],
    ),
    Scenario(
        "one region down: regional outage",
        Network(FOUR, faults=[Fault(60, 150, regions=("it",))]),
        outage("regional", ("it",)),
    ),
    Scenario(
        "two of four regions down: regional outage in both",
        Network(FOUR, faults=[Fault(60, 150, regions=("it", "fr"))]),
        outage("regional", ("fr", "it")),
    ),
    Scenario(
        "all regions down: global outage", Network(FOUR, faults=[Fault(60, 150)]), outage("global", ALL)
    ),
    Scenario(
        "escalation regional -> global -> regional, then recovery",
        Network(FOUR, duration=400, faults=[Fault(60, 250, regions=("it",)), Fault(120, 180)]),
        [
            ("check", "web", 1, "outage", "regional", ("it",), "tcp_refused", False),
            ("check", "web", 2, "outage", "global", ALL, "tcp_refused", False),
            ("check", "web", 3, "outage", "regional", ("it",), "tcp_refused", False),
            ("check", "web", 4, "outage", "regional", ("it",), "tcp_refused", True),
        ],
    ),
    Scenario(
        "flapping every other round with confirm 2: never confirmed, no event",
        Network(FOUR, faults=[Fault(60, 250, every=2)]),
        [],
    ),
    Scenario(
        "flapping with confirm 1: one event, open through the flapping, closed once",
        Network(FOUR, duration=400, faults=[Fault(60, 250, every=2)]),
        outage("global", ALL),
        options={"confirm": 1},
    ),
    Scenario(
        "partial page in two regions: partial regional, cause from the sub-resources",
        Network(
            FOUR,
            faults=[
                Fault(
                    60,
                    150,
                    regions=("it", "fr"),
                    outcome="partial",
                    cls="subresource_failed",
                    host="shop.example",
                    page_hosts=(("static.example", "tls_cert_expired"),),
                )
            ],
        ),
        outage("regional", ("fr", "it"), "tls_cert_expired", status="partial"),
        probe="page",
    ),
    Scenario(
        "partial page everywhere: partial global",
        Network(
            FOUR,
            faults=[
                Fault(
                    60,
                    150,
                    outcome="partial",
                    cls="subresource_failed",
                    page_hosts=(("static.example", "http_status"),),
                )
            ],
        ),
        outage("global", ALL, "http_status", status="partial"),
        probe="page",
    ),
    Scenario(
        "impaired region: a network incident, not five check outages",
        Network(FOUR, checks=FIVE_CHECKS, faults=[Fault(60, 150, regions=("de",), cls="tcp_timeout")]),
        [
            ("vantage", "de", 1, "impaired", "region", ("de",), "tcp_timeout", False),
            ("vantage", "de", 2, "impaired", "region", ("de",), "tcp_timeout", True),
        ],
    ),
    Scenario(
        "a configured region with no data does not count",
        Network({"it": 3, "fr": 3}, faults=[Fault(60, 150, regions=("it",))]),
        outage("regional", ("it",)),
        check_regions=("it", "fr", "jp"),
    ),
    Scenario(
        "a region with no data; the others all down: global over the regions with data",
        Network({"it": 3, "fr": 3}, faults=[Fault(60, 150)]),
        outage("global", ("fr", "it")),
        check_regions=("it", "fr", "jp"),
    ),
    Scenario(
        "only one region has data: undetermined",
        Network({"it": 3}, faults=[Fault(60, 150)]),
        outage("undetermined", ("it",)),
    ),
    Scenario(
        "mixed failure classes: the dominant one is the cause",
        Network(
            FOUR,
            faults=[
                Fault(60, 150, agents=("it-3",), cls="dns_error", host="ns.example"),
                Fault(60, 150, regions=("it", "fr"), cls="tcp_timeout"),
            ],
        ),
        outage("regional", ("fr", "it"), "tcp_timeout"),
    ),
    Scenario(
        "stale: a region going silent is no data, not an outage",
        Network(FOUR, silent=lambda t, agent: t >= 60 and agent.startswith("us")),
        [],
    ),
    Scenario(
        "stale: every agent silent mid-outage keeps the event open (unknown proves nothing)",
        Network(FOUR, faults=[Fault(60, 1e9, regions=("it",))], silent=lambda t, agent: t >= 150),
        [("check", "web", 1, "outage", "regional", ("it",), "tcp_refused", False)],
    ),
    Scenario("a single failed round is not confirmed: no event", Network(FOUR, faults=[Fault(60, 70)]), []),
    Scenario(
        "open_after 3 ignores a short outage",
        Network(FOUR, faults=[Fault(60, 90, regions=("it",))]),
        [],
        options={"open_after": 3},
    ),
    Scenario(
        "status change partial -> outage is a new version of the same event",
        Network(
            FOUR,
            faults=[
                Fault(
                    60,
                    120,
                    regions=("it",),
                    outcome="partial",
                    cls="subresource_failed",
                    page_hosts=(("cdn.example", "tcp_refused"),),
                ),
                Fault(120, 200, regions=("it",), cls="tcp_refused"),
            ],
        ),
        [
            ("check", "web", 1, "partial", "regional", ("it",), "tcp_refused", False),
            ("check", "web", 2, "outage", "regional", ("it",), "tcp_refused", False),
            ("check", "web", 3, "outage", "regional", ("it",), "tcp_refused", True),
        ],
        probe="page",
    ),
    Scenario(
        "cause change mid-outage is a new version",
        Network(
            FOUR,
            faults=[
                Fault(60, 120, regions=("it",), cls="tcp_refused"),
                Fault(120, 200, regions=("it",), cls="http_status"),
            ],
        ),
        [
            ("check", "web", 1, "outage", "regional", ("it",), "tcp_refused", False),
            ("check", "web", 2, "outage", "regional", ("it",), "http_status", False),
            ("check", "web", 3, "outage", "regional", ("it",), "http_status", True),
        ],
    ),
    Scenario(
        "region quorum 1.0: two of three failing is not down",
        Network(FOUR, faults=[Fault(60, 150, agents=("it-1", "it-2"))]),
        [],
        options={"region_quorum": 1.0},
    ),
    Scenario(
        "two of three failing with the default quorum: down",
        Network(FOUR, faults=[Fault(60, 150, agents=("it-1", "it-2"))]),
        outage("regional", ("it",)),
    ),
    Scenario(
        "an impaired agent during a real regional outage: both, each once",
        Network(
            FOUR,
            checks=FIVE_CHECKS,
            faults=[
                Fault(60, 150, agents=("it-1",), cls="tcp_timeout"),
                Fault(60, 150, regions=("fr",), checks=("web",)),
            ],
        ),
        [
            ("check", "web", 1, "outage", "regional", ("fr",), "tcp_refused", False),
            ("vantage", "it-1", 1, "impaired", "agent", ("it",), "tcp_timeout", False),
            ("check", "web", 2, "outage", "regional", ("fr",), "tcp_refused", True),
            ("vantage", "it-1", 2, "impaired", "agent", ("it",), "tcp_timeout", True),
        ],
    ),
    Scenario(
        "a lone agent's region failing everything: an impaired region",
        Network({"it": 2, "fr": 2, "jp": 1}, checks=FIVE_CHECKS, faults=[Fault(60, 150, regions=("jp",))]),
        [
            ("vantage", "jp", 1, "impaired", "region", ("jp",), "tcp_refused", False),
            ("vantage", "jp", 2, "impaired", "region", ("jp",), "tcp_refused", True),
        ],
    ),
    Scenario(
        "cert expiring on a TLS check: a global warning",
        Network(FOUR, duration=100, days_left=9.5),
        [("cert_expiring", "web", 1, "warning", "global", ALL, "tls_cert_expiring", False)],
        probe="tls",
    ),
    Scenario("cert with time left: no warning", Network(FOUR, duration=100, days_left=40.0), [], probe="tls"),
    Scenario(
        "cert already expired: the outage's business, no warning",
        Network(FOUR, duration=100, days_left=-2.0),
        [],
        probe="tls",
    ),
    # Vantage hysteresis: with a 2 s stagger the five checks are probed at +1, +3, ... +9 s of each
    # round, so a fault at 65 s confirms three checks at the 80 s tick and two at the 90 s tick.
    Scenario(
        "staggered onset of a regional network incident: only a vantage event",
        Network(
            FOUR, checks=FIVE_CHECKS, stagger=2.0, faults=[Fault(65, 1e9, regions=("de",), cls="tcp_timeout")]
        ),
        [("vantage", "de", 1, "impaired", "region", ("de",), "tcp_timeout", False)],
    ),
    Scenario(
        "staggered recovery of a regional network incident: no check events",
        Network(
            FOUR, checks=FIVE_CHECKS, stagger=2.0, faults=[Fault(60, 145, regions=("de",), cls="tcp_timeout")]
        ),
        [
            ("vantage", "de", 1, "impaired", "region", ("de",), "tcp_timeout", False),
            ("vantage", "de", 2, "impaired", "region", ("de",), "tcp_timeout", True),
        ],
    ),
    Scenario(
        "staggered onset and recovery of a regional network incident: only a vantage event",
        Network(
            FOUR, checks=FIVE_CHECKS, stagger=2.0, faults=[Fault(65, 145, regions=("de",), cls="tcp_timeout")]
        ),
        [
            ("vantage", "de", 1, "impaired", "region", ("de",), "tcp_timeout", False),
            ("vantage", "de", 2, "impaired", "region", ("de",), "tcp_timeout", True),
        ],
    ),
    Scenario(
        "staggered onset and recovery of an impaired agent in a region of two: only a vantage event",
        Network(
            {"it": 2, "fr": 2, "de": 2},
            checks=FIVE_CHECKS,
            stagger=2.0,
            faults=[Fault(65, 145, agents=("it-1",), cls="tcp_reset")],
        ),
        [
            ("vantage", "it-1", 1, "impaired", "agent", ("it",), "tcp_reset", False),
            ("vantage", "it-1", 2, "impaired", "agent", ("it",), "tcp_reset", True),
        ],
    ),
    Scenario(
        "a real single-check regional outage among staggered checks: opens as usual",
        Network(
            FOUR, checks=FIVE_CHECKS, stagger=2.0, faults=[Fault(60, 150, regions=("it",), checks=("api",))]
        ),
        outage("regional", ("it",), check="api"),
    ),
    Scenario(
        "a real outage of one check during a staggered region incident elsewhere: both, each once",
        Network(
            FOUR,
            checks=FIVE_CHECKS,
            stagger=2.0,
            faults=[
                Fault(65, 150, regions=("de",), cls="tcp_timeout"),
                Fault(60, 150, regions=("fr",), checks=("web",)),
            ],
        ),
        [
            ("check", "web", 1, "outage", "regional", ("fr",), "tcp_refused", False),
            ("vantage", "de", 1, "impaired", "region", ("de",), "tcp_timeout", False),
            ("check", "web", 2, "outage", "regional", ("fr",), "tcp_refused", True),
            ("vantage", "de", 2, "impaired", "region", ("de",), "tcp_timeout", True),
        ],
    ),
    Scenario(
        "three of five checks down in one region (not impaired): held one evaluation, then outages",
        Network(
            FOUR, checks=FIVE_CHECKS, faults=[Fault(60, 150, regions=("it",), checks=("web", "api", "cdn"))]
        ),
        [
            *(
                ("check", c, 1, "outage", "regional", ("it",), "tcp_refused", False)
                for c in ("api", "cdn", "web")
            ),
            *(
                ("check", c, 2, "outage", "regional", ("it",), "tcp_refused", True)
                for c in ("api", "cdn", "web")
            ),
        ],
    ),
]


THREE_CHECKS = ("web", "api", "cdn")
PAIRS = {"it": 2, "fr": 2, "de": 2, "us": 2}


def each(checks: tuple[str, ...], versions: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The same event history for several checks, as replay orders them (by tick, then key)."""
    return [(v[0], c, *v[2:]) for v in versions for c in sorted(checks)]


# Incidents seen in the lab (issue 14): every region failing at once, recoveries one region
# after another, a recovery during another incident, flapping.
SCENARIOS += [
    Scenario(
        "all regions at once, three targets refused: three global outages, no vantage event",
        Network(PAIRS, checks=THREE_CHECKS, faults=[Fault(60, 150)]),
        each(THREE_CHECKS, outage("global", ALL)),
    ),
    Scenario(
        "all regions at once, 502 everywhere: a global outage",
        Network(FOUR, faults=[Fault(60, 150, cls="http_status")]),
        outage("global", ALL, "http_status"),
    ),
    Scenario(
        "an asset host's certificate expired for all regions: the page partial global, the TLS check"
        " an outage, both global from their first version",
        Network(
            FOUR,
            checks=("shop", "static"),
            faults=[
                Fault(
                    60,
                    150,
                    checks=("shop",),
                    outcome="partial",
                    cls="subresource_failed",
                    host="shop.example",
                    page_hosts=(("static.example", "tls_cert_expired"),),
                ),
                Fault(60, 150, checks=("static",), cls="tls_cert_expired", host="static.example"),
            ],
        ),
        [
            ("check", "shop", 1, "partial", "global", ALL, "tls_cert_expired", False),
            ("check", "static", 1, "outage", "global", ALL, "tls_cert_expired", False),
            ("check", "shop", 2, "partial", "global", ALL, "tls_cert_expired", True),
            ("check", "static", 2, "outage", "global", ALL, "tls_cert_expired", True),
        ],
    ),
    Scenario(
        "a global outage recovering region by region within an interval: no version until it closes",
        Network(
            FOUR,
            faults=[
                Fault(60, 150, regions=("it",)),
                Fault(60, 153, regions=("fr",)),
                Fault(60, 156, regions=("de",)),
                Fault(60, 159, regions=("us",)),
            ],
        ),
        outage("global", ALL),
    ),
    Scenario(
        "a global outage whose last region recovers an interval and a half later: still no version",
        Network(FOUR, faults=[Fault(60, 150), Fault(60, 165, regions=("us",))]),
        outage("global", ALL),
    ),
    Scenario(
        "a global outage whose last region stays down: one settled narrowing, then the close",
        Network(FOUR, duration=400, faults=[Fault(60, 150), Fault(60, 250, regions=("us",))]),
        [
            ("check", "web", 1, "outage", "global", ALL, "tcp_refused", False),
            ("check", "web", 2, "outage", "regional", ("us",), "tcp_refused", False),
            ("check", "web", 3, "outage", "regional", ("us",), "tcp_refused", True),
        ],
    ),
    Scenario(
        "a recovery during another region's outage of the same check: widened, narrowed once settled",
        Network(
            FOUR, duration=400, faults=[Fault(60, 150, regions=("it",)), Fault(120, 250, regions=("fr",))]
        ),
        [
            ("check", "web", 1, "outage", "regional", ("it",), "tcp_refused", False),
            ("check", "web", 2, "outage", "regional", ("fr", "it"), "tcp_refused", False),
            ("check", "web", 3, "outage", "regional", ("fr",), "tcp_refused", False),
            ("check", "web", 4, "outage", "regional", ("fr",), "tcp_refused", True),
        ],
    ),
    Scenario(
        "a check recovering while another region has a network incident: each event once",
        Network(
            FOUR,
            checks=FIVE_CHECKS,
            stagger=2.0,
            duration=400,
            faults=[
                Fault(60, 150, regions=("it",), checks=("web",)),
                Fault(140, 250, regions=("de",), cls="tcp_timeout"),
            ],
        ),
        [
            ("check", "web", 1, "outage", "regional", ("it",), "tcp_refused", False),
            ("vantage", "de", 1, "impaired", "region", ("de",), "tcp_timeout", False),
            ("check", "web", 2, "outage", "regional", ("it",), "tcp_refused", True),
            ("vantage", "de", 2, "impaired", "region", ("de",), "tcp_timeout", True),
        ],
    ),
    Scenario(
        "a region's network incident whose last agent recovers late: no impaired agent after it",
        Network(
            FOUR,
            checks=FIVE_CHECKS,
            stagger=2.0,
            faults=[
                Fault(60, 150, regions=("de",), cls="tcp_timeout"),
                Fault(60, 175, agents=("de-1",), cls="tcp_timeout"),
            ],
        ),
        [
            ("vantage", "de", 1, "impaired", "region", ("de",), "tcp_timeout", False),
            ("vantage", "de", 2, "impaired", "region", ("de",), "tcp_timeout", True),
        ],
    ),
    Scenario(
        "cert expiring, one region reporting later: the warning opens once, global",
        Network(FOUR, duration=100, days_left=9.5, silent=lambda t, agent: t < 10 and agent.startswith("us")),
        [("cert_expiring", "web", 1, "warning", "global", ALL, "tls_cert_expiring", False)],
        probe="tls",
    ),
    Scenario(
        "flapping down two rounds, up one: one event, no version churn",
        Network(
            FOUR,
            duration=400,
            faults=[
                Fault(60, 80, regions=("it",)),
                Fault(90, 110, regions=("it",)),
                Fault(120, 140, regions=("it",)),
            ],
        ),
        outage("regional", ("it",)),
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(scenario: Scenario) -> None:
    outcome = replay(_opts(scenario), scenario.network.results())
    assert summary(outcome.events) == scenario.expected


def _spread_cases() -> list[Any]:
    cases = []
    for s in SCENARIOS:
        # With confirm 1 a failure counts at once and the budget (2 intervals) leaves no time to
        # wait for regions not probed yet when evaluations come once an interval: a flapping
        # fault that begins mid-round opens on the regions that saw its first round.
        shifts = (0.0,) if s.options.get("confirm") == 1 else (0.0, 3.0, 5.0, 7.0)
        cases += [
            pytest.param(s, spread, shift, id=f"{s.name}-{spread}-{shift}")
            for spread in (0.5, 0.9)
            for shift in shifts
        ]
    return cases


@pytest.mark.parametrize(("scenario", "spread", "shift"), _spread_cases())
def test_scenario_with_spread_probe_times(scenario: Scenario, spread: float, shift: float) -> None:
    """Agents probing all over the interval (as in production), faults starting anywhere in it:
    the same events, version for version: nothing unexpected, every first version already right,
    no extra versions."""
    faults = [replace(f, at=f.at + shift, until=f.until + shift) for f in scenario.network.faults]
    network = replace(scenario.network, phase_spread=spread, faults=faults)
    outcome = replay(_opts(replace(scenario, network=network)), network.results())
    # Sorted: events of different subjects may now end in another order (their agents' slots).
    assert sorted(summary(outcome.events)) == sorted(scenario.expected)


@pytest.mark.parametrize("spread", [0.0, 0.9])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_through_classify(
    scenario: Scenario, spread: float, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same table through `probe-collector classify --json`: proto3 JSON files in, events out;
    also with the agents' probe times spread over the interval and the faults starting mid-round
    (same events, same first versions, same number of versions)."""
    network = scenario.network
    if spread:
        shift = 0.0 if scenario.options.get("confirm") == 1 else 5.0
        faults = [replace(f, at=f.at + shift, until=f.until + shift) for f in network.faults]
        network = replace(network, phase_spread=spread, faults=faults)
    checks = tmp_path / "checks.yaml"
    spec = check_yaml(
        network.checks, network.interval, scenario.probe, scenario.check_regions, **scenario.options
    )
    checks.write_text(yaml.safe_dump(spec))
    results = tmp_path / "results.jsonl"
    results.write_text(
        "".join(
            to_proto_json(r, camel=i % 2 == 0, probe=scenario.probe) + "\n"
            for i, r in enumerate(network.results())
        )
    )
    assert main(["classify", "--checks", str(checks), "--results", str(results), "--json"]) == 0
    events = [Event.from_dict(json.loads(line)) for line in capsys.readouterr().out.splitlines()]
    assert sorted(summary(events)) == sorted(scenario.expected)


def test_events_open_within_confirm_plus_one_intervals() -> None:
    network = Network(FOUR, faults=[Fault(60, 150, regions=("it",))])
    events = replay(_opts(Scenario("", network, [])), network.results()).events
    fault_at = START + 60
    assert events[0].opened_at - fault_at <= (2 + 1) * network.interval


@pytest.mark.parametrize(
    ("faults", "check"),
    [
        ([Fault(60, 150, regions=("it",), checks=("api",))], "api"),
        ([Fault(60, 150, regions=("fr",), checks=("web",)), Fault(65, 150, regions=("de",))], "web"),
        ([Fault(60, 150, regions=("it",), checks=("web", "api", "cdn"))], "cdn"),
    ],
    ids=["single check", "one check during a region incident elsewhere", "three of five checks (held)"],
)
def test_real_outages_open_within_confirm_plus_one_intervals_despite_holds(
    faults: list[Fault], check: str
) -> None:
    network = Network(FOUR, checks=FIVE_CHECKS, stagger=2.0, faults=faults)
    events = replay(_opts(Scenario("", network, [])), network.results()).events
    opened = next(e for e in events if e.check == check)
    assert opened.opened_at - (START + 60) <= (2 + 1) * network.interval


def test_close_after_counts_ok_evaluations() -> None:
    network = Network(FOUR, faults=[Fault(60, 150, regions=("it",))])
    for close_after in (1, 2, 4):
        events = replay(
            _opts(Scenario("", network, [], {"close_after": close_after})), network.results()
        ).events
        # The first round after the fault (151 s) is OK at the 160 s tick.
        assert events[-1].closed_at == START + 150 + close_after * network.interval


def test_clock_skew_between_agents_gives_the_same_verdicts() -> None:
    faults = [Fault(60, 200, regions=("it",)), Fault(100, 150, regions=("fr",))]
    plain = Network(FOUR, duration=300, faults=faults)
    skew = {"it-1": 7.0, "it-2": -6.0, "fr-1": -8.0, "fr-3": 5.0, "de-2": 8.5, "us-1": -9.0}
    skewed = Network(FOUR, duration=300, faults=faults, skew=skew)
    scenario = Scenario("", plain, [])
    expected = summary(replay(_opts(scenario), plain.results()).events)
    got = summary(replay(_opts(scenario), skewed.results()).events)
    assert got == expected
    assert [v[4] for v in got] == ["regional", "regional", "regional", "regional"]


def test_replay_is_deterministic() -> None:
    network = Network(
        FOUR, checks=FIVE_CHECKS, faults=[Fault(60, 150, regions=("it",), checks=("web", "api"))]
    )
    scenario = Scenario("", network, [])
    first = [e.to_dict() for e in replay(_opts(scenario), network.results()).events]
    second = [e.to_dict() for e in replay(_opts(scenario), list(reversed(network.results()))).events]
    assert first == second
    assert len(first) == 4


def test_mixed_failure_classes_name_the_dominant_host_and_a_sample_error() -> None:
    page_hosts = (
        ("cdn.example", "tls_cert_expired"),
        ("img.example", "tcp_reset"),
        ("cdn.example", "tls_cert_expired"),
    )
    network = Network(
        FOUR,
        faults=[
            Fault(
                60,
                150,
                agents=("it-1",),
                outcome="partial",
                cls="subresource_failed",
                page_hosts=(("x.example", "dns_error"),),
            ),
            Fault(
                60,
                150,
                regions=("it", "fr"),
                outcome="partial",
                cls="subresource_failed",
                page_hosts=page_hosts,
            ),
        ],
    )
    events = replay(_opts(Scenario("", network, [], probe="page")), network.results()).events
    cause = events[0].cause
    assert cause is not None
    assert (cause.cls, cause.host) == ("tls_cert_expired", "cdn.example")
    assert cause.error.startswith("subresource_failed from ")


BUDGET_CASES = [
    *(
        s
        for s in SCENARIOS
        if s.name.startswith(("all regions", "an asset host", "one region down", "partial page"))
    ),
    # With confirm 1 a failure is never pending: regions that have not probed since the onset wait.
    Scenario("all regions down with confirm 1", Network(FOUR, faults=[Fault(60, 150)]), [], {"confirm": 1}),
    Scenario(
        "one region down with confirm 1",
        Network(FOUR, faults=[Fault(60, 150, regions=("it",))]),
        [],
        {"confirm": 1},
    ),
]


@pytest.mark.parametrize("shift", [0.0, 2.5, 5.0, 7.5])
@pytest.mark.parametrize("scenario", BUDGET_CASES, ids=[s.name for s in BUDGET_CASES])
def test_waiting_for_settled_evidence_keeps_the_latency_budget(scenario: Scenario, shift: float) -> None:
    """Spread agents, faults anywhere in the interval: still open within confirm + 1 intervals."""
    faults = [replace(f, at=f.at + shift, until=f.until + shift) for f in scenario.network.faults]
    network = replace(scenario.network, phase_spread=0.9, faults=faults)
    events = replay(_opts(replace(scenario, network=network)), network.results()).events
    confirm = scenario.options.get("confirm", 2)
    fault_at = START + min(f.at for f in faults)
    openings = [e for e in events if e.version == 1]
    assert openings
    for e in openings:
        assert e.opened_at - fault_at <= (confirm + 1) * network.interval + 1e-6, e


def test_recovery_in_progress_is_a_field_of_the_current_version_and_the_peak_stays() -> None:
    """Global, then every region but us recovers: while they recover they are listed in
    `recovering_regions` of version 1 (no new version); once settled a version narrows to us,
    and every later version (the closed one too) remembers the peak."""
    network = Network(FOUR, duration=400, faults=[Fault(60, 150), Fault(60, 250, regions=("us",))])
    currents: list[tuple[float, tuple[str, ...], int]] = []
    engine_opts = _opts(Scenario("", network, []))
    tracker = EventTracker({o.check_id: o for o in engine_opts})

    def watch(evaluation: Evaluation, changes: list[Event]) -> None:
        tracker.update(evaluation)
        for e in tracker.current():
            currents.append((evaluation.now - START, e.recovering_regions, e.version))

    events = replay(engine_opts, network.results(), on_evaluation=watch).events
    assert (160.0, ("de", "fr", "it"), 1) in currents
    narrowed, closed = events[1], events[2]
    assert (narrowed.version, narrowed.regions, narrowed.recovering_regions) == (2, ("us",), ())
    for e in (narrowed, closed):
        assert (e.peak_status, e.peak_scope, e.peak_regions) == ("outage", "global", ALL)
    assert closed.to_dict()["peak_regions"] == list(ALL)


def test_same_named_agents_of_two_regions_impaired_at_once_are_two_vantage_events() -> None:
    """An agent is (region, agent id): two regions' `a-1` failing everything at once are two
    impaired agents, each with its own event and cause, and no check outage."""
    network = Network(
        FOUR,
        checks=FIVE_CHECKS,
        shared_names=True,
        faults=[
            Fault(60, 150, regions=("it",), agents=("a-1",), cls="tcp_timeout"),
            Fault(60, 150, regions=("fr",), agents=("a-1",), cls="dns_timeout"),
        ],
    )
    result = replay(_opts(Scenario("", network, [])), network.results())
    got = sorted(summary(result.events))
    assert got == [
        ("vantage", "a-1", 1, "impaired", "agent", ("fr",), "dns_timeout", False),
        ("vantage", "a-1", 1, "impaired", "agent", ("it",), "tcp_timeout", False),
        ("vantage", "a-1", 2, "impaired", "agent", ("fr",), "dns_timeout", True),
        ("vantage", "a-1", 2, "impaired", "agent", ("it",), "tcp_timeout", True),
    ]
