"""`expect` semantics (DESIGN.md section 6): some version of some event of the check matches."""

from __future__ import annotations

import dataclasses
from typing import Any

from collector.lab.expect import EventHistory, describe_trace, evaluate, unexpected_events
from collector.lab.scenario import Expectation


def version(
    n: int, status: str, regions: list[str], cls: str, closed: bool = False, **extra: Any
) -> dict[str, Any]:
    return {
        "id": "e1",
        "version": n,
        "kind": "check",
        "check": "shop-page",
        "status": status,
        "scope": "regional",
        "regions": regions,
        "cause": {"class": cls, "host": "static.lab.test", "error": ""},
        "closed_at": "2026-01-01T00:01:00Z" if closed else None,
        **extra,
    }


SHOP = EventHistory(
    "e1",
    "check",
    "shop-page",
    [
        version(1, "partial", ["fr"], "tls_cert_expired"),
        version(2, "partial", ["fr", "it"], "tls_cert_expired"),
        version(3, "partial", ["fr", "it"], "tls_cert_expired", closed=True),
    ],
)
VANTAGE = EventHistory(
    "v1",
    "vantage",
    "",
    [
        {
            "id": "v1",
            "version": 1,
            "kind": "vantage",
            "check": "",
            "status": "impaired",
            "scope": "region",
            "regions": ["de"],
            "cause": None,
            "closed_at": None,
        },
    ],
)


def met(expectation: Expectation) -> bool:
    return evaluate([expectation], [SHOP, VANTAGE])[0].met


def test_some_version_must_match_every_given_field() -> None:
    assert met(Expectation("shop-page", "partial", "regional", ("fr", "it"), "tls_cert_expired"))
    assert met(Expectation("shop-page", "partial", regions=("fr",)))
    assert not met(Expectation("shop-page", "partial", regions=("it",)))  # exactly those regions
    assert not met(Expectation("shop-page", "outage"))
    assert not met(Expectation("shop-page", "partial", scope="global"))
    assert not met(Expectation("shop-page", "partial", cause="tls_untrusted"))


def test_host_closed_and_kind() -> None:
    assert met(Expectation("shop-page", "partial", host="static", closed=True))
    assert not met(Expectation("shop-page", "partial", host="shop"))
    assert met(Expectation("", "impaired", "region", ("de",), kind="vantage"))
    assert not met(Expectation("", "impaired", "agent", kind="vantage"))
    assert not met(Expectation("shop-page", "partial", kind="cert_expiring"))


def test_ok_means_no_event_for_the_check() -> None:
    assert not met(Expectation("shop-page", "ok"))
    outcome = evaluate([Expectation("video-http", "ok")], [SHOP])[0]
    assert outcome.met and outcome.detail == "no event"


def test_an_open_event_does_not_meet_closed() -> None:
    still_open = EventHistory(
        "e2", "check", "api", [version(1, "outage", ["it"], "http_status") | {"check": "api"}]
    )
    assert not evaluate([Expectation("api", "outage", closed=True)], [still_open])[0].met
    assert evaluate([Expectation("api", "outage")], [still_open])[0].met


def test_first_asks_for_the_opening_version() -> None:
    both = Expectation("shop-page", "partial", regions=("fr", "it"), cause="tls_cert_expired")
    assert met(both)
    assert not met(dataclasses.replace(both, first=True))  # it opened on fr alone
    assert met(Expectation("shop-page", "partial", regions=("fr",), first=True))


def test_versions_counts_every_version_the_closing_one_included() -> None:
    fr = Expectation("shop-page", "partial", regions=("fr",))
    assert met(dataclasses.replace(fr, versions=3))
    assert not met(dataclasses.replace(fr, versions=2))


def test_strict_fails_on_events_no_entry_asks_for() -> None:
    shop = Expectation("shop-page", "partial")
    impaired = Expectation("", "impaired", kind="vantage")
    assert not unexpected_events([shop], [SHOP, VANTAGE]).met  # a vantage event nobody expected
    assert "impaired" in unexpected_events([shop], [SHOP, VANTAGE]).detail
    assert unexpected_events([shop, impaired], [SHOP, VANTAGE]).met
    # `status: ok` asks for nothing; an entry for another check does not cover this one.
    assert not unexpected_events([Expectation("shop-page", "ok"), impaired], [SHOP, VANTAGE]).met
    assert not unexpected_events([Expectation("static-tls", "outage"), impaired], [SHOP, VANTAGE]).met


def test_strict_tells_vantage_events_apart_by_scope() -> None:
    """An impaired agent is not the impaired region an entry asks for."""
    region = Expectation("", "impaired", scope="region", kind="vantage")
    agent = Expectation("", "impaired", scope="agent", kind="vantage")
    shop = Expectation("shop-page", "partial")
    assert unexpected_events([shop, region], [SHOP, VANTAGE]).met
    assert not unexpected_events([shop, agent], [SHOP, VANTAGE]).met


def test_strict_fails_on_another_event_of_an_expected_check() -> None:
    """A second event of the same check that never matches its entry (here: another cause)."""
    impaired = Expectation("", "impaired", kind="vantage")
    other = EventHistory("e2", "check", "shop-page", [version(1, "partial", ["de"], "timeout")])
    shop = Expectation("shop-page", "partial", regions=("fr", "it"), cause="tls_cert_expired")
    assert unexpected_events([shop, impaired], [SHOP, VANTAGE]).met
    outcome = unexpected_events([shop, impaired], [SHOP, other, VANTAGE])
    assert not outcome.met and "timeout" in outcome.detail


def trace(agent: str, answered: list[int], silent: list[int], reached: bool = False) -> dict[str, Any]:
    hops = [{"ttl": t, "address": f"10.78.{t}.2", "lost": 0} for t in answered]
    hops += [{"ttl": t, "address": "", "lost": 3} for t in silent]
    return {
        "agent": agent,
        "host": "shop.lab.test",
        "address": "10.78.4.10",
        "reached": reached,
        "hops": hops,
    }


def test_broken_at_asks_every_trace_to_go_silent_from_that_hop() -> None:
    broken = Expectation("shop-page", "partial", broken_at=3)
    both = [trace("fr-1", [1, 2], [3, 4, 5]), trace("fr-2", [1, 2], list(range(3, 31)))]
    assert evaluate([broken], [dataclasses.replace(SHOP, path_traces=both)])[0].met
    for traces in (
        [],  # no trace came back
        [trace("fr-1", [1], [2, 3])],  # silent one hop early
        [trace("fr-1", [1, 2, 3], [4])],  # answered at the break
        [trace("fr-1", [1, 2], [3]), trace("fr-2", [1, 2, 3, 4], [], reached=True)],  # one got through
        [trace("fr-1", [1, 2], [])],  # never reached the break
    ):
        outcome = evaluate([broken], [dataclasses.replace(SHOP, path_traces=traces)])[0]
        assert not outcome.met, traces
        assert "path traces: " in outcome.detail
    assert evaluate([broken], [SHOP])[0].detail.endswith("path traces: none")


def test_a_trace_reads_as_hops_and_runs_of_silence() -> None:
    line = describe_trace(trace("fr-1", [1, 2], list(range(3, 31))))
    assert line == (
        "path from fr-1 to shop.lab.test (10.78.4.10): 1 10.78.1.2, 2 10.78.2.2, 3-30 * (not reached)"
    )
    healed = trace("it-1", [1], [2], reached=True)
    healed["hops"].append({"ttl": 3, "address": "10.78.4.10"})
    assert describe_trace(healed).endswith(": 1 10.78.1.2, 2 *, 3 10.78.4.10 (reached)")
    assert (
        describe_trace({"agent": "a", "host": "h", "error": "no route"}) == "path from a to h (?): no route"
    )
